# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""service_state: systemd and launchd parsing, a unit's processes, the safe log read, and the gate's
decisions over recorded `systemctl show` / `launchctl print` / `ps` outputs, a fake Temporal and a fake
clock."""

import os
import types

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _service_state as s
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import GrpcError
from ansible_collections.stigmer.runtime.plugins.module_utils._service_state import ServiceStateError
from ansible_collections.stigmer.runtime.plugins.module_utils._temporal import Temporal
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.fake_clock import FakeClock

INV_A = '4a1c0e6f7d2b4f0e9a3c5b6d7e8f9a0b'
INV_B = '0f9e8d7c6b5a49382716a5b4c3d2e1f0'
INV_C = 'aaaaaaaabbbbbbbbccccccccdddddddd'
READY = u'\U0001F680 Worker ready, polling for tasks...'

# What systemd 252 prints for
#   systemctl show --property=Id,ActiveState,SubState,MainPID,NRestarts,InvocationID,ExecMainStartTimestamp,\
#     ControlGroup stigmer-server stigmer-workflow-runner.service
# (service properties first, Id is the full name, an auto-restarting unit has no PID, no invocation and
# no control group).
SHOW = '''MainPID=812
NRestarts=0
ExecMainStartTimestamp=Tue 2026-01-06 10:00:03 UTC
ControlGroup=/system.slice/stigmer-server.service
Id=stigmer-server.service
ActiveState=active
SubState=running
InvocationID=4a1c0e6f7d2b4f0e9a3c5b6d7e8f9a0b

MainPID=0
NRestarts=4
ExecMainStartTimestamp=Tue 2026-01-06 10:00:11 UTC
ControlGroup=
Id=stigmer-workflow-runner.service
ActiveState=activating
SubState=auto-restart
InvocationID=
'''

# launchctl print system/ai.stigmer.agent-runner on macOS 14, trimmed of nothing that matters:
# nested blocks hold keys (pid-local endpoints, arguments) that must not count.
PRINT_RUNNING = '''system/ai.stigmer.agent-runner = {
\tactive count = 1
\tpath = /Library/LaunchDaemons/ai.stigmer.agent-runner.plist
\ttype = LaunchDaemon
\tstate = running

\tprogram = /bin/sh
\targuments = {
\t\t/bin/sh
\t\t-c
\t\tstate = not running
\t}

\tstdout path = /var/lib/stigmer/.stigmer/data/logs/agent-runner.log
\tstderr path = /var/lib/stigmer/.stigmer/data/logs/agent-runner.log
\tdefault environment = {
\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin
\t}

\tdomain = system
\tusername = stigmer
\tminimum runtime = 10
\texit timeout = 5
\truns = 3
\tpid = 4242
\timmediate reason = inefficient
\tforks = 0
\texecs = 1
\tlast exit code = 1

\tpid-local endpoints = {
\t\tpid = 1
\t}

\tproperties = keepalive | runatload | inferred program
}
'''

PRINT_THROTTLED = '''system/ai.stigmer.workflow-runner = {
\tactive count = 0
\tstate = spawn scheduled

\tprogram = /bin/sh
\truns = 7
\tlast exit code = 78: EX_CONFIG
\tspawn type = daemon (3)
}
'''

PRINT_NEVER_EXITED = PRINT_RUNNING.replace('last exit code = 1', 'last exit code = (never exited)')


# ---------------------------------------------------------------- systemd parsing

def test_show_argv_asks_one_call_for_every_unit():
    assert s.show_argv(['a.service', 'b.service']) == [
        'systemctl', 'show', '--property=Id,ActiveState,SubState,MainPID,NRestarts,InvocationID,ExecMainStartTimestamp,'
        'ExecMainStartTimestampMonotonic,ControlGroup', 'a.service', 'b.service']


def test_parse_show_matches_blocks_to_units_by_position():
    props = s.parse_show(SHOW, ['stigmer-server', 'stigmer-workflow-runner.service'])
    assert props['stigmer-server']['Id'] == 'stigmer-server.service'
    assert props['stigmer-server']['MainPID'] == '812'
    assert props['stigmer-workflow-runner.service']['InvocationID'] == ''
    assert props['stigmer-workflow-runner.service']['SubState'] == 'auto-restart'


def test_parse_show_keeps_equal_signs_in_values_and_tolerates_extra_blank_lines():
    props = s.parse_show('\n\nId=a.service\nExecMainStartTimestamp=x=y\n\n\n', ['a'])
    assert props == {'a': {'Id': 'a.service', 'ExecMainStartTimestamp': 'x=y'}}


@pytest.mark.parametrize('text, units', [(SHOW, ['only-one']), ('', ['a']), (SHOW, ['a', 'b', 'c'])])
def test_parse_show_refuses_a_block_count_that_does_not_match(text, units):
    with pytest.raises(ServiceStateError, match='blocks for %d units' % len(units)):
        s.parse_show(text, units)


def test_systemd_state():
    props = s.parse_show(SHOW, ['server', 'workflow-runner'])
    assert s.systemd_state(props['server']) == {
        'active': True, 'state': 'active/running', 'pid': 812, 'start_id': INV_A, 'counter': 0,
        'started': 'Tue 2026-01-06 10:00:03 UTC', 'uptime': None, 'cgroup': '/system.slice/stigmer-server.service'}
    assert s.systemd_state(props['workflow-runner']) == {
        'active': False, 'state': 'activating/auto-restart', 'pid': None, 'start_id': None, 'counter': 4,
        'started': 'Tue 2026-01-06 10:00:11 UTC', 'uptime': None, 'cgroup': None}


def test_systemd_state_uptime_from_the_monotonic_start_stamp():
    props = {'ActiveState': 'active', 'SubState': 'running', 'MainPID': '812',
             'ExecMainStartTimestampMonotonic': '5000000'}       # 5 s after boot, in microseconds
    assert s.systemd_state(props, now=65.0)['uptime'] == 60.0
    assert s.systemd_state(props, now=4.0)['uptime'] == 0.0      # never negative
    assert s.systemd_state(props)['uptime'] is None               # no clock, no uptime
    # No process (auto-restart) or no stamp (never started): unknown, not zero.
    assert s.systemd_state(dict(props, MainPID='0'), now=65.0)['uptime'] is None
    assert s.systemd_state(dict(props, ExecMainStartTimestampMonotonic='0'), now=65.0)['uptime'] is None
    assert s.systemd_state(dict(props, ExecMainStartTimestampMonotonic=''), now=65.0)['uptime'] is None


@pytest.mark.parametrize('props, active', [
    ({'ActiveState': 'active', 'SubState': 'running', 'MainPID': '7'}, True),
    ({'ActiveState': 'active', 'SubState': 'exited', 'MainPID': '0'}, False),     # nothing runs
    ({'ActiveState': 'active', 'SubState': 'running', 'MainPID': '0'}, False),    # no main process
    ({'ActiveState': 'failed', 'SubState': 'failed', 'MainPID': '0'}, False),
    ({'ActiveState': 'deactivating', 'SubState': 'stop-sigterm', 'MainPID': '7'}, False),
    ({}, False),                                                                   # a unit that does not exist
])
def test_systemd_active_needs_running_with_a_main_pid(props, active):
    assert s.systemd_state(props)['active'] is active


def test_systemd_state_ignores_an_invocation_id_that_is_not_one():
    assert s.systemd_state({'InvocationID': 'x OR _UID=0'})['start_id'] is None


def test_journal_tail_argv_reads_the_unit_across_starts():
    assert s.journal_tail_argv('stigmer-server.service', 25) == [
        'journalctl', '--no-pager', '-q', '-a', '-o', 'cat', '-n', '25', '-u', 'stigmer-server.service']


# ---------------------------------------------------------------- a unit's processes

def test_cgroup_procs_paths_unified_first_then_systemds_v1_hierarchy():
    assert s.cgroup_procs_paths('/system.slice/stigmer-agent-runner.service') == [
        '/sys/fs/cgroup/system.slice/stigmer-agent-runner.service/cgroup.procs',
        '/sys/fs/cgroup/systemd/system.slice/stigmer-agent-runner.service/cgroup.procs']
    assert s.cgroup_procs_paths('/a.service', root='/r') == ['/r/a.service/cgroup.procs', '/r/systemd/a.service/cgroup.procs']


@pytest.mark.parametrize('cgroup', [None, '', '/', '//', 'system.slice/a.service', '/system.slice/../../etc',
                                    '/system.slice/./a.service'])
def test_cgroup_procs_paths_only_for_a_units_group(cgroup):
    assert s.cgroup_procs_paths(cgroup) == []


def test_parse_pids():
    assert s.parse_pids('951\n950\n\n') == {950, 951}
    assert s.parse_pids('') == set()


def files(contents):
    """A read() over {path: text}; any other path is missing."""
    def read(path):
        if path not in contents:
            raise IOError(2, 'No such file or directory', path)
        return contents[path]
    return read


AGENT_CGROUP = '/system.slice/stigmer-agent-runner.service'


def test_unit_pids_are_the_main_pid_and_its_control_group():
    # The PyInstaller bootloader is the main PID; the child it starts polls.
    state = {'pid': 950, 'cgroup': AGENT_CGROUP}
    unified = files({'/sys/fs/cgroup%s/cgroup.procs' % AGENT_CGROUP: '950\n951\n'})
    assert s.Systemd(None, read=unified).unit_pids(state) == [950, 951]
    v1 = files({'/sys/fs/cgroup/systemd%s/cgroup.procs' % AGENT_CGROUP: '951\n'})
    assert s.Systemd(None, read=v1).unit_pids(state) == [950, 951]
    assert s.Systemd(None, read=files({})).unit_pids(state) == [950]
    assert s.Systemd(None, read=unified).unit_pids({'pid': 950, 'cgroup': None}) == [950]


PS = '''    1     0
  310     1
 4242     1
 4243  4242
 4250  4243
 4300   310
'''


def test_parse_ps_and_descendants():
    parents = s.parse_ps(PS + 'garbage line\n  PID  PPID\n')
    assert parents == {1: 0, 310: 1, 4242: 1, 4243: 4242, 4250: 4243, 4300: 310}
    assert s.descendants(parents, 4242) == [4242, 4243, 4250]
    assert s.descendants(parents, 4250) == [4250]
    assert s.descendants(parents, 9999) == [9999]          # gone since: only itself
    assert s.ps_argv() == ['/bin/ps', '-A', '-o', 'pid=,ppid=']


# ---------------------------------------------------------------- launchd parsing

def test_parse_launchctl_print_reads_top_level_keys_only():
    fields = s.parse_launchctl_print(PRINT_RUNNING)
    assert fields['state'] == 'running'
    assert fields['pid'] == '4242'
    assert fields['runs'] == '3'
    assert fields['last exit code'] == '1'
    assert 'PATH' not in fields and '/bin/sh' not in fields


def test_launchd_state_running():
    assert s.launchd_state(0, PRINT_RUNNING) == {
        'active': True, 'state': 'running', 'pid': 4242, 'start_id': '4242', 'counter': 3, 'started': None,
        'last_exit': 1}


def test_launchd_state_throttled_between_respawns():
    state = s.launchd_state(0, PRINT_THROTTLED)
    assert state['active'] is False and state['pid'] is None and state['start_id'] is None
    assert state['state'] == 'spawn scheduled' and state['counter'] == 7 and state['last_exit'] == 78


def test_launchd_state_running_without_a_pid_is_not_active():
    state = s.launchd_state(0, PRINT_RUNNING.replace('\tpid = 4242\n', ''))
    assert state['state'] == 'running' and state['active'] is False and state['pid'] is None


def test_launchd_state_never_exited_and_not_loaded():
    assert s.launchd_state(0, PRINT_NEVER_EXITED)['last_exit'] is None
    state = s.launchd_state(113, 'Could not find service "ai.stigmer.server" in domain for port')
    assert state['active'] is False and state['state'] == 'not loaded'


def test_not_running_message():
    assert s.not_running('workflow-runner', 'ai.stigmer.workflow-runner', s.launchd_state(0, PRINT_THROTTLED)) == (
        'workflow-runner is not running (ai.stigmer.workflow-runner: spawn scheduled, last exit code 78)')
    state = s.systemd_state({'ActiveState': 'activating', 'SubState': 'auto-restart'})
    assert s.not_running('server', 'stigmer-server.service', state) == (
        'server is not running (stigmer-server.service: activating/auto-restart)')


# ---------------------------------------------------------------- reading a log file as root

def test_read_tail_whole_small_file(tmp_path):
    log = tmp_path / 'server.log'
    log.write_bytes(b'one\ntwo\n\xff\n')
    assert s.read_tail(str(log)) == (u'one\ntwo\n\ufffd\n', False)


def test_read_tail_keeps_only_the_tail_and_drops_the_cut_line(tmp_path):
    log = tmp_path / 'server.log'
    log.write_bytes(b'a' * 50 + b'\n' + b'bbbb\n' + b'cccc\n')
    assert s.read_tail(str(log), max_bytes=12) == ('bbbb\ncccc\n', True)    # 'a\n' cut off
    assert s.read_tail(str(log), max_bytes=8) == ('cccc\n', True)            # 'bb\n' cut off
    assert s.read_tail(str(log), max_bytes=10) == ('bbbb\ncccc\n', True)    # starts right at a line: kept whole
    assert s.read_tail(str(log), max_bytes=1000) == ('a' * 50 + '\nbbbb\ncccc\n', False)


def test_read_tail_refuses_a_symlink(tmp_path):
    secret = tmp_path / 'shadow'
    secret.write_text('root:secret\n')
    link = tmp_path / 'server.log'
    link.symlink_to(secret)
    with pytest.raises(OSError, match='symbolic link'):
        s.read_tail(str(link))


def test_read_tail_refuses_a_hard_link(tmp_path):
    secret = tmp_path / 'shadow'
    secret.write_text('root:secret\n')
    link = tmp_path / 'server.log'
    os.link(str(secret), str(link))
    with pytest.raises(OSError, match='2 hard links'):
        s.read_tail(str(link))


def test_read_tail_refuses_a_fifo_without_blocking_and_a_directory(tmp_path):
    fifo = tmp_path / 'server.log'
    os.mkfifo(str(fifo))
    with pytest.raises(OSError, match='not a regular file'):
        s.read_tail(str(fifo))
    with pytest.raises(OSError, match='not a regular file'):
        s.read_tail(str(tmp_path))


def test_read_tail_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        s.read_tail(str(tmp_path / 'missing.log'))


# ---------------------------------------------------------------- option checks

def test_component_problems():
    def comp(name, unit, log_path=None):
        return {'name': name, 'unit': unit, 'log_path': log_path}

    assert s.component_problems('systemd', [comp('server', 'stigmer-server.service')]) == []
    assert s.component_problems('systemd', [comp('a', '--user'), comp('b', 'x y'), comp('a', 'ok')]) == [
        "component a: '--user' is not a systemd unit name", "component b: 'x y' is not a systemd unit name",
        'component a is listed twice']
    assert s.component_problems('launchd', [comp('server', 'ai.stigmer.server', '/l/server.log')]) == []
    assert s.component_problems('launchd', [comp('server', 'ai.stigmer.server'), comp('x', 'a/b', '/l')]) == [
        'component server needs log_path under launchd',
        "component x: label 'a/b' is not usable as a launchd label and file name"]
    queues = dict(comp('server', 'stigmer-server.service'), queues=[{'name': 'q1', 'types': ['workflow']},
                                                                    {'name': 'q2', 'types': []}])
    assert s.component_problems('systemd', [queues]) == ['component server: queue q2 names no task type']


# ---------------------------------------------------------------- the gate over a fake host

HOSTNAME = 'build-01'
WALL = 1796000000.0          # Temporal's clock, which its last_access stamps are read against
SERVER_QUEUES = [{'name': 'agent_execution_stigmer', 'types': ['workflow', 'activity']},
                 {'name': 'workflow_validation_stigmer', 'types': ['workflow']}]
RUNNER_QUEUES = [{'name': 'agent_execution_runner', 'types': ['activity']}]
COMPONENTS = [
    {'name': 'server', 'unit': 'stigmer-server.service', 'queues': SERVER_QUEUES, 'restart_without_pollers': True},
    {'name': 'workflow-runner', 'unit': 'stigmer-workflow-runner.service'},
    {'name': 'agent-runner', 'unit': 'stigmer-agent-runner.service', 'queues': RUNNER_QUEUES},
]
SERVER_ASKS = [('agent_execution_stigmer', 'workflow'), ('agent_execution_stigmer', 'activity'),
               ('workflow_validation_stigmer', 'workflow')]


def polling(server=(812,), agent_runner=(951,)):
    """Temporal's pollers: the server's pids (Go identities) on each of its queues and types, the
    agent-runner's (Python identities) on its activity queue."""
    answers = dict((ask, ['%d@%s@' % (pid, HOSTNAME) for pid in server]) for ask in SERVER_ASKS)
    answers[('agent_execution_runner', 'activity')] = ['%d@%s' % (pid, HOSTNAME) for pid in agent_runner]
    return answers


