# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""service_state: systemd and launchd parsing, log slicing, the safe log read, and the gate's decisions
over recorded `systemctl show` / `launchctl print` outputs with a fake clock."""

import os
import types

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _service_state as s
from ansible_collections.stigmer.runtime.plugins.module_utils._service_state import ServiceStateError
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.fake_clock import FakeClock

INV_A = '4a1c0e6f7d2b4f0e9a3c5b6d7e8f9a0b'
INV_B = '0f9e8d7c6b5a49382716a5b4c3d2e1f0'
INV_C = 'aaaaaaaabbbbbbbbccccccccdddddddd'
READY = u'\U0001F680 Worker ready, polling for tasks...'
STALE = 'Failed to connect to Temporal server - workflows will not execute'

# What systemd 252 prints for
#   systemctl show --property=Id,ActiveState,SubState,MainPID,NRestarts,InvocationID,ExecMainStartTimestamp \
#     stigmer-server stigmer-workflow-runner.service
# (service properties first, Id is the full name, an auto-restarting unit has no PID and no invocation).
SHOW = '''MainPID=812
NRestarts=0
ExecMainStartTimestamp=Tue 2026-01-06 10:00:03 UTC
Id=stigmer-server.service
ActiveState=active
SubState=running
InvocationID=4a1c0e6f7d2b4f0e9a3c5b6d7e8f9a0b

MainPID=0
NRestarts=4
ExecMainStartTimestamp=Tue 2026-01-06 10:00:11 UTC
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
        'ExecMainStartTimestampMonotonic', 'a.service', 'b.service']


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
        'started': 'Tue 2026-01-06 10:00:03 UTC', 'uptime': None}
    assert s.systemd_state(props['workflow-runner']) == {
        'active': False, 'state': 'activating/auto-restart', 'pid': None, 'start_id': None, 'counter': 4,
        'started': 'Tue 2026-01-06 10:00:11 UTC', 'uptime': None}


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


def test_journal_argv_reads_one_start_by_invocation_and_the_tail_by_unit():
    assert s.journal_argv(INV_A) == ['journalctl', '--no-pager', '-q', '-a', '-o', 'cat', '-n', '5000',
                                     '_SYSTEMD_INVOCATION_ID=' + INV_A]
    assert s.journal_tail_argv('stigmer-server.service', 25) == [
        'journalctl', '--no-pager', '-q', '-a', '-o', 'cat', '-n', '25', '-u', 'stigmer-server.service']


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


# ---------------------------------------------------------------- the log of the current start

LAUNCHD_LOG = '\n'.join([
    'stigmer.runtime: start pid 100',
    'old run, before the upgrade',
    READY,
    'stigmer.runtime: start pid 200',
    'Traceback: cannot reach Temporal',
    'stigmer.runtime: start pid 300',
    'connecting to localhost:7233',
    'stigmer.runtime: start pid 3000',
    'a later start whose pid starts with 300',
])


def test_since_start_takes_the_lines_of_that_start_only():
    assert s.since_start(LAUNCHD_LOG, 300) == ('connecting to localhost:7233', True)
    assert s.since_start(LAUNCHD_LOG, 200) == ('Traceback: cannot reach Temporal', True)
    assert s.since_start(LAUNCHD_LOG, 100) == ('old run, before the upgrade\n' + READY, True)
    assert s.since_start(LAUNCHD_LOG, 3000) == ('a later start whose pid starts with 300', True)


def test_since_start_without_a_marker_for_the_pid():
    assert s.since_start(LAUNCHD_LOG, 999) == ('', False)
    assert s.since_start(LAUNCHD_LOG, None) == ('', False)
    assert s.since_start('', 1) == ('', False)


def test_since_start_uses_the_last_marker_of_a_reused_pid_and_only_whole_lines():
    text = 'stigmer.runtime: start pid 5\nfirst\nstigmer.runtime: start pid 5\nsecond\n echo stigmer.runtime: start pid 5'
    assert s.since_start(text, 5) == ('second\n echo stigmer.runtime: start pid 5', True)


@pytest.mark.parametrize('text, complete, ready_pattern, stale_pattern, expected', [
    (READY, True, 'Worker ready, polling for tasks', None, (True, False)),
    ('starting', True, 'Worker ready, polling for tasks', None, (False, False)),
    ('starting', False, 'Worker ready, polling for tasks', None, (None, False)),   # start lies before the window
    ('anything', True, None, None, (True, False)),
    ('WRN ' + STALE + ' error=dial', True, None, STALE, (True, True)),
    ('serving on :7234', True, None, STALE, (True, False)),
])
def test_log_verdict(text, complete, ready_pattern, stale_pattern, expected):
    assert s.log_verdict(text, complete, ready_pattern, stale_pattern) == expected


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


# ---------------------------------------------------------------- the gate over a fake host


def unit(pid, restarts=0, invocation=INV_A, active=True, started='Tue 2026-01-06 10:00:03 UTC'):
    return {'ActiveState': 'active' if active else 'activating', 'SubState': 'running' if active else 'auto-restart',
            'MainPID': str(pid if active else 0), 'NRestarts': str(restarts),
            'InvocationID': invocation if active else '', 'ExecMainStartTimestamp': started}


class FakeSystemd(object):
    """A host under systemd, replayed at the process boundary.

    timeline(n) gives the units' properties at the n-th `systemctl show` (the
    last entry repeats); journal maps invocation IDs to their log. A restart
    switches to after_restart (with its own sample count) and is recorded.
    """

    def __init__(self, timeline, journal=None, after_restart=None, restart_rc=0):
        self.timeline, self.journal = timeline, dict(journal or {})
        self.after_restart, self.restart_rc = after_restart, restart_rc
        self.calls, self.shows = [], 0

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[:2] == ['systemctl', 'show']:
            units = argv[3:]
            step = self.timeline[min(self.shows, len(self.timeline) - 1)]
            self.shows += 1
            blocks = []
            for name in units:
                props = dict(step[name], Id=name)
                blocks.append('\n'.join('%s=%s' % kv for kv in sorted(props.items())))
            return 0, '\n\n'.join(blocks) + '\n', ''
        if argv[:2] == ['systemctl', 'restart']:
            if self.restart_rc:
                return self.restart_rc, '', 'Job for %s failed.' % argv[2]
            self.timeline, self.shows = self.after_restart, 0
            return 0, '', ''
        if argv[0] == 'journalctl' and argv[-1].startswith('_SYSTEMD_INVOCATION_ID='):
            return 0, self.journal.get(argv[-1].split('=', 1)[1], ''), ''
        if argv[0] == 'journalctl' and argv[-2] == '-u':
            count = int(argv[argv.index('-n') + 1])
            return 0, '\n'.join(['%s line %d' % (argv[-1], i) for i in range(40)][-count:]) + '\n', ''
        raise AssertionError('unexpected command %r' % argv)

    def commands(self, verb):
        return [argv for argv in self.calls if argv[1] == verb]


COMPONENTS = [
    {'name': 'server', 'unit': 'stigmer-server.service', 'stale_pattern': STALE},
    {'name': 'workflow-runner', 'unit': 'stigmer-workflow-runner.service'},
    {'name': 'agent-runner', 'unit': 'stigmer-agent-runner.service', 'ready_pattern': 'Worker ready, polling for tasks'},
]
JOURNAL = {INV_A: 'INF gRPC server listening on :7234\n', INV_C: 'starting\n' + READY + '\n'}
UP = {'grpc': True, 'status': None, 'healthy': True, 'msg': '127.0.0.1:7234 speaks gRPC but gave no health status'}


def healthy_units(server_pid=812, runner_restarts=0, runner_pid=900):
    return {'stigmer-server.service': unit(server_pid),
            'stigmer-workflow-runner.service': unit(runner_pid, runner_restarts, INV_B),
            'stigmer-agent-runner.service': unit(950, 0, INV_C)}


def gate(host, wait=30, settle=10, probe=None, check_mode=False, components=None, clock=None):
    clock = clock or FakeClock()
    components = COMPONENTS if components is None else components
    probes = []

    def grpc():
        probes.append(clock.now)
        return probe(clock.now) if callable(probe) else (probe or UP)

    result = s.run_gate(s.Systemd(host), components, grpc, wait, settle, runner=host, check_mode=check_mode,
                        clock=clock.monotonic, sleep=clock.sleep)
    return result, clock, probes


def test_healthy_after_the_settle_window():
    host = FakeSystemd([healthy_units()], JOURNAL)
    result, clock, probes = gate(host)
    assert result['healthy'] is True and result['changed'] is False and result['restarted'] == []
    assert clock.now - 1000 == 10                     # settled at the first sample 10 s after the start
    assert len(host.commands('show')) == 11           # one systemctl show per sample, for all units
    assert result['logs'] == {}
    assert result['msg'] == ('127.0.0.1:7234 speaks gRPC but gave no health status; server, workflow-runner, '
                             'agent-runner stayed up for 10 s with no restart')
    assert result['components']['agent-runner'] == {
        'unit': 'stigmer-agent-runner.service', 'active': True, 'state': 'active/running', 'pid': 950,
        'restarts': 0, 'ready': True, 'started': 'Tue 2026-01-06 10:00:03 UTC'}
    assert result['grpc'] is True and result['status'] is None
    # the agent-runner's start is read until its ready line shows up, then no more
    assert [a for a in host.calls if a[-1] == '_SYSTEMD_INVOCATION_ID=' + INV_C] == [s.journal_argv(INV_C)]
    assert len([a for a in host.calls if a[-1] == '_SYSTEMD_INVOCATION_ID=' + INV_A]) == 11  # stale watch


def test_wait_zero_samples_once_without_a_settle_window():
    host = FakeSystemd([healthy_units()], JOURNAL)
    result, clock, probes = gate(host, wait=0)
    assert result['healthy'] is True and clock.slept == [] and len(probes) == 1
    assert result['msg'].endswith('; server, workflow-runner, agent-runner are running')


def test_not_serving_is_not_yet_and_times_out_at_the_deadline():
    not_serving = {'grpc': True, 'status': 'NOT_SERVING', 'healthy': False,
                   'msg': 'server is not serving yet: 127.0.0.1:7234 reports NOT_SERVING for the server'}
    host = FakeSystemd([healthy_units()], JOURNAL)
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
    host = FakeSystemd([healthy_units()], JOURNAL)
    result, clock, probes = gate(host, probe=probe)
    assert result['healthy'] is True and clock.now - 1000 == 15


def test_crash_loop_ends_the_gate_early():
    steps = [healthy_units(runner_restarts=n, runner_pid=900 + n) for n in (0, 1, 1, 2, 3, 4)]
    steps[2]['stigmer-workflow-runner.service'] = unit(0, 1, active=False)
    host = FakeSystemd(steps, JOURNAL)
    result, clock, probes = gate(host, wait=90)
    assert result['healthy'] is False
    assert clock.now - 1000 == 4                       # not the 90 s deadline
    assert result['msg'] == 'workflow-runner restarted 3 times in 4 s (crash loop)'

    # another component's single restart is named too, after the crash loop
    for step in steps[1:]:
        step['stigmer-agent-runner.service'] = unit(951, 1, INV_C)
    result, clock, probes = gate(FakeSystemd(steps, JOURNAL), wait=90)
    assert result['msg'] == ('workflow-runner restarted 3 times in 4 s (crash loop); '
                             'agent-runner restarted 1 time in 1 s')
    assert result['components']['workflow-runner']['restarts'] == 3
    assert 'workflow-runner' in result['logs']


def test_restart_counter_growth_restarts_the_settle_window():
    steps = [healthy_units()] * 5 + [healthy_units(runner_restarts=1, runner_pid=901)]
    host = FakeSystemd(steps, JOURNAL)
    result, clock, probes = gate(host, wait=30)
    assert result['healthy'] is True
    assert clock.now - 1000 == 15                      # window restarted at 5 s
    assert result['components']['workflow-runner']['restarts'] == 1


def test_one_restart_explains_a_deadline_reached_before_settling():
    steps = [healthy_units()] * 5 + [healthy_units(runner_restarts=1, runner_pid=901)]
    host = FakeSystemd(steps, JOURNAL)
    result, clock, probes = gate(host, wait=12)
    assert result['healthy'] is False
    assert result['msg'] == ('workflow-runner restarted 1 time in 5 s; '
                             'every check passed for only the last 7 s of the 10 s settle time')


def test_pid_change_without_counter_growth_restarts_the_settle_window():
    steps = [healthy_units()] * 3 + [healthy_units(server_pid=813)]
    steps[3]['stigmer-server.service']['InvocationID'] = INV_A  # same invocation, new main PID
    host = FakeSystemd(steps, JOURNAL)
    result, clock, probes = gate(host, wait=12)
    assert result['healthy'] is False
    assert result['msg'] == ('server was restarted (pid 812 -> 813); '
                             'every check passed for only the last 9 s of the 10 s settle time')


def test_counter_reset_by_an_explicit_start_counts_what_followed():
    gate_ = s.Gate(COMPONENTS[1:2], 10, 0)
    view = s.systemd_state
    for now, restarts in ((0, 5), (1, 1), (2, 2)):
        state = dict(view(unit(900 + now, restarts, INV_B)), ready=True, stale=False)
        result = gate_.observe(now, {'workflow-runner': state}, None)
    # 5 -> 1: reset, then one restart; 1 -> 2: one more
    assert gate_.growth['workflow-runner'] == 2 and result['verdict'] == 'waiting'


def test_missing_ready_line_until_the_deadline():
    journal = dict(JOURNAL, **{INV_C: 'starting\nconnecting to Temporal at localhost:7233\n'})
    host = FakeSystemd([healthy_units()], journal)
    result, clock, probes = gate(host, wait=15)
    assert result['healthy'] is False and clock.now - 1000 == 15
    assert result['msg'] == ('agent-runner has not logged its ready line since it started at '
                             'Tue 2026-01-06 10:00:03 UTC')
    assert result['components']['agent-runner']['ready'] is False
    assert len([a for a in host.calls if a[-1] == '_SYSTEMD_INVOCATION_ID=' + INV_C]) == 16


def test_ready_line_of_an_earlier_start_does_not_count():
    # the journal of the previous invocation had it; the current one (INV_A here) does not
    components = [{'name': 'agent-runner', 'unit': 'stigmer-agent-runner.service',
                   'ready_pattern': 'Worker ready, polling for tasks'}]
    host = FakeSystemd([{'stigmer-agent-runner.service': unit(950, 0, INV_A)}], {INV_C: READY, INV_A: 'starting'})
    result, clock, probes = gate(host, wait=0, components=components)
    assert result['healthy'] is False and 'has not logged its ready line' in result['msg']


def test_long_running_start_beyond_the_journal_window_counts_as_ready():
    components = [{'name': 'agent-runner', 'unit': 'stigmer-agent-runner.service',
                   'ready_pattern': 'Worker ready, polling for tasks'}]
    busy = '\n'.join('task %d done' % i for i in range(s.JOURNAL_WINDOW)) + '\n'
    host = FakeSystemd([{'stigmer-agent-runner.service': unit(950, 0, INV_A)}], {INV_A: busy})
    result, clock, probes = gate(host, wait=0, components=components)
    assert result['healthy'] is True and result['components']['agent-runner']['ready'] is None


def test_stale_pattern_restarts_once_and_rechecks():
    stale_journal = dict(JOURNAL, **{INV_A: 'WRN ' + STALE + ' error="context deadline exceeded"\n'})
    after = [{'stigmer-server.service': unit(820, 0, 'b' * 32),
              'stigmer-workflow-runner.service': unit(930, 0, INV_B),
              'stigmer-agent-runner.service': unit(960, 0, INV_C)}]
    host = FakeSystemd([healthy_units(runner_restarts=2)], stale_journal, after_restart=after)
    host.journal['b' * 32] = 'INF Temporal worker started\n'
    result, clock, probes = gate(host)
    assert host.commands('restart') == [['systemctl', 'restart', 'stigmer-server.service']]
    assert result['healthy'] is True and result['changed'] is True and result['restarted'] == ['server']
    assert result['msg'].endswith('; restarted server first')
    # the counter drop and PID changes caused by the restart are neither growth nor a crash
    assert all(c['restarts'] == 0 for c in result['components'].values())
    assert result['components']['server']['pid'] == 820


def test_stale_pattern_again_after_the_restart_fails_at_once():
    stale = 'WRN ' + STALE + '\n'
    after = [dict(healthy_units(), **{'stigmer-server.service': unit(820, 0, 'b' * 32)})]
    host = FakeSystemd([healthy_units()], dict(JOURNAL, **{INV_A: stale, 'b' * 32: stale}), after_restart=after)
    result, clock, probes = gate(host, wait=60)
    assert len(host.commands('restart')) == 1
    assert result['healthy'] is False and result['changed'] is True and clock.now == 1000
    assert result['msg'] == "server logged %r again after the gate restarted it" % STALE


def test_stale_pattern_in_check_mode_restarts_nothing():
    host = FakeSystemd([healthy_units()], dict(JOURNAL, **{INV_A: STALE}), after_restart=[])
    result, clock, probes = gate(host, check_mode=True)
    assert host.commands('restart') == []
    assert result['healthy'] is False and result['changed'] is True and result['restarted'] == ['server']
    assert result['msg'] == "server logged %r since it started: would restart server (check mode)" % STALE


def test_failed_restart_ends_the_gate():
    host = FakeSystemd([healthy_units()], dict(JOURNAL, **{INV_A: STALE}), restart_rc=1)
    result, clock, probes = gate(host)
    assert result['healthy'] is False and result['restarted'] == ['server']
    assert result['msg'] == ('restarting server failed (systemctl restart stigmer-server.service: rc=1 '
                             'Job for stigmer-server.service failed.)')


def test_inactive_component_and_unreachable_server_both_named():
    steps = [dict(healthy_units(), **{'stigmer-agent-runner.service': unit(0, 0, active=False)})]
    down = {'grpc': False, 'status': None, 'healthy': False,
            'msg': 'server did not answer gRPC on 127.0.0.1:7234: cannot connect to 127.0.0.1:7234: Connection refused'}
    host = FakeSystemd(steps, JOURNAL)
    result, clock, probes = gate(host, wait=5, probe=down)
    assert result['msg'] == (down['msg'] + '; agent-runner is not running '
                             '(stigmer-agent-runner.service: activating/auto-restart)')
    assert result['components']['agent-runner']['active'] is False
    assert result['components']['agent-runner']['ready'] is False


def test_systemctl_failure_is_reported_not_raised():
    def broken(argv):
        return 1, '', 'Failed to connect to bus: No such file or directory'
    result = s.run_gate(s.Systemd(broken), COMPONENTS, None, 0, 10, runner=broken,
                        clock=FakeClock().monotonic, sleep=FakeClock().sleep)
    assert result['healthy'] is False
    assert result['msg'].startswith('systemctl show --property=')
    assert result['msg'].endswith('failed (rc=1): Failed to connect to bus: No such file or directory')
    assert result['logs']['server'] == ['(journalctl failed, rc=1: Failed to connect to bus: No such file or directory)']


def test_probe_only_gate():
    calls = []
    result = s.run_gate(None, [], lambda: calls.append(1) or UP, 0, 10, clock=FakeClock().monotonic, sleep=FakeClock().sleep)
    assert result == {'changed': False, 'healthy': True, 'msg': UP['msg'], 'restarted': [], 'components': {},
                      'logs': {}, 'grpc': True, 'status': None}
    assert calls == [1]


# ---------------------------------------------------------------- processes that already ran long enough

PIDS = {'server': (812, INV_A), 'workflow-runner': (900, INV_B), 'agent-runner': (950, INV_C)}


def sample(now, started):
    """One sample as _sample gives it: every check passes; started maps a name to its monotonic start or None."""
    states = {}
    for name, (pid, invocation) in PIDS.items():
        props = unit(pid, 0, invocation)
        if started[name] is not None:
            props['ExecMainStartTimestampMonotonic'] = str(int(started[name] * 1e6))
        states[name] = dict(s.systemd_state(props, now), ready=True, stale=False)
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
    states['agent-runner']['ready'] = False
    assert gate_.observe(5001.0, states, UP)['verdict'] == 'waiting'


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
    # Systemd.states reads CLOCK_MONOTONIC, the clock of systemd's stamps: give it the fake one.
    monkeypatch.setattr(s, 'time', types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    units = healthy_units()
    for props in units.values():
        props['ExecMainStartTimestampMonotonic'] = str(4000 * 1000000)
    host = FakeSystemd([units], JOURNAL)
    result, clock, probes = gate(host, wait=30, settle=10, clock=clock)
    assert result['healthy'] is True and result['changed'] is False
    assert clock.now == 5000.0 and clock.slept == [] and len(host.commands('show')) == 1


# ---------------------------------------------------------------- the gate under launchd

class FakeLaunchd(object):
    """launchctl print replayed from a timeline of outputs; the log file is real."""

    def __init__(self, prints):
        self.prints, self.calls = prints, []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[1] == 'print':
            asked = len([c for c in self.calls if c[1:] == argv[1:]])  # one print per label per sample
            step = self.prints[min(asked - 1, len(self.prints) - 1)]
            rc, out = step.get(argv[2], (113, 'Could not find service'))
            return rc, out, ''
        if argv[1] == 'kickstart':
            return 0, '', ''
        raise AssertionError(argv)


def test_launchd_gate_reads_the_current_start_from_the_log(tmp_path):
    log = tmp_path / 'agent-runner.log'
    log.write_text('stigmer.runtime: start pid 4000\n%s\nstigmer.runtime: start pid 4242\nstarting\n' % READY)
    components = [{'name': 'agent-runner', 'unit': 'ai.stigmer.agent-runner', 'log_path': str(log),
                   'ready_pattern': 'Worker ready, polling for tasks'}]
    host = FakeLaunchd([{'system/ai.stigmer.agent-runner': (0, PRINT_RUNNING)}])
    clock = FakeClock()
    result = s.run_gate(s.Launchd(host), components, None, 3, 2, runner=host, clock=clock.monotonic, sleep=clock.sleep)
    assert result['healthy'] is False
    assert result['msg'] == 'agent-runner has not logged its ready line since it started (pid 4242)'
    assert result['logs']['agent-runner'][-2:] == ['stigmer.runtime: start pid 4242', 'starting']

    with open(str(log), 'a') as handle:
        handle.write(READY + '\n')
    clock = FakeClock()
    result = s.run_gate(s.Launchd(host), components, None, 3, 2, runner=host, clock=clock.monotonic, sleep=clock.sleep)
    assert result['healthy'] is True and result['components']['agent-runner']['pid'] == 4242


def test_launchd_log_without_the_start_marker(tmp_path):
    log = tmp_path / 'agent-runner.log'
    log.write_text(READY + '\n')
    components = [{'name': 'agent-runner', 'unit': 'ai.stigmer.agent-runner', 'log_path': str(log),
                   'ready_pattern': 'Worker ready'}]
    host = FakeLaunchd([{'system/ai.stigmer.agent-runner': (0, PRINT_RUNNING)}])
    result = s.run_gate(s.Launchd(host), components, None, 0, 0, clock=FakeClock().monotonic, sleep=FakeClock().sleep)
    assert result['healthy'] is False
    assert result['msg'] == ("agent-runner: %s has no 'stigmer.runtime: start pid 4242' line, so its current start "
                             "cannot be told apart" % log)


def test_launchd_log_that_is_a_symlink_is_not_read(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('stigmer.runtime: start pid 4242\n' + READY + '\n')
    log = tmp_path / 'agent-runner.log'
    log.symlink_to(secret)
    components = [{'name': 'agent-runner', 'unit': 'ai.stigmer.agent-runner', 'log_path': str(log),
                   'ready_pattern': 'Worker ready'}]
    host = FakeLaunchd([{'system/ai.stigmer.agent-runner': (0, PRINT_RUNNING)}])
    result = s.run_gate(s.Launchd(host), components, None, 0, 0, clock=FakeClock().monotonic, sleep=FakeClock().sleep)
    assert result['healthy'] is False
    assert 'refusing to follow a symbolic link' in result['msg']
    assert result['logs']['agent-runner'] == ['(cannot read %s: refusing to follow a symbolic link)' % log]


def test_launchd_crash_loop_and_kickstart_for_a_stale_server(tmp_path):
    server_log = tmp_path / 'server.log'
    server_log.write_text('stigmer.runtime: start pid 4242\nWRN %s\n' % STALE)
    components = [{'name': 'server', 'unit': 'ai.stigmer.server', 'log_path': str(server_log), 'stale_pattern': STALE},
                  {'name': 'workflow-runner', 'unit': 'ai.stigmer.workflow-runner', 'log_path': str(tmp_path / 'wr.log')}]
    prints = []
    for runs in (3, 4, 5, 6):
        prints.append({'system/ai.stigmer.server': (0, PRINT_RUNNING),
                       'system/ai.stigmer.workflow-runner': (0, PRINT_THROTTLED.replace('runs = 7', 'runs = %d' % runs))})
    host = FakeLaunchd(prints)

    def kickstart_after_rewrite(argv):
        if argv[1] == 'kickstart':
            server_log.write_text('stigmer.runtime: start pid 4242\nWRN %s\nstigmer.runtime: start pid 5000\nok\n' % STALE)
        return host(argv)
    prints_after = [dict(p, **{'system/ai.stigmer.server': (0, PRINT_RUNNING.replace('pid = 4242', 'pid = 5000'))})
                    for p in prints]
    host.prints = prints[:1] + prints_after[1:]
    clock = FakeClock()
    result = s.run_gate(s.Launchd(kickstart_after_rewrite), components, None, 60, 10, runner=kickstart_after_rewrite,
                        clock=clock.monotonic, sleep=clock.sleep)
    assert [c for c in host.calls if c[1] == 'kickstart'] == [['/bin/launchctl', 'kickstart', '-k', 'system/ai.stigmer.server']]
    assert result['restarted'] == ['server'] and result['changed'] is True
    assert result['healthy'] is False
    # runs 3 -> 4 straddles the kickstart (not counted), then 4 -> 5 -> 6 and stays: 2 growths, no crash loop
    assert clock.now - 1000 == 60
    assert 'workflow-runner is not running (ai.stigmer.workflow-runner: spawn scheduled, last exit code 78)' in result['msg']
    assert 'workflow-runner restarted 2 times in ' in result['msg']
    assert result['logs']['workflow-runner'] == ['(cannot read %s: No such file or directory)' % (tmp_path / 'wr.log')]


def test_coloured_console_lines_are_matched_and_shown_without_their_escapes():
    # The server logs with zerolog's console writer under ENV=local: colour codes around the level.
    line = '\x1b[90m3:04PM\x1b[0m \x1b[31mWRN\x1b[0m Failed to connect to Temporal server - workflows will not execute'
    assert s.log_verdict(line, True, stale_pattern='Failed to connect to Temporal server') == (True, True)
    assert s.last_lines(line + '\nnext', 2) == [
        '3:04PM WRN Failed to connect to Temporal server - workflows will not execute', 'next']
