# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of stigmer_runtime: the environment files, controller-verified artifacts, then one module call.

The environment files hold secrets, so they never travel through a registered result: when the
task gives none, they are built here from the role's settings (plugin_utils._plan), the same
settings stigmer_plan built the plan from.

Artifacts go into the task's private remote temporary directory (created for the connecting
user, mode 0700) and are deleted with it when the task ends: nothing of them stays on the host
but the installed version.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.stigmer.runtime.plugins.plugin_utils._plan import plan_from_vars
from ansible_collections.stigmer.runtime.plugins.plugin_utils._settings import SettingsError


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        try:
            artifacts = host_artifacts(args.get('artifacts'))
            if args.get('action', 'compare') in ('compare', 'apply') and 'environment_files' not in args:
                try:
                    args['environment_files'] = plan_from_vars(self._templar, task_vars).environment_files()
                except (SettingsError, AnsibleError) as exc:
                    raise AnsibleActionFail(str(exc))
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
            else:
                args['artifacts'] = artifacts
            result.update(self._execute_module(module_name='stigmer.runtime.stigmer_runtime', module_args=args,
                                               task_vars=task_vars))
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result


def host_artifacts(given):
    """{name, path, sha256} of each artifact: stigmer_artifact's registered loop results pass whole."""
    out = []
    for item in given or []:
        if not isinstance(item, dict):
            raise AnsibleActionFail('each artifact must be a mapping with name, path and sha256')
        if 'item' in item:
            if item.get('skipped') or 'sha256' not in item:
                continue
            item = {'name': item['item']['name'], 'path': item['path'], 'sha256': item['sha256']}
        missing = [k for k in ('name', 'path', 'sha256') if not item.get(k)]
        if missing:
            raise AnsibleActionFail('artifact %s lacks %s' % (item.get('name', '?'), ', '.join(missing)))
        out.append({'name': item['name'], 'path': item['path'], 'sha256': item['sha256']})
    return out