class FakeTemporal(Temporal):
    """Temporal as the gate asks it: whether it serves, and who polls each (queue or partition, type);
    records what was asked. Its calls are faked, what it makes of their answers is Temporal's own."""

    def __init__(self, answers=None, serving=True, error=None, last_access=WALL - 10):
        super(FakeTemporal, self).__init__('127.0.0.1', 7233, 'default', clock=lambda: WALL)
        self.hostname = HOSTNAME
        self.answers = polling() if answers is None else answers
        self.serving_now, self.error, self.last_access = serving, error, last_access
        self.asked = []

    def serving(self):
        self.asked.append('serving')
        if self.serving_now:
            return {'healthy': True, 'msg': '127.0.0.1:7233 reports SERVING for service %r' % 'WorkflowService'}
        return {'healthy': False, 'msg': 'Temporal did not answer gRPC on 127.0.0.1:7233: cannot connect to '
                                         '127.0.0.1:7233: Connection refused'}

    def pollers(self, queue, task_type):
        self.asked.append((queue, task_type))
        if self.error:
            raise self.error
        return [{'identity': identity, 'last_access': self.last_access}
                for identity in self.answers.get((queue, task_type), [])]

    def asked_about(self, queue):
        return len([a for a in self.asked if a[0] == queue])


def unit(pid, restarts=0, invocation=INV_A, active=True, started='Tue 2026-01-06 10:00:03 UTC'):
    return {'ActiveState': 'active' if active else 'activating', 'SubState': 'running' if active else 'auto-restart',
            'MainPID': str(pid if active else 0), 'NRestarts': str(restarts),
            'InvocationID': invocation if active else '', 'ExecMainStartTimestamp': started}


