# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of stigmer_runtime: bring controller-verified artifacts along, then one module call.

Artifacts go into the task's private remote temporary directory (created for the connecting
user, mode 0700) and are deleted with it when the task ends: nothing of them stays on the host
but the installed version.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        artifacts = list(args.get('artifacts') or [])
        try:
            if args.get('artifacts_from') == 'controller' and artifacts:
                if self._play_context.check_mode:
                    artifacts = []
                remote = []
                tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
                for item in artifacts:
                    local = item.get('path')
                    if not local or not os.path.isfile(local):
                        raise AnsibleActionFail('artifact %s is not on the controller at %s' % (item.get('name'), local))
                    dest = self._connection._shell.join_path(tmpdir, os.path.basename(local))
                    self._transfer_file(local, dest)
                    remote.append(dict(item, path=dest))
                self._fixup_perms2([tmpdir] + [r['path'] for r in remote])
                args['artifacts'] = remote
                args['artifacts_from'] = 'host'
            result.update(self._execute_module(module_name='stigmer.runtime.stigmer_runtime', module_args=args,
                                               task_vars=task_vars))
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
