# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the host side of one plan (module stigmer_runtime).

The role computes one plan per host on the controller; this code compares the host with it
(``compare``), makes the host match it (``apply``), switches back after a failed health gate
(``rollback``) or removes what an install recorded as its own (``remove``).

Trust rules (docs/architecture.md):

* Everything from ``/`` down to the binaries, links, units and environment files is root's;
  the service account owns only its leaf directories (database, logs, workspace, Temporal
  data), created here and never entered.
* Paths are examined with lstat and opened with O_NOFOLLOW; a symbolic link or a foreign
  directory where the plan has one of its own is replaced, never followed.
* Whether a component restarts is decided by the running state: a process started before its
  unit, environment file or version link last changed is restarted, so an interrupted run is
  finished by the next one.
* One run at a time per host: apply, rollback and remove hold an exclusive lock.
"""

import errno
import fcntl
import grp
import json
import os
import pwd
import shutil
import stat
import time

from ansible_collections.stigmer.runtime.plugins.module_utils.checksum import ChecksumError, normalize_sha256
from ansible_collections.stigmer.runtime.plugins.module_utils.fileio import atomic_write
from ansible_collections.stigmer.runtime.plugins.module_utils.service_state import (
    ServiceStateError,
    launchd_state,
    parse_show,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.install import (
    InstallError,
    content_sha256,
    ensure_version,
    installed_problem,
    is_real_dir,
    link_value,
    read_link,
    read_manifest,
    resolve_ids,
    source_identities,
    switch_link,
    version_from_target,
)

RECORD_FORMAT = 1
RECORD_MODE = 0o644
ROOT_DIR_MODE = 0o755
LEAF_MODE = 0o750
ENV_MODE = 0o640
LOCK_NAME = '.lock'
# A process that started less than this before a file's change may have read the old file
# (process start times on macOS have one-second resolution).
START_SLACK = 1.0
SYSTEMCTL = 'systemctl'
SHOW = ['Id', 'LoadState', 'ActiveState', 'SubState', 'MainPID', 'UnitFileState', 'NeedDaemonReload']

# Never a prefix or a state directory: deleting or re-owning one of these breaks the host.
SYSTEM_DIRS = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/media', '/mnt', '/opt',
    '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/include', '/usr/lib',
    '/usr/libexec', '/usr/local', '/usr/local/bin', '/usr/local/lib', '/usr/local/sbin', '/usr/local/share',
    '/usr/sbin', '/usr/share', '/var', '/var/cache', '/var/lib', '/var/log', '/var/run', '/var/tmp',
    '/Applications', '/Library', '/Library/LaunchDaemons', '/System', '/Users', '/Volumes', '/cores',
    '/private', '/private/etc', '/private/tmp', '/private/var', '/opt/homebrew', '/nix',
])


class PlanError(Exception):
    """The plan cannot be compared or applied; the message names the cause and the fix."""


# ---------------------------------------------------------------------------
# Pure decisions
# ---------------------------------------------------------------------------

def refused_location(path, homes=()):
    """Why path may not be a prefix or state directory the collection owns, or None."""
    if not isinstance(path, str) or not path.startswith('/'):
        return 'it is not an absolute path'
    norm = os.path.normpath(path)
    if norm.startswith('//'):
        norm = '/' + norm.lstrip('/')
    if norm in SYSTEM_DIRS:
        return 'it is a system directory'
    if norm in homes:
        return "it is a user's home directory"
    return None


def other_homes(account=None):
    """Home directories of every account but the service account (whose home is the state dir)."""
    homes = set()
    for entry in pwd.getpwall():
        if entry.pw_name != account and entry.pw_dir and entry.pw_dir != '/':
            homes.add(os.path.normpath(entry.pw_dir))
    return homes


def check_locations(locations, account=None, homes=None):
    """Raise PlanError naming each refused (variable, path) before anything is touched."""
    homes = other_homes(account) if homes is None else homes
    problems = []
    for variable, path in locations:
        reason = refused_location(path, homes)
        if reason:
            problems.append('%s=%s (%s)' % (variable, path, reason))
    if problems:
        raise PlanError('Refused before touching anything: %s. Give each its own directory, such as '
                        '/opt/stigmer for stigmer_prefix and /var/lib/stigmer for stigmer_state_dir.'
                        % '; '.join(problems))


def stale_reason(started, watched):
    """Why a process started at ``started`` (epoch seconds) predates what it runs, or None.

    watched maps each path the process was started from (version link, unit, environment
    file) to its last change; a path that changed after the start means the process still
    runs the old binary or settings.
    """
    if started is None:
        return None
    newer = sorted(path for path, changed in watched.items() if changed is not None and changed > started + START_SLACK)
    if newer:
        return 'started before %s changed' % ', '.join(newer)
    return None


def recorded_sources(manifest):
    return dict((s.get('name'), s) for s in (manifest or {}).get('sources') or [] if isinstance(s, dict))


def planned_sha256(src):
    """The SHA256 the plan knows for an artifact (a pin, GitHub's digest), normalised, or None."""
    if not src.get('sha256'):
        return None
    try:
        return normalize_sha256(src['sha256'])
    except ChecksumError as exc:
        raise PlanError('the checksum given for %s is not usable: %s; fix it in stigmer_checksums'
                        % (src['name'], exc))


def source_problem(wanted, recorded):
    """Why an install recorded from ``recorded`` sources is not one of ``wanted``, or None.

    A SHA256 known at plan time (a pin, GitHub's digest) must match the recorded one;
    otherwise the name must, and the install keeps the SHA256 verified when it was made
    (its files are still rehashed against the manifest on every run).
    """
    if set(recorded) != set(s['name'] for s in wanted):
        return 'it was built from other artifacts (%s)' % ', '.join(sorted(recorded)) if recorded else \
            'its manifest lists no artifacts'
    for src in wanted:
        rec = recorded[src['name']]
        expected = planned_sha256(src)
        if expected and (rec.get('sha256') or '').lower() != expected:
            return '%s has another SHA256 than the release publishes' % src['name']
        if bool(rec.get('archive')) != bool(src.get('archive')) or rec.get('members') != src.get('members'):
            return '%s was unpacked differently' % src['name']
    return None


def tree_problem(tree, uid, gid):
    """(active version, manifest, why tree['version'] must be (re)installed or None)."""
    root, link, version = tree['root'], tree['link'], tree['version']
    try:
        active = version_from_target(link, read_link(link), root)
    except InstallError:
        active = None
    vdir = os.path.join(root, version)
    manifest = read_manifest(vdir) if is_real_dir(vdir) else None
    if manifest is None:
        return active, None, 'it is not installed'
    recorded = recorded_sources(manifest)
    problem = source_problem(tree['sources'], recorded)
    if problem:
        return active, manifest, problem
    hashes = dict((rel, content_sha256(content)) for rel, content in (tree.get('files') or {}).items())
    return active, manifest, installed_problem(vdir, manifest, source_identities(list(recorded.values())),
                                               hashes, uid, gid)


def diff_text(state):
    """A stable YAML-like rendering of a comparable state for --diff."""
    lines = []
    for key in sorted(state):
        value = state[key]
        if isinstance(value, dict):
            lines.append('%s:' % key)
            lines.extend('    %s: %s' % (k, value[k]) for k in sorted(value))
        else:
            lines.append('%s: %s' % (key, value))
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# File system, never following links
# ---------------------------------------------------------------------------

def lstat_or_none(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def open_dir(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))


def remove_entry(path):
    """Remove path without following it: a link or file is unlinked, a directory deleted below."""
    st = lstat_or_none(path)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        if not shutil.rmtree.avoids_symlink_attacks:
            raise PlanError('this Python cannot delete %s without following links; remove it by hand' % path)
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def unsafe_ancestor(path):
    """The first existing ancestor of path that someone other than root could change, or None."""
    parts = os.path.normpath(path).split('/')[1:-1]
    current = '/'
    for part in [''] + parts:
        current = os.path.join(current, part) if part else current
        try:
            st = os.stat(current)
        except FileNotFoundError:
            return None
        if st.st_uid != 0 or st.st_mode & 0o022:
            return '%s (owner uid %d, mode %o)' % (current, st.st_uid, stat.S_IMODE(st.st_mode))
    return None


class Changes(object):
    """What a run changed or would change, and the paths it touched."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.items = []
        self.paths = set()

    def add(self, text, path=None):
        self.items.append(text)
        if path:
            self.paths.add(path)


def ensure_directory(path, uid, gid, mode, enforce, changes):
    """A real directory at path; with enforce also owned uid:gid with mode.

    Without enforce (a directory the collection shares, such as /usr/local/bin) an existing
    directory keeps its owner and mode. A link or file in the place of an enforced directory
    is removed, never followed.
    """
    st = lstat_or_none(path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        if not enforce:
            if stat.S_ISLNK(st.st_mode) and os.path.isdir(path):
                return
            raise PlanError('%s is not a directory; move it away' % path)
        changes.add('replace %s (%s) with a directory' % (path, 'a link' if stat.S_ISLNK(st.st_mode) else 'a file'),
                    path)
        if changes.check_mode:
            return
        os.unlink(path)
        st = None
    if st is None:
        changes.add('create directory %s' % path, path)
        if changes.check_mode:
            return
        make_parents(os.path.dirname(path), uid, gid)
        os.mkdir(path, mode)
        set_owner_mode(path, uid, gid, mode)
        return
    if not enforce:
        return
    if st.st_uid != uid or st.st_gid != gid or stat.S_IMODE(st.st_mode) != mode:
        changes.add('set %s to %d:%d mode %o (was %d:%d mode %o)' % (
            path, uid, gid, mode, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), path)
        if not changes.check_mode:
            set_owner_mode(path, uid, gid, mode)


def set_owner_mode(path, uid, gid, mode):
    """Owner and mode of the directory at path, through an O_NOFOLLOW descriptor."""
    fd = open_dir(path)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def make_parents(path, uid, gid):
    """Create the missing ancestors of a planned directory (such as ~/.local/share), 0755 uid:gid."""
    if lstat_or_none(path) is not None or path in ('', '/'):
        return
    make_parents(os.path.dirname(path), uid, gid)
    os.mkdir(path, ROOT_DIR_MODE)
    os.lchown(path, uid, gid)


def ensure_link(path, target, uid, gid, changes):
    st = lstat_or_none(path)
    if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == target and st.st_uid == uid:
        return
    changes.add('link %s -> %s' % (path, target), path)
    if changes.check_mode:
        return
    if st is not None and stat.S_ISDIR(st.st_mode):
        remove_entry(path)
    switch_link(path, target)
    os.lchown(path, uid, gid)


def read_nofollow(path, limit=1 << 20):
    """(bytes, stat) of a regular file, or (None, None) when absent or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            return None, None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, None
        return os.read(fd, limit + 1), st
    finally:
        os.close(fd)


def ensure_file(path, data, uid, gid, mode, changes):
    """Write data to path atomically unless it already holds it with the right owner and mode."""
    data = data.encode('utf-8') if isinstance(data, str) else data
    current, st = read_nofollow(path)
    if current == data and st.st_uid == uid and st.st_gid == gid and stat.S_IMODE(st.st_mode) == mode:
        return False
    changes.add('write %s' % path, path)
    if not changes.check_mode:
        if current is None and lstat_or_none(path) is not None:
            remove_entry(path)
        atomic_write(path, data, mode, uid, gid)
    return True


def mtime(path):
    st = lstat_or_none(path)
    return st.st_mtime if st is not None else None


# ---------------------------------------------------------------------------
# Processes and service managers
# ---------------------------------------------------------------------------

def process_start(pid, run=None):
    """When process pid started, in epoch seconds, or None when it does not run."""
    if not pid:
        return None
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            fields = handle.read().rsplit(b')', 1)[1].split()
        ticks = int(fields[19])
        clock = getattr(time, 'CLOCK_BOOTTIME', time.CLOCK_MONOTONIC)
        booted = time.time() - time.clock_gettime(clock)
        return booted + ticks / float(os.sysconf('SC_CLK_TCK'))
    except (OSError, IndexError, ValueError):
        pass
    if run is None:
        return None
    rc, out, dummy = run(['ps', '-o', 'lstart=', '-p', str(pid)], environ_update={'LC_ALL': 'C'})
    if rc != 0 or not out.strip():
        return None
    try:
        return time.mktime(time.strptime(' '.join(out.split()), '%a %b %d %H:%M:%S %Y'))
    except ValueError:
        return None


class Lock(object):
    """An exclusive flock on <dir>/.lock, waited for up to timeout seconds."""

    def __init__(self, directory, timeout, sleep=time.sleep):
        self.path = os.path.join(directory, LOCK_NAME)
        self.timeout = timeout
        self.sleep = sleep
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600)
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() >= deadline:
                    holder = os.pread(self.fd, 64, 0).decode('ascii', 'replace').strip() or 'unknown'
                    os.close(self.fd)
                    raise PlanError('Another stigmer.runtime run (pid %s) holds the lock %s and did not release it '
                                    'within %d s. Wait for it to finish, then run again; if no run is active, the '
                                    'lock is free and this message will not repeat.' % (holder, self.path, self.timeout))
                self.sleep(0.5)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode('ascii'), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


