# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The health gate: are the Stigmer services up, settled, and working?

A gRPC answer alone proves little: the v0.0.5-v0.0.7 workflow-runner exits at
once and crash-loops under Restart=always, and a server started before Temporal
serves gRPC without its workers forever. What shows that a worker works is
Temporal's own list of the processes polling its task queues. So the gate
samples the service manager (systemd or launchd) for each component's state and
processes, asks Temporal which of those processes poll every task queue the
component must serve, for every task type it registers, and succeeds only after
a window in which nothing restarted.

Parsing and the decision are pure functions and the Gate class; every process
call goes through one runner, ``runner(argv) -> (rc, stdout, stderr)``
(AnsibleModule.run_command in production), so tests replay recorded output, and
Temporal is asked through a _temporal.Temporal, which tests replace.

Standard library only: this runs on managed hosts.
"""

import errno
import os
import re
import stat
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import GrpcError
from ansible_collections.stigmer.runtime.plugins.module_utils._launchd import (
    kickstart_argv,
    print_argv,
    validate_label,
    LaunchdError,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._temporal import missing_text, poll_verdict

SYSTEMCTL = 'systemctl'
JOURNALCTL = 'journalctl'
PS = '/bin/ps'
SHOW_PROPERTIES = ('Id', 'ActiveState', 'SubState', 'MainPID', 'NRestarts', 'InvocationID',
                   'ExecMainStartTimestamp', 'ExecMainStartTimestampMonotonic', 'ControlGroup')
INVOCATION_RE = re.compile(r'^[0-9a-f]{32}$')
CGROUP_ROOT = '/sys/fs/cgroup'
# Only the end of a launchd log file is read for the lines shown on failure.
LOG_TAIL_BYTES = 256 * 1024
CRASH_LOOP = 3          # restarts during the gate that end it at once
INTERVAL = 1.0          # seconds between samples
# Upstream's Go server polls within a second or two of its start, but a slow host takes longer
# (an emulated arm64 host needs 7 s just to import a Python worker's SDK): a process younger
# than this is never restarted, nor failed after a restart, for want of pollers. A server that
# really started without Temporal costs the gate this long.
POLL_GRACE = 30


class ServiceStateError(Exception):
    """A service manager could not be asked (not a component's own failure)."""


# ---------------------------------------------------------------------------
# systemd
# ---------------------------------------------------------------------------

def show_argv(units):
    return [SYSTEMCTL, 'show', '--property=' + ','.join(SHOW_PROPERTIES)] + list(units)


def restart_argv(unit):
    return [SYSTEMCTL, 'restart', unit]


def journal_tail_argv(unit, lines):
    """The unit's last lines across starts, with systemd's own exit and restart notes."""
    return [JOURNALCTL, '--no-pager', '-q', '-a', '-o', 'cat', '-n', str(lines), '-u', unit]


def parse_show(text, units):
    """`systemctl show` output for units -> {unit: {property: value}}.

    systemctl prints one block per unit, in argument order, separated by a
    blank line; the Id in a block may differ from the name asked (a missing
    .service suffix), so blocks are matched by position.
    """
    blocks, current = [], None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        if current is None:
            current = {}
            blocks.append(current)
        key, sep, value = line.partition('=')
        if sep:
            current[key] = value
    if len(blocks) != len(units):
        raise ServiceStateError('systemctl show gave %d blocks for %d units: %r'
                                % (len(blocks), len(units), text[:200]))
    return dict(zip(units, blocks))


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def systemd_state(props, now=None):
    """One unit's properties -> the gate's view of it; now is CLOCK_MONOTONIC, as systemd's stamps."""
    active = props.get('ActiveState') == 'active' and props.get('SubState') == 'running'
    pid = _int(props.get('MainPID')) or None
    invocation = props.get('InvocationID', '')
    started_us = _int(props.get('ExecMainStartTimestampMonotonic'))
    return {
        # How long the current process has run: one that outlasted the settle time needs no watching.
        'uptime': max(now - started_us / 1e6, 0.0) if (now is not None and started_us and pid) else None,
        'active': active and pid is not None,
        'state': '%s/%s' % (props.get('ActiveState') or 'unknown', props.get('SubState') or 'unknown'),
        'pid': pid,
        'start_id': invocation if INVOCATION_RE.match(invocation) else None,
        'counter': _int(props.get('NRestarts')),
        'started': props.get('ExecMainStartTimestamp') or None,
        'cgroup': props.get('ControlGroup') or None,
    }


def cgroup_procs_paths(cgroup, root=CGROUP_ROOT):
    """Where the kernel lists the processes of a unit's control group (systemd's ControlGroup):
    on the unified hierarchy (cgroup v2), else on systemd's own v1 hierarchy. None of them for
    anything but a unit's group: empty, the root, or a path that climbs."""
    parts = (cgroup or '').split('/')
    if parts[0] != '' or not any(parts) or '..' in parts or '.' in parts:
        return []
    return ['%s%s/cgroup.procs' % (root, cgroup), '%s/systemd%s/cgroup.procs' % (root, cgroup)]


def parse_pids(text):
    """A cgroup.procs file: one PID a line."""
    return set(int(word) for word in text.split() if word.isdigit())


def read_text(path):
    with open(path) as handle:
        return handle.read()


# ---------------------------------------------------------------------------
# launchd
# ---------------------------------------------------------------------------

def parse_launchctl_print(text):
    """The top-level `key = value` lines of `launchctl print system/<label>`.

    Nested blocks (arguments, environment, endpoints, ...) are skipped, so a
    key inside them never shadows the job's own.
    """
    fields, depth = {}, 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == '}':
            depth -= 1
            continue
        if depth == 1 and ' = ' in stripped and not stripped.endswith('{'):
            key, dummy, value = stripped.partition(' = ')
            fields[key] = value
        if stripped.endswith('{'):
            depth += 1
    return fields


def launchd_state(rc, text):
    """`launchctl print` result -> the gate's view of the job (rc != 0: not loaded)."""
    if rc != 0:
        return {'active': False, 'state': 'not loaded', 'pid': None, 'start_id': None, 'counter': 0,
                'started': None, 'last_exit': None}
    fields = parse_launchctl_print(text)
    pid = _int(fields.get('pid')) or None
    state = fields.get('state', 'unknown')
    # "1", "78: EX_CONFIG" or "(never exited)"
    match = re.match(r'-?\d+', fields.get('last exit code', ''))
    return {
        'active': state == 'running' and pid is not None,
        'state': state,
        'pid': pid,
        'start_id': str(pid) if pid else None,
        'counter': _int(fields.get('runs')),
        'started': None,
        'last_exit': int(match.group(0)) if match else None,
    }


def ps_argv():
    return [PS, '-A', '-o', 'pid=,ppid=']


def parse_ps(text):
    """`ps -A -o pid=,ppid=` -> {pid: parent pid}."""
    parents = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].isdigit() and words[1].isdigit():
            parents[int(words[0])] = int(words[1])
    return parents


