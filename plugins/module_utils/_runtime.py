# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the host side of one plan (module stigmer_runtime).

The role computes one plan per host on the controller; this code compares the host with it
(``compare``), makes the host match it (``apply``), switches back after a failed health gate
(``rollback``) or removes what an install recorded as its own (``remove``).

Compare and apply are one code path (``Runtime.converge``): each step decides what differs
(directories, version trees, links, files, units or plists, then the services) and records one
sentence per change; under check mode (compare) it stops there, otherwise (apply) it does what it
just decided. The services are decided from one reading of the service manager, taken after the
files, so apply performs the changes compare reported, with the same sentences in the same order.

Trust rules (docs/architecture.md):

* Everything from ``/`` down to the binaries, links, units and environment files is root's;
  the service account owns only its leaf directories (database, logs, workspace, Temporal
  data), created here and never entered.
* Paths are examined with lstat and opened with O_NOFOLLOW; a symbolic link or a foreign
  directory where the plan has one of its own is replaced, never followed.
* Whether a component restarts is decided by the running state: a process started before its
  unit, environment file or version link last changed is restarted, so an interrupted run is
  finished by the next one. Linux start times are exact to the clock tick; macOS's (``ps -o
  lstart``) to the second, so only under launchd a change up to a second after a start is taken
  as older than the start.
