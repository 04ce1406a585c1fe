# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""stigmer_plan: the role's variables, typed, and the host's plan, built on the controller.

Nothing runs on the host. Secrets never enter the result: stigmer_runtime's action plugin
builds the environment files itself from the same settings.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.stigmer.runtime.plugins.plugin_utils._plan import plan_from_vars
from ansible_collections.stigmer.runtime.plugins.plugin_utils._settings import (
    SettingsError, public, read_role_settings)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('releases', 'settings_only'))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        result['changed'] = False
        try:
            settings, derived = read_role_settings(self._templar, task_vars)
            result.update(settings=public(settings), services=derived['services'], system=derived['system'],
                          controller_mode=derived['controller_mode'])
            if not args.get('settings_only'):
                plan = plan_from_vars(self._templar, task_vars, args.get('releases') or None)
                result.update(plan.public())
        except (SettingsError, AnsibleError) as exc:
            result.update(failed=True, msg='%s Nothing was changed on any host.' % exc)
        return result