class Systemd(object):

    def __init__(self, run):
        self.run = run

    def call(self, *args):
        rc, out, err = self.run([SYSTEMCTL] + list(args))
        if rc != 0:
            raise PlanError('systemctl %s failed (rc=%d): %s' % (' '.join(args), rc, (err or out).strip()))
        return out

    def show(self, units):
        try:
            return parse_show(self.call('show', '--property=' + ','.join(SHOW), *units), units)
        except ServiceStateError as exc:
            raise PlanError(str(exc))


def watched_mtimes(comp):
    """{path: last change} of what a component was started from (plan component 'watch')."""
    return dict((path, mtime(path)) for path in comp.get('watch') or [])


def service_states(manager, components, run, target=None):
    """{component name: {'active', 'started' (epoch or None), 'enabled', 'reload', 'loaded'}}.

    components are plan components ({'name', 'unit', ...}); with a systemd target, its
    enablement is under '.target'. One systemctl show for all of them.
    """
    if manager == 'systemd':
        units = [c['unit'] for c in components] + ([target['unit']] if target else [])
        shown = Systemd(run).show(units)
        states = {}
        for comp in components:
            props = shown.get(comp['unit'], {})
            pid = int(props.get('MainPID') or 0)
            states[comp['name']] = {
                'active': props.get('ActiveState') in ('active', 'activating', 'reloading'),
                'state': props.get('ActiveState') or 'unknown',
                # Still in ExecStartPre: its ExecStart will read what is installed now.
                'started': process_start(pid, run) if pid else None,
                'enabled': props.get('UnitFileState') == 'enabled',
                'reload': props.get('NeedDaemonReload') == 'yes',
                'loaded': props.get('LoadState') == 'loaded',
            }
        if target:
            props = shown.get(target['unit'], {})
            states['.target'] = {'enabled': props.get('UnitFileState') == 'enabled',
                                 'reload': props.get('NeedDaemonReload') == 'yes'}
        return states
    if manager == 'launchd':
        states = {}
        for comp in components:
            rc, out, dummy = run(['launchctl', 'print', 'system/%s' % comp['unit']])
            state = launchd_state(rc, out)
            pid = state.get('pid')
            states[comp['name']] = {'active': bool(pid), 'state': 'active' if pid else ('inactive' if rc == 0 else 'not loaded'),
                                    'started': process_start(pid, run), 'enabled': rc == 0, 'reload': False,
                                    'loaded': rc == 0}
        return states
    return {}


