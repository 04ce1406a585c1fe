"""What the service account can do to a host, and what interrupted or concurrent runs leave behind.

One systemd container (``stigmer-hs-<tag>``) and the local release server; a module-scoped baseline
installs the stand-in v0.0.6 once. The tests run in file order and each one leaves the host converged
on a known version (the ones that need a given start re-converge first). They test the layout the
collection guarantees on a system-scope Linux host:

* root owns everything it installs or runs: ``/opt/stigmer`` and all below it, the ``stigmer`` link in
  ``/usr/local/bin``, the state directory ``/var/lib/stigmer`` with ``.stigmer``, ``.stigmer/data``,
  ``.stigmer/data/bin`` and ``.stigmer/bin`` (and the links in them), the units and ``/etc/stigmer``
  (whose ``*.env`` files are ``root:stigmer 0640``);
* the account ``stigmer`` owns only the leaf directories it writes (``stigmer.db``, ``data/logs``,
  ``temporal-data``, ``workspace``; ``0750``), so whatever it plants there can neither replace what
  root runs nor lead a root-run task (site, verify, uninstall) outside the state directory;
* ``uninstall.yml`` refuses a system or home directory as ``stigmer_prefix``/``stigmer_state_dir``
  before it touches anything;
* a run SIGKILLed at any step of an upgrade (download, install, switch, restart) is finished by the next
  plain run, because restarts are decided by the running state (a process older than its binary link,
  unit or environment file is restarted);
* two runs at once on one host serialise on a lock;
* a converged run costs at most four module round trips on the host.

Nothing here re-types test_playbooks.py: its helpers and fixtures (``server``, ``releases``, ``tls``)
are imported; the command line of a background run is the one ``run_site`` builds.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_playbooks  # noqa: E402
from test_playbooks import IMAGE, ROOT, host_sh, podman, recap, run_site, start_hosts  # noqa: E402

# test_playbooks' fixtures, instantiated separately for this module (its own release server).
releases, tls, server = test_playbooks.releases, test_playbooks.tls, test_playbooks.server

sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

OLD, NEW = '0.0.6', '0.0.7'
STATE = '/var/lib/stigmer'
DOT = STATE + '/.stigmer'
PREFIX = '/opt/stigmer'
COMPONENTS = ('temporal', 'server', 'workflow-runner', 'agent-runner')
UNITS = ['stigmer-%s.service' % c for c in COMPONENTS] + ['stigmer.target']
LEAVES = [DOT + '/stigmer.db', DOT + '/data/logs', DOT + '/temporal-data', DOT + '/workspace']
ROOT_DIRS = [PREFIX, STATE, DOT, DOT + '/data', DOT + '/data/bin', DOT + '/bin']
FIXED_LINKS = {
    '/usr/local/bin/stigmer': PREFIX + '/current/bin/stigmer',
    DOT + '/data/bin/agent-runner': PREFIX + '/current/bin/agent-runner',
    DOT + '/data/bin/.version': PREFIX + '/current/share/agent-runner.version',
    DOT + '/bin/temporal': PREFIX + '/temporal/current/bin/temporal',
}
PLANTED_LOG = '/tmp/planted-ran'


# --- the host --------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def host(tmp_path_factory):
    """One systemd container, made like test_playbooks' fleet."""
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.skip('%s is missing: run tests/env/build-images.sh' % IMAGE)
    name = 'stigmer-hs-%s' % uuid.uuid4().hex[:6]
    try:
        inventory = start_hosts([name], tmp_path_factory.mktemp('inventory') / 'hosts.yml')
        yield SimpleNamespace(name=name, inventory=inventory)
    finally:
        podman('rm', '-f', name, check=False)


@pytest.fixture(scope='module')
def baseline(server, host, tmp_path_factory):
    """v0.0.6 installed and running; ``cache`` is the controller cache every plain converge uses."""
    cache = tmp_path_factory.mktemp('cache')
    first = run_site(server, host.inventory, cache, {'stigmer_version': OLD})
    assert first.returncode == 0, tail(first)
    return SimpleNamespace(cache=cache)


def tail(result, size=3000):
    return (result.stdout + result.stderr)[-size:]


def converge(server, host, cache, extra):
    result = run_site(server, host.inventory, cache, extra)
    assert result.returncode == 0, 'converging with %s failed:\n%s' % (extra, tail(result))
    return result


def changed(result, host):
    return recap(result.stdout).get(host.name, {}).get('changed')


def as_account(name, script):
    """``script`` as the service account (its shell is nologin)."""
    return podman('exec', name, 'runuser', '-u', 'stigmer', '--', '/bin/sh', '-c', script, check=False)


def current(name):
    return host_sh(name, 'readlink %s/current' % PREFIX).stdout.strip()


def services_active(name):
    states = host_sh(name, 'systemctl is-active %s' % ' '.join(UNITS[:4])).stdout.split()
    return dict(zip(COMPONENTS, states))


def forget_new_version(name):
    """Remove an inactive v0.0.7 tree, as an administrator cleaning up might: an upgrade to it then has a
    download and an install step. (stigmer_keep_versions keeps the version a run switched away from, and
    1 is refused while stigmer_rollback_on_failure is on; the install record lists the prefix, not each
    version, and the plan reinstalls a tree that is missing.)"""
    assert current(name) != 'versions/v' + NEW
    gone = host_sh(name, 'rm -rf %s/versions/v%s' % (PREFIX, NEW))
    assert gone.returncode == 0, gone.stderr