class FakeSystemd(object):
    """A host under systemd, replayed at the process boundary.

    timeline(n) gives the units' properties at the n-th `systemctl show` (the
    last entry repeats). A restart switches to after_restart (with its own
    sample count) and is recorded. Each unit's control group holds its main
    PID; the agent-runner's also the child its bootloader starts (main PID + 1).
    """

    def __init__(self, timeline, after_restart=None, restart_rc=0):
        self.timeline, self.after_restart, self.restart_rc = timeline, after_restart, restart_rc
        self.calls, self.shows, self.current = [], 0, {}

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[:2] == ['systemctl', 'show']:
            units = argv[3:]
            step = self.timeline[min(self.shows, len(self.timeline) - 1)]
            self.shows += 1
            blocks = []
            for name in units:
                props = dict(step[name], Id=name)
                if props['MainPID'] != '0':
                    props['ControlGroup'] = '/system.slice/' + name
                self.current[name] = props
                blocks.append('\n'.join('%s=%s' % kv for kv in sorted(props.items())))
            return 0, '\n\n'.join(blocks) + '\n', ''
        if argv[:2] == ['systemctl', 'restart']:
            if self.restart_rc:
                return self.restart_rc, '', 'Job for %s failed.' % argv[2]
            self.timeline, self.shows = self.after_restart, 0
            return 0, '', ''
        if argv[0] == 'journalctl' and argv[-2] == '-u':
            count = int(argv[argv.index('-n') + 1])
            return 0, '\n'.join(['%s line %d' % (argv[-1], i) for i in range(40)][-count:]) + '\n', ''
        raise AssertionError('unexpected command %r' % argv)

    def read(self, path):
        self.calls.append(['read', path])
        name = path.split('/')[-2]
        if path != '/sys/fs/cgroup/system.slice/%s/cgroup.procs' % name:
            raise AssertionError('read %s' % path)
        pid = int(self.current[name]['MainPID'])
        return '%d\n' % pid + ('%d\n' % (pid + 1) if name == 'stigmer-agent-runner.service' else '')

    def commands(self, verb):
        return [argv for argv in self.calls if argv[1] == verb]