def running_versions(manager, components, run):
    """{component name: {'state', 'active', 'stale'}} for a report: stale says why a running
    process predates what is installed (its version link, unit or environment file changed
    after it started), null when it runs what is installed or does not run."""
    if manager not in ('systemd', 'launchd'):
        return {}
    states = service_states(manager, components, run)
    report = {}
    for comp in components:
        state = states.get(comp['name'], {})
        report[comp['name']] = {'state': state.get('state', 'unknown'), 'active': bool(state.get('active')),
                                'stale': stale_reason(state.get('started'), watched_mtimes(comp)) if state.get('active') else None}
    return report


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

class Runtime(object):
    """One host against one plan. run is AnsibleModule.run_command's signature."""

    def __init__(self, plan, environment_files, run):
        self.plan = plan
        self.env_files = environment_files or {}
        self.run = run
        self.manager = plan.get('service_manager') or 'none'
        self.account = plan.get('account')
        try:
            self.uid, self.gid = resolve_ids(plan['owner'], plan['group'])
        except InstallError as exc:
            raise PlanError(str(exc))

    # -- inputs -------------------------------------------------------------

    def locations(self):
        found = [('stigmer_prefix', self.plan['prefix'])]
        if self.account:
            found.append(('stigmer_state_dir', self.account['home']))
        return found

    def account_ids(self):
        """(uid, gid) of the service account, or None when it does not exist yet."""
        if not self.account:
            return None
        try:
            return pwd.getpwnam(self.account['user']).pw_uid, grp.getgrnam(self.account['group']).gr_gid
        except KeyError:
            return None

    def check_inputs(self):
        if not self.plan.get('system'):
            return
        check_locations(self.locations(), (self.account or {}).get('user'))
        own = set(d['path'] for d in self.plan['directories'] if d.get('own'))
        for entry in self.plan['directories']:
            if os.path.dirname(entry['path']) in own:
                continue
            unsafe = unsafe_ancestor(entry['path'])
            if unsafe:
                raise PlanError('%s lies below %s, which someone other than root can change: root would install '
                                'into a directory others control. Choose a location whose parents are root-owned '
                                'and not group- or world-writable.' % (entry['path'], unsafe))

    # -- the layout ---------------------------------------------------------

    def layout(self, changes, account_ids):
        for entry in self.plan['directories']:
            ensure_directory(entry['path'], self.uid, self.gid, ROOT_DIR_MODE, bool(entry.get('own')), changes)
        for path in self.plan.get('leaves') or []:
            if account_ids is None:
                changes.add('create directory %s for %s' % (path, self.account['user']), path)
            else:
                ensure_directory(path, account_ids[0], account_ids[1], LEAF_MODE, True, changes)

    def links(self, changes):
        for entry in self.plan.get('links') or []:
            ensure_link(entry['path'], entry['target'], self.uid, self.gid, changes)

    def files(self, changes):
        group = None
        if self.account:
            try:
                group = grp.getgrnam(self.account['group']).gr_gid
            except KeyError:
                group = None
        for path in sorted(self.env_files):
            if group is None:
                changes.add('write %s' % path, path)
                continue
            ensure_file(path, self.env_files[path], 0, group, ENV_MODE, changes)
        for path in self.plan.get('remove') or []:
            if lstat_or_none(path) is not None:
                changes.add('remove %s' % path, path)
                # compare() passes Changes(check_mode=True) whatever the module's check mode: it removes nothing.
                if not changes.check_mode:
                    remove_entry(path)

    def units(self, changes):
        for comp in self.components():
            if self.manager == 'systemd':
                ensure_file(comp['path'], comp['content'], self.uid, self.gid, 0o644, changes)
        target = self.plan.get('target')
        if target and self.manager == 'systemd':
            ensure_file(target['path'], target['content'], self.uid, self.gid, 0o644, changes)

    def components(self):
        return [c for c in self.plan.get('components') or [] if c.get('enabled', True)]

    def disabled(self):
        return [c for c in self.plan.get('components') or [] if not c.get('enabled', True)]

    # -- versions -----------------------------------------------------------

    def trees(self, changes, artifacts=None):
        """Compare (artifacts None) or install and switch each version tree.

        artifacts maps an artifact name to {'path', 'sha256'} on this host, for the trees
        that must be (re)installed; an intact tree is only switched and pruned.
        """
        needs, versions, results = [], {}, {}
        for tree in self.plan['trees']:
            active, manifest, problem = tree_problem(tree, self.uid, self.gid)
            versions[tree['name']] = active or 'none'
            if problem:
                needs.extend(s['name'] for s in tree['sources'])
            if artifacts is None:
                if problem:
                    changes.add('install %s %s (%s)' % (tree['name'], tree['version'], problem), tree['link'])
                elif active != tree['version']:
                    changes.add('switch %s from %s to %s' % (tree['name'], active, tree['version']), tree['link'])
                continue
            if problem:
                sources = [self.source(tree, src, artifacts, problem) for src in tree['sources']]
            else:
                # Intact: described by its own manifest, so ensure_version reads no artifact.
                sources = [dict(s, src=s['name']) for s in recorded_sources(manifest).values()]
            try:
                result = ensure_version(tree['root'], tree['version'], sources, tree['link'],
                                        files=tree.get('files'), checks=tree.get('checks'),
                                        platform=self.plan.get('platform'), keep=self.plan['keep'],
                                        ids=(self.uid, self.gid))
            except InstallError as exc:
                raise PlanError('%s: %s' % (tree['name'], exc))
            results[tree['name']] = result
            if result['installed']:
                changes.add('install %s %s' % (tree['name'], tree['version']), tree['link'])
            if result['switched']:
                changes.add('switch %s from %s to %s' % (tree['name'], result['previous'], tree['version']),
                            tree['link'])
            for name in result['pruned']:
                changes.add('prune %s %s' % (tree['name'], name))
        return sorted(set(needs)), versions, results

    @staticmethod
    def source(tree, src, artifacts, problem):
        given = artifacts.get(src['name'])
        if not given:
            raise PlanError('%s %s must be installed (%s) but its artifact %s was not provided'
                            % (tree['name'], tree['version'], problem, src['name']))
        entry = {'src': given['path'], 'sha256': given['sha256'], 'archive': bool(src.get('archive'))}
        expected = planned_sha256(src)
        if expected and expected != given['sha256'].lower():
            raise PlanError('%s was verified as %s, but the plan expects %s' % (src['name'], given['sha256'], expected))
        for key in ('dest', 'members'):
            if src.get(key) is not None:
                entry[key] = src[key]
        return entry

    # -- services -----------------------------------------------------------

    def service_states(self):
        """{component name: state} (see service_states()), plus '.target' under systemd."""
        return service_states(self.manager, self.components(), self.run, self.plan.get('target'))

    def restarts(self, states, changed_paths):
        """(components to restart with why, components to start)."""
        restart, start = {}, []
        for comp in self.components():
            state = states.get(comp['name'], {})
            touched = sorted(p for p in comp.get('watch') or [] if p in changed_paths)
            if not state.get('active'):
                start.append(comp['name'])
            elif touched:
                restart[comp['name']] = 'changed in this run: %s' % ', '.join(touched)
            else:
                reason = stale_reason(state.get('started'), watched_mtimes(comp))
                if reason:
                    restart[comp['name']] = reason
        return restart, start

    def services(self, changes, states):
        """Compare mode: record what apply would do to the services."""
        if self.manager == 'none':
            return
        for comp in self.disabled():
            if lstat_or_none(comp['path']) is not None:
                changes.add('stop and remove %s' % comp['unit'], comp['path'])
        for name, state in sorted(states.items()):
            if name != '.target' and not state.get('enabled'):
                changes.add('enable %s' % name)
            if state.get('reload'):
                changes.add('reload the unit of %s' % name)
        if states.get('.target', {}).get('enabled') is False:
            changes.add('enable %s' % self.plan['target']['unit'])
        restart, start = self.restarts(states, changes.paths)
        for name in start:
            changes.add('start %s' % name)
        for name in sorted(restart):
            changes.add('restart %s (%s)' % (name, restart[name]))

    def apply_systemd(self, changes):
        systemd = Systemd(self.run)
        gone = [c for c in self.disabled() if lstat_or_none(c['path']) is not None]
        if gone:
            self.run([SYSTEMCTL, 'disable', '--now'] + [c['unit'] for c in gone])
            for comp in gone:
                remove_entry(comp['path'])
                changes.add('stop and remove %s' % comp['unit'], comp['path'])
        states = self.service_states()
        if gone or any(s.get('reload') for s in states.values()) or \
                any(c['path'] in changes.paths for c in self.components()) or \
                self.plan['target']['path'] in changes.paths:
            systemd.call('daemon-reload')
            states = self.service_states()
        to_enable = [c['unit'] for c in self.components() if not states[c['name']]['enabled']]
        if not states['.target']['enabled']:
            to_enable.append(self.plan['target']['unit'])
        if to_enable:
            systemd.call('enable', *to_enable)
            changes.add('enable %s' % ', '.join(to_enable))
        restart, start = self.restarts(states, changes.paths)
        units = dict((c['name'], c['unit']) for c in self.components())
        if restart:
            # Units that Require= a restarted one restart with it (a server connects to Temporal once).
            systemd.call('restart', *[units[n] for n in sorted(restart)])
            changes.add('restart %s' % ', '.join('%s (%s)' % (n, restart[n]) for n in sorted(restart)))
        if start:
            systemd.call('start', self.plan['target']['unit'], *[units[n] for n in start])
            changes.add('start %s' % ', '.join(start))
        return sorted(restart) + start

    def apply_launchd(self, changes):
        from ansible_collections.stigmer.runtime.plugins.module_utils.launchd import ensure_daemon
        for comp in self.disabled():
            result = ensure_daemon(comp['unit'], state='absent', runner=self.run)
            if result['changed']:
                changes.add('stop and remove %s' % comp['unit'], comp['path'])
        states = self.service_states()
        restart, start = self.restarts(states, changes.paths)
        acted = []
        for comp in self.components():
            spec = comp['launchd']
            result = ensure_daemon(comp['unit'], state='restarted' if comp['name'] in restart else 'present',
                                   path=comp['path'], runner=self.run, **spec)
            if result['changed']:
                changes.add('%s %s' % ('restart' if comp['name'] in restart else 'load', comp['unit']), comp['path'])
                acted.append(comp['name'])
        return acted

    # -- actions ------------------------------------------------------------

    def compare(self):
        self.check_inputs()
        changes = Changes(check_mode=True)
        account_ids = self.account_ids()
        before, after = {}, {}
        self.layout(changes, account_ids)
        needs, versions, dummy = self.trees(changes)
        for tree in self.plan['trees']:
            before[tree['name']] = {'version': versions[tree['name']]}
            after[tree['name']] = {'version': tree['version']}
        self.links(changes)
        self.files(changes)
        self.units(changes)
        self.services(changes, self.service_states())
        if self.record() != self.record_data():
            changes.add('write the install record %s' % self.plan['record'])
        before['changes'] = {}
        after['changes'] = dict(('%02d' % i, text) for i, text in enumerate(changes.items, 1))
        return {
            'changed': bool(changes.items), 'changes': changes.items, 'needs': needs,
            'account_missing': bool(self.account) and account_ids is None,
            'versions': versions,
            'diff': {'before_header': 'installed', 'after_header': 'plan',
                     'before': diff_text(before), 'after': diff_text(after)},
        }

    def apply(self, artifacts):
        self.check_inputs()
        account_ids = self.account_ids()
        if self.account and account_ids is None:
            raise PlanError('The service account %s:%s does not exist; the role creates it before this step.'
                            % (self.account['user'], self.account['group']))
        changes = Changes(check_mode=False)
        prefix = self.plan['prefix']
        ensure_directory(prefix, self.uid, self.gid, ROOT_DIR_MODE, True, changes)
        with Lock(prefix, int(self.plan.get('lock_timeout', 600))):
            self.layout(changes, account_ids)
            dummy, versions, results = self.trees(changes, artifacts or {})
            self.links(changes)
            self.files(changes)
            self.units(changes)
            acted = []
            if self.manager == 'systemd':
                acted = self.apply_systemd(changes)
            elif self.manager == 'launchd':
                acted = self.apply_launchd(changes)
            record = self.record_data()
            if self.record() != record:
                atomic_write(self.plan['record'], json.dumps(record, indent=2, sort_keys=True) + '\n',
                             RECORD_MODE, self.uid, self.gid)
        previous = dict((name, r['previous']) for name, r in results.items() if r['switched'] and r['previous'])
        return {'changed': bool(changes.items), 'changes': changes.items, 'previous': previous,
                'switched': sorted(name for name, r in results.items() if r['switched']),
                'restarted': acted, 'versions': dict((t['name'], t['version']) for t in self.plan['trees'])}

    def rollback(self, previous):
        """Switch each tree in previous back, reset failed units and restart them all."""
        changes = Changes(check_mode=False)
        with Lock(self.plan['prefix'], int(self.plan.get('lock_timeout', 600))):
            for tree in self.plan['trees']:
                version = previous.get(tree['name'])
                if not version:
                    continue
                if not is_real_dir(os.path.join(tree['root'], version)) or \
                        read_manifest(os.path.join(tree['root'], version)) is None:
                    raise PlanError('Cannot roll %s back: %s is no longer installed under %s.'
                                    % (tree['name'], version, tree['root']))
                switch_link(tree['link'], link_value(tree['root'], version, tree['link']))
                changes.add('switch %s back to %s' % (tree['name'], version), tree['link'])
            units = [c['unit'] for c in self.components()]
            if self.manager == 'systemd':
                self.run([SYSTEMCTL, 'reset-failed'] + units)
                Systemd(self.run).call('restart', *units)
            elif self.manager == 'launchd':
                for unit in units:
                    self.run(['launchctl', 'kickstart', '-k', 'system/%s' % unit])
            if units and self.manager in ('systemd', 'launchd'):
                changes.add('restart %s' % ', '.join(units))
        return {'changed': True, 'changes': changes.items, 'versions': previous}

    # -- the install record -------------------------------------------------

    def record_data(self):
        """What remove() may delete: the units, the plan's uninstall list and, on purge, the state dir."""
        comps = self.plan.get('components') or []
        target = [self.plan['target']] if self.plan.get('target') and self.manager == 'systemd' else []
        return {
            'format': RECORD_FORMAT,
            'prefix': self.plan['prefix'],
            'state_dir': (self.account or {}).get('home'),
            'account': (self.account or {}).get('user'),
            'service_manager': self.manager,
            'units': [[c['unit'], c['path']] for c in comps + target] if self.manager != 'none' else [],
            'remove': sorted(self.plan.get('uninstall') or []),
        }

    def record(self):
        data, dummy = read_nofollow(self.plan['record'])
        try:
            return json.loads(data.decode('utf-8')) if data else None
        except ValueError:
            return None