def leftovers(name):
    return host_sh(name, "find %s %s /etc/stigmer /etc/systemd/system -name '.*tmp*'" % (PREFIX, STATE)).stdout


def planted_runs_as_root(name):
    """Lines ``0`` in /tmp/planted-ran: something ran a planted script as root."""
    text = host_sh(name, 'cat %s 2>/dev/null' % PLANTED_LOG).stdout
    return text, '0' in text.split()


# --- snapshots -------------------------------------------------------------------------------------

# Pruned: the state directory (the account's), what changes by itself in a running Debian container
# (logs, caches, temp, timer stamps, apt/dpkg housekeeping) and Ansible's own temp files. Bytecode
# caches are pruned too: any Python run as root may write them.
SNAPSHOT_PRUNE = ('/proc', '/sys', '/run', '/dev', STATE, '/var/log', '/var/cache', '/tmp', '/var/tmp',
                  '/root/.ansible', '/var/lib/systemd/timers', '/var/lib/apt', '/var/backups',
                  '/var/lib/logrotate')
SNAPSHOT_SCRIPT = r"""
find / -xdev \( %s -o -name __pycache__ \) -prune -o -printf '%%p\t%%y %%m %%u:%%g %%l\n'
echo '@@sha256'
find /etc /usr/local /opt -xdev -name __pycache__ -prune -o -type f -exec sha256sum {} +
""" % ' -o '.join('-path %s' % p for p in SNAPSHOT_PRUNE)
# The root-owned part of the state directory (the leaves' contents are the account's and change as
# the services run) and the services' processes: a run that restarts or stops one changed the host.
STATE_SNAPSHOT_SCRIPT = r"""
find %(state)s \( -path '%(dot)s/stigmer.db/*' -o -path '%(dot)s/data/logs/*' -o -path '%(dot)s/temporal-data/*' \
  -o -path '%(dot)s/workspace/*' \) -prune -o -printf '%%p\t%%y %%m %%u:%%g %%l\n'
for unit in %(units)s; do
  printf 'unit:%%s\t%%s\n' "$unit" "$(systemctl show -p MainPID -p ActiveState --value "$unit" | tr '\n' ' ')"
done
""" % {'state': STATE, 'dot': DOT, 'units': ' '.join(UNITS)}


def snapshot(name, with_state=False):
    """{path: 'type mode owner:group link-target [sha256=...]'} of everything outside the state directory
    that matters, with the sha256 of every file under /etc, /usr/local and /opt; ``with_state`` adds the
    root-owned part of the state directory and each unit's MainPID and ActiveState."""
    out = host_sh(name, SNAPSHOT_SCRIPT)
    listing, dummy, sums = out.stdout.partition('@@sha256\n')
    assert listing and sums, 'the snapshot failed: %s' % out.stderr[-2000:]
    entries = dict(line.split('\t', 1) for line in listing.splitlines() if '\t' in line)
    for line in sums.splitlines():
        digest, path = line[:64], line[66:]
        if path in entries:
            entries[path] += ' sha256=' + digest
    if with_state:
        state = host_sh(name, STATE_SNAPSHOT_SCRIPT)
        entries.update(line.split('\t', 1) for line in state.stdout.splitlines() if '\t' in line)
    return entries


def snapshot_diff(before, after, limit=80):
    lines = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            lines.append('%s: %s -> %s' % (path, before.get(path, '(absent)'), after.get(path, '(absent)')))
    if len(lines) > limit:
        lines = lines[:limit] + ['... %d more' % (len(lines) - limit)]
    return '\n'.join(lines)


# --- the layout ------------------------------------------------------------------------------------

LAYOUT_SCRIPT = r"""
for p in "$@"; do printf '%s\t' "$p"; stat -c '%U:%G %a %F' "$p" 2>&1 | tr '\n' ' '; echo; done
"""


def stats(name, paths):
    out = podman('exec', name, 'sh', '-c', LAYOUT_SCRIPT, 'sh', *paths, check=False).stdout
    return dict(line.split('\t', 1) for line in out.splitlines() if '\t' in line)


def mode_of(desc):
    """The octal mode in a 'user:group mode type' line (all bits set when unreadable)."""
    try:
        return int(desc.split()[1], 8)
    except (IndexError, ValueError):
        return 0o7777


