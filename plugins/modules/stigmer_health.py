#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_health
short_description: Wait until the Stigmer runtime is up, settled and ready
version_added: 0.1.0
description:
  - The whole health gate in one call, which loops by itself until O(wait) seconds have passed;
    no C(until) retries are needed.
  - The server is probed over gRPC on its port, with one call to C(grpc.health.v1.Health/Check) over
    cleartext HTTP/2 (Python standard library only). Servers v0.0.5 to v0.0.7 register no health
    service and answer that call with a gRPC error status; any gRPC answer counts as up unless
    O(require_status) is set. A health answer other than C(SERVING) means not yet.
  - With a O(service_manager), each of the O(components) must also be running, keep the same main
    PID, not restart (systemd C(NRestarts), launchd C(runs)), and have logged its
    O(components[].ready_pattern) since its current start. Success needs all of this for
    O(settle) seconds in a row before the deadline.
  - A component whose restart counter grows by 3 or more during the gate is crash-looping, and the
    gate ends at once instead of waiting out the deadline.
  - A component that logs its O(components[].stale_pattern) in its current start is restarted
    once (C(systemctl restart), C(launchctl kickstart -k)) and checked again; logging it again
    after that ends the gate. This catches a server that started while Temporal was unreachable,
    which serves gRPC without its workers and never reconnects.
  - systemd is sampled with one C(systemctl show) per round; a unit's log of its current start is
    read by its invocation ID (C(journalctl _SYSTEMD_INVOCATION_ID=)).
  - "launchd jobs are sampled with C(launchctl print system/<label>). Their log file holds a line
    C(stigmer.runtime: start pid <PID>) at each start, written by the role's wrapper before it
    execs the component, and the current start is what follows the line with the job's PID."
  - Only the last 256 KiB of a launchd log file (the last 5000 journal lines of a systemd start)
    are read; a component that logged more than that since it started is taken as ready.
  - The outcome is reported, not raised. An unhealthy runtime gives RV(healthy=false), the reasons
    in RV(msg) and each component's last log lines in RV(logs); the task does not fail, so the
    caller can roll back.
author: stigmer.runtime contributors (@stigmer)
options:
  host:
    description: Address the server listens on.
    type: str
    default: 127.0.0.1
  port:
    description: The server's gRPC port.
    type: int
    default: 7234
  service:
    description:
      - Health service name to ask about; the empty string asks about the server as a whole.
    type: str
    default: ''
  require_status:
    description:
      - When false, a server that answers gRPC with any status, including UNIMPLEMENTED for a
        missing health service, is up; this is what the Stigmer CLI's own probe (a gRPC dial)
        checks. When the health service does answer, only C(SERVING) counts either way.
      - When true, a server without a health service is unhealthy.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for the connection and the answer of each gRPC probe.
      - The gate can end up to this long after O(wait) when the last probe hangs.
    type: float
    default: 5
  wait:
    description:
      - Overall deadline of the gate, in seconds.
      - V(0) samples once; O(settle) does not apply then.
      - Otherwise it must be at least O(settle).
    type: int
    default: 0
  settle:
    description:
      - Seconds during which every check must pass without any component restarting.
    type: int
    default: 10
  service_manager:
    description:
      - What supervises the O(components). V(none) checks only the gRPC probe and ignores
        O(components).
    type: str
    choices: [systemd, launchd, none]
    default: none
  components:
    description: The supervised components to watch.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name used in messages and as the key of RV(components) and RV(logs).
        type: str
        required: true
      unit:
        description: The systemd unit name or the launchd label.
        type: str
        required: true
      ready_pattern:
        description:
          - Text that must appear in the component's log since its current start, for example
            C(Worker ready, polling for tasks).
        type: str
      stale_pattern:
        description:
          - Text that, when it appears in the log of the current start, makes the gate restart the
            component once and check again.
        type: str
      log_path:
        description:
          - The job's stdout and stderr file. Required under launchd; unused under systemd.
          - Read as root without following symbolic links, and only when it is a regular file
            with a single hard link.
        type: path
  log_lines:
    description: How many of each component's last log lines RV(logs) holds on failure.
    type: int
    default: 25
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is restarted; a component that would be restarted makes the gate
      unhealthy, and RV(restarted) names it.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
'''

EXAMPLES = r'''
- name: Wait up to 90 s for the runtime to be up and settled for 10 s
  stigmer.runtime.stigmer_health:
    port: 7234
    wait: 90
    settle: 10
    service_manager: systemd
    components:
      - name: server
        unit: stigmer-server.service
        stale_pattern: Failed to connect to Temporal server
      - name: agent-runner
        unit: stigmer-agent-runner.service
        ready_pattern: Worker ready, polling for tasks
  register: stigmer_health