def recorded_path_problem(path, record, homes=()):
    """Why a path listed in an install record is not one remove() may delete, or None.

    Inside the prefix or the state directory, or a path of the collection's own elsewhere: the
    bin link and the configuration directory (``.../stigmer``), files in it, the artifact cache.
    """
    if not isinstance(path, str) or not path.startswith('/') or os.path.normpath(path) != path:
        return 'it is not a normalised absolute path'
    if refused_location(path, homes):
        return refused_location(path, homes)
    for root in (record['prefix'], record.get('state_dir')):
        if root and (path == root or path.startswith(root.rstrip('/') + '/')):
            return None
    parent, name = os.path.split(path)
    if name == 'stigmer' or parent.endswith('/etc/stigmer') or path.endswith('/stigmer/artifacts'):
        return None
    return 'it lies outside the prefix and the state directory and is not named stigmer'


def remove_recorded(plan, purge, run, check_mode=False, homes=None):
    """Stop and delete what the install record plan['record'] lists; with purge the state dir too.

    The locations given now and the recorded ones are both checked before anything is touched.
    Nothing is followed: links are unlinked and directories deleted with the fd-based rmtree.
    """
    account = plan.get('account') or {}
    if plan.get('system'):
        check_locations([('stigmer_prefix', plan['prefix'])]
                        + ([('stigmer_state_dir', account['home'])] if account.get('home') else []),
                        account.get('user'), homes)
    record_path = plan['record']
    data, st = read_nofollow(record_path)
    if data is None:
        return {'changed': False, 'changes': [], 'msg': 'no install record at %s: nothing to remove' % record_path}
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
        raise PlanError('%s is not root-owned or is writable by others: it is not trusted' % record_path)
    try:
        record = json.loads(data.decode('utf-8'))
        prefix, state_dir = record['prefix'], record.get('state_dir')
    except (ValueError, KeyError, TypeError):
        raise PlanError('%s is not an install record this collection wrote' % record_path)
    check_locations([('stigmer_prefix', prefix)] + ([('stigmer_state_dir', state_dir)] if state_dir else []),
                    record.get('account'), homes)
    doomed = list(record.get('remove') or []) + ([state_dir] if purge and state_dir else [])
    for path in doomed:
        problem = recorded_path_problem(path, record, other_homes(record.get('account')) if homes is None else homes)
        if problem:
            raise PlanError('%s lists %s, which %s: refusing to remove anything' % (record_path, path, problem))
    if check_mode:
        return _remove(record, doomed, prefix, run, True)
    with Lock(prefix, 600):
        return _remove(record, doomed, prefix, run, False)


def _remove(record, doomed, prefix, run, check_mode):
    changes = Changes(check_mode)
    present = [(unit, path) for unit, path in record.get('units') or [] if lstat_or_none(path) is not None]
    if present and not check_mode:
        if record.get('service_manager') == 'systemd':
            run([SYSTEMCTL, 'disable', '--now'] + [unit for unit, dummy in present])
        elif record.get('service_manager') == 'launchd':
            from ansible_collections.stigmer.runtime.plugins.module_utils.launchd import ensure_daemon
            for unit, path in present:
                ensure_daemon(unit, state='absent', path=path, runner=run)
    for unit, path in present:
        changes.add('stop and remove %s' % unit, path)
        if not check_mode:
            remove_entry(path)
    if present and record.get('service_manager') == 'systemd' and not check_mode:
        run([SYSTEMCTL, 'daemon-reload'])
    # Deepest first; the prefix (holding this record) last.
    for path in sorted(set(doomed), key=len, reverse=True) + [prefix]:
        if lstat_or_none(path) is not None:
            changes.add('remove %s' % path, path)
            if not check_mode:
                remove_entry(path)
    return {'changed': bool(changes.items), 'changes': changes.items}
