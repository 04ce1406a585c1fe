#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: stigmer_runtime
short_description: Compare a host with the Stigmer runtime plan, apply it, roll it back or remove it
version_added: 0.1.0
description:
  - The host side of the role's single plan. The role builds one O(plan) per host on the controller;
    this module compares the host with it in one call (V(compare)), makes the host match it (V(apply)),
    switches back after a failed health gate (V(rollback)) or removes what an install recorded as its
    own (V(remove)).
  - "Layout and trust: every directory from C(/) down to the binaries, links, units and environment
    files is root-owned; the service account owns only its leaf directories (O(plan) C(leaves)), which
    this module creates and never enters. Paths are examined with C(lstat) and opened with C(O_NOFOLLOW):
    a link or foreign directory where the plan has one of its own is replaced, never followed."
  - V(compare) and V(apply) take one code path. Each step decides what differs (directories, version trees,
    links, environment files, systemd units or launchd plists, enablement, the services, the install record)
    and names it in RV(changes); V(compare) stops there and writes nothing nor runs any state-changing
    command, V(apply) does what it decided. So V(apply) performs the changes V(compare) reported, with the
    same sentences in the same order, launchd plists included.
  - Restarts follow the running state, not this run's changes alone. A component whose process started
    before its version link, unit or environment file last changed is restarted, so a run interrupted
    after a switch is finished by the next one. Linux start times are exact; under launchd (C(ps) reports
    them to the second) a change within a second after a start does not count.
  - Under launchd a job whose plist changed (in this run, or after its process started) is booted out and
    bootstrapped again, since a loaded job keeps the plist it was loaded with; a restart for any other
    reason is a C(launchctl kickstart -k). Either touches that job only.
  - V(apply), V(rollback) and V(remove) hold an exclusive lock (C(<prefix>/.lock)); a second run waits
    up to C(lock_timeout) seconds, then fails naming the lock.
  - Artifacts travel to the host only for a version that must be installed. The action plugin of the same
    name copies controller-side artifacts into Ansible's private remote temporary directory, which is
    removed when the task ends.
  - A stigmer_prefix or stigmer_state_dir that is a system directory, a user's home or not absolute is
    refused before anything is touched, on install and on removal; so is a directory the install owns below
    one that someone other than root can change (not the shared directory of the C(stigmer) link).
  - The checks of a staged version (C(checks) of a tree, such as C(stigmer --help)) run as the service
    account, with C(PATH) as their only environment variable, never as root; without a service account
    they run as the user running the module.
  - V(compare) and V(apply) stop before any change while the state directory the install record names
    still exists and is not the plan's (its database and workspace would be left behind); the message
    names both and how to keep or move it.
