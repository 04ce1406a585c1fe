#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_launchd
short_description: Manage a macOS LaunchDaemon in the system domain with modern launchctl verbs
version_added: 0.1.0
description:
  - Writes C(/Library/LaunchDaemons/<label>.plist) from options, owned by C(root:wheel) with
    mode 0644 (launchd refuses group- or world-writable plists), and bootstraps it into the
    C(system) domain.
  - The existing plist is compared by parsed content, not bytes, and rewritten atomically only
    when its content differs; a wrong owner or mode alone is corrected in place.
  - Uses C(launchctl print), C(bootstrap), C(bootout), C(enable) and C(kickstart) only; never the
    deprecated C(load) and C(unload).
  - A loaded daemon whose plist changed is booted out, awaited until launchd has unloaded it
    (bounded polling, no fixed sleeps), and bootstrapped again.
  - Before bootstrapping, checks with C(dscl) that O(user_name) (and O(group_name)) exist, so a
    missing service account fails with a clear message instead of a silently failing job.
author: stigmer.runtime contributors (@stigmer)
options:
  label:
    description:
      - The launchd label, for example V(io.stigmer.server).
    type: str
    required: true
  state:
    description:
      - V(present) writes the plist and makes sure the daemon is loaded and enabled.
      - V(restarted) does the same and then restarts the daemon with C(launchctl kickstart -k),
        unless it was just bootstrapped and started by C(RunAtLoad).
      - V(absent) boots the daemon out if loaded and removes the plist.
    type: str
    choices: [present, absent, restarted]
    default: present
  program_arguments:
    description:
      - The program and its arguments (C(ProgramArguments)). Required unless O(state=absent).
    type: list
    elements: str
  user_name:
    description:
      - The account the daemon runs as (C(UserName)). It must already exist.
    type: str
  group_name:
    description:
      - The group the daemon runs as (C(GroupName)). It must already exist.
    type: str
  environment:
    description:
      - Environment variables for the daemon (C(EnvironmentVariables)).
      - The plist is world-readable; never put secrets here. Secrets belong in a protected
        environment file read by a wrapper script.
    type: dict
  working_directory:
    description:
      - The daemon's working directory (C(WorkingDirectory)).
    type: path
  stdout_path:
    description:
      - File that receives the daemon's standard output (C(StandardOutPath)).
    type: path
  stderr_path:
    description:
      - File that receives the daemon's standard error (C(StandardErrorPath)).
    type: path
  keep_alive:
    description:
      - Whether launchd restarts the daemon whenever it exits (C(KeepAlive)).
    type: bool
    default: true
  run_at_load:
    description:
      - Whether the daemon starts when bootstrapped and at boot (C(RunAtLoad)).
    type: bool
    default: true
  throttle_interval:
    description:
      - Minimum seconds between two starts (C(ThrottleInterval)).
    type: int
    default: 10
  extra:
    description:
      - Further plist keys, merged last; they may override the keys above except C(Label).
    type: dict
  path:
    description:
      - Path of the plist. Defaults to C(/Library/LaunchDaemons/<label>.plist).
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Runs only C(launchctl print); RV(actions) lists what would be run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - Shows the plist XML before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: darwin
notes:
  - Needs root (C(become)); the system domain and C(/Library/LaunchDaemons) belong to root.
  - Disabling by an administrator (C(launchctl disable)) of a daemon that is already loaded is not
    reverted unless the plist changes or the daemon is not loaded.
seealso:
  - module: stigmer.runtime.stigmer_install
'''

EXAMPLES = r'''
- name: Run the stigmer server as a LaunchDaemon
  stigmer.runtime.stigmer_launchd:
    label: io.stigmer.server
    program_arguments:
      - /opt/stigmer/libexec/stigmer-service
      - server
    user_name: _stigmer
    group_name: _stigmer
    working_directory: /var/lib/stigmer
    environment:
      HOME: /var/lib/stigmer
      STIGMER_BACKEND_ENDPOINT: localhost:7234
    stdout_path: /var/log/stigmer/server.log
    stderr_path: /var/log/stigmer/server.log

- name: Restart it after an upgrade
  stigmer.runtime.stigmer_launchd:
    label: io.stigmer.server
    state: restarted
    program_arguments:
      - /opt/stigmer/libexec/stigmer-service
      - server
    user_name: _stigmer

- name: Remove it
  stigmer.runtime.stigmer_launchd:
    label: io.stigmer.server
    state: absent
'''

RETURN = r'''
path:
  description: Path of the plist.
  returned: always
  type: str
  sample: /Library/LaunchDaemons/io.stigmer.server.plist
plist_changed:
  description: Whether the plist content was (or would be) written or, for O(state=absent), removed.
  returned: always
  type: bool
  sample: true
attributes_fixed:
  description: What was (or would be) corrected on an unchanged plist, V(owner) and/or V(mode).
  returned: when O(state) is not V(absent)
  type: list
  elements: str
  sample: [mode]
loaded:
  description: Whether the daemon is (or would be) loaded in the system domain after the task.
  returned: always
  type: bool
  sample: true
actions:
  description: The launchctl commands run (under check mode, that would be run), in order; C(print) queries are not listed.
  returned: always
  type: list
  elements: list
  sample:
    - ["/bin/launchctl", "enable", "system/io.stigmer.server"]
    - ["/bin/launchctl", "bootstrap", "system", "/Library/LaunchDaemons/io.stigmer.server.plist"]
'''

import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stigmer.runtime.plugins.module_utils import launchd


def argument_spec():
    return dict(
        label=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent', 'restarted'], default='present'),
        program_arguments=dict(type='list', elements='str'),
        user_name=dict(type='str'),
        group_name=dict(type='str'),
        environment=dict(type='dict'),
        working_directory=dict(type='path'),
        stdout_path=dict(type='path'),
        stderr_path=dict(type='path'),
        keep_alive=dict(type='bool', default=True),
        run_at_load=dict(type='bool', default=True),
        throttle_interval=dict(type='int', default=10),
        extra=dict(type='dict'),
        path=dict(type='path'),
    )


def is_macos():
    return platform.system() == 'Darwin'


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[('state', 'present', ['program_arguments']),
                     ('state', 'restarted', ['program_arguments'])],
        supports_check_mode=True,
    )
    if not is_macos():
        module.fail_json(msg='stigmer_launchd manages launchd and runs on macOS only; this host is %s'
                         % platform.system())

    def runner(argv):
        return module.run_command(argv)

    params = dict(module.params)
    try:
        result = launchd.ensure_daemon(runner=runner, check_mode=module.check_mode,
                                       uid=launchd.ROOT_UID, gid=launchd.ROOT_GID, **params)
    except launchd.LaunchdError as exc:
        module.fail_json(msg=to_native(exc))
    except OSError as exc:
        module.fail_json(msg='managing %s failed: %s' % (params['label'], to_native(exc)))

    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