def layout_problems(name, tag):
    """Every way the host differs from the guaranteed layout with ``tag`` current ([] when it matches)."""
    problems = []
    links = dict(FIXED_LINKS, **{PREFIX + '/current': 'versions/' + tag})
    executables = [PREFIX + '/versions/%s/bin/%s' % (tag, exe) for exe in ('stigmer', 'agent-runner')]
    executables.append(PREFIX + '/temporal/current/bin/temporal')
    units = ['/etc/systemd/system/' + unit for unit in UNITS]
    envs = ['/etc/stigmer/%s.env' % c for c in COMPONENTS]
    st = stats(name, ROOT_DIRS + list(links) + [PREFIX + '/temporal/current'] + executables + units + envs
               + ['/etc/stigmer'] + LEAVES)

    def check(paths, kind, what, executable=False):
        for path in paths:
            desc = st.get(path, '(missing)')
            if not desc.startswith('root:root ') or kind not in desc or mode_of(desc) & 0o022 \
                    or (executable and not mode_of(desc) & 0o100):
                problems.append('%s should be %s: %s' % (path, what, desc))

    check(ROOT_DIRS, 'directory', 'a root:root directory writable by root only')
    check(executables, 'regular', 'a root:root executable writable by root only', executable=True)
    check(units, 'regular', 'a root:root unit file writable by root only')
    for path in list(links) + [PREFIX + '/temporal/current']:
        if not st.get(path, '').startswith('root:root ') or 'symbolic link' not in st.get(path, ''):
            problems.append('%s should be a root-owned symlink: %s' % (path, st.get(path)))
    targets = host_sh(name, ' '.join('echo "$(readlink %s)";' % p for p in links)).stdout.splitlines()
    for (path, want), got in zip(links.items(), targets):
        if got != want:
            problems.append('%s -> %r, expected -> %r' % (path, got, want))
    temporal_target = host_sh(name, 'readlink %s/temporal/current' % PREFIX).stdout.strip()
    if not temporal_target.startswith('versions/'):
        problems.append('%s/temporal/current -> %r, expected versions/<tag>' % (PREFIX, temporal_target))
    desc = st.get('/etc/stigmer', '(missing)')
    if not desc.startswith('root:') or 'directory' not in desc or mode_of(desc) & 0o022:
        problems.append('/etc/stigmer should be a root-owned directory writable by root only: %s' % desc)
    for path in envs:
        if st.get(path, '').strip() != 'root:stigmer 640 regular file':
            problems.append('%s should be root:stigmer 0640: %s' % (path, st.get(path)))
    for path in LEAVES:
        if st.get(path, '').strip() != 'stigmer:stigmer 750 directory':
            problems.append('%s should be a stigmer:stigmer 0750 directory: %s' % (path, st.get(path)))
    wrong = host_sh(name, r"find %s \( ! -user root -o ! -group root -o \( ! -type l -perm /022 \) \) "
                          r"-printf '%%p %%u:%%g %%m\n'" % PREFIX).stdout
    if wrong:
        problems.append('not root:root or writable by others than root under %s:\n%s' % (PREFIX, wrong[-2000:]))
    version = host_sh(name, 'cat %s/data/bin/.version' % DOT).stdout
    if version != tag + '\n':
        problems.append('%s/data/bin/.version reads %r, expected %r' % (DOT, version, tag + '\n'))
    # Nothing else on the host belongs to the account or is writable through its group.
    owned = host_sh(name, r"find / -xdev \( -path /proc -o -path /sys -o -path /run -o -path /dev -o -path /tmp "
                          r"-o -path /var/tmp \) -prune -o \( -user stigmer -o \( -group stigmer -perm -g+w \) \) "
                          r"-print").stdout.splitlines()
    outside = [p for p in owned if not any(p == leaf or p.startswith(leaf + '/') for leaf in LEAVES)]
    if outside:
        problems.append('the account owns (or may write through its group) more than its leaves:\n%s'
                        % '\n'.join(outside[:40]))
    return problems


def assert_layout(name, tag):
    problems = layout_problems(name, tag)
    assert problems == [], '\n'.join(problems)


# The account tries each of these; each must fail. A success is undone at once, by the account itself,
# so that a failing assertion does not also wreck the host for the tests after it.
FORBIDDEN = [
    ('rename %s' % DOT, 'mv %s %s/x' % (DOT, STATE), 'mv %s/x %s' % (STATE, DOT)),
    ('rename %s/data' % DOT, 'mv %s/data %s/x' % (DOT, DOT), 'mv %s/x %s/data' % (DOT, DOT)),
    ('point data/bin/agent-runner at /', 'ln -sfn / %s/data/bin/agent-runner' % DOT,
     'ln -sfn %s/current/bin/agent-runner %s/data/bin/agent-runner' % (PREFIX, DOT)),
    ('point bin/temporal at /', 'ln -sfn / %s/bin/temporal' % DOT,
     'ln -sfn %s/temporal/current/bin/temporal %s/bin/temporal' % (PREFIX, DOT)),
    ('create a file in %s/current/bin' % PREFIX, 'touch %s/current/bin/planted' % PREFIX,
     'rm -f %s/current/bin/planted' % PREFIX),
    # ": >>" opens for writing and writes nothing: a permission test that changes no byte.
    ('open the installed agent-runner for writing', ': >> %s/current/bin/agent-runner' % PREFIX, ':'),
    ('open the installed stigmer for writing', ': >> %s/current/bin/stigmer' % PREFIX, ':'),
    ('open an environment file for writing', ': >> /etc/stigmer/server.env', ':'),
]


def attempts_script(attempts):
    """Shell that tries each (label, command, undo) and prints SUCCEEDED: <label> for any that works."""
    return '\n'.join("if %s 2>/dev/null; then echo 'SUCCEEDED: %s'; %s; fi" % (attempt, label, undo)
                     for label, attempt, undo in attempts)


# --- running ansible-playbook in the background ----------------------------------------------------

def site_invocation(server, inventory, cache_dir, extra=None, playbook='site.yml'):
    """The command line, environment and directory that run_site uses: run_site builds them itself,
    with subprocess.run stubbed for that one call, so a background run cannot drift from it."""
    seen = {}

    def record(cmd, **kwargs):
        seen.update(cmd=list(cmd), env=kwargs.get('env'), cwd=kwargs.get('cwd'))
        return subprocess.CompletedProcess(cmd, 0, '', '')

    with mock.patch.object(test_playbooks.subprocess, 'run', record):
        run_site(server, inventory, cache_dir, extra, playbook=playbook)
    return seen