* One run at a time per host: apply, rollback and remove hold an exclusive lock.
"""

import contextlib
import grp
import json
import os
import pwd
import shlex
import stat
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._checksum import ChecksumError, normalize_sha256
from ansible_collections.stigmer.runtime.plugins.module_utils._host import (
    HostError,
    Lock as HostLock,
    atomic_write,
    lstat_or_none,
    other_homes,
    read_nofollow,
    refused_location,
    remove_entry,
    set_owner_mode,
    temp_siblings,
    unsafe_ancestor,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._service_state import (
    ServiceStateError,
    launchd_state,
    parse_show,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._install import (
    InstallError,
    check_runner,
    content_sha256,
    ensure_version,
    installed_problem,
    is_real_dir,
    link_value,
    plan_prune,
    read_link,
    read_manifest,
    resolve_ids,
    source_identities,
    switch_link,
    temp_leftovers,
    version_dirs,
    version_from_target,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._launchd import (
    PLIST_MODE,
    Launchd,
    LaunchdError,
    bootout_argv,
    build_plist,
    ensure_daemon,
    kickstart_argv,
    parse_plist,
    print_argv,
    serialize_plist,
)

RECORD_FORMAT = 1
RECORD_MODE = 0o644
ROOT_DIR_MODE = 0o755
LEAF_MODE = 0o750
ENV_MODE = 0o640
LOCK_NAME = '.lock'
# Under launchd (macOS, where ps reports start times to the second) a process that started less
# than this before a file's change may have read the new file; Linux's are exact (no slack).
START_SLACK = 1.0
SYSTEMCTL = 'systemctl'
SHOW = ['Id', 'LoadState', 'ActiveState', 'SubState', 'MainPID', 'UnitFileState', 'NeedDaemonReload']

# The host layer refuses with the same exception the plan does: one class for the module to catch.
PlanError = HostError


# ---------------------------------------------------------------------------
# Pure decisions
# ---------------------------------------------------------------------------

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


def unsafe_directory(directories, root='/'):
    """(directory, ancestor) for the first planned directory below an ancestor that someone other than
    root can change, or None. root stands for / (see unsafe_ancestor).

    Checked: each directory the install owns whose parent it does not own (an own parent vouches for
    what lies below). Not a shared directory (the bin link's, such as /usr/local/bin, which Homebrew
    gives to the admin on an Intel Mac, /usr/local included on older installs): root keeps only one link
    there, never reads or runs anything through it, and replaces or removes that link only while it is
    this install's, without following links; whoever can write there can already change every command
    in it.
    """
    own = set(d['path'] for d in directories if d.get('own'))
    for entry in directories:
        if not entry.get('own') or os.path.dirname(entry['path']) in own:
            continue
        unsafe = unsafe_ancestor(entry['path'], root)
        if unsafe:
            return entry['path'], unsafe
    return None


def state_left_behind(record, home):
    """The state directory the install record names, when it is not home and is still a directory there;
    else None. A run would start an empty database and workspace in home and leave the real ones behind
    (a changed stigmer_state_dir, or macOS's default before this collection version: /usr/local/var/stigmer).
    """
    old = record.get('state_dir') if isinstance(record, dict) else None
    if not isinstance(old, str) or not old.startswith('/') or not home \
            or os.path.normpath(old) == os.path.normpath(home):
        return None
    st = lstat_or_none(old)
    return old if st is not None and stat.S_ISDIR(st.st_mode) else None


def stop_commands(manager, units):
    """The shell commands that stop units by hand, for a message."""
    if manager == 'launchd':
        return ['sudo ' + ' '.join(bootout_argv(unit)) for unit in units]
    if manager == 'systemd' and units:
        return ['sudo systemctl stop ' + ' '.join(units)]
    return []


def state_moved_message(old, home, record_path, stops):
    """The refusal for state_left_behind(), with both ways on: keep the old directory, or move it."""
    stop = ' (%s)' % '; '.join('`%s`' % c for c in stops) if stops else ''
    return ('The state of this install (its database and workspace) is in %s, as %s records, but the state '
            'directory is now %s, where this run would start an empty one. Nothing was changed. To keep it '
            'where it is (only where no one but root can change its parent directories), set stigmer_state_dir: '
            '%s. To move it, stop the services%s, run `sudo mv %s %s` while %s does not exist yet, and run '
            'again. To start afresh instead, remove or rename %s.'
            % (old, record_path, home, old, stop, shlex.quote(old), shlex.quote(home), home, old))


def start_slack(manager):
    """How far a process start may lag the true one: a second under launchd, none on Linux."""
    return START_SLACK if manager == 'launchd' else 0.0


def stale_paths(started, watched, slack=0.0):
    """The watched paths that changed after a process started at ``started`` (epoch seconds), sorted.

    watched maps each path the process was started from (version link, unit, environment
    file) to its last change; a path that changed after the start means the process still
    runs the old binary or settings. slack is start_slack() of the service manager.
    """
    if started is None:
        return []
    return sorted(path for path, changed in watched.items() if changed is not None and changed > started + slack)


def stale_reason(started, watched, slack=0.0):
    """Why a process started at ``started`` predates what it runs (see stale_paths), or None."""
    newer = stale_paths(started, watched, slack)
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

class Changes(object):
    """What a run changed or would change, and the paths it touched."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.items = []
        self.paths = set()
        self.warnings = []

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


def make_parents(path, uid, gid):
    """Create the missing ancestors of a planned directory (such as ~/.local/share), 0755 uid:gid."""
    if lstat_or_none(path) is not None or path in ('', '/'):
        return
    make_parents(os.path.dirname(path), uid, gid)
    os.mkdir(path, ROOT_DIR_MODE)
    os.lchown(path, uid, gid)


CAP_SYS_ADMIN = 21


def ip_filter_problem(cgroup_root='/sys/fs/cgroup', pid1_status='/proc/1/status'):
    """Why systemd would not enforce IPAddressDeny=/IPAddressAllow= on this host, or None.

    systemd attaches them as BPF programs to the unit's cgroup: that needs a cgroup2 hierarchy
    (unified, or hybrid's /sys/fs/cgroup/unified) and systemd holding CAP_SYS_ADMIN, which most
    containers withhold. Without either it starts the unit unfiltered and says so only at debug level.
    """
    problems = []
    if not any(os.path.exists(os.path.join(root, 'cgroup.controllers'))
               for root in (cgroup_root, os.path.join(cgroup_root, 'unified'))):
        problems.append('the host has no cgroup2 hierarchy (cgroup v1 only), which systemd needs for its BPF firewall')
    try:
        with open(pid1_status) as handle:
            effective = [line.split()[1] for line in handle if line.startswith('CapEff:')][0]
        if not int(effective, 16) >> CAP_SYS_ADMIN & 1:
            problems.append('systemd (PID 1) runs without CAP_SYS_ADMIN (as in most containers), so it cannot load '
                            'BPF programs')
    except (OSError, IndexError, ValueError):
        problems.append('the capabilities of systemd (PID 1) cannot be read from %s' % pid1_status)
    return '; and '.join(problems) or None


def unfiltered_message(port, problem):
    return ('stigmer-server listens on port %d of every interface without authentication, and its only guard, '
            'systemd\'s IPAddressDeny=/IPAddressAllow=, would not be enforced here: %s. Nothing was changed. Run on a '
            'host where it is enforced, or block the port with a host firewall and set '
            'stigmer_server_accept_unfiltered_network=true to accept the risk.' % (port, problem))


def foreign_entry(path, prefix):
    """What is at path if it is not this install's: None when nothing is there or it is a link into prefix.

    For paths in directories other software installs into too (the bin link in /usr/local/bin):
    a distribution's or Homebrew's stigmer there is theirs, neither to replace nor to delete.
    """
    st = lstat_or_none(path)
    if st is None:
        return None
    if not stat.S_ISLNK(st.st_mode):
        return 'a %s, not a link' % ('directory' if stat.S_ISDIR(st.st_mode) else 'file')
    target = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    if target.startswith(prefix.rstrip('/') + '/'):
        return None
    return 'a link to %s' % target


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


def sweep_temp_siblings(path, changes):
    """Remove what a killed atomic write of path left beside it (not a change of path itself)."""
    for leftover in temp_siblings(path):
        changes.add('remove %s (left by an interrupted run)' % leftover)
        if not changes.check_mode:
            remove_entry(leftover)


def ensure_file(path, data, uid, gid, mode, changes, same=None):
    """Write data to path atomically unless it already holds it with the right owner and mode.

    same(current bytes) says whether what is there already counts as data (a plist that differs
    only in formatting); by default the bytes must be equal.
    """
    sweep_temp_siblings(path, changes)
    data = data.encode('utf-8') if isinstance(data, str) else data
    current, st = read_nofollow(path)
    holds = (same(current) if same else current == data) if current is not None else False
    if holds and st.st_uid == uid and st.st_gid == gid and stat.S_IMODE(st.st_mode) == mode:
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


class Lock(HostLock):
    """The run lock of one install: an flock on <prefix>/.lock, waited for up to timeout seconds."""

    def __init__(self, directory, timeout, sleep=time.sleep):
        super(Lock, self).__init__(os.path.join(directory, LOCK_NAME), timeout, sleep)


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
            rc, out, dummy = run(print_argv(comp['unit']))
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
                                'stale': stale_reason(state.get('started'), watched_mtimes(comp), start_slack(manager))
                                if state.get('active') else None}
    return report


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

