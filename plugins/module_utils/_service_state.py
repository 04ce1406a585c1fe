# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The health gate: are the Stigmer services up, settled, and ready?

A gRPC answer alone proves little: the v0.0.5-v0.0.7 workflow-runner exits at
once and crash-loops under Restart=always, an agent-runner is useful only once
it logs that it polls, and a server started before Temporal serves gRPC without
its workers forever. So the gate samples the service manager (systemd or
launchd) and each component's log of its current start, and succeeds only after
a window in which nothing restarted.

Parsing and the decision are pure functions and the Gate class; every process
call goes through one runner, ``runner(argv) -> (rc, stdout, stderr)``
(AnsibleModule.run_command in production), so tests replay recorded output.

Standard library only: this runs on managed hosts.
"""

import errno
import os
import re
import stat
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._launchd import (
    kickstart_argv,
    print_argv,
    validate_label,
    LaunchdError,
)

SYSTEMCTL = 'systemctl'
JOURNALCTL = 'journalctl'
SHOW_PROPERTIES = ('Id', 'ActiveState', 'SubState', 'MainPID', 'NRestarts', 'InvocationID',
                   'ExecMainStartTimestamp', 'ExecMainStartTimestampMonotonic')
INVOCATION_RE = re.compile(r'^[0-9a-f]{32}$')
# Logs of the current start are read up to a bound: a component that logged
# more than this since it started has been up for a long while, and its
# ready line, if any, lies before the window (reported as ready: null).
JOURNAL_WINDOW = 5000
LOG_TAIL_BYTES = 256 * 1024
# The role's launchd wrapper writes this line before it execs the component.
START_MARKER = re.compile(r'^stigmer\.runtime: start pid (\d+)\b')
CRASH_LOOP = 3          # restarts during the gate that end it at once
INTERVAL = 1.0          # seconds between samples


class ServiceStateError(Exception):
    """A service manager could not be asked (not a component's own failure)."""


# ---------------------------------------------------------------------------
# systemd
# ---------------------------------------------------------------------------

def show_argv(units):
    return [SYSTEMCTL, 'show', '--property=' + ','.join(SHOW_PROPERTIES)] + list(units)


def restart_argv(unit):
    return [SYSTEMCTL, 'restart', unit]


def journal_argv(invocation_id, lines=JOURNAL_WINDOW):
    """The last lines a unit logged in one start (invocation)."""
    return [JOURNALCTL, '--no-pager', '-q', '-a', '-o', 'cat', '-n', str(lines),
            '_SYSTEMD_INVOCATION_ID=%s' % invocation_id]


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
    }


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


def since_start(text, pid):
    """The part of a launchd log written by the start with this pid: (text, found).

    That start begins after its `stigmer.runtime: start pid <pid>` line and
    ends at the next start's marker, if the job restarted since.
    """
    out, found, collecting = [], False, False
    for line in text.splitlines():
        match = START_MARKER.match(line)
        if match:
            collecting = pid is not None and int(match.group(1)) == pid
            if collecting:
                found, out = True, []
            continue
        if collecting:
            out.append(line)
    return '\n'.join(out), found


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


def log_verdict(text, complete, ready_pattern=None, stale_pattern=None):
    """(ready, stale) from the log of the current start.

    ready: True (seen, or nothing to wait for), False, or None when the log
    window does not reach back to the start (long running: accepted).
    """
    text = plain_text(text)
    if not ready_pattern or ready_pattern in text:
        ready = True
    else:
        ready = False if complete else None
    return ready, bool(stale_pattern) and stale_pattern in text


def last_lines(text, count):
    lines = plain_text(text).splitlines()
    return lines[-count:] if count > 0 else []


def describe_start(state):
    if state.get('started'):
        return 'since it started at %s' % state['started']
    return 'since it started (pid %s)' % state.get('pid')


def not_running(name, unit, state):
    detail = '%s: %s' % (unit, state['state'])
    if state.get('last_exit') is not None:
        detail += ', last exit code %d' % state['last_exit']
    return '%s is not running (%s)' % (name, detail)