class Run(object):
    """ansible-playbook in its own process group (so that it can be SIGKILLed with its workers and
    their podman clients), its stdout and stderr in one file."""

    def __init__(self, invocation, log_path):
        self.cmd = invocation['cmd']
        self.secret = json.loads(self.cmd[self.cmd.index('-e') + 1])['stigmer_anthropic_api_key']
        self.log_path = Path(log_path)
        self._log = open(str(log_path), 'w')
        self.proc = subprocess.Popen(self.cmd, env=invocation['env'], cwd=invocation['cwd'], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def wait(self, timeout=900):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError('ansible-playbook did not end within %d s:\n%s'
                                 % (timeout, self.log_path.read_text()[-3000:]))
        return self.result()

    def result(self):
        self._log.close()
        output = self.log_path.read_text()
        assert self.secret not in output
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, output, '')


def kill_modules(name):
    """SIGKILL whatever module the killed run left on the host."""
    podman('exec', name, 'pkill', '-9', '-f', 'AnsiballZ', check=False)


class Watcher(object):
    """One long-lived loop in the container that SIGKILLs every running module the moment ``condition``
    holds, then prints ``hit``. The pattern '[A]nsiballZ' does not match the loop's own command line."""

    def __init__(self, name, condition):
        self.name = name
        script = ('echo "ready $$"; while ! { %s; } >/dev/null 2>&1; do sleep 0.02; done; '
                  'pkill -9 -f "[A]nsiballZ"; echo hit' % condition)
        self.proc = subprocess.Popen(['podman', 'exec', name, 'sh', '-c', script], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.pid = None
        self.ready = threading.Event()
        self.hit = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.ready.wait(60), 'the watcher in %s did not start' % name

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith('ready '):
                self.pid = line.split()[1]
                self.ready.set()
            elif line.strip() == 'hit':
                self.hit.set()

    def stop(self):
        """End the loop in the container (by its pid) unless it ended by itself after its hit."""
        if self.proc.poll() is None and not self.hit.is_set() and self.pid:
            host_sh(self.name, 'kill %s' % self.pid)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def new_version_downloaded(cache):
    """The v0.0.7 artifacts (not temp files, not the cached release answer) in the controller cache."""
    try:
        return sorted(str(p.relative_to(cache)) for p in Path(cache).rglob('*v%s*' % NEW)
                      if p.is_file() and not p.name.startswith('.') and not p.name.endswith('.json'))
    except OSError:  # a directory went away while the run wrote the cache: look again next time
        return []


def upgrade_state(name, cache, server_pid):
    """Where an upgrade to v0.0.7 stands on the host, and the furthest step it shows."""
    out = host_sh(name, 'test -e {p}/versions/v{v} && echo installed=yes || echo installed=no; '
                        'echo "current=$(readlink {p}/current)"; '
                        'echo "server_pid=$(systemctl show -p MainPID --value stigmer-server)"; '
                        'echo "server=$(systemctl is-active stigmer-server)"'.format(p=PREFIX, v=NEW)).stdout
    state = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    state['downloaded'] = new_version_downloaded(cache)
    if state.get('server_pid') != server_pid:
        state['reached'] = 'restart'
    elif state.get('current') == 'versions/v' + NEW:
        state['reached'] = 'switch'
    elif state.get('installed') == 'yes':
        state['reached'] = 'install'
    elif state['downloaded']:
        state['reached'] = 'download'
    else:
        state['reached'] = 'nothing'
    return state


# When each component's process started, and when its binary link, unit file and environment file last
# changed, all as epoch seconds. The start comes from /proc/<pid>/stat (10 ms resolution), not from
# `ps -o lstart`, which is whole seconds off a whole-second boot time and can read up to ~1 s early.
PROCESS_TIMES = r"""
import json, os, subprocess, time
hz = os.sysconf('SC_CLK_TCK')
out = {}
for comp in %r:
    unit = 'stigmer-%%s.service' %% comp
    link = '%s/temporal/current' if comp == 'temporal' else '%s/current'
    pid = subprocess.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit],
                         capture_output=True, text=True).stdout.strip()
    started = None
    if pid not in ('', '0'):
        with open('/proc/%%s/stat' %% pid) as handle:
            ticks = int(handle.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/uptime') as handle:
            uptime = float(handle.read().split()[0])
        started = time.time() - uptime + ticks / hz
    paths = (link, '/etc/systemd/system/' + unit, '/etc/stigmer/%%s.env' %% comp)
    out[comp] = {'pid': pid, 'started': started,
                 'changed': {p: os.lstat(p).st_mtime for p in paths if os.path.lexists(p)}}
print(json.dumps(out))
""" % (COMPONENTS, PREFIX, PREFIX)
# The start is exact to a clock tick and the two clocks read above agree within ~20 ms; 0.5 s leaves
# room for a loaded machine and is far below the seconds between a previous run's starts and a switch.
CLOCK_SLACK = 0.5


def stale_processes(name):
    """Components not running, or whose process started before its link, unit or environment file
    last changed (the next run would have to restart them)."""
    out = podman('exec', name, 'python3', '-c', PROCESS_TIMES, check=False)
    assert out.returncode == 0, out.stderr
    times = json.loads(out.stdout)
    stale = {}
    for comp, info in times.items():
        newest = max(info['changed'].values()) if info['changed'] else 0
        if info['started'] is None or info['started'] + CLOCK_SLACK < newest:
            stale[comp] = info
    return stale


def fleet_report(server, host, cache, tmp_path, version):
    report_dir = tmp_path / 'report'
    result = run_site(server, host.inventory, cache,
                      {'stigmer_version': version, 'stigmer_report_dir': str(report_dir)}, playbook='verify.yml')
    report_file = report_dir / 'fleet-report.json'
    assert result.returncode == 0 and report_file.exists(), tail(result)
    entries = {entry.get('host'): entry for entry in json.loads(report_file.read_text())['hosts']}
    assert host.name in entries, (entries, tail(result))
    return entries[host.name], result


# --- 1. ownership ----------------------------------------------------------------------------------

def test_the_service_account_owns_only_the_leaves_it_writes(baseline, host):
    assert_layout(host.name, 'v' + OLD)
    attempts = as_account(host.name, attempts_script(FORBIDDEN))
    assert 'SUCCEEDED' not in attempts.stdout, 'the service account could:\n%s' % attempts.stdout
    assert_layout(host.name, 'v' + OLD)


# --- 2. what the account plants ----------------------------------------------------------------------

PLANT_SCRIPT = r"""
set -e
printf '#!/bin/sh\nid -u >> {log}\n' > {dot}/workspace/agent-runner
chmod 0755 {dot}/workspace/agent-runner
for leaf in {leaves}; do
  for exe in agent-runner stigmer temporal; do
    [ "$leaf/$exe" = {dot}/workspace/agent-runner ] || cp -p {dot}/workspace/agent-runner "$leaf/$exe"
  done
done
mkdir -p {dot}/workspace/bin {dot}/workspace/data/bin
for exe in agent-runner stigmer temporal; do
  cp -p {dot}/workspace/agent-runner {dot}/workspace/bin/$exe
  cp -p {dot}/workspace/agent-runner {dot}/workspace/data/bin/$exe
done
ln -sfn /etc {dot}/data/logs/evil
# The leaf's content replaced by symlinks to root's files: the names a log reader, a rotation or a
# chown would pick first.
for comp in temporal server workflow-runner agent-runner; do
  ln -sfn /etc/shadow {dot}/data/logs/$comp.log
done
ln -sfn /etc/passwd {dot}/workspace/passwd
""".format(log=PLANTED_LOG, dot=DOT, leaves=' '.join(LEAVES))

# Swapping what root runs for the account's own tree (workspace/, workspace/data/bin/ and workspace/bin/
# hold the planted script): each must fail, and is undone by the account if it does not.
WORKSPACE = DOT + '/workspace'
SWAPPABLE = {DOT: WORKSPACE, DOT + '/data': WORKSPACE + '/data', DOT + '/data/bin': WORKSPACE + '/data/bin',
             DOT + '/bin': WORKSPACE + '/bin'}
SWAPS = []
for _path, _own in SWAPPABLE.items():
    SWAPS += [
        ('rename %s' % _path, 'mv %s %s.old' % (_path, _path), 'mv %s.old %s' % (_path, _path)),
        ('create a symlink to its own tree beside %s' % _path, 'ln -s %s %s.new' % (_own, _path),
         'rm -f %s.new' % _path),
        ('put the planted script into %s' % _path, 'cp %s/agent-runner %s/planted' % (WORKSPACE, _path),
         'rm -f %s/planted' % _path),
    ]
    if _path.endswith('/bin'):
        # On a directory, ln -sfn creates <dir>/bin: also a write into root's directory.
        SWAPS.append(('replace %s with a symlink' % _path, 'ln -sfn %s %s' % (_own, _path), 'rm -f %s/bin' % _path))
SWAPS.append(('put the planted script into %s/current/bin' % PREFIX,
              'cp %s/agent-runner %s/current/bin/planted' % (WORKSPACE, PREFIX),
              'rm -f %s/current/bin/planted' % PREFIX))


UNINSTALL_MAY_REMOVE = re.compile(r'^(%s|/etc/stigmer|/usr/local/bin/stigmer'
                                  r'|/etc/systemd/system/(stigmer[^/]*|[^/]+\.wants/stigmer[^/]*))(/.*)?$'
                                  % re.escape(PREFIX))
# Removing the account with the purge rewrites these (same owner and mode).
ACCOUNT_DATABASES = {'/etc/%s%s' % (db, suffix) for db in ('passwd', 'group', 'shadow', 'gshadow')
                     for suffix in ('', '-')}


def purge_damage(before, after):
    """What the purge did outside the state directory beyond removing the collection's own files."""
    damage = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None and UNINSTALL_MAY_REMOVE.match(path):
            continue
        if path in ACCOUNT_DATABASES and new is not None \
                and (old is None or old.split(' sha256=')[0] == new.split(' sha256=')[0]):
            continue
        damage.append('%s: %s -> %s' % (path, old or '(absent)', new or '(absent)'))
    return damage


def test_what_the_account_plants_never_runs_as_root_and_site_restores_the_layout(baseline, server, host, tmp_path):
    name = host.name
    shadow_root_line = host_sh(name, 'head -n 1 /etc/shadow').stdout.strip()
    canary = host_sh(name, 'printf "canary\\n" > /etc/hs-canary && chmod 0644 /etc/hs-canary')
    assert canary.returncode == 0, canary.stderr
    planted = as_account(name, PLANT_SCRIPT)
    assert planted.returncode == 0, 'the account could not write its own leaves: %s' % planted.stderr
    swaps = as_account(name, attempts_script(SWAPS))
    assert 'SUCCEEDED' not in swaps.stdout, 'the service account could:\n%s' % swaps.stdout

    before = snapshot(name, with_state=True)
    site = run_site(server, host.inventory, baseline.cache, {'stigmer_version': OLD})
    assert site.returncode == 0, tail(site)
    assert changed(site, host) == 0, 'nothing outside the leaves was changed, so nothing to restore:\n' + tail(site)
    _report, verify = fleet_report(server, host, baseline.cache, tmp_path, OLD)
    after = snapshot(name, with_state=True)
    assert before == after, \
        'site.yml + verify.yml changed the host outside the leaves:\n' + snapshot_diff(before, after)
    ran, as_root = planted_runs_as_root(name)
    assert not as_root, 'a planted script ran as root (uids: %r)' % ran

    outside_before = snapshot(name)
    uninstall = run_site(server, host.inventory, baseline.cache, {'stigmer_uninstall_purge': True},
                         playbook='uninstall.yml')
    assert uninstall.returncode == 0, tail(uninstall)
    outside_after = snapshot(name)
    damage = purge_damage(outside_before, outside_after)
    assert damage == [], 'the purge changed more than its own files:\n' + '\n'.join(damage[:80])
    remaining = host_sh(name, 'ls -d %s /etc/stigmer /usr/local/bin/stigmer /etc/systemd/system/stigmer* 2>/dev/null'
                              % PREFIX).stdout
    assert remaining == '', 'uninstall left:\n%s\n%s' % (remaining, tail(uninstall))
    kept = host_sh(name, 'stat -c "%n %U:%G %a %F" /etc /etc/passwd /etc/hostname /etc/hs-canary && cat /etc/hs-canary')
    assert kept.returncode == 0 and kept.stdout.endswith('canary\n'), kept.stdout + kept.stderr
    assert '/etc root:root 755 directory' in kept.stdout, kept.stdout
    for result in (site, verify, uninstall):
        assert shadow_root_line not in result.stdout + result.stderr, 'a run printed /etc/shadow through a planted link'
    ran, as_root = planted_runs_as_root(name)
    assert not as_root, 'a planted script ran as root (uids: %r)' % ran

    reinstall = run_site(server, host.inventory, baseline.cache, {'stigmer_version': OLD})
    assert reinstall.returncode == 0, tail(reinstall)
    assert_layout(name, 'v' + OLD)
    assert services_active(name) == {c: 'active' for c in COMPONENTS}, tail(reinstall)
    ran, as_root = planted_runs_as_root(name)
    assert not as_root, 'a planted script ran as root (uids: %r)' % ran
    host_sh(name, 'rm -f /etc/hs-canary %s' % PLANTED_LOG)


def test_a_stigmer_another_install_put_in_the_bin_dir_is_neither_replaced_nor_removed(baseline, server, host):
    name = host.name
    converge(server, host, baseline.cache, {'stigmer_version': OLD})
    theirs = '#!/bin/sh\necho the distribution stigmer\n'
    took = host_sh(name, 'rm /usr/local/bin/stigmer && printf %s > /usr/local/bin/stigmer && chmod 0755 '
                         '/usr/local/bin/stigmer' % shlex.quote(theirs))
    assert took.returncode == 0, took.stderr
    before = snapshot(name)

    site = run_site(server, host.inventory, baseline.cache, {'stigmer_version': NEW})
    assert site.returncode != 0 and recap(site.stdout)[name]['changed'] == 0, tail(site)
    flat = ' '.join(site.stdout.split())
    assert "/usr/local/bin/stigmer is already there and is not this collection's (a file, not a link)" in flat, tail(site)
    assert 'stigmer_bin_dir' in flat
    assert snapshot(name) == before, 'the refused run changed the host'

    uninstall = run_site(server, host.inventory, baseline.cache, {}, playbook='uninstall.yml')
    assert uninstall.returncode == 0, tail(uninstall)
    assert 'kept /usr/local/bin/stigmer, which another install now owns' in ' '.join(
        (uninstall.stdout + uninstall.stderr).split()), \
        tail(uninstall)
    assert host_sh(name, 'cat /usr/local/bin/stigmer').stdout == theirs
    assert host_sh(name, 'ls -d %s 2>/dev/null' % PREFIX).stdout == ''
    host_sh(name, 'rm -f /usr/local/bin/stigmer')  # the next test starts from this uninstalled host


def test_a_first_install_that_fails_at_service_start_is_removed_whole_by_uninstall(baseline, server, host):
    name = host.name
    clean = run_site(server, host.inventory, baseline.cache, {'stigmer_uninstall_purge': True}, playbook='uninstall.yml')
    assert clean.returncode == 0, tail(clean)
    # systemctl start fails after the units are written and enabled (Restart=always).
    host_sh(name, 'mkdir -p /etc/systemd/system/stigmer-server.service.d && printf "[Service]\\nExecStartPre=/bin/false\\n"'
                  ' > /etc/systemd/system/stigmer-server.service.d/fail.conf')
    try:
        first = run_site(server, host.inventory, baseline.cache, {'stigmer_version': OLD})
        assert first.returncode != 0, tail(first)
        assert host_sh(name, 'systemctl is-enabled stigmer-temporal.service').stdout.strip() == 'enabled', tail(first)
        uninstall = run_site(server, host.inventory, baseline.cache, {'stigmer_uninstall_purge': True},
                             playbook='uninstall.yml')
        assert uninstall.returncode == 0 and changed(uninstall, host) > 0, tail(uninstall)
        left = host_sh(name, 'ls -d %s %s /etc/stigmer /usr/local/bin/stigmer /etc/systemd/system/stigmer*.service '
                             '/etc/systemd/system/stigmer.target 2>/dev/null; systemctl list-units --all --plain '
                             '--no-legend "stigmer*" | grep -v not-found' % (PREFIX, STATE)).stdout
        assert left == '', 'uninstall.yml after a failed first install left:\n%s\n%s' % (left, tail(uninstall))
    finally:
        host_sh(name, 'rm -rf /etc/systemd/system/stigmer-server.service.d && systemctl daemon-reload')
    converge(server, host, baseline.cache, {'stigmer_version': OLD})
    assert services_active(name) == {c: 'active' for c in COMPONENTS}


# --- 3. uninstall's refusals -------------------------------------------------------------------------

def names_setting(output, variable, value):
    """The output names the variable and the refused value close together (the value as a whole path)."""
    flat = ' '.join(output.split())
    var = re.escape(variable) + r'\b'
    val = r'(?<![\w./-])%s/?(?![\w./-])' % re.escape(value)
    return re.search(r'%s.{0,300}?%s|%s.{0,300}?%s' % (var, val, val, var), flat) is not None


@pytest.mark.parametrize('variable, value', [
    ('stigmer_prefix', '/usr/local'),
    ('stigmer_state_dir', '/'),
    ('stigmer_state_dir', '/root'),
    ('stigmer_prefix', '/etc'),
], ids=['prefix-usr-local', 'state-root-fs', 'state-root-home', 'prefix-etc'])
def test_uninstall_refuses_system_and_home_directories_before_touching_anything(
        baseline, server, host, variable, value):
    before = snapshot(host.name, with_state=True)
    result = run_site(server, host.inventory, baseline.cache, {'stigmer_uninstall_purge': True, variable: value},
                      playbook='uninstall.yml')
    after = snapshot(host.name, with_state=True)
    assert result.returncode != 0, 'uninstall accepted %s=%s:\n%s' % (variable, value, tail(result))
    assert names_setting(result.stdout + result.stderr, variable, value), \
        'the refusal should name %s and %r:\n%s' % (variable, value, tail(result))
    assert before == after, 'the refused uninstall changed the host:\n' + snapshot_diff(before, after)


# --- 4. a run killed at any step ---------------------------------------------------------------------

# Host-side steps of an upgrade to v0.0.7, as shell conditions that stay true once reached.
STEP_CONDITIONS = {
    'install': 'test -e %s/versions/v%s' % (PREFIX, NEW),
    'switch': '[ "$(readlink %s/current)" = versions/v%s ]' % (PREFIX, NEW),
    'restart': 'p=$(systemctl show -p MainPID --value stigmer-server) && [ -n "$p" ] && [ "$p" != "{pid}" ]',
}


def run_killed_at(step, host, invocation, cache, log_path, server_pid, timeout=600):
    """Start the run, SIGKILL it (and its modules on the host) as soon as ``step`` is seen; return
    (seen, ended_first, result): ended_first tells whether the run had already ended by itself when
    the step was seen or the time ran out."""
    watcher = Watcher(host.name, STEP_CONDITIONS[step].format(pid=server_pid)) if step != 'download' else None
    run = Run(invocation, log_path)
    seen = ended_first = False
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if watcher is not None:
                seen = watcher.hit.wait(0.01)
            else:
                seen = bool(new_version_downloaded(cache))
                if not seen:
                    time.sleep(0.01)
            if seen or not run.running():
                break
        ended_first = not run.running()
    finally:
        run.kill()
        kill_modules(host.name)
        if watcher is not None:
            watcher.stop()
    return seen, ended_first, run.result()


@pytest.mark.parametrize('step', ['download', 'install', 'switch', 'restart'])
def test_a_run_killed_at_any_step_of_an_upgrade_is_finished_by_the_next_run(
        baseline, server, host, tmp_path, step):
    name = host.name
    new = {'stigmer_version': NEW}
    converge(server, host, baseline.cache, {'stigmer_version': OLD})  # a downgrade after the previous case
    forget_new_version(name)
    cache = tmp_path / 'cache'  # fresh: the upgrade downloads
    cache.mkdir()
    server_pid = host_sh(name, 'systemctl show -p MainPID --value stigmer-server').stdout.strip()
    start = upgrade_state(name, cache, server_pid)
    assert (start['reached'], start['current'], start['server']) == ('nothing', 'versions/v' + OLD, 'active'), \
        'the upgrade cannot be interrupted at %s from this start: %r' % (step, start)

    seen, ended_first, killed = run_killed_at(step, host, site_invocation(server, host.inventory, cache, new),
                                              cache, tmp_path / 'killed.log', server_pid)
    at_kill = upgrade_state(name, cache, server_pid)
    print('asked to kill at %s; the host was at %s when killed (run already ended: %s): %r'
          % (step, at_kill['reached'], ended_first, at_kill))
    assert seen, 'step %s was never seen (the run ended by itself: %s, rc %s); host: %r\n%s' % (
        step, ended_first, killed.returncode, at_kill, tail(killed))

    finish = run_site(server, host.inventory, cache, new)
    context = '(killed at %s, host then at %r)' % (step, at_kill)
    assert finish.returncode == 0, '%s\n%s' % (context, tail(finish))
    assert current(name) == 'versions/v' + NEW, context
    stale = stale_processes(name)
    assert stale == {}, \
        'components not restarted since their link, unit or environment changed %s: %r' % (context, stale)
    assert leftovers(name) == '', context
    report, verify = fleet_report(server, host, cache, tmp_path, NEW)
    assert (str(report.get('cli_version')).lstrip('v'), str(report.get('agent_runner_version')).lstrip('v')) \
        == (NEW, NEW), '%s %r\n%s' % (context, report, tail(verify))
    # verify.yml finds every service running the installed version (no drift).
    assert report['state'] == 'healthy', '%s %r' % (context, report)
    third = run_site(server, host.inventory, cache, new)
    assert third.returncode == 0 and changed(third, host) == 0, '%s\n%s' % (context, tail(third))


# --- 5. two runs at once -----------------------------------------------------------------------------

def failure_messages(output):
    """The text of each failed task's result."""
    return [output[match.start():match.start() + 2000] for match in re.finditer(r'FAILED!|fatal:', output)]


def test_leftovers_of_killed_writes_and_a_hard_linked_lock_are_dealt_with_without_a_restart(baseline, server, host):
    # atomic_write's temp files: the API keys an environment file was about to hold, a unit, the record.
    # And a lock file hard-linked elsewhere (a prefix that was writable before the first run): the pid
    # written into the lock must not land in the link's target.
    name = host.name
    converge(server, host, baseline.cache, {'stigmer_version': OLD})
    linked = host_sh(name, 'printf "canary\\n" > /etc/hs-lock-canary && ln -f /etc/hs-lock-canary %s/.lock' % PREFIX)
    assert linked.returncode == 0, linked.stderr
    planted = ['/etc/stigmer/.agent-runner.env.tmp-k1ll3d00', '/etc/systemd/system/.stigmer-server.service.tmp-k1ll3d00',
               PREFIX + '/.install-record.json.tmp-k1ll3d00']
    plant = host_sh(name, 'printf "ANTHROPIC_API_KEY=sk-rotated-away\\n" > %s && chgrp stigmer %s && chmod 0640 %s && '
                          'touch %s %s' % (planted[0], planted[0], planted[0], planted[1], planted[2]))
    assert plant.returncode == 0, plant.stderr
    pids = host_sh(name, 'systemctl show -p MainPID --value %s' % ' '.join(UNITS[:4])).stdout.split()

    site = run_site(server, host.inventory, baseline.cache, {'stigmer_version': OLD}, flags=('-v',))
    assert site.returncode == 0, tail(site)
    assert leftovers(name) == '', tail(site)
    assert 'sk-rotated-away' not in site.stdout + site.stderr
    for path in planted:
        assert path in site.stdout, 'the run did not say it removed %s:\n%s' % (path, tail(site))
    assert host_sh(name, 'systemctl show -p MainPID --value %s' % ' '.join(UNITS[:4])).stdout.split() == pids, \
        'removing leftovers beside unchanged files restarted a component'
    canary = host_sh(name, 'stat -c %%h /etc/hs-lock-canary && cat /etc/hs-lock-canary && stat -c %%h %s/.lock' % PREFIX)
    assert canary.stdout.split() == ['1', 'canary', '1'], 'the lock was written through its hard link: %r' % canary.stdout
    host_sh(name, 'rm -f /etc/hs-lock-canary')


def test_two_concurrent_runs_on_one_host_end_with_a_correct_host(baseline, server, host, tmp_path):
    name = host.name
    new = {'stigmer_version': NEW}
    converge(server, host, baseline.cache, {'stigmer_version': OLD})
    forget_new_version(name)  # both runs must install it: the most they can collide on
    runs = []
    for label in ('a', 'b'):
        cache = tmp_path / ('cache-' + label)
        cache.mkdir()
        runs.append(Run(site_invocation(server, host.inventory, cache, new), tmp_path / ('run-%s.log' % label)))
    try:
        results = [run.wait(900) for run in runs]
    finally:
        for run in runs:
            if run.running():
                run.kill()
        kill_modules(name)
    assert any(r.returncode == 0 for r in results), '\n=====\n'.join(tail(r) for r in results)
    for result in results:
        if result.returncode != 0:
            messages = failure_messages(result.stdout)
            assert any(re.search(r'\block', m, re.I) for m in messages), \
                'a concurrent run failed for another reason than the lock:\n' + tail(result)
    assert current(name) == 'versions/v' + NEW, '\n=====\n'.join(tail(r) for r in results)
    assert leftovers(name) == ''
    assert services_active(name) == {c: 'active' for c in COMPONENTS}
    assert stale_processes(name) == {}
    further = run_site(server, host.inventory, tmp_path / 'cache-a', new)
    assert further.returncode == 0 and changed(further, host) == 0, tail(further)


# --- 6. round trips ----------------------------------------------------------------------------------

def test_a_converged_host_costs_at_most_four_module_round_trips(baseline, server, host):
    import roundtrips
    extra = {'stigmer_version': NEW}
    converge(server, host, baseline.cache, extra)  # converged, and the controller cache warm
    cursor = roundtrips.journal_cursor(host.name)
    result = run_site(server, host.inventory, baseline.cache, extra)
    runs = roundtrips.module_runs(host.name, cursor)
    assert result.returncode == 0 and changed(result, host) == 0, tail(result)
    assert len(runs) <= 4, 'a converged run ran %d modules on the host: %s' % (len(runs), runs)