UP = {'grpc': True, 'status': None, 'healthy': True, 'msg': '127.0.0.1:7234 speaks gRPC but gave no health status'}


def healthy_units(server_pid=812, runner_restarts=0, runner_pid=900):
    return {'stigmer-server.service': unit(server_pid),
            'stigmer-workflow-runner.service': unit(runner_pid, runner_restarts, INV_B),
            'stigmer-agent-runner.service': unit(950, 0, INV_C)}


def gate(host, wait=30, settle=10, probe=None, check_mode=False, components=None, clock=None, temporal=None):
    clock = clock or FakeClock()
    components = COMPONENTS if components is None else components
    probes = []

    def grpc():
        probes.append(clock.now)
        return probe(clock.now) if callable(probe) else (probe or UP)

    result = s.run_gate(s.Systemd(host, read=host.read), components, grpc, wait, settle, runner=host,
                        check_mode=check_mode, clock=clock.monotonic, sleep=clock.sleep,
                        temporal=temporal or FakeTemporal())
    return result, clock, probes


def test_healthy_after_the_settle_window():
    host, temporal = FakeSystemd([healthy_units()]), FakeTemporal()
    result, clock, probes = gate(host, temporal=temporal)
    assert result['healthy'] is True and result['changed'] is False and result['restarted'] == []
    assert clock.now - 1000 == 10                     # settled at the first sample 10 s after the start
    assert len(host.commands('show')) == 11           # one systemctl show per sample, for all units
    assert result['logs'] == {}
    assert result['msg'] == ('127.0.0.1:7234 speaks gRPC but gave no health status; server, workflow-runner, '
                             'agent-runner stayed up for 10 s with no restart; Temporal lists pollers of server, '
                             'agent-runner on every task queue')
    assert result['components']['agent-runner'] == {
        'unit': 'stigmer-agent-runner.service', 'active': True, 'state': 'active/running', 'pid': 950,
        'restarts': 0, 'ready': True, 'started': 'Tue 2026-01-06 10:00:03 UTC',
        'pollers': {'agent_execution_runner': {'activity': [951]}}}
    assert result['components']['workflow-runner']['ready'] is True
    assert result['components']['workflow-runner']['pollers'] == {}
    assert result['polling'] == ['server', 'agent-runner']
    assert result['grpc'] is True and result['status'] is None
    # Temporal is asked in the first sample; a start seen polling is not asked about again.
    assert temporal.asked == ['serving'] + SERVER_ASKS + [('agent_execution_runner', 'activity')]
    # No log is read for a healthy gate; the control groups of the units with queues are read each sample.
    assert [a for a in host.calls if a[0] == 'journalctl'] == []
    assert len([a for a in host.calls if a[0] == 'read']) == 22


def test_wait_zero_samples_once_without_a_settle_window():
    host = FakeSystemd([healthy_units()])
    result, clock, probes = gate(host, wait=0)
    assert result['healthy'] is True and clock.slept == [] and len(probes) == 1
    assert result['msg'].endswith('; server, workflow-runner, agent-runner are running; '
                                  'Temporal lists pollers of server, agent-runner on every task queue')


def test_not_serving_is_not_yet_and_times_out_at_the_deadline():
    not_serving = {'grpc': True, 'status': 'NOT_SERVING', 'healthy': False,
                   'msg': 'server is not serving yet: 127.0.0.1:7234 reports NOT_SERVING for the server'}
    host = FakeSystemd([healthy_units()])
    result, clock, probes = gate(host, wait=20, probe=not_serving)
    assert result['healthy'] is False and result['changed'] is False
    assert clock.now - 1000 == 20 and probes[-1] == clock.now     # the last sample is at the deadline
    assert result['msg'] == not_serving['msg']
    assert result['status'] == 'NOT_SERVING' and result['grpc'] is True
    assert sorted(result['logs']) == ['agent-runner', 'server', 'workflow-runner']
    assert result['logs']['server'][-1] == 'stigmer-server.service line 39' and len(result['logs']['server']) == 25


def test_serving_after_a_while_then_settles():
    def probe(now):
        return UP if now >= 1005 else {'grpc': False, 'status': None, 'healthy': False,
                                       'msg': 'server did not answer gRPC on 127.0.0.1:7234: refused'}
    host = FakeSystemd([healthy_units()])
    result, clock, probes = gate(host, probe=probe)
    assert result['healthy'] is True and clock.now - 1000 == 15


def test_crash_loop_ends_the_gate_early():
    steps = [healthy_units(runner_restarts=n, runner_pid=900 + n) for n in (0, 1, 1, 2, 3, 4)]
    steps[2]['stigmer-workflow-runner.service'] = unit(0, 1, active=False)
    host = FakeSystemd(steps)
    result, clock, probes = gate(host, wait=90)
    assert result['healthy'] is False
    assert clock.now - 1000 == 4                       # not the 90 s deadline
    assert result['msg'] == 'workflow-runner restarted 3 times in 4 s (crash loop)'

    # another component's single restart is named too, after the crash loop
    for step in steps[1:]:
        step['stigmer-agent-runner.service'] = unit(951, 1, INV_C)
    result, clock, probes = gate(FakeSystemd(steps), wait=90)
    assert result['msg'] == ('workflow-runner restarted 3 times in 4 s (crash loop); '
                             'agent-runner restarted 1 time in 1 s')
    assert result['components']['workflow-runner']['restarts'] == 3
    assert 'workflow-runner' in result['logs']


def test_restart_counter_growth_restarts_the_settle_window():
    steps = [healthy_units()] * 5 + [healthy_units(runner_restarts=1, runner_pid=901)]
    host = FakeSystemd(steps)
    result, clock, probes = gate(host, wait=30)
    assert result['healthy'] is True
    assert clock.now - 1000 == 15                      # window restarted at 5 s
    assert result['components']['workflow-runner']['restarts'] == 1