def descendants(parents, root):
    """root and every process below it, from parse_ps(): a job's processes under launchd."""
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return sorted(found)


def read_tail(path, max_bytes=LOG_TAIL_BYTES):
    """The last max_bytes of a log file, read safely as root: (text, truncated).

    The file lives in a directory the service account owns, so it could be
    swapped for a link to a secret: refuse symlinks (O_NOFOLLOW), anything but
    a regular file (O_NONBLOCK: a FIFO must not block the open) and hard links.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(exc.errno, 'refusing to follow a symbolic link', path)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', path)
        if st.st_nlink != 1:
            raise OSError(errno.EINVAL, 'refusing a file with %d hard links' % st.st_nlink, path)
        offset = max(0, st.st_size - max_bytes)
        # One byte more, before the window, tells whether its first line is whole.
        os.lseek(fd, max(0, offset - 1), os.SEEK_SET)
        chunks, left = [], max_bytes + (1 if offset else 0)
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b''.join(chunks)
    if offset:
        data = data.partition(b'\n')[2]  # up to the first newline: the byte before, or a line cut in half
    return data.decode('utf-8', 'replace'), offset > 0


# ---------------------------------------------------------------------------
# Logs and the decision
# ---------------------------------------------------------------------------

# Terminal colour and cursor sequences: the server's console log (ENV=local) is coloured.
_ANSI_RE = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]')


def plain_text(text):
    return _ANSI_RE.sub('', text)


def last_lines(text, count):
    lines = plain_text(text).splitlines()
    return lines[-count:] if count > 0 else []


def not_running(name, unit, state):
    detail = '%s: %s' % (unit, state['state'])
    if state.get('last_exit') is not None:
        detail += ', last exit code %d' % state['last_exit']
    return '%s is not running (%s)' % (name, detail)


class Gate(object):
    """The decision over successive samples; knows nothing of processes or clocks.

    observe(now, components, grpc, temporal_problem) takes one sample:
    components is {name: state} where each state (from systemd_state or
    launchd_state) also carries 'ready', 'pollers' and 'missing' (from
    ask_temporal); grpc is probe()'s result or None; temporal_problem is why
    Temporal could not answer, or None. It returns {'verdict': 'healthy' |
    'waiting' | 'failed' | 'restart', 'problems': [...], 'restart': [names]}.

    A component marked restart_without_pollers that Temporal lists polling
    nothing at all once it has run restart_after seconds is restarted (once:
    the second time fails the gate); restart_after None restarts nothing.
    """

    def __init__(self, components, settle, start, restart_after=None):
        self.units = dict((c['name'], c['unit']) for c in components)
        self.restartable = set(c['name'] for c in components if c.get('restart_without_pollers'))
        self.settle = settle
        self.start = start
        self.restart_after = restart_after
        self.previous = {}
        self.first_seen = {}
        self.growth = dict((name, 0) for name in self.units)
        self.notes = {}
        self.restarted = []
        self.stable_since = None

    def restarting(self, names):
        """The caller restarts names: counters and PIDs jump (dependents' too), which is no crash."""
        self.restarted.extend(n for n in names if n not in self.restarted)
        self.previous = {}
        self.stable_since = None

    def unsettle(self):
        """A sample could not be taken: the window starts again."""
        self.stable_since = None

    def _track(self, now, name, state):
        """Restart counter growth and start changes since the last sample; True when it changed."""
        before = self.previous.get(name)
        self.previous[name] = state
        if before is None:
            return False
        counter = state['counter']
        # A counter that went down was reset (systemd flushes NRestarts on an explicit start).
        delta = counter - before['counter'] if counter >= before['counter'] else counter
        moved = (before['start_id'], before['pid']) != (state['start_id'], state['pid'])
        if delta > 0:
            self.growth[name] += delta
            self.notes[name] = '%s restarted %d time%s in %d s' % (
                name, self.growth[name], '' if self.growth[name] == 1 else 's', round(now - self.start))
        elif moved and before['pid'] and state['pid']:
            self.notes[name] = '%s was restarted (pid %s -> %s)' % (name, before['pid'], state['pid'])
        return delta > 0 or moved

    def up_for(self, now, name, state):
        """How long the current start has run: its uptime where the service manager tells it
        (systemd), else at least since the gate first saw it (launchd)."""
        first = self.first_seen.setdefault((name, state['start_id']), now)
        return max(state.get('uptime') or 0.0, now - first)

    def _unpolled(self, now, name, state):
        """('restart' | 'failed' | 'waiting', problem) for a running component Temporal lists
        missing pollers of."""
        silent = not any(pids for types in state['pollers'].values() for pids in types.values())
        up_for = self.up_for(now, name, state)
        if name not in self.restartable or not silent or self.restart_after is None or up_for < self.restart_after:
            return 'waiting', missing_text(name, state['missing'])
        if name in self.restarted:
            return 'failed', ('%s: Temporal still lists no poller of this unit on any of its task queues %d s '
                              'after the gate restarted it' % (name, round(up_for)))
        return 'restart', ('%s: Temporal lists no poller of this unit on any of its task queues %d s after it '
                           'started' % (name, round(up_for)))

    def observe(self, now, components, grpc, temporal_problem=None):
        changed = [name for name in self.units if self._track(now, name, components[name])]
        problems, restart, reasons, fatal = [], [], [], False
        for name in self.units:
            if self.growth[name] >= CRASH_LOOP:
                problems.append('%s restarted %d times in %d s (crash loop)'
                                % (name, self.growth[name], round(now - self.start)))
                fatal = True
        if grpc is not None and not grpc['healthy']:
            problems.append(grpc['msg'])
        if temporal_problem:
            problems.append(temporal_problem)
        for name, unit in self.units.items():
            state = components[name]
            if not state['active']:
                problems.append(not_running(name, unit, state))
            elif state.get('missing'):
                verdict, problem = self._unpolled(now, name, state)
                if verdict == 'restart':
                    restart.append(name)
                    reasons.append(problem)
                else:
                    problems.append(problem)
                    fatal = fatal or verdict == 'failed'
        # What restarted during the gate (short of a crash loop) explains a failure.
        notes = [self.notes[name] for name in self.units if name in self.notes and self.growth[name] < CRASH_LOOP]
        if fatal:
            return {'verdict': 'failed', 'problems': problems + notes, 'restart': []}
        if restart:
            return {'verdict': 'restart', 'problems': reasons, 'restart': restart}
        if problems:
            self.stable_since = None
            return {'verdict': 'waiting', 'problems': problems + notes, 'restart': []}
        if changed:
            self.stable_since = now
        elif self.stable_since is None:
            # Processes that already ran unchanged that long count towards the settle time.
            uptimes = [components[name].get('uptime') for name in self.units]
            known = [u for u in uptimes if u is not None]
            self.stable_since = now - (min(known) if known and len(known) == len(uptimes) else 0)
        if now - self.stable_since >= self.settle:
            return {'verdict': 'healthy', 'problems': [], 'restart': []}
        return {'verdict': 'waiting', 'restart': [], 'problems': notes + [
            'every check passed for only the last %d s of the %d s settle time'
            % (round(now - self.stable_since), self.settle)]}


# ---------------------------------------------------------------------------
# Service managers
# ---------------------------------------------------------------------------

class Systemd(object):
    """Samples units with one `systemctl show`; a unit's processes are those of its control group."""

    def __init__(self, runner, read=read_text):
        self.runner = runner
        self.read = read

    def states(self, components):
        """{name: state}; a running component with task queues also gets its 'pids'."""
        units = [c['unit'] for c in components]
        rc, out, err = self.runner(show_argv(units))
        if rc != 0:
            raise ServiceStateError('%s failed (rc=%d): %s'
                                    % (' '.join(show_argv(units)), rc, (err or out).strip()))
        props = parse_show(out, units)
        now = time.monotonic()
        states = {}
        for c in components:
            state = systemd_state(props[c['unit']], now)
            if c.get('queues') and state['active']:
                state['pids'] = self.unit_pids(state)
            states[c['name']] = state
        return states

    def unit_pids(self, state):
        """The main PID and every process of the unit's control group (the agent-runner's
        bootloader is the main PID; the child it starts is what polls)."""
        pids = {state['pid']}
        for path in cgroup_procs_paths(state['cgroup']):
            try:
                return sorted(pids | parse_pids(self.read(path)))
            except (IOError, OSError):
                continue  # not this hierarchy
        return sorted(pids)

    def tail(self, component, count):
        rc, out, err = self.runner(journal_tail_argv(component['unit'], count))
        if rc != 0:
            return ['(journalctl failed, rc=%d: %s)' % (rc, (err or out).strip())]
        return last_lines(out, count)

    def restart_argv(self, component):
        return restart_argv(component['unit'])


class Launchd(object):
    """Samples jobs with `launchctl print`; a job's processes are its PID and what descends from it."""

    def __init__(self, runner, read=read_tail):
        self.runner = runner
        self.read = read

    def states(self, components):
        """{name: state}; a running component with task queues also gets its 'pids' (one `ps`
        for all of them)."""
        out = {}
        for c in components:
            rc, text, dummy = self.runner(print_argv(c['unit']))
            out[c['name']] = launchd_state(rc, text)
        polling = [c['name'] for c in components if c.get('queues') and out[c['name']]['active']]
        if polling:
            rc, text, err = self.runner(ps_argv())
            if rc != 0:
                raise ServiceStateError('%s failed (rc=%d): %s' % (' '.join(ps_argv()), rc, (err or text).strip()))
            parents = parse_ps(text)
            for name in polling:
                out[name]['pids'] = descendants(parents, out[name]['pid'])
        return out

    def tail(self, component, count):
        try:
            text, dummy = self.read(component['log_path'])
        except OSError as exc:
            return ['(cannot read %s: %s)' % (component['log_path'], exc.strerror or exc)]
        return last_lines(text, count)

    def restart_argv(self, component):
        return kickstart_argv(component['unit'])


def component_problems(manager, components):
    """What is wrong with the components option for this service manager (empty: fine)."""
    problems, names = [], set()
    for c in components:
        if c['name'] in names:
            problems.append('component %s is listed twice' % c['name'])
        names.add(c['name'])
        unit = c['unit'] or ''
        if manager == 'launchd':
            try:
                validate_label(unit)
            except LaunchdError as exc:
                problems.append('component %s: %s' % (c['name'], exc))
            if not c.get('log_path'):
                problems.append('component %s needs log_path under launchd' % c['name'])
        elif not unit or unit.startswith('-') or re.search(r'[\s/]', unit):
            problems.append('component %s: %r is not a systemd unit name' % (c['name'], unit))
        problems.extend('component %s: queue %s names no task type' % (c['name'], q['name'])
                        for q in c.get('queues') or [] if not q['types'])
    return problems


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

def ask_temporal(temporal, components, states, seen_polling):
    """Fill in each state's 'ready', 'pollers' and 'missing'; return why Temporal could not be
    asked, or None.

    ready: a running component with task queues is ready when Temporal lists a process of its
    unit polling each queue for each task type it registers; Temporal itself, when it says
    SERVING; any other, when it runs. seen_polling ({(name, start): pollers}) keeps what a
    start was seen polling: it is not asked about again.
    """
    asking = []
    for c in components:
        state = states[c['name']]
        state.update(ready=state['active'], pollers={}, missing=[])
        if not state['active']:
            continue
        if c.get('queues') and (c['name'], state['start_id']) in seen_polling:
            state['pollers'] = seen_polling[(c['name'], state['start_id'])]
        elif c.get('queues') or c.get('serves_temporal'):
            state['ready'] = False
            asking.append(c)
    if not asking:
        return None
    serving = temporal.serving()
    for c in asking:
        if c.get('serves_temporal'):
            states[c['name']]['ready'] = serving['healthy']
    if not serving['healthy']:
        return serving['msg']
    now = temporal.clock()
    for c in asking:
        if not c.get('queues'):
            continue
        state = states[c['name']]
        pids = state.get('pids', [])
        try:
            answers = [(q['name'], t, temporal.unit_pollers(q['name'], t, pids, now))
                       for q in c['queues'] for t in q['types']]
        except GrpcError as exc:
            return 'cannot ask Temporal at %s which processes poll: %s' % (temporal.where(), exc)
        state['pollers'], state['missing'] = poll_verdict(answers, pids, temporal.hostname, now)
        state['ready'] = not state['missing']
        if state['ready']:
            seen_polling[(c['name'], state['start_id'])] = state['pollers']
    return None


def run_gate(manager, components, probe, wait, settle, runner=None, check_mode=False, log_lines=25,
             clock=None, sleep=None, temporal=None):
    """Sample until healthy, a crash loop, or the deadline; return the module's result.

    manager is a Systemd or Launchd (None: no components), probe() the gRPC
    probe (None: none), runner the process runner used for restarts, temporal
    the _temporal.Temporal the components poll (needed when a component has
    task queues or serves Temporal).
    """
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    start = clock()
    deadline = start + wait
    # One sample (wait 0, as the fleet report takes) restarts nothing: no time to check again.
    gate = Gate(components, settle if wait else 0, start, max(settle, POLL_GRACE) if wait else None)
    seen_polling, restarted, states, grpc = {}, [], {}, None
    while True:
        try:
            states = manager.states(components) if components else {}
            temporal_problem = ask_temporal(temporal, components, states, seen_polling)
            grpc = probe() if probe else None
            result = gate.observe(clock(), states, grpc, temporal_problem)
        except ServiceStateError as exc:
            gate.unsettle()
            result = {'verdict': 'waiting', 'problems': [str(exc)], 'restart': []}
        if result['verdict'] == 'restart':
            why = '; '.join(result['problems'])
            if check_mode:
                restarted = list(result['restart'])
                result = {'verdict': 'failed', 'restart': [],
                          'problems': ['%s: would restart %s (check mode)' % (why, ', '.join(restarted))]}
            else:
                failed = _restart(manager, runner, components, result['restart'])
                restarted.extend(result['restart'])
                gate.restarting(result['restart'])
                if failed:
                    result = {'verdict': 'failed', 'problems': failed, 'restart': []}
                elif clock() < deadline:
                    continue
                else:
                    result = {'verdict': 'failed', 'restart': [],
                              'problems': ['%s: restarted %s, no time left to check it again'
                                           % (why, ', '.join(result['restart']))]}
        now = clock()
        if result['verdict'] in ('healthy', 'failed') or now >= deadline:
            break
        sleep(min(INTERVAL, deadline - now))
    return _result(manager, components, states, grpc, gate, result, restarted, log_lines, settle if wait else 0)


def _restart(manager, runner, components, names):
    failed = []
    for c in components:
        if c['name'] in names:
            argv = manager.restart_argv(c)
            rc, out, err = runner(argv)
            if rc != 0:
                failed.append('restarting %s failed (%s: rc=%d %s)'
                              % (c['name'], ' '.join(argv), rc, (err or out).strip()))
    return failed


def _result(manager, components, states, grpc, gate, result, restarted, log_lines, settle):
    healthy = result['verdict'] == 'healthy'
    report = {}
    for c in components:
        state = states.get(c['name'], {})
        report[c['name']] = {
            'unit': c['unit'], 'active': state.get('active', False), 'state': state.get('state'),
            'pid': state.get('pid'), 'restarts': gate.growth[c['name']], 'ready': state.get('ready'),
            'started': state.get('started'), 'pollers': state.get('pollers', {}),
        }
    # Which components Temporal lists polling every queue they must.
    polling = [c['name'] for c in components if c.get('queues') and report[c['name']]['ready']]
    if healthy:
        parts = [grpc['msg']] if grpc else []
        if components and settle:
            parts.append('%s stayed up for %d s with no restart' % (', '.join(report), settle))
        elif components:
            parts.append('%s %s running' % (', '.join(report), 'is' if len(report) == 1 else 'are'))
        if polling:
            parts.append('Temporal lists pollers of %s on every task queue' % ', '.join(polling))
        if restarted:
            parts.append('restarted %s first' % ', '.join(restarted))
        msg, logs = '; '.join(parts) or 'nothing to check', {}
    else:
        msg = '; '.join(result['problems'])
        logs = dict((c['name'], manager.tail(c, log_lines)) for c in components)
    return {'changed': bool(restarted), 'healthy': healthy, 'msg': msg, 'restarted': restarted,
            'components': report, 'polling': polling, 'logs': logs, 'grpc': bool(grpc and grpc['grpc']),
            'status': grpc['status'] if grpc else None}
