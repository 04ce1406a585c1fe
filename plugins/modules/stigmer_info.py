#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_info
short_description: Report the installed Stigmer CLI, agent-runner and Temporal versions from the install records
version_added: 0.1.0
description:
  - Reads the installed versions from the records that M(stigmer.runtime.stigmer_runtime) writes;
    it executes nothing. The CLI of v0.0.5 to v0.0.7 has no version flag, and the agent-runner
    ignores its arguments and starts a worker, so running them would tell nothing or start a
    service.
  - The CLI version is the version directory that O(current) points at, confirmed by its
    C(.manifest.json). The agent-runner version is the content of C(share/agent-runner.version)
    in that directory (the file the CLI's C(data/bin/.version) links to), believed only when it
    matches the sha256 the manifest records.
  - Only O(current) itself is followed, and only when it is a relative link to a version
    directory beside it (C(versions/v1.1.0)); everything below it is opened without following
    symbolic links and must be owned by root or by the connecting account and not writable by
    group or others.
  - With O(components), also reports each service's state and whether its running process
    predates what is installed (RV(services)). A process that started before its version link,
    unit or environment file last changed still runs the old binary or settings. One
    C(systemctl show) for all of them; process start times come from C(/proc) (C(ps) on macOS).
  - Changes nothing; a missing install is reported, not an error, and so is an install record
    that cannot be trusted (see RV(problems)).
author: stigmer.runtime contributors (@stigmer)
options:
  current:
    description:
      - Path of the link to the active Stigmer version, for example C(/opt/stigmer/current).
    type: path
    required: true
  temporal_current:
    description:
      - Path of the link to the active Temporal CLI version, for example C(/opt/stigmer/temporal/current).
      - Omit when Temporal is external.
    type: path
  service_manager:
    description:
      - How the components run. With V(none) (or without O(components)), RV(services) is empty.
    type: str
    choices: [systemd, launchd, none]
    default: none
  components:
    description:
      - The services to report on.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Component name, the key in RV(services).
        type: str
        required: true
      unit:
        description: Its systemd unit or launchd label.
        type: str
        required: true
      watch:
        description:
          - Paths it was started from (version link, unit file, environment file); a process
            that started before one of them last changed is stale.
        type: list
        elements: path
        default: []
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
seealso:
  - module: stigmer.runtime.stigmer_runtime
'''

EXAMPLES = r'''
- name: Read the installed Stigmer versions
  stigmer.runtime.stigmer_info:
    current: /opt/stigmer/current
    temporal_current: /opt/stigmer/temporal/current
  register: stigmer_installed

- name: Read the installed versions and whether the services run them
  stigmer.runtime.stigmer_info:
    current: /opt/stigmer/current
    service_manager: systemd
    components:
      - name: server
        unit: stigmer-server.service
        watch: [/opt/stigmer/current, /etc/systemd/system/stigmer-server.service, /etc/stigmer/server.env]
'''

RETURN = r'''
installed:
  description: Whether the active version's record lists both C(bin/stigmer) and C(bin/agent-runner) and both are in place.
  returned: always
  type: bool
  sample: true
cli_version:
  description: Version of the active CLI, without a leading v; null when nothing is installed or the record cannot be trusted.
  returned: always
  type: str
  sample: 1.1.0
agent_runner_version:
  description: Version the active agent-runner was installed as, without a leading v; null when absent or not verified.
  returned: always
  type: str
  sample: 1.1.0
temporal_version:
  description: Version of the active Temporal CLI; null when absent, not trusted or O(temporal_current) is not set.
  returned: always
  type: str
  sample: 1.5.1
versions_match:
  description: True when the CLI and the agent-runner versions are both known and the same.
  returned: always
  type: bool
  sample: true
services:
  description: Each of O(components) by name; empty without them.
  returned: always
  type: dict
  sample:
    server:
      state: active
      active: true
      stale: null
    agent-runner:
      state: active
      active: true
      stale: started before /opt/stigmer/current changed
  contains:
    state:
      description: systemd's C(ActiveState) (C(active), C(inactive), C(failed), ...); under launchd C(active), C(inactive) or C(not loaded).
      type: str
    active:
      description: Whether it runs.
      type: bool
    stale:
      description: Why the running process predates what is installed; null when it runs what is installed or does not run.
      type: str
problems:
  description: Why an install record could not be read or believed; empty when all was read.
  returned: always
  type: list
  elements: str
  sample: ["/opt/stigmer/current: share/agent-runner.version does not match its recorded sha256"]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stigmer.runtime.plugins.module_utils._runtime import PlanError, running_versions
from ansible_collections.stigmer.runtime.plugins.module_utils._install import InstallError, read_active
from ansible_collections.stigmer.runtime.plugins.module_utils._version import extract_version

RUNNER_VERSION_FILE = 'share/agent-runner.version'
STIGMER_BINS = ('bin/stigmer', 'bin/agent-runner')


def argument_spec():
    return dict(
        current=dict(type='path', required=True),
        temporal_current=dict(type='path'),
        service_manager=dict(type='str', choices=['systemd', 'launchd', 'none'], default='none'),
        components=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            unit=dict(type='str', required=True),
            watch=dict(type='list', elements='path', default=[]),
        )),
    )


def read_record(link, problems, read=(), present=()):
    """read_active(), with every reason it gave up on something added to problems."""
    try:
        record = read_active(link, read, present)
    except (InstallError, OSError) as exc:
        problems.append('%s: %s' % (link, to_native(exc)))
        return None
    if record:
        problems.extend('%s: %s' % (link, p) for p in record['problems'])
    return record


def report(current, temporal_current=None):
    problems = []
    cli = runner = temporal = None
    installed = False
    record = read_record(current, problems, read=[RUNNER_VERSION_FILE], present=STIGMER_BINS)
    if record:
        cli = extract_version(record['version'])
        runner = extract_version(record['contents'].get(RUNNER_VERSION_FILE))
        installed = sorted(record['present']) == sorted(STIGMER_BINS)
    if temporal_current:
        record = read_record(temporal_current, problems, present=['bin/temporal'])
        if record and record['present']:
            temporal = extract_version(record['version'])
    return {
        'installed': installed,
        'cli_version': cli,
        'agent_runner_version': runner,
        'temporal_version': temporal,
        'versions_match': bool(cli) and cli == runner,
        'problems': problems,
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    result = report(module.params['current'], module.params['temporal_current'])
    try:
        result['services'] = running_versions(module.params['service_manager'], module.params['components'],
                                              module.run_command)
    except PlanError as exc:
        module.fail_json(msg='Cannot read the state of the Stigmer services: %s' % to_native(exc), **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