def test_one_restart_explains_a_deadline_reached_before_settling():
    steps = [healthy_units()] * 5 + [healthy_units(runner_restarts=1, runner_pid=901)]
    host = FakeSystemd(steps)
    result, clock, probes = gate(host, wait=12)
    assert result['healthy'] is False
    assert result['msg'] == ('workflow-runner restarted 1 time in 5 s; '
                             'every check passed for only the last 7 s of the 10 s settle time')


def test_pid_change_without_counter_growth_restarts_the_settle_window():
    steps = [healthy_units()] * 3 + [healthy_units(server_pid=813)]
    steps[3]['stigmer-server.service']['InvocationID'] = INV_A  # same invocation, new main PID
    host = FakeSystemd(steps)
    result, clock, probes = gate(host, wait=12)
    assert result['healthy'] is False
    assert result['msg'] == ('server was restarted (pid 812 -> 813); '
                             'every check passed for only the last 9 s of the 10 s settle time')


def test_counter_reset_by_an_explicit_start_counts_what_followed():
    gate_ = s.Gate(COMPONENTS[1:2], 10, 0)
    view = s.systemd_state
    for now, restarts in ((0, 5), (1, 1), (2, 2)):
        state = dict(view(unit(900 + now, restarts, INV_B)), ready=True)
        result = gate_.observe(now, {'workflow-runner': state}, None)
    # 5 -> 1: reset, then one restart; 1 -> 2: one more
    assert gate_.growth['workflow-runner'] == 2 and result['verdict'] == 'waiting'


# ---------------------------------------------------------------- what Temporal sees

def test_a_unit_that_never_polls_fails_at_the_deadline_naming_queue_and_type():
    host, temporal = FakeSystemd([healthy_units()]), FakeTemporal(polling(agent_runner=()))
    result, clock, probes = gate(host, wait=15, temporal=temporal)
    assert result['healthy'] is False and clock.now - 1000 == 15
    assert result['msg'] == 'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner'
    assert result['components']['agent-runner']['ready'] is False
    assert result['components']['agent-runner']['pollers'] == {'agent_execution_runner': {'activity': []}}
    assert result['polling'] == ['server']
    # asked every sample until it polls, on every partition; the server, seen polling at once, only in the first
    assert temporal.asked_about('agent_execution_runner') == 16
    assert temporal.asked[-4:] == [('agent_execution_runner', 'activity')] + [
        ('/_sys/agent_execution_runner/%d' % n, 'activity') for n in (1, 2, 3)]
    assert temporal.asked_about('workflow_validation_stigmer') == 1
    assert sorted(result['logs']) == ['agent-runner', 'server', 'workflow-runner']


def test_a_poller_waiting_on_a_child_partition_counts():
    """Temporal lists the pollers of the partition asked; a poll can wait unlisted at the root for a minute."""
    answers = polling(agent_runner=())
    answers[('/_sys/agent_execution_runner/2', 'activity')] = ['951@%s' % HOSTNAME]
    temporal = FakeTemporal(answers)
    result, clock, probes = gate(FakeSystemd([healthy_units()]), wait=0, temporal=temporal)
    assert result['healthy'] is True
    assert result['components']['agent-runner']['pollers'] == {'agent_execution_runner': {'activity': [951]}}
    # the root, then the partitions in turn until one lists the unit's process
    assert temporal.asked[-3:] == [('agent_execution_runner', 'activity'), ('/_sys/agent_execution_runner/1', 'activity'),
                                   ('/_sys/agent_execution_runner/2', 'activity')]


@pytest.mark.parametrize('identity', [
    '940@build-01',        # the process of an earlier start, within the last two minutes
    '951@build-02',        # the same pid on another host polling a shared Temporal
    'agent-runner-951',    # not an SDK's default identity
])
def test_pollers_of_other_processes_do_not_count(identity):
    answers = polling()
    answers[('agent_execution_runner', 'activity')] = [identity]
    result, clock, probes = gate(FakeSystemd([healthy_units()]), wait=0, temporal=FakeTemporal(answers))
    assert result['healthy'] is False
    assert result['msg'] == 'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner'


def test_a_poller_last_seen_three_minutes_ago_does_not_count():
    temporal = FakeTemporal(last_access=WALL - 180)
    result, clock, probes = gate(FakeSystemd([healthy_units()]), wait=0, components=COMPONENTS[2:], temporal=temporal)
    assert result['msg'] == 'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner'


def test_a_server_polling_one_task_type_only_is_not_ready_and_not_restarted():
    answers = polling()
    answers[('agent_execution_stigmer', 'activity')] = []          # workflows registered, no activity polled
    host = FakeSystemd([healthy_units()], after_restart=[])
    result, clock, probes = gate(host, wait=20, temporal=FakeTemporal(answers))
    assert result['healthy'] is False and clock.now - 1000 == 20 and host.commands('restart') == []
    assert result['msg'] == 'server: Temporal lists no activity poller of this unit on agent_execution_stigmer'
    assert result['components']['server']['pollers'] == {
        'agent_execution_stigmer': {'workflow': [812], 'activity': []}, 'workflow_validation_stigmer': {'workflow': [812]}}


def test_temporal_not_serving_is_said_once_and_nothing_else_is_asked():
    temporal = FakeTemporal(serving=False)
    host = FakeSystemd([healthy_units()], after_restart=[])
    result, clock, probes = gate(host, wait=15, temporal=temporal)
    assert result['healthy'] is False and host.commands('restart') == []      # the server is not to blame
    assert result['msg'] == ('Temporal did not answer gRPC on 127.0.0.1:7233: cannot connect to 127.0.0.1:7233: '
                             'Connection refused')
    assert temporal.asked == ['serving'] * 16
    assert result['components']['server']['ready'] is False and result['polling'] == []


def test_a_failed_describe_task_queue_ends_the_rounds_questions():
    temporal = FakeTemporal(error=GrpcError('127.0.0.1:7233 did not answer /temporal.api.workflowservice.v1.'
                                            'WorkflowService/DescribeTaskQueue within 5s'))
    result, clock, probes = gate(FakeSystemd([healthy_units()]), wait=0, temporal=temporal)
    assert temporal.asked == ['serving', ('agent_execution_stigmer', 'workflow')]
    assert result['msg'] == ('cannot ask Temporal at 127.0.0.1:7233 which processes poll: 127.0.0.1:7233 did not answer '
                             '/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue within 5s')
    assert result['components']['agent-runner']['ready'] is False