author: stigmer.runtime contributors (@stigmer)
options:
  action:
    description:
      - V(compare) reports what differs and which artifacts the host lacks (RV(needs)); it changes nothing
        and reports C(changed) only in check mode, where it stands for the whole run.
      - V(apply) makes the host match the plan; V(rollback) switches the trees named in O(previous) back and
        restarts every component; V(remove) stops the services and deletes what the install record lists.
    type: str
    choices: [compare, apply, rollback, remove]
    default: compare
  plan:
    description:
      - The host's plan, built by the role (C(vars/main.yml), C(_stigmer_plan)) and passed whole.
      - Keys C(platform), C(service_manager) (V(systemd), V(launchd) or V(none)), C(system), C(owner),
        C(group), C(keep), C(lock_timeout), C(prefix), C(record) (the install record's path), C(account)
        (C(user), C(group), C(home)) or V(null), C(trees) (per version tree C(name), C(root), C(link),
        C(version), C(sources), C(files), C(checks)), C(directories) (root-owned, C(path) and C(own)),
        C(leaves), C(links) (C(path), C(target)), C(remove), C(retired) (configuration directories of
        earlier versions, removed where the install record lists them), C(uninstall), C(components) (C(name), C(unit),
        C(path), C(enabled), C(watch), and C(content) for systemd or C(launchd) options) and C(target).
    type: dict
    required: true
  environment_files:
    description:
      - Path to content of each component's environment file, written C(root:<service group>) mode 0640.
        They hold secrets; the module never returns their content.
    type: dict
    default: {}
  artifacts:
    description:
      - For O(action=apply), the verified artifacts of the trees RV(needs) named, each with C(name),
        C(path) on the host and C(sha256). Each is opened once, never through a symbolic link, hashed again
        and unpacked or copied from that same open file.
    type: list
    elements: dict
    default: []
  artifacts_from:
    description:
      - V(controller) when the paths in O(artifacts) are on the controller; the action plugin then copies
        them into the task's private temporary directory on the host first. V(host) when they are on the host.
    type: str
    choices: [controller, host]
    default: host
  previous:
    description:
      - For O(action=rollback), the version to return to per tree name, as RV(previous) of V(apply) gave it.
    type: dict
    default: {}
  purge:
    description:
      - For O(action=remove), also delete the state directory (database, logs, workspace).
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: V(compare) is the check-mode report of a whole run; the other actions change nothing in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: V(compare) returns the installed and planned versions and every change as a diff.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Uses only the Python standard library on the host.
seealso:
  - module: stigmer.runtime.stigmer_health
  - module: stigmer.runtime.stigmer_info
'''

EXAMPLES = r'''
- name: Compare the host with its plan
  stigmer.runtime.stigmer_runtime:
    action: compare
    plan: "{{ _stigmer_plan }}"
    environment_files: "{{ _stigmer_environment_files }}"
  register: compared

- name: Remove what the install recorded, state included
  stigmer.runtime.stigmer_runtime:
    action: remove
    purge: true
    plan:
      prefix: /opt/stigmer
      record: /opt/stigmer/install-record.json
      system: true
      account: {user: stigmer, home: /var/lib/stigmer}
'''

RETURN = r'''
changes:
  description:
    - What differs (V(compare)) or what was done, one sentence each.
    - V(apply) returns the sentences V(compare) returned for the same host, in the same order.
  returned: always
  type: list
  elements: str
  sample: ["switch stigmer from v0.0.6 to v0.0.7", "restart server (changed in this run: /opt/stigmer/current)"]
needs:
  description: For V(compare), the artifacts of the trees that must be (re)installed.
  returned: action is compare
  type: list
  elements: str
  sample: [stigmer-v0.0.7-linux-amd64.tar.gz, agent-runner-v0.0.7-linux-amd64]
account_missing:
  description: For V(compare), whether the service account or its group does not exist yet.
  returned: action is compare
  type: bool
versions:
  description: Per tree, the active version (V(compare)) or the plan's version (V(apply)).
  returned: action is compare or apply
  type: dict
  sample: {stigmer: v0.0.6, temporal: v1.5.1}
previous:
  description: For V(apply), per tree that was switched, the version it was switched from.
  returned: action is apply
  type: dict
  sample: {stigmer: v0.0.6}
switched:
  description: For V(apply), the trees whose link was switched.
  returned: action is apply
  type: list
  elements: str
restarted:
  description: For V(apply), the components that were started or restarted (under launchd also loaded or loaded again).
  returned: action is apply
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stigmer.runtime.plugins.module_utils._runtime import (
    PlanError,
    Runtime,
    remove_recorded,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type='str', default='compare', choices=['compare', 'apply', 'rollback', 'remove']),
            plan=dict(type='dict', required=True),
            environment_files=dict(type='dict', default={}, no_log=True),
            artifacts=dict(type='list', elements='dict', default=[]),
            artifacts_from=dict(type='str', default='host', choices=['controller', 'host']),
            previous=dict(type='dict', default={}),
            purge=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    action = params['action']
    try:
        if action == 'remove':
            result = remove_recorded(params['plan'], params['purge'], module.run_command,
                                     check_mode=module.check_mode)
        else:
            runtime = Runtime(params['plan'], params['environment_files'], module.run_command)
            if action == 'compare':
                result = runtime.compare()
                result['changed'] = module.check_mode and result['changed']
                if not module._diff:
                    result.pop('diff')
            elif module.check_mode:
                result = {'changed': True, 'changes': ['%s (check mode: not done)' % action]}
            elif action == 'apply':
                artifacts = dict((a['name'], a) for a in params['artifacts'])
                result = runtime.apply(artifacts)
            else:
                result = runtime.rollback(params['previous'])
    except PlanError as exc:
        module.fail_json(msg=to_native(exc))
    except OSError as exc:
        module.fail_json(msg='%s failed: %s (%s)' % (action, to_native(exc), getattr(exc, 'filename', '') or ''))
    for warning in result.pop('warnings', None) or []:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