- name: Fail with the gate's reasons
  ansible.builtin.fail:
    msg: "{{ stigmer_health.msg }}"
  when: not stigmer_health.healthy

- name: Ask the server once, as the fleet report does
  stigmer.runtime.stigmer_health:
    port: 7234
  register: stigmer_probe
'''

RETURN = r'''
healthy:
  description: Whether every check passed (for O(settle) seconds when O(wait) is not 0).
  returned: always
  type: bool
msg:
  description:
    - One line. When unhealthy, each failing check and why, joined by C(; ).
  returned: always
  type: str
  sample: "workflow-runner restarted 4 times in 12 s (crash loop); agent-runner has not logged its ready line since it started at Tue 2026-01-06 10:00:03 UTC"
status:
  description:
    - The serving status the server gave (C(SERVING), C(NOT_SERVING), C(SERVICE_UNKNOWN), C(UNKNOWN)).
    - Null when nothing answered over gRPC or the server has no health service.
  returned: always
  type: str
  sample: SERVING
grpc:
  description: Whether a gRPC server answered on the port at the last probe.
  returned: always
  type: bool
restarted:
  description:
    - Components the gate restarted because of their O(components[].stale_pattern); in check
      mode, those it would have restarted.
  returned: always
  type: list
  elements: str
  sample: [server]
components:
  description: Each component as last sampled.
  returned: always
  type: dict
  sample:
    agent-runner:
      unit: stigmer-agent-runner.service
      active: true
      state: active/running
      pid: 4242
      restarts: 0
      ready: true
      started: Tue 2026-01-06 10:00:03 UTC
  contains:
    unit:
      description: The unit or label.
      type: str
    active:
      description: Whether it runs with a main PID.
      type: bool
    state:
      description: systemd's C(ActiveState/SubState), or launchd's C(state).
      type: str
    pid:
      description: Its main PID, null when it has none.
      type: int
    restarts:
      description: How often it restarted during the gate (restarts by the gate itself excluded).
      type: int
    ready:
      description:
        - Whether its ready pattern was seen since its current start (true when it has none).
        - Null when its log since the start is longer than what is read.
      type: bool
    started:
      description: When the current start began (systemd only; null under launchd).
      type: str
logs:
  description: Each component's last O(log_lines) log lines when unhealthy; empty when healthy.
  returned: always
  type: dict
  sample:
    workflow-runner:
      - "stigmer-workflow-runner.service: Main process exited, code=exited, status=1/FAILURE"
changed:
  description: True when the gate restarted a component (in check mode, when it would have).
  returned: always
  type: bool
'''

from functools import partial

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import probe
from ansible_collections.stigmer.runtime.plugins.module_utils import _service_state as service_state


def argument_spec():
    return dict(
        host=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=7234),
        service=dict(type='str', default=''),
        require_status=dict(type='bool', default=False),
        timeout=dict(type='float', default=5),
        wait=dict(type='int', default=0),
        settle=dict(type='int', default=10),
        service_manager=dict(type='str', choices=['systemd', 'launchd', 'none'], default='none'),
        components=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            unit=dict(type='str', required=True),
            ready_pattern=dict(type='str'),
            stale_pattern=dict(type='str'),
            log_path=dict(type='path'),
        )),
        log_lines=dict(type='int', default=25),
    )


MANAGERS = {'systemd': service_state.Systemd, 'launchd': service_state.Launchd}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for name in ('wait', 'settle', 'log_lines'):
        if params[name] < 0:
            module.fail_json(msg='%s must not be negative' % name)
    if 0 < params['wait'] < params['settle']:
        module.fail_json(msg='wait (%d s) must be 0 (sample once) or at least settle (%d s)'
                         % (params['wait'], params['settle']))
    manager, components = None, []
    if params['service_manager'] != 'none':
        components = params['components']
        problems = service_state.component_problems(params['service_manager'], components)
        if problems:
            module.fail_json(msg='; '.join(problems))

    def runner(argv):
        return module.run_command(argv, errors='surrogate_then_replace')

    if components:
        manager = MANAGERS[params['service_manager']](runner)
    result = service_state.run_gate(
        manager, components,
        partial(probe, params['host'], params['port'], params['service'], params['timeout'],
                params['require_status']),
        params['wait'], params['settle'], runner=runner, check_mode=module.check_mode,
        log_lines=params['log_lines'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