def test_temporal_itself_is_ready_when_it_serves():
    components = [{'name': 'temporal', 'unit': 'stigmer-temporal.service', 'serves_temporal': True}] + COMPONENTS
    steps = [dict(healthy_units(), **{'stigmer-temporal.service': unit(700, 0, INV_A)})]
    result, clock, probes = gate(FakeSystemd(steps), wait=0, components=components, temporal=FakeTemporal(serving=False))
    assert result['components']['temporal']['ready'] is False and result['components']['temporal']['active'] is True
    assert result['msg'].startswith('Temporal did not answer gRPC on 127.0.0.1:7233')
    temporal = FakeTemporal()
    result, clock, probes = gate(FakeSystemd(steps), wait=3, settle=2, components=components, temporal=temporal)
    assert result['healthy'] is True and result['components']['temporal']['ready'] is True
    assert result['polling'] == ['server', 'agent-runner']
    assert clock.now - 1000 == 2 and temporal.asked.count('serving') == 3    # every sample: it has no start to cache


# ---------------------------------------------------------------- a server that started without Temporal

def test_a_server_without_pollers_is_restarted_once_and_rechecked():
    after = [{'stigmer-server.service': unit(820, 0, 'b' * 32),
              'stigmer-workflow-runner.service': unit(930, 0, INV_B),
              'stigmer-agent-runner.service': unit(960, 0, INV_C)}]
    host = FakeSystemd([healthy_units(runner_restarts=2)], after_restart=after)
    # Temporal lists the restarted server (820) only, and the agent-runner's child before and after
    temporal = FakeTemporal(polling(server=(820,), agent_runner=(951, 961)))
    result, clock, probes = gate(host, wait=60, temporal=temporal)
    assert host.commands('restart') == [['systemctl', 'restart', 'stigmer-server.service']]
    assert result['healthy'] is True and result['changed'] is True and result['restarted'] == ['server']
    assert result['msg'].endswith('; restarted server first')
    # restarted once it had run s.POLL_GRACE seconds without a poller, then settled again
    assert clock.now - 1000 == s.POLL_GRACE + 10
    # the counter drop and PID changes caused by the restart are neither growth nor a crash
    assert all(c['restarts'] == 0 for c in result['components'].values())
    assert result['components']['server']['pid'] == 820
    assert result['components']['server']['pollers']['workflow_validation_stigmer'] == {'workflow': [820]}


def test_a_server_still_without_pollers_after_the_restart_fails_at_once():
    after = [dict(healthy_units(), **{'stigmer-server.service': unit(820, 0, 'b' * 32)})]
    host = FakeSystemd([healthy_units()], after_restart=after)
    result, clock, probes = gate(host, wait=90, temporal=FakeTemporal(polling(server=())))
    assert len(host.commands('restart')) == 1
    assert result['healthy'] is False and result['changed'] is True and clock.now - 1000 == 2 * s.POLL_GRACE
    assert result['msg'] == ('server: Temporal still lists no poller of this unit on any of its task queues %d s '
                             'after the gate restarted it' % s.POLL_GRACE)
    assert result['logs']['server'][-1] == 'stigmer-server.service line 39'


def test_a_server_without_pollers_in_check_mode_is_not_restarted():
    host = FakeSystemd([healthy_units()], after_restart=[])
    result, clock, probes = gate(host, wait=60, check_mode=True, temporal=FakeTemporal(polling(server=())))
    assert host.commands('restart') == []
    assert result['healthy'] is False and result['changed'] is True and result['restarted'] == ['server']
    assert result['msg'] == ('server: Temporal lists no poller of this unit on any of its task queues %d s after it '
                             'started: would restart server (check mode)' % s.POLL_GRACE)


def test_failed_restart_ends_the_gate():
    host = FakeSystemd([healthy_units()], restart_rc=1)
    result, clock, probes = gate(host, temporal=FakeTemporal(polling(server=())))
    assert result['healthy'] is False and result['restarted'] == ['server']
    assert result['msg'] == ('restarting server failed (systemctl restart stigmer-server.service: rc=1 '
                             'Job for stigmer-server.service failed.)')