class Gate(object):
    """The decision over successive samples; knows nothing of processes or clocks.

    observe(now, components, grpc) takes one sample: components is
    {name: state} where each state (from systemd_state/launchd_state) also
    carries 'ready', 'stale' and optionally 'log_error'; grpc is probe()'s
    result or None. It returns {'verdict': 'healthy' | 'waiting' | 'failed' |
    'restart', 'problems': [...], 'restart': [names]}.
    """

    def __init__(self, components, settle, start):
        self.units = dict((c['name'], c['unit']) for c in components)
        self.stale_patterns = dict((c['name'], c.get('stale_pattern')) for c in components)
        self.settle = settle
        self.start = start
        self.previous = {}
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

    def observe(self, now, components, grpc):
        changed = [name for name in self.units if self._track(now, name, components[name])]
        problems, restart, fatal = [], [], False
        for name in self.units:
            if self.growth[name] >= CRASH_LOOP:
                problems.append('%s restarted %d times in %d s (crash loop)'
                                % (name, self.growth[name], round(now - self.start)))
                fatal = True
        if grpc is not None and not grpc['healthy']:
            problems.append(grpc['msg'])
        for name, unit in self.units.items():
            state = components[name]
            if not state['active']:
                problems.append(not_running(name, unit, state))
            elif state.get('stale'):
                if name in self.restarted:
                    problems.append('%s logged %r again after the gate restarted it'
                                    % (name, self.stale_patterns[name]))
                    fatal = True
                else:
                    restart.append(name)
            elif state.get('log_error'):
                problems.append('%s: %s' % (name, state['log_error']))
            elif state.get('ready') is False:
                problems.append('%s has not logged its ready line %s' % (name, describe_start(state)))
        # What restarted during the gate (short of a crash loop) explains a failure.
        notes = [self.notes[name] for name in self.units if name in self.notes and self.growth[name] < CRASH_LOOP]
        if fatal:
            return {'verdict': 'failed', 'problems': problems + notes, 'restart': []}
        if restart:
            return {'verdict': 'restart', 'problems': problems, 'restart': restart}
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
    """Samples units with one `systemctl show`, reads logs by invocation ID."""

    def __init__(self, runner):
        self.runner = runner

    def states(self, components):
        units = [c['unit'] for c in components]
        rc, out, err = self.runner(show_argv(units))
        if rc != 0:
            raise ServiceStateError('%s failed (rc=%d): %s'
                                    % (' '.join(show_argv(units)), rc, (err or out).strip()))
        props = parse_show(out, units)
        now = time.monotonic()
        return dict((c['name'], systemd_state(props[c['unit']], now)) for c in components)

    def current_log(self, component, state):
        """(text of the current start, whether it reaches back to the start)."""
        rc, out, err = self.runner(journal_argv(state['start_id']))
        if rc != 0:
            raise ServiceStateError('journalctl failed (rc=%d): %s' % (rc, (err or out).strip()))
        return out, len(out.splitlines()) < JOURNAL_WINDOW

    def tail(self, component, count):
        rc, out, err = self.runner(journal_tail_argv(component['unit'], count))
        if rc != 0:
            return ['(journalctl failed, rc=%d: %s)' % (rc, (err or out).strip())]
        return last_lines(out, count)

    def restart_argv(self, component):
        return restart_argv(component['unit'])


class Launchd(object):
    """Samples jobs with `launchctl print`, reads the log file the wrapper marks at each start."""

    def __init__(self, runner, read=read_tail):
        self.runner = runner
        self.read = read

    def states(self, components):
        out = {}
        for c in components:
            rc, text, dummy = self.runner(print_argv(c['unit']))
            out[c['name']] = launchd_state(rc, text)
        return out

    def current_log(self, component, state):
        try:
            text, truncated = self.read(component['log_path'])
        except OSError as exc:
            raise ServiceStateError('cannot read %s: %s' % (component['log_path'], exc.strerror or exc))
        part, found = since_start(text, state['pid'])
        if found:
            return part, True
        if truncated:
            return text, False  # the start lies before the window: all of it is since then
        raise ServiceStateError("%s has no 'stigmer.runtime: start pid %s' line, so its current start "
                                "cannot be told apart" % (component['log_path'], state['pid']))

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
    return problems


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

def _sample(manager, components, seen_ready):
    """States with 'ready'/'stale'/'log_error' filled in; seen_ready caches ready starts."""
    states = manager.states(components) if components else {}
    for c in components:
        state = states[c['name']]
        state.update(ready=True, stale=False, log_error=None)
        key = (c['name'], state['start_id'])
        if not state['active'] or not (c.get('ready_pattern') or c.get('stale_pattern')):
            state['ready'] = state['active'] or not c.get('ready_pattern')
            continue
        if key in seen_ready and not c.get('stale_pattern'):
            continue
        try:
            text, complete = manager.current_log(c, state)
        except ServiceStateError as exc:
            state.update(ready=False, log_error=str(exc))
            continue
        state['ready'], state['stale'] = log_verdict(text, complete, c.get('ready_pattern'),
                                                     c.get('stale_pattern'))
        if state['ready']:
            seen_ready.add(key)
    return states


def run_gate(manager, components, probe, wait, settle, runner=None, check_mode=False, log_lines=25,
             clock=None, sleep=None):
    """Sample until healthy, a crash loop, or the deadline; return the module's result.

    manager is a Systemd or Launchd (None: no components), probe() the gRPC
    probe (None: none), runner the process runner used for restarts.
    """
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    start = clock()
    deadline = start + wait
    gate = Gate(components, settle if wait else 0, start)
    seen_ready, restarted, states, grpc = set(), [], {}, None
    while True:
        try:
            states = _sample(manager, components, seen_ready)
            grpc = probe() if probe else None
            result = gate.observe(clock(), states, grpc)
        except ServiceStateError as exc:
            gate.unsettle()
            result = {'verdict': 'waiting', 'problems': [str(exc)], 'restart': []}
        if result['verdict'] == 'restart':
            why = '; '.join('%s logged %r since it started' % (n, gate.stale_patterns[n]) for n in result['restart'])
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
            'started': state.get('started'),
        }
    if healthy:
        parts = [grpc['msg']] if grpc else []
        if components and settle:
            parts.append('%s stayed up for %d s with no restart' % (', '.join(report), settle))
        elif components:
            parts.append('%s %s running' % (', '.join(report), 'is' if len(report) == 1 else 'are'))
        if restarted:
            parts.append('restarted %s first' % ', '.join(restarted))
        msg, logs = '; '.join(parts) or 'nothing to check', {}
    else:
        msg = '; '.join(result['problems'])
        logs = dict((c['name'], manager.tail(c, log_lines)) for c in components)
    return {'changed': bool(restarted), 'healthy': healthy, 'msg': msg, 'restarted': restarted,
            'components': report, 'logs': logs, 'grpc': bool(grpc and grpc['grpc']),
            'status': grpc['status'] if grpc else None}
