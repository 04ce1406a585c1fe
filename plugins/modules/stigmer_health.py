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
    PID, not restart (systemd C(NRestarts), launchd C(runs)), and be ready. Success needs all of
    this for O(settle) seconds in a row before the deadline.
  - Ready is what Temporal sees. A component with O(components[].queues) is ready when Temporal
    (O(temporal_host):O(temporal_port), namespace O(temporal_namespace)) lists a process of the
    component's own unit polling every one of those task queues for every task type given
    (C(WorkflowService/DescribeTaskQueue)). A component with O(components[].serves_temporal) is
    ready when Temporal's C(grpc.health.v1) service says C(SERVING) for
    C(temporal.api.workflowservice.v1.WorkflowService). Any other component is ready when it runs.
  - A poller is matched by its identity, C(<pid>@<hostname>) as the Temporal SDKs set it by default
    (C(<pid>@<hostname>@) from the Go SDK). The PID must be one of the unit's and the host name
    this host's, so on a Temporal shared by several hosts only this host's processes count.
    Pollers whose last poll is older than 120 s are ignored (a long poll lasts 60 to 70 s; the
    time is Temporal's clock, so a larger clock skew to an external Temporal would hide them).
  - The unit's processes are, under systemd, its main PID and the processes of its control group
    (C(ControlGroup), read from C(/sys/fs/cgroup/<group>/cgroup.procs), or from
    C(/sys/fs/cgroup/systemd/<group>/cgroup.procs) on cgroup v1); under launchd, the job's PID and
    every process descending from it (one C(ps -A -o pid=,ppid=) per round).
  - Each round that needs Temporal's word asks it first whether it serves, then about the queues of
    each running component not yet seen polling; a start seen polling every queue is not asked
    about again. When Temporal does not serve or a call fails, the round asks it nothing more.
  - Temporal spreads a task queue over partitions (4 by default, as in the dev server) and
    C(DescribeTaskQueue) lists the pollers of the one partition asked, so a queue is asked
    partition by partition (the root, then C(/_sys/<queue>/1) to C(/_sys/<queue>/3)) until one
    lists a process of the unit. A Temporal configured with more partitions lists a poller waiting
    on another one only once it polls one of these.
  - A component with O(components[].restart_without_pollers) that Temporal lists polling none of
    its queues, once it has run for O(settle) seconds (at least 30, as slow hosts need), is restarted once
    (C(systemctl restart), C(launchctl kickstart -k)) and checked again; the same after the
    restart ends the gate. This cures a server that started while Temporal was unreachable,
    which serves gRPC without its workers and never reconnects. With O(wait=0) nothing is
    restarted.
  - A component whose restart counter grows by 3 or more during the gate is crash-looping, and the
    gate ends at once instead of waiting out the deadline.
  - systemd is sampled with one C(systemctl show) per round, launchd jobs with
    C(launchctl print system/<label>).
  - On failure RV(logs) holds each component's last log lines, from the journal (systemd) or from
    the last 256 KiB of the job's log file (launchd).
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
      - Seconds to wait for the connection and the answer of each gRPC call (the server's probe,
        Temporal's health, each C(DescribeTaskQueue)).
      - The gate can end a few times this long after O(wait) when the calls of the last round hang;
        after the first call to Temporal that fails, a round asks it nothing more.
    type: float
    default: 5
  temporal_host:
    description:
      - Address of the Temporal frontend the components poll, the bundled dev server or an external
        Temporal.
    type: str
    default: 127.0.0.1
  temporal_port:
    description: Temporal's gRPC port.
    type: int
    default: 7233
  temporal_namespace:
    description: The Temporal namespace the components poll in.
    type: str
    default: default
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
      queues:
        description:
          - The Temporal task queues the component polls, each with the task types it registers
            there; the component is ready only when Temporal lists a process of its unit on every
            one for every type.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: The task queue's name.
            type: str
            required: true
          types:
            description: The task types the component polls the queue for.
            type: list
            elements: str
            choices: [workflow, activity]
            required: true
      serves_temporal:
        description:
          - The component is the Temporal at O(temporal_host):O(temporal_port) itself; it is ready when
            that says C(SERVING).
        type: bool
        default: false
      restart_without_pollers:
        description:
          - Restart the component once when Temporal lists it polling none of its O(components[].queues)
            after it has run for O(settle) seconds, and fail the gate when that happens again.
        type: bool
        default: false
      log_path:
        description:
          - The job's stdout and stderr file, whose last lines RV(logs) shows. Required under
            launchd; unused under systemd.
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
- name: Wait up to 90 s for the runtime to be up, polling Temporal and settled for 10 s
  stigmer.runtime.stigmer_health:
    port: 7234
    temporal_host: 127.0.0.1
    temporal_port: 7233
    temporal_namespace: default
    wait: 90
    settle: 10
    service_manager: systemd
    components:
      - name: temporal
        unit: stigmer-temporal.service
        serves_temporal: true
      - name: server
        unit: stigmer-server.service
        restart_without_pollers: true
        queues:
          - {name: agent_execution_stigmer, types: [workflow, activity]}
          - {name: workflow_execution_stigmer, types: [workflow, activity]}
          - {name: workflow_validation_stigmer, types: [workflow]}
      - name: agent-runner
        unit: stigmer-agent-runner.service
        queues:
          - {name: agent_execution_runner, types: [activity]}
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
  sample: "workflow-runner restarted 4 times in 12 s (crash loop); agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner"
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
    - Components the gate restarted because Temporal listed them polling nothing
      (O(components[].restart_without_pollers)); in check mode, those it would have restarted.
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
      pollers:
        agent_execution_runner: {activity: [4243]}
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
        - With O(components[].queues), whether Temporal lists a process of its unit polling every
          queue for every type; with O(components[].serves_temporal), whether Temporal says
          C(SERVING); otherwise whether it runs.
      type: bool
    started:
      description: When the current start began (systemd only; null under launchd).
      type: str
    pollers:
      description:
        - The processes of its unit Temporal lists as pollers, by task queue and task type, as last
          asked; an empty list where none polls.
        - Empty for a component without queues, and until Temporal answered about it.
      type: dict
polling:
  description:
    - The components with O(components[].queues) that Temporal lists polling every queue they must,
      in the order of O(components).
  returned: always
  type: list
  elements: str
  sample: [server, workflow-runner, agent-runner]
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
from ansible_collections.stigmer.runtime.plugins.module_utils._temporal import TASK_TYPES, Temporal
from ansible_collections.stigmer.runtime.plugins.module_utils import _service_state as service_state


def argument_spec():
    return dict(
        host=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=7234),
        service=dict(type='str', default=''),
        require_status=dict(type='bool', default=False),
        timeout=dict(type='float', default=5),
        temporal_host=dict(type='str', default='127.0.0.1'),
        temporal_port=dict(type='int', default=7233),
        temporal_namespace=dict(type='str', default='default'),
        wait=dict(type='int', default=0),
        settle=dict(type='int', default=10),
        service_manager=dict(type='str', choices=['systemd', 'launchd', 'none'], default='none'),
        components=dict(type='list', elements='dict', default=[], options=dict(
            name=dict(type='str', required=True),
            unit=dict(type='str', required=True),
            queues=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                types=dict(type='list', elements='str', choices=list(TASK_TYPES), required=True),
            )),
            serves_temporal=dict(type='bool', default=False),
            restart_without_pollers=dict(type='bool', default=False),
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
        log_lines=params['log_lines'],
        temporal=Temporal(params['temporal_host'], params['temporal_port'], params['temporal_namespace'],
                          params['timeout']))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