def long_running(clock, monkeypatch):
    """Units started 1000 s before the clock, as systemd's monotonic stamp tells."""
    monkeypatch.setattr(s, 'time', types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    units = healthy_units()
    for props in units.values():
        props['ExecMainStartTimestampMonotonic'] = str(int(clock.now - 1000) * 1000000)
    return units


def test_a_long_running_server_without_pollers_is_restarted_at_the_first_sample(monkeypatch):
    clock = FakeClock(5000.0)
    host = FakeSystemd([long_running(clock, monkeypatch)], after_restart=[healthy_units(server_pid=820)])
    gate(host, wait=30, clock=clock, temporal=FakeTemporal(polling(server=(820,))))
    assert host.commands('restart') == [['systemctl', 'restart', 'stigmer-server.service']]
    assert host.calls.index(['systemctl', 'restart', 'stigmer-server.service']) < 4    # after one show and its reads


def test_one_sample_restarts_nothing(monkeypatch):
    clock = FakeClock(5000.0)
    host = FakeSystemd([long_running(clock, monkeypatch)], after_restart=[])
    result, clock, probes = gate(host, wait=0, clock=clock, temporal=FakeTemporal(polling(server=())))
    assert host.commands('restart') == [] and result['restarted'] == [] and result['changed'] is False
    assert result['msg'] == ('server: Temporal lists no workflow or activity poller of this unit on '
                             'agent_execution_stigmer; no workflow poller of this unit on workflow_validation_stigmer')


def missing_everywhere(pid, uptime=None, start=INV_A):
    return dict(s.systemd_state(unit(pid, 0, start)), uptime=uptime, ready=False,
                pollers={'agent_execution_stigmer': {'workflow': [], 'activity': []}},
                missing=[('agent_execution_stigmer', 'workflow'), ('agent_execution_stigmer', 'activity')])


def test_gate_restarts_a_silent_restartable_component_once_it_ran_restart_after():
    gate_ = s.Gate(COMPONENTS[:1], 10, 0.0, restart_after=10)
    assert gate_.observe(0.0, {'server': missing_everywhere(812)}, None)['verdict'] == 'waiting'
    assert gate_.observe(9.0, {'server': missing_everywhere(812)}, None)['verdict'] == 'waiting'
    assert gate_.observe(10.0, {'server': missing_everywhere(812)}, None) == {
        'verdict': 'restart', 'restart': ['server'],
        'problems': ['server: Temporal lists no poller of this unit on any of its task queues 10 s after it started']}
    gate_.restarting(['server'])
    assert gate_.observe(10.0, {'server': missing_everywhere(820, start=INV_B)}, None)['verdict'] == 'waiting'
    assert gate_.observe(20.0, {'server': missing_everywhere(820, start=INV_B)}, None)['verdict'] == 'failed'


def test_gate_restart_decision_needs_all_of_its_conditions():
    def verdict(components, state, restart_after=10):
        return s.Gate(components, 10, 0.0, restart_after).observe(0.0, {components[0]['name']: state}, None)['verdict']
    assert verdict(COMPONENTS[:1], missing_everywhere(812, uptime=60)) == 'restart'
    assert verdict(COMPONENTS[:1], missing_everywhere(812, uptime=9)) == 'waiting'        # too young
    assert verdict(COMPONENTS[:1], missing_everywhere(812, uptime=60), None) == 'waiting'  # one sample
    partly = dict(missing_everywhere(812, uptime=60), pollers={'agent_execution_stigmer': {'workflow': [812], 'activity': []}},
                  missing=[('agent_execution_stigmer', 'activity')])
    assert verdict(COMPONENTS[:1], partly) == 'waiting'                                   # it does poll
    agent = [dict(COMPONENTS[2], name='server')]                                          # not restartable
    assert verdict(agent, missing_everywhere(812, uptime=60)) == 'waiting'


# ---------------------------------------------------------------- what else the gate reports

def test_inactive_component_and_unreachable_server_both_named():
    steps = [dict(healthy_units(), **{'stigmer-agent-runner.service': unit(0, 0, active=False)})]
    down = {'grpc': False, 'status': None, 'healthy': False,
            'msg': 'server did not answer gRPC on 127.0.0.1:7234: cannot connect to 127.0.0.1:7234: Connection refused'}
    host, temporal = FakeSystemd(steps), FakeTemporal()
    result, clock, probes = gate(host, wait=5, probe=down, temporal=temporal)
    assert result['msg'] == (down['msg'] + '; agent-runner is not running '
                             '(stigmer-agent-runner.service: activating/auto-restart)')
    assert result['components']['agent-runner']['active'] is False
    assert result['components']['agent-runner']['ready'] is False
    assert temporal.asked_about('agent_execution_runner') == 0     # nothing of it runs to ask about


def test_systemctl_failure_is_reported_not_raised():
    def broken(argv):
        return 1, '', 'Failed to connect to bus: No such file or directory'
    result = s.run_gate(s.Systemd(broken), COMPONENTS, None, 0, 10, runner=broken,
                        clock=FakeClock().monotonic, sleep=FakeClock().sleep, temporal=FakeTemporal())
    assert result['healthy'] is False
    assert result['msg'].startswith('systemctl show --property=')
    assert result['msg'].endswith('failed (rc=1): Failed to connect to bus: No such file or directory')
    assert result['logs']['server'] == ['(journalctl failed, rc=1: Failed to connect to bus: No such file or directory)']


def test_probe_only_gate():
    calls = []
    result = s.run_gate(None, [], lambda: calls.append(1) or UP, 0, 10, clock=FakeClock().monotonic, sleep=FakeClock().sleep)
    assert result == {'changed': False, 'healthy': True, 'msg': UP['msg'], 'restarted': [], 'components': {},
                      'polling': [], 'logs': {}, 'grpc': True, 'status': None}
    assert calls == [1]


# ---------------------------------------------------------------- processes that already ran long enough

PIDS = {'server': (812, INV_A), 'workflow-runner': (900, INV_B), 'agent-runner': (950, INV_C)}


def sample(now, started):
    """One sample as the gate gets it: every check passes; started maps a name to its monotonic start or None."""
    states = {}
    for name, (pid, invocation) in PIDS.items():
        props = unit(pid, 0, invocation)
        if started[name] is not None:
            props['ExecMainStartTimestampMonotonic'] = str(int(started[name] * 1e6))
        states[name] = dict(s.systemd_state(props, now), ready=True, pollers={}, missing=[])
    return states


def test_gate_passes_at_once_when_every_process_outlasted_the_settle_time():
    gate_ = s.Gate(COMPONENTS, 10, 5000.0)
    states = sample(5000.0, {'server': 4400.0, 'workflow-runner': 4990.0, 'agent-runner': 1400.0})
    assert states['workflow-runner']['uptime'] == 10.0
    assert gate_.observe(5000.0, states, UP) == {'verdict': 'healthy', 'problems': [], 'restart': []}


def test_gate_with_long_uptimes_still_needs_every_other_check():
    gate_ = s.Gate(COMPONENTS, 10, 5000.0)
    down = {'grpc': False, 'status': None, 'healthy': False, 'msg': 'server did not answer gRPC'}
    states = sample(5000.0, {'server': 1000.0, 'workflow-runner': 1000.0, 'agent-runner': 1000.0})
    assert gate_.observe(5000.0, states, down) == {'verdict': 'waiting', 'problems': [down['msg']], 'restart': []}
    states['agent-runner'].update(ready=False, missing=[('agent_execution_runner', 'activity')])
    assert gate_.observe(5001.0, states, UP)['verdict'] == 'waiting'
    assert gate_.observe(5002.0, sample(5002.0, dict.fromkeys(PIDS, 1000.0)), UP, 'Temporal is not serving yet') == {
        'verdict': 'waiting', 'problems': ['Temporal is not serving yet'], 'restart': []}


def test_gate_waits_the_settle_time_when_one_uptime_is_unknown():
    gate_ = s.Gate(COMPONENTS, 10, 5000.0)
    started = {'server': 1000.0, 'workflow-runner': None, 'agent-runner': 1000.0}
    result = gate_.observe(5000.0, sample(5000.0, started), UP)
    assert result == {'verdict': 'waiting', 'restart': [],
                      'problems': ['every check passed for only the last 0 s of the 10 s settle time']}
    assert gate_.observe(5009.0, sample(5009.0, started), UP)['verdict'] == 'waiting'
    assert gate_.observe(5010.0, sample(5010.0, started), UP)['verdict'] == 'healthy'


def test_gate_counts_only_the_shortest_uptime_towards_the_settle_time():
    gate_ = s.Gate(COMPONENTS, 10, 5000.0)
    started = {'server': 1000.0, 'workflow-runner': 4996.0, 'agent-runner': 1000.0}
    result = gate_.observe(5000.0, sample(5000.0, started), UP)
    assert result['verdict'] == 'waiting'
    assert result['problems'] == ['every check passed for only the last 4 s of the 10 s settle time']
    assert gate_.observe(5005.0, sample(5005.0, started), UP)['verdict'] == 'waiting'
    assert gate_.observe(5006.0, sample(5006.0, started), UP)['verdict'] == 'healthy'


def test_run_gate_on_a_host_that_ran_long_enough_takes_one_sample(monkeypatch):
    clock = FakeClock(5000.0)
    host, temporal = FakeSystemd([long_running(clock, monkeypatch)]), FakeTemporal()
    result, clock, probes = gate(host, wait=30, settle=10, clock=clock, temporal=temporal)
    assert result['healthy'] is True and result['changed'] is False
    assert clock.now == 5000.0 and clock.slept == [] and len(host.commands('show')) == 1
    # a converged host: one systemctl show, two control groups read, one health and four DescribeTaskQueue calls
    assert [a[0] for a in host.calls] == ['systemctl', 'read', 'read'] and len(temporal.asked) == 5


# ---------------------------------------------------------------- the gate under launchd

class FakeLaunchd(object):
    """launchctl print and ps over jobs: {label: print output, or a list of them, one per sample, the last
    repeating}; children: {pid: [child pids]}; a kickstart gives the job kickstarted[label]."""

    def __init__(self, jobs, children=None, kickstarted=None):
        self.jobs, self.children, self.kickstarted = dict(jobs), children or {}, kickstarted or {}
        self.calls, self.printed = [], {}

    def output(self, label):
        text = self.jobs[label]
        if isinstance(text, list):
            text = text[min(self.printed.get(label, 1) - 1, len(text) - 1)]
        return text

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[1] == 'print':
            label = argv[2].split('/', 1)[1]
            if label not in self.jobs:
                return 113, 'Could not find service "%s" in domain for port' % label, ''
            self.printed[label] = self.printed.get(label, 0) + 1
            return 0, self.output(label), ''
        if argv[0] == '/bin/ps':
            lines = ['    1     0']
            for label in self.jobs:
                pid = s.parse_launchctl_print(self.output(label)).get('pid')
                if pid:
                    lines.append('%5s     1' % pid)
                    lines += ['%5d %5s' % (child, pid) for child in self.children.get(int(pid), [])]
            return 0, '\n'.join(lines) + '\n', ''
        if argv[1] == 'kickstart':
            label = argv[3].split('/', 1)[1]
            self.jobs[label], self.printed[label] = self.kickstarted[label], 0
            return 0, '', ''
        raise AssertionError(argv)

    def commands(self, verb):
        return [c for c in self.calls if verb in c[:2]]


def launchd_gate(host, components, wait=3, settle=2, answers=None):
    clock = FakeClock()
    result = s.run_gate(s.Launchd(host), components, None, wait, settle, runner=host, clock=clock.monotonic,
                        sleep=clock.sleep, temporal=FakeTemporal(answers))
    return result, clock


def test_launchd_gate_counts_the_jobs_descendants(tmp_path):
    log = tmp_path / 'agent-runner.log'
    log.write_text('stigmer.runtime: start pid 4242\nstarting\n%s\n' % READY)
    components = [{'name': 'agent-runner', 'unit': 'ai.stigmer.agent-runner', 'log_path': str(log),
                   'queues': RUNNER_QUEUES}]
    # launchd's job is the bootloader (4242); the child it starts (4243) polls
    host = FakeLaunchd({'ai.stigmer.agent-runner': PRINT_RUNNING}, children={4242: [4243]})
    result, clock = launchd_gate(host, components, answers=polling(agent_runner=(4243,)))
    assert result['healthy'] is True and result['components']['agent-runner']['pid'] == 4242
    assert result['components']['agent-runner']['pollers'] == {'agent_execution_runner': {'activity': [4243]}}
    assert len(host.commands('/bin/ps')) == len(host.commands('print')) == 3     # one ps per sample

    # a process outside the job polls: not this unit
    result, clock = launchd_gate(host, components, answers=polling(agent_runner=(310,)))
    assert result['healthy'] is False
    assert result['msg'] == 'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner'
    assert result['logs']['agent-runner'] == ['stigmer.runtime: start pid 4242', 'starting', READY]


def test_launchd_log_that_is_a_symlink_is_not_read(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('stigmer.runtime: start pid 4242\n' + READY + '\n')
    log = tmp_path / 'agent-runner.log'
    log.symlink_to(secret)
    components = [{'name': 'agent-runner', 'unit': 'ai.stigmer.agent-runner', 'log_path': str(log),
                   'queues': RUNNER_QUEUES}]
    host = FakeLaunchd({'ai.stigmer.agent-runner': PRINT_RUNNING})
    result, clock = launchd_gate(host, components, wait=0, answers=polling(agent_runner=()))
    assert result['healthy'] is False
    assert result['logs']['agent-runner'] == ['(cannot read %s: refusing to follow a symbolic link)' % log]


def test_launchd_kickstarts_a_server_without_pollers_and_sees_a_crash_loop(tmp_path):
    components = [{'name': 'server', 'unit': 'ai.stigmer.server', 'log_path': str(tmp_path / 'server.log'),
                   'queues': SERVER_QUEUES, 'restart_without_pollers': True},
                  {'name': 'workflow-runner', 'unit': 'ai.stigmer.workflow-runner', 'log_path': str(tmp_path / 'wr.log')}]
    throttled = [PRINT_THROTTLED.replace('runs = 7', 'runs = %d' % runs) for runs in [3] * (s.POLL_GRACE + 2) + [4, 5, 6]]
    host = FakeLaunchd({'ai.stigmer.server': PRINT_RUNNING, 'ai.stigmer.workflow-runner': throttled},
                       kickstarted={'ai.stigmer.server': PRINT_RUNNING.replace('pid = 4242', 'pid = 5000')})
    result, clock = launchd_gate(host, components, wait=60, settle=10, answers=polling(server=(5000,)))
    # launchd gives no uptime: the gate watched the server s.POLL_GRACE s without pollers, then kickstarted it
    assert host.commands('kickstart') == [['/bin/launchctl', 'kickstart', '-k', 'system/ai.stigmer.server']]
    assert result['restarted'] == ['server'] and result['changed'] is True
    assert result['components']['server']['pid'] == 5000 and result['components']['server']['ready'] is True
    # runs 3 -> 4 -> 5 -> 6 after the kickstart: a crash loop ends the gate before its deadline
    assert result['healthy'] is False and clock.now - 1000 == s.POLL_GRACE + 3
    assert result['msg'].startswith('workflow-runner restarted 3 times in %d s (crash loop); ' % (s.POLL_GRACE + 3))
    assert result['logs']['workflow-runner'] == ['(cannot read %s: No such file or directory)' % (tmp_path / 'wr.log')]


def test_coloured_console_lines_are_shown_without_their_escapes():
    # The server logs with zerolog's console writer under ENV=local: colour codes around the level.
    line = '\x1b[90m3:04PM\x1b[0m \x1b[31mWRN\x1b[0m Failed to connect to Temporal server - workflows will not execute'
    assert s.last_lines(line + '\nnext', 2) == [
        '3:04PM WRN Failed to connect to Temporal server - workflows will not execute', 'next']