class Runtime(object):
    """One host against one plan. run is AnsibleModule.run_command's signature."""

    def __init__(self, plan, environment_files, run, run_checks=None):
        """run is AnsibleModule.run_command, for the service manager and, unless run_checks is given,
        the checks of a staged version too."""
        self.plan = plan
        self.env_files = environment_files or {}
        self.run = run
        self.run_checks = run_checks or run
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
        """Refuse, before any change, what the run must not do; return the warnings every run repeats."""
        warnings = []
        guard = self.plan.get('network_guard')
        if guard and self.manager == 'systemd':
            problem = ip_filter_problem()
            if problem:
                raise PlanError(unfiltered_message(guard['port'], problem))
        elif guard and self.manager == 'launchd':
            warnings.append('launchd has no per-service network filter: stigmer-server accepts connections on port %d '
                            'from every network, without authentication. Block the port with the macOS firewall or '
                            'pf (README), then set stigmer_server_accept_unfiltered_network=true.' % guard['port'])
        for entry in self.plan.get('links') or []:
            foreign = entry.get('shared') and foreign_entry(entry['path'], self.plan['prefix'])
            if foreign:
                raise PlanError('%s is already there and is not this collection\'s (%s): another install of stigmer '
                                'owns it. Remove it, or set stigmer_bin_dir to another directory; nothing was changed.'
                                % (entry['path'], foreign))
        left = state_left_behind(self.record(), (self.account or {}).get('home'))
        if left:
            raise PlanError(state_moved_message(left, self.account['home'], self.plan['record'],
                                                stop_commands(self.manager, [c['unit'] for c in self.components()])))
        kept = self.retired()[1]
        if kept:
            raise PlanError('%s, where an earlier version of this collection kept the configuration (secrets '
                            'included), lies in a directory below %s, which someone other than root can change: '
                            'root does not delete it. Nothing was changed. Remove it by hand (`sudo rm -r %s`) and '
                            'run again.' % (kept[0][0], kept[0][1], shlex.quote(kept[0][0])))
        if not self.plan.get('system'):
            return warnings
        check_locations(self.locations(), (self.account or {}).get('user'))
        unsafe = unsafe_directory(self.plan['directories'])
        if unsafe:
            raise PlanError('%s lies below %s, which someone other than root can change: root would install '
                            'into a directory others control. Choose a location whose parents are root-owned '
                            'and not group- or world-writable.' % unsafe)
        return warnings

    # -- one path for compare and apply -------------------------------------

    def converge(self, changes, artifacts=None):
        """Decide what differs from the plan, step by step; unless changes.check_mode, do it.

        compare passes Changes(check_mode=True): every step only records its sentence (and the
        path it would touch, which later steps read, as the restarts do). apply passes
        Changes(check_mode=False) and the artifacts of the trees compare said it needs: each
        step does what it records, right after recording it. The prefix comes first, outside
        the lock, because the lock lives in it; apply holds the lock for everything else.
        """
        warnings = self.check_inputs()
        account_ids = self.account_ids()
        if not changes.check_mode and self.account and account_ids is None:
            raise PlanError('The service account %s:%s does not exist; the role creates it before this step.'
                            % (self.account['user'], self.account['group']))
        ensure_directory(self.plan['prefix'], self.uid, self.gid, ROOT_DIR_MODE, True, changes)
        with self.lock(changes.check_mode):
            if not changes.check_mode:
                self.provisional_record()
            self.layout(changes, account_ids)
            needs, versions, results = self.trees(changes, artifacts)
            self.links(changes)
            self.files(changes)
            self.units(changes)
            acted = self.services(changes)
            self.retire(changes)
            self.install_record(changes, self.record_data())
        return {'needs': needs, 'versions': versions, 'results': results, 'acted': acted,
                'account_ids': account_ids, 'warnings': warnings}

    def lock(self, check_mode):
        """apply's exclusive lock; compare takes none (it writes nothing, not even the lock file)."""
        if check_mode:
            return contextlib.nullcontext()
        return Lock(self.plan['prefix'], int(self.plan.get('lock_timeout', 600)))

    # -- the layout ---------------------------------------------------------

    def layout(self, changes, account_ids):
        prefix = os.path.normpath(self.plan['prefix'])
        for entry in self.plan['directories']:
            if os.path.normpath(entry['path']) == prefix:
                continue  # converge() made it first, enforced
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
                if not changes.check_mode:
                    remove_entry(path)

    def retired(self):
        """([path], [(path, unsafe ancestor)]): the plan's retired configuration directories (where an
        earlier collection version kept them by default) that are still there and that the install record
        lists as this install's, split into those root may delete and those whose parent lies below a
        directory others can change (a link swapped in for the parent would send the removal elsewhere;
        the entry itself is removed without following links)."""
        record = self.record()
        listed = record.get('remove') if isinstance(record, dict) and isinstance(record.get('remove'), list) else []
        removable, kept = [], []
        for path in self.plan.get('retired') or []:
            if path not in listed or lstat_or_none(path) is None:
                continue
            unsafe = unsafe_ancestor(os.path.dirname(path))
            if unsafe:
                kept.append((path, unsafe))
            else:
                removable.append(path)
        return removable, kept

    def retire(self, changes):
        """Remove the retired configuration directories, after the services have been moved to the new ones."""
        for path in self.retired()[0]:
            changes.add('remove %s (the configuration directory of an earlier version of this collection)' % path,
                        path)
            if not changes.check_mode:
                remove_entry(path)

    def units(self, changes):
        """The systemd unit files or the launchd plists of the enabled components."""
        for comp in self.components():
            if self.manager == 'systemd':
                ensure_file(comp['path'], comp['content'], self.uid, self.gid, 0o644, changes)
            elif self.manager == 'launchd':
                desired = self.plist(comp)
                # The same dictionary counts as the same plist, however it is formatted.
                ensure_file(comp['path'], serialize_plist(desired), self.uid, self.gid, PLIST_MODE, changes,
                            same=lambda data, desired=desired: parse_plist(data) == desired)
        target = self.plan.get('target')
        if target and self.manager == 'systemd':
            ensure_file(target['path'], target['content'], self.uid, self.gid, 0o644, changes)

    @staticmethod
    def plist(comp):
        try:
            return build_plist(comp['unit'], **(comp.get('launchd') or {}))
        except (LaunchdError, TypeError) as exc:
            raise PlanError('the launchd job of %s cannot be built: %s' % (comp['name'], exc))

    def components(self):
        return [c for c in self.plan.get('components') or [] if c.get('enabled', True)]

    def disabled(self):
        return [c for c in self.plan.get('components') or [] if not c.get('enabled', True)]

    # -- versions -----------------------------------------------------------

    def trees(self, changes, artifacts=None):
        """Install, switch and prune each version tree as decided from the tree as found.

        artifacts (apply) maps an artifact name to {'path', 'sha256'} on this host, for the trees
        that must be (re)installed; an intact tree is only switched and pruned.
        """
        needs, versions, results = [], {}, {}
        for tree in self.plan['trees']:
            active, manifest, problem = tree_problem(tree, self.uid, self.gid)
            versions[tree['name']] = active or 'none'
            if problem:
                needs.extend(s['name'] for s in tree['sources'])
            decided = self.tree_changes(tree, active, problem)
            for text, path in decided:
                changes.add(text, path)
            if changes.check_mode or not decided:
                continue
            result = self.install_tree(tree, manifest, problem, artifacts or {})
            results[tree['name']] = result
            # What ensure_version pruned beyond the decision (it re-reads the tree) is reported too.
            for name in result['pruned']:
                text = 'prune %s %s' % (tree['name'], name)
                if text not in changes.items:
                    changes.add(text)
        return sorted(set(needs)), versions, results

    def tree_changes(self, tree, active, problem):
        """[(sentence, path touched or None)]: what ensure_version will do to this tree."""
        name, version, link = tree['name'], tree['version'], tree['link']
        found = []
        if problem:
            found.append(('install %s %s (%s)' % (name, version, problem), link))
        try:
            current = read_link(link)
        except InstallError:
            current = None  # not a link: ensure_version refuses to replace it
        if current != link_value(tree['root'], version, link) and not (problem and active is None):
            found.append(('switch %s from %s to %s' % (name, active or 'none', version), link))
        found.extend(('remove %s (left by an interrupted run)' % path, None)
                     for path in temp_leftovers(tree['root'], link))
        found.extend(('prune %s %s' % (name, old), None) for old in self.prunes(tree, active))
        return found

    def prunes(self, tree, active):
        """The versions ensure_version will prune after installing and switching to tree['version']."""
        candidates = version_dirs(tree['root'])
        now = time.time()
        candidates[tree['version']] = now
        if active in candidates and active != tree['version']:
            candidates[active] = now  # switching away stamps it: the most recently used of the others
        try:
            return plan_prune(candidates, int(self.plan['keep']), set([tree['version']]))
        except InstallError as exc:
            raise PlanError('%s: %s' % (tree['name'], exc))

    def install_tree(self, tree, manifest, problem, artifacts):
        if problem:
            sources = [self.source(tree, src, artifacts, problem) for src in tree['sources']]
        else:
            # Intact: described by its own manifest, so ensure_version reads no artifact.
            sources = [dict(s, src=s['name']) for s in recorded_sources(manifest).values()]
        # A staged binary is first run (its checks) by the service account, as the service will
        # run it, never by root; without an account, by whoever runs this module.
        try:
            return ensure_version(tree['root'], tree['version'], sources, tree['link'],
                                  files=tree.get('files'), checks=tree.get('checks'),
                                  platform=self.plan.get('platform'), keep=self.plan['keep'],
                                  ids=(self.uid, self.gid),
                                  runner=check_runner(self.run_checks, account=self.account_ids()))
        except InstallError as exc:
            raise PlanError('%s: %s' % (tree['name'], exc))

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

    def restart_reason(self, comp, state, changed_paths):
        """Why a running component must restart: what it watches changed in this run or after its start."""
        touched = sorted(p for p in comp.get('watch') or [] if p in changed_paths)
        if touched:
            return 'changed in this run: %s' % ', '.join(touched)
        return stale_reason(state.get('started'), watched_mtimes(comp), start_slack(self.manager))

    def restarts(self, states, changed_paths):
        """(components to restart with why, components to start)."""
        restart, start = {}, []
        for comp in self.components():
            state = states.get(comp['name'], {})
            if not state.get('active'):
                start.append(comp['name'])
                continue
            reason = self.restart_reason(comp, state, changed_paths)
            if reason:
                restart[comp['name']] = reason
        return restart, start

    def services(self, changes):
        """Decide from one reading of the service manager, taken after the files; act unless check mode.

        Returns the components started or restarted.
        """
        if self.manager == 'systemd':
            return self.systemd_services(changes, self.service_states())
        if self.manager == 'launchd':
            return self.launchd_services(changes, self.service_states())
        return []

    def systemd_services(self, changes, states):
        systemd = Systemd(self.run)
        target = self.plan.get('target')
        gone = [c for c in self.disabled() if lstat_or_none(c['path']) is not None]
        for comp in gone:
            changes.add('stop and remove %s' % comp['unit'], comp['path'])
        if gone and not changes.check_mode:
            self.run([SYSTEMCTL, 'disable', '--now'] + [c['unit'] for c in gone])
            for comp in gone:
                remove_entry(comp['path'])
        unit_paths = [c['path'] for c in self.components()] + ([target['path']] if target else [])
        if gone or any(s.get('reload') for s in states.values()) or any(p in changes.paths for p in unit_paths):
            changes.add('reload the systemd units (daemon-reload)')
            if not changes.check_mode:
                systemd.call('daemon-reload')
        to_enable = [c['unit'] for c in self.components() if not states[c['name']]['enabled']]
        if target and not states['.target']['enabled']:
            to_enable.append(target['unit'])
        if to_enable:
            changes.add('enable %s' % ', '.join(to_enable))
            if not changes.check_mode:
                systemd.call('enable', *to_enable)
        restart, start = self.restarts(states, changes.paths)
        units = dict((c['name'], c['unit']) for c in self.components())
        if restart:
            changes.add('restart %s' % ', '.join('%s (%s)' % (n, restart[n]) for n in sorted(restart)))
            if not changes.check_mode:
                # Units that Require= a restarted one restart with it (a server connects to Temporal once).
                systemd.call('restart', *[units[n] for n in sorted(restart)])
        if start:
            changes.add('start %s' % ', '.join(start))
            if not changes.check_mode:
                systemd.call('start', *([target['unit']] if target else []) + [units[n] for n in start])
        return sorted(restart) + start

    def launchd_services(self, changes, states):
        jobs = Launchd(self.run)
        for comp in self.disabled():
            loaded = jobs.is_loaded(comp['unit'])
            if not loaded and lstat_or_none(comp['path']) is None:
                continue
            changes.add('stop and remove %s' % comp['unit'], comp['path'])
            if not changes.check_mode:
                if loaded:
                    jobs.bootout(comp['unit'])
                remove_entry(comp['path'])
        acted = []
        for comp in self.components():
            decided = self.launchd_job(comp, states[comp['name']], changes.paths)
            if decided is None:
                continue
            verb, text = decided
            changes.add(text)
            acted.append(comp['name'])
            if changes.check_mode:
                continue
            run_at_load = (comp.get('launchd') or {}).get('run_at_load', True)
            try:
                if verb == 'load':
                    jobs.load(comp['unit'], comp['path'], run_at_load)
                elif verb == 'reload':
                    jobs.reload(comp['unit'], comp['path'], run_at_load)
                else:
                    jobs.kickstart(comp['unit'])
            except LaunchdError as exc:
                raise PlanError(str(exc))
        return acted

    def launchd_job(self, comp, state, changed_paths):
        """(Launchd verb, sentence) for one enabled LaunchDaemon, or None when it runs what the plan says.

        A loaded job keeps the plist it was bootstrapped with, so a plist written in this run, or
        newer than the running process (an interrupted run), is loaded again (bootout, bootstrap);
        only this job is touched. Otherwise kickstart starts a job that does not run and restarts
        (-k) one whose process predates what it watches.
        """
        unit, plist = comp['unit'], comp['path']
        if not state.get('loaded'):
            return 'load', 'load %s' % unit
        if plist in changed_paths:
            return 'reload', 'reload %s (changed in this run: %s)' % (unit, plist)
        if not state.get('active'):
            return 'kickstart', 'start %s' % comp['name']
        if stale_paths(state.get('started'), {plist: mtime(plist)}, START_SLACK):
            return 'reload', 'reload %s (started before %s changed)' % (unit, plist)
        reason = self.restart_reason(comp, state, changed_paths)
        if reason:
            return 'kickstart', 'restart %s (%s)' % (comp['name'], reason)
        return None

    # -- actions ------------------------------------------------------------

    def compare(self):
        """What apply would do, as apply would say it; writes nothing and runs no state-changing command."""
        changes = Changes(check_mode=True)
        found = self.converge(changes)
        before, after = {}, {}
        for tree in self.plan['trees']:
            before[tree['name']] = {'version': found['versions'][tree['name']]}
            after[tree['name']] = {'version': tree['version']}
        before['changes'] = {}
        after['changes'] = dict(('%02d' % i, text) for i, text in enumerate(changes.items, 1))
        return {
            'changed': bool(changes.items), 'changes': changes.items, 'needs': found['needs'],
            'account_missing': bool(self.account) and found['account_ids'] is None,
            'versions': found['versions'], 'warnings': found['warnings'],
            'diff': {'before_header': 'installed', 'after_header': 'plan',
                     'before': diff_text(before), 'after': diff_text(after)},
        }

    def apply(self, artifacts):
        changes = Changes(check_mode=False)
        found = self.converge(changes, artifacts or {})
        results = found['results']
        previous = dict((name, r['previous']) for name, r in results.items() if r['switched'] and r['previous'])
        return {'changed': bool(changes.items), 'changes': changes.items, 'previous': previous,
                'switched': sorted(name for name, r in results.items() if r['switched']),
                'restarted': found['acted'], 'versions': dict((t['name'], t['version']) for t in self.plan['trees'])}

    def rollback(self, previous):
        """Switch each tree in previous back, reset failed units, restart them all, update the record."""
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
                    self.run(kickstart_argv(unit))
            if units and self.manager in ('systemd', 'launchd'):
                changes.add('restart %s' % ', '.join(units))
            self.install_record(changes, self.record_data(previous))
        return {'changed': True, 'changes': changes.items, 'versions': previous}

    # -- the install record -------------------------------------------------

    def record_data(self, switched=None):
        """What remove() may delete (the units, the plan's uninstall list and, on purge, the state
        dir) and the version installed per tree: the plan's, or per tree in switched the one a
        rollback switched back to."""
        comps = self.plan.get('components') or []
        target = [self.plan['target']] if self.plan.get('target') and self.manager == 'systemd' else []
        versions = dict((t['name'], t['version']) for t in self.plan['trees'])
        versions.update((name, version) for name, version in (switched or {}).items() if name in versions and version)
        return {
            'format': RECORD_FORMAT,
            'prefix': self.plan['prefix'],
            'state_dir': (self.account or {}).get('home'),
            'account': (self.account or {}).get('user'),
            'service_manager': self.manager,
            'units': [[c['unit'], c['path']] for c in comps + target] if self.manager != 'none' else [],
            'remove': sorted(self.plan.get('uninstall') or []),
            'shared': sorted(e['path'] for e in self.plan.get('links') or [] if e.get('shared')),
            'versions': versions,
        }

    def provisional_record(self):
        """Before the first change, record everything this run may create (and all the old record
        listed), so uninstall.yml removes it even when the run dies half way through a first install.

        The versions stay the old record's until the run ends and writes the final record. Not a
        change of its own: on a converged host it equals the record already there and is not
        written; otherwise the final write at the end is the change compare reports.
        """
        final, old = self.record_data(), self.record()
        if not isinstance(old, dict):
            old = {}
        if old == final:
            return
        record = dict(final, versions=old.get('versions') if isinstance(old.get('versions'), dict) else {})
        for key in ('units', 'remove', 'shared'):
            before = old.get(key) if isinstance(old.get(key), list) else []
            record[key] = final[key] + [item for item in before if item not in final[key]]
        if record == final:
            return  # written at the end, where the run reports it as compare did
        atomic_write(self.plan['record'], json.dumps(record, indent=2, sort_keys=True) + '\n',
                     RECORD_MODE, self.uid, self.gid)

    def install_record(self, changes, record):
        sweep_temp_siblings(self.plan['record'], changes)
        if self.record() == record:
            return
        changes.add('write the install record %s' % self.plan['record'])
        if not changes.check_mode:
            atomic_write(self.plan['record'], json.dumps(record, indent=2, sort_keys=True) + '\n',
                         RECORD_MODE, self.uid, self.gid)

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
    # Records older than the 'shared' key: the plan's own shared links count too.
    shared = set(record.get('shared') or []) | set(e['path'] for e in plan.get('links') or [] if e.get('shared'))
    if check_mode:
        return _remove(record, doomed, shared, prefix, run, True)
    with Lock(prefix, 600):
        return _remove(record, doomed, shared, prefix, run, False)


def _remove(record, doomed, shared, prefix, run, check_mode):
    changes = Changes(check_mode)
    present = [(unit, path) for unit, path in record.get('units') or [] if lstat_or_none(path) is not None]
    if present and not check_mode:
        if record.get('service_manager') == 'systemd':
            run([SYSTEMCTL, 'disable', '--now'] + [unit for unit, dummy in present])
        elif record.get('service_manager') == 'launchd':
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
        foreign = path in shared and foreign_entry(path, prefix)
        if foreign:
            changes.warnings.append('kept %s, which another install now owns (%s)' % (path, foreign))
            continue
        if lstat_or_none(path) is not None:
            changes.add('remove %s' % path, path)
            if not check_mode:
                remove_entry(path)
    return {'changed': bool(changes.items), 'changes': changes.items, 'warnings': changes.warnings}
