# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned installs: one directory per version, a manifest, an atomic link switch, pruning.

Layout under ``root``::

    <root>/<version>/bin/<executables>     0755
    <root>/<version>/share/...             0644 (the ``files`` option)
    <root>/<version>/.manifest.json        what was installed and when
    <link> -> <relative path to root>/<version>

Pure functions come first so unit tests reach the decisions without a host;
the I/O helpers and ``ensure_version`` (the whole module's work) follow.
"""

import errno
import grp
import hashlib
import json
import os
import posixpath
import pwd
import secrets
import stat
import sys
import tarfile
import tempfile
import threading
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._archive import (
    UnsafeArchiveError,
    extract_executables,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._binary_header import platform_problem
from ansible_collections.stigmer.runtime.plugins.module_utils._checksum import (
    ChecksumError,
    normalize_sha256,
    sha256_file,
    sha256_stream,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._host import (
    TMP_MARK,
    atomic_write,
    exchange,
    remove_entry,
    temp_siblings,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils._version import extract_version

MANIFEST_NAME = '.manifest.json'
MANIFEST_FORMAT = 1
BIN_DIR = 'bin'
DIR_MODE = 0o755
BIN_MODE = 0o755
FILE_MODE = 0o644
# Everything this module leaves behind while working carries TMP_MARK (shared
# with atomic_write's temp files), so a later run can recognise (and remove)
# what a crash left.
# Checks run with nothing inherited: a root login's PATH or LD_* must not
# decide whether a freshly staged binary looks healthy (and HOME is unset,
# so no check reads or writes root's home).
CHECK_ENV = {'PATH': '/usr/bin:/bin'}
ENV_COMMAND = '/usr/bin/env'
# Checks run by root switch to the service account in the interpreter that
# runs this module, right before it becomes env: setpriv and runuser are not
# on macOS, and run_command takes no preexec_fn. Failing to switch never runs
# the check (exit 126, the message starting with SWITCH_TAG).
SWITCH_TAG = 'switch-account'
SWITCH_ACCOUNT = r'''
import os, sys
uid, gid, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
try:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.execv(argv[0], argv)
except OSError as exc:
    sys.stderr.write('switch-account: cannot run as uid %d gid %d: %s\n' % (uid, gid, exc))
    sys.exit(126)
'''
CHECK_TIMEOUT = 30
OUTPUT_TAIL = 400
# A manifest or share/ file larger than this was not written by this module.
RECORD_LIMIT = 1 << 20


class InstallError(Exception):
    """The requested version cannot be installed or activated; nothing live was changed."""


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------

def validate_version_name(version):
    """Return version if it is usable as one directory name under root."""
    if not isinstance(version, str) or not version.strip():
        raise InstallError('version must be a non-empty string')
    if version != version.strip():
        raise InstallError('version %r has leading or trailing white space' % version)
    if '/' in version or '\0' in version or version in ('.', '..'):
        raise InstallError('version %r is not a plain directory name' % version)
    # Names starting with '.' are reserved for staging and crash leftovers.
    if version.startswith('.'):
        raise InstallError('version %r must not start with a dot' % version)
    return version


def validate_relpath(relpath):
    """Return a normalised relative path inside a version directory, or raise."""
    if not isinstance(relpath, str) or not relpath:
        raise InstallError('file paths must be non-empty strings')
    if relpath.startswith('/') or '\0' in relpath:
        raise InstallError('file path %r must be relative to the version directory' % relpath)
    norm = posixpath.normpath(relpath)
    parts = norm.split('/')
    if norm in ('.', '') or '..' in parts:
        raise InstallError('file path %r leaves the version directory' % relpath)
    if norm == MANIFEST_NAME:
        raise InstallError('file path %r is reserved for the install manifest' % relpath)
    if parts[0] == BIN_DIR:
        # bin/ holds only verified executables from sources.
        raise InstallError('file path %r is inside bin/; executables come from sources' % relpath)
    return norm


def validate_basename(name, what):
    if not isinstance(name, str) or not name or '/' in name or '\0' in name or name in ('.', '..'):
        raise InstallError('%s %r must be a plain file name' % (what, name))
    return name


def normalize_sources(sources):
    """Check the sources option and return copies with normalised digests."""
    if not sources:
        raise InstallError('sources must list at least one artifact')
    result = []
    for index, source in enumerate(sources):
        label = 'sources[%d]' % index
        src = source.get('src')
        if not src:
            raise InstallError('%s has no src' % label)
        try:
            digest = normalize_sha256(source.get('sha256') or '')
        except ChecksumError as exc:
            raise InstallError('%s (%s): %s' % (label, src, exc))
        archive = bool(source.get('archive'))
        members = source.get('members')
        dest = source.get('dest')
        if archive:
            if dest:
                raise InstallError('%s (%s): dest applies to raw files, not archives' % (label, src))
            if members is not None:
                members = [validate_basename(m, '%s member' % label) for m in members]
        else:
            if members:
                raise InstallError('%s (%s): members applies to archives only' % (label, src))
            dest = validate_basename(dest or posixpath.basename(src), '%s dest' % label)
        result.append({'src': src, 'sha256': digest, 'archive': archive,
                       'members': members, 'dest': dest})
    return result


def content_sha256(content):
    if isinstance(content, str):
        content = content.encode('utf-8')
    return hashlib.sha256(content).hexdigest()


def normalize_files(files):
    """Return {normalised relpath: content} with duplicate spellings refused."""
    result = {}
    for relpath, content in (files or {}).items():
        norm = validate_relpath(relpath)
        if norm in result:
            raise InstallError('file path %r is given twice' % relpath)
        if content is None:
            content = ''
        if not isinstance(content, (str, bytes)):
            raise InstallError('content of %r must be a string' % relpath)
        result[norm] = content
    # A file must not also be a directory of another file.
    for norm in result:
        parent = posixpath.dirname(norm)
        while parent:
            if parent in result:
                raise InstallError('file path %r is also used as a directory' % parent)
            parent = posixpath.dirname(parent)
    return result


def expected_version(expect, command):
    """The version a check expects, parsed the same way as the command output."""
    found = extract_version(str(expect))
    if not found:
        raise InstallError('checks for %s: expect %r holds no version number' % (command, expect))
    return found


def normalize_checks(checks):
    result = []
    for check in checks or []:
        command = validate_basename(check.get('command'), 'checks command')
        args = check.get('args')
        if args is None:
            args = ['--version']
        expect = check.get('expect')
        optional = bool(check.get('version_optional'))
        if expect is None and optional:
            raise InstallError('checks for %s: version_optional needs expect' % command)
        result.append({'command': command, 'args': [str(a) for a in args],
                       'expect': None if expect is None else expected_version(expect, command),
                       'version_optional': optional})
    return result


def normalize_platform(platform):
    if platform is not None and platform not in SUPPORTED_PLATFORMS:
        raise InstallError('platform %r is not one of %s' % (platform, ', '.join(SUPPORTED_PLATFORMS)))
    return platform


def output_tail(output, limit=OUTPUT_TAIL):
    output = output.strip()
    if len(output) > limit:
        output = '...' + output[-limit:]
    return output or '(no output)'


def without_build(version):
    # Build metadata (+abc) does not change what a version is (SemVer 10).
    return version.split('+', 1)[0] if version else version


def check_problem(argv, check, rc, output):
    """Return a failure message for one check, or None when it passed.

    rc is None when the command could not be started or did not finish in
    time: never a pass, whatever version_optional says.
    """
    shown = ' '.join(argv)
    expect = check['expect']
    if rc is None:
        return 'check failed: %s did not run to completion; output: %s' % (shown, output_tail(output))
    seen = extract_version(output)
    if expect is not None and seen is None and check['version_optional']:
        # A CLI without a version flag (stigmer v0.0.5-v0.0.7 prints nothing, exits 1).
        return None
    if rc != 0:
        hint = ''
        if rc in (126, 127):
            hint = ' (the binary could not be executed: wrong architecture or missing loader?)'
        wanted = '; expected version %s' % expect if expect is not None else ''
        return ('check failed: %s exited with %d%s%s; output: %s'
                % (shown, rc, hint, wanted, output_tail(output)))
    if expect is not None and without_build(seen) != without_build(expect):
        return ('check failed: %s reports version %s, expected %s; output: %s'
                % (shown, seen or 'none', expect, output_tail(output)))
    return None


def link_value(root, version, link):
    """The symlink text for link -> root/version.

    Relative (``versions/v1.2.3``) so the tree can be moved or inspected from a
    chroot; the same inputs always give the same text, which makes the switch
    idempotent.
    """
    target = os.path.join(os.path.abspath(root), version)
    return os.path.relpath(target, os.path.dirname(os.path.abspath(link)))


def version_from_target(link, target, root):
    """Name of the version directory a link target points at, or None."""
    if not target:
        return None
    absolute = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(link)), target))
    if os.path.dirname(absolute) != os.path.normpath(os.path.abspath(root)):
        return None
    name = os.path.basename(absolute)
    if not name or name.startswith('.'):
        return None
    return name


def link_target_parts(link, target):
    """(versions dir name, version) of a link written by link_value, or raise InstallError.

    Readers that must not be led elsewhere accept only ``<dir>/<version>``
    relative to the link's own directory: no absolute path, no ``..``.
    """
    parts = target.split('/')
    if target.startswith('/') or len(parts) != 2 or parts[0] in ('', '.', '..'):
        raise InstallError('%s points at %s, not at a version directory beside it' % (link, target))
    try:
        validate_version_name(parts[1])
    except InstallError as exc:
        raise InstallError('%s points at %s: %s' % (link, target, exc))
    return parts[0], parts[1]


def source_identities(sources):
    """What makes two installs of a version the same: artifacts and what was taken from them."""
    return sorted(json.dumps([s.get('sha256'), bool(s.get('archive')), s.get('dest'),
                              sorted(s['members']) if s.get('members') is not None else None])
                  for s in sources)


def manifest_problem(manifest, source_ids, file_hashes):
    """Compare a manifest to the request; return why it does not match, or None."""
    if not isinstance(manifest, dict) or manifest.get('format') != MANIFEST_FORMAT:
        return 'the manifest is missing or unreadable'
    recorded = manifest.get('sources')
    if not isinstance(recorded, list):
        return 'the manifest lists no sources'
    if not all(isinstance(s, dict) for s in recorded) or source_identities(recorded) != source_ids:
        return 'it was built from different artifacts or members'
    files = manifest.get('files')
    if not isinstance(files, dict) or not files:
        return 'the manifest lists no files'
    for relpath, digest in file_hashes.items():
        if files.get(relpath) != digest:
            return '%s differs from the requested content' % relpath
    return None


def manifest_time(manifest):
    """When a version was last installed, activated or left: the pruning order."""
    if not isinstance(manifest, dict):
        return None
    stamps = [manifest.get(k) for k in ('installed_at', 'activated_at', 'deactivated_at')]
    stamps = [float(s) for s in stamps if isinstance(s, (int, float)) and not isinstance(s, bool)]
    return max(stamps) if stamps else None


def plan_prune(candidates, keep, protected):
    """Return the version names to remove, oldest first.

    candidates maps version name -> last-used time; protected names (the link
    target, the version just requested) are always kept and count towards keep.
    Order is by use, never by semver: a rollback target may be older.
    """
    if keep < 1:
        raise InstallError('keep must be at least 1')
    kept = set(name for name in protected if name in candidates)
    others = sorted((name for name in candidates if name not in kept),
                    key=lambda name: (candidates[name], name), reverse=True)
    room = max(keep - len(kept), 0)
    kept.update(others[:room])
    doomed = [name for name in candidates if name not in kept]
    return sorted(doomed, key=lambda name: (candidates[name], name))


def is_temp_name(name):
    """True for names this module creates while staging (``.<version>.tmp-XXXX``)."""
    return name.startswith('.') and TMP_MARK in name


def build_manifest(version, sources, files, now):
    return {
        'format': MANIFEST_FORMAT,
        'version': version,
        'sources': [{'name': posixpath.basename(s['src']), 'sha256': s['sha256'], 'archive': s['archive'],
                     'dest': s['dest'], 'members': s['members']} for s in sources],
        'files': dict(sorted(files.items())),
        'installed_at': now,
    }


# ---------------------------------------------------------------------------
# I/O helpers
# ---------------------------------------------------------------------------

def default_group():
    """The platform's root group: 'root' on Linux, 'wheel' on macOS and the BSDs."""
    try:
        return grp.getgrgid(0).gr_name
    except KeyError:
        return 'wheel' if os.uname().sysname == 'Darwin' else 'root'


def resolve_ids(owner, group):
    """Return (uid, gid) for names or numeric strings."""
    owner = 'root' if owner is None else str(owner)
    group = default_group() if group is None else str(group)
    try:
        uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise InstallError('owner %r does not exist on this host' % owner)
    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise InstallError('group %r does not exist on this host' % group)
    return uid, gid


def read_link(link):
    """The link's text, None when absent; refuse to treat a real file or dir as the link."""
    try:
        return os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise InstallError('%s exists and is not a symbolic link; move it away so it can '
                               'become the link to the active version' % link)
        raise


def read_manifest(vdir):
    try:
        with open(os.path.join(vdir, MANIFEST_NAME), 'rb') as handle:
            data = json.loads(handle.read().decode('utf-8'))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_real_dir(path):
    return os.path.isdir(path) and not os.path.islink(path)


def attr_problem(rel, st, mode, uid, gid):
    if st.st_mode & 0o7777 != mode:
        return '%s has mode %o instead of %o' % (rel, st.st_mode & 0o7777, mode)
    if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
        return '%s is owned by %d:%d instead of %s:%s' % (rel, st.st_uid, st.st_gid, uid, gid)
    return None


def installed_problem(vdir, manifest, source_ids, file_hashes, uid=None, gid=None):
    """Why root/version cannot be used as is, or None when it is intact.

    Rehashes every recorded file: a truncated download, a hand edit or a
    swapped binary all make the version get rebuilt from verified artifacts.
    """
    if not is_real_dir(vdir):
        return 'it is not installed'
    problem = manifest_problem(manifest, source_ids, file_hashes)
    if problem:
        return problem
    recorded = manifest['files']
    bins = [p for p in recorded if p.startswith(BIN_DIR + '/')]
    if not bins:
        return 'the manifest lists no executables'
    seen = set()
    for dirpath, dirnames, filenames in os.walk(vdir):
        rel_dir = os.path.relpath(dirpath, vdir)
        problem = attr_problem(rel_dir, os.lstat(dirpath), DIR_MODE, uid, gid)
        if problem:
            # A writable bin/ lets anyone swap a binary between two runs.
            return problem
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                return '%s is a symbolic link' % posixpath.normpath(posixpath.join(rel_dir, name))
        for name in filenames:
            rel = posixpath.normpath(posixpath.join(rel_dir, name))
            if rel == MANIFEST_NAME:
                continue
            if rel not in recorded:
                return '%s is not part of the install' % rel
            seen.add(rel)
    for rel, digest in recorded.items():
        path = os.path.join(vdir, rel)
        if rel not in seen:
            return '%s is missing' % rel
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path):
            return '%s is not a regular file' % rel
        problem = attr_problem(rel, st, BIN_MODE if rel in bins else FILE_MODE, uid, gid)
        if problem:
            return problem
        if sha256_file(path) != digest:
            return '%s does not match its recorded sha256' % rel
    return None


def version_dirs(root):
    """{name: last-used time} for every version directory under root."""
    result = {}
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return result
    for name in names:
        path = os.path.join(root, name)
        if name.startswith('.') or not is_real_dir(path):
            continue
        stamp = manifest_time(read_manifest(path))
        # A directory without a usable manifest ranks by its mtime: it still
        # counts, but it never outranks a version we know was used.
        result[name] = stamp if stamp is not None else os.lstat(path).st_mtime
    return result


def temp_leftovers(root, link):
    """Paths a crashed run left behind: staging dirs under root, half-made links,
    and half-written manifests inside version directories (a switch re-stamps the
    old version's manifest, so a run killed there leaves one beside it)."""
    found = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        names = []
    found.extend(os.path.join(root, n) for n in names if is_temp_name(n))
    for name in names:
        vdir = os.path.join(root, name)
        if not name.startswith('.') and is_real_dir(vdir):
            found.extend(temp_siblings(os.path.join(vdir, MANIFEST_NAME)))
    link_dir, link_name = os.path.split(os.path.abspath(link))
    prefix = link_name + TMP_MARK
    try:
        found.extend(os.path.join(link_dir, n) for n in os.listdir(link_dir)
                     if n.startswith(prefix) and os.path.islink(os.path.join(link_dir, n)))
    except FileNotFoundError:
        pass
    return sorted(found)


def write_bytes(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def write_manifest(vdir, manifest, uid=None, gid=None):
    # Replaced atomically: a reader (or a crash) never sees half a manifest.
    atomic_write(os.path.join(vdir, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True) + '\n',
                 FILE_MODE, uid, gid)


def open_artifact(src):
    """Open an artifact for reading: a regular file, not through a symbolic link, without waiting on a FIFO.

    Everything taken from an artifact is hashed and read through this one
    open file, so a file put in its place at the path afterwards is never read.
    """
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InstallError('%s is a symbolic link; an artifact is read only from a regular file' % src)
        raise InstallError('cannot read %s: %s' % (src, exc.strerror or exc))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InstallError('%s is not a regular file' % src)
    return os.fdopen(fd, 'rb')


def require_sha256(src, expected, actual):
    if actual != expected:
        raise InstallError('sha256 mismatch for %s: expected %s, got %s' % (src, expected, actual))
    return actual


def copy_verified(src, dest, expected):
    """Copy src to dest hashing what is copied; the copy, not the source, is what gets verified."""
    with open_artifact(src) as source:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as out:
            actual = sha256_stream(source, sink=out.write)
            out.flush()
            os.fsync(out.fileno())
    return require_sha256(src, expected, actual)


def place_archive(source, staged_bin, scratch):
    """Verify an archive, extract its executables into scratch, move them into bin/.

    The archive is hashed and unpacked through one open file: the bytes
    unpacked are the bytes that matched the sha256.
    """
    src = source['src']
    with open_artifact(src) as archive:
        try:
            actual = sha256_stream(archive)
        except OSError as exc:
            raise InstallError('cannot read %s: %s' % (src, exc.strerror or exc))
        require_sha256(src, source['sha256'], actual)
        archive.seek(0)
        os.mkdir(scratch, 0o700)
        try:
            names = extract_executables(archive, scratch, source['members'], label=src)
        except (UnsafeArchiveError, tarfile.TarError, ValueError, KeyError, OSError) as exc:
            raise InstallError('cannot extract %s: %s' % (src, exc))
    names = list(names or [])
    missing = sorted(set(source['members'] or []) - set(names))
    if missing:
        raise InstallError('%s does not hold %s; it holds %s'
                           % (src, ', '.join(missing), ', '.join(sorted(names)) or 'no executables'))
    if not names:
        raise InstallError('%s holds no executables' % src)
    placed = []
    for name in names:
        target = os.path.join(staged_bin, name)
        if os.path.lexists(target):
            raise InstallError('%s from %s clashes with an executable of another source' % (name, src))
        os.rename(os.path.join(scratch, name), target)
        placed.append(name)
    remove_entry(scratch)
    return placed


def check_ids(account, euid):
    """The (uid, gid) a check switches to, or None to run it as this process.

    Only root can switch, and switching to root itself changes nothing; without
    a service account (binaries only, a user install) the check runs as the caller.
    """
    if account is None or euid != 0 or account[0] == 0:
        return None
    return int(account[0]), int(account[1])


def check_argv(argv, ids, interpreter):
    """The command line of one check: env -i with CHECK_ENV only, run as ids when given."""
    command = [ENV_COMMAND, '-i'] + ['%s=%s' % kv for kv in sorted(CHECK_ENV.items())] + argv
    if ids is None:
        return command
    # -I -S: no PYTHON* variables, user or site directories decide what root's interpreter runs.
    return [interpreter, '-I', '-S', '-c', SWITCH_ACCOUNT, str(ids[0]), str(ids[1])] + command


def check_runner(run_command, timeout=CHECK_TIMEOUT, account=None):
    """runner(argv, cwd) -> (rc, combined output) for stage(), over AnsibleModule.run_command's signature;
    rc is None when the check could not start or was killed after timeout seconds (run_command itself has
    no time limit, so a timer armed as the process starts kills it). The check sees only CHECK_ENV:
    run_command adds to the module's environment, env -i starts from nothing. account, the service
    account's (uid, gid), is who runs the check when this process is root (see check_ids): a staged
    binary runs first as the service will run it, never as root."""
    ids = check_ids(account, os.geteuid())

    def runner(argv, cwd):
        expired = []

        def arm(proc):
            def expire():
                expired.append(True)
                proc.kill()
            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
            timers.append(timer)

        if ids is not None and not sys.executable:
            return None, '%s was not run: no interpreter to switch to uid %d with' % (argv[0], ids[0])
        command = check_argv(argv, ids, sys.executable)
        timers = []
        try:
            rc, out, err = run_command(command, cwd=cwd, expand_user_and_vars=False, before_communicate_callback=arm,
                                       handle_exceptions=False, errors='surrogate_then_replace')
        except OSError as exc:
            return None, '%s could not be executed: %s' % (command[0], exc.strerror or exc)
        finally:
            for timer in timers:
                timer.cancel()
        output = (out or '') + (err or '')
        if rc in (126, 127) and (err or '').split(':', 1)[0] in ('env', ENV_COMMAND, SWITCH_TAG):
            # env could not execute it (missing, not executable, or for another CPU: ENOEXEC),
            # or the switch to the service account failed.
            return None, '%s could not be executed: %s' % (argv[0], err.strip())
        if expired:
            return None, output + '\n(timed out after %s s)' % timeout
        return rc, output
    return runner


def chown_tree(path, uid, gid):
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def bin_platform_problem(bin_dir, names, platform):
    """Why one of the executables in bin_dir cannot run on platform (headers only), or None."""
    for name in sorted(names):
        problem = platform_problem(os.path.join(bin_dir, name), platform, name)
        if problem:
            return problem
    return None


def stage(root, version, sources, files, checks, uid, gid, now, runner, platform=None):
    """Build root/.<version>.tmp-XXXX completely and check it; return its path.

    With platform set every executable's header must match it before any
    check runs, so a binary for another CPU is never executed. The caller
    owns the returned directory; on any failure it is removed here.
    """
    staged = tempfile.mkdtemp(prefix='.%s%s' % (version, TMP_MARK), dir=root)
    try:
        staged_bin = os.path.join(staged, BIN_DIR)
        os.mkdir(staged_bin, DIR_MODE)
        recorded = {}
        for index, source in enumerate(sources):
            if source['archive']:
                names = place_archive(source, staged_bin, os.path.join(staged, '.extract-%d' % index))
                for name in names:
                    path = os.path.join(staged_bin, name)
                    os.chmod(path, BIN_MODE)
                    recorded[BIN_DIR + '/' + name] = sha256_file(path)
            else:
                path = os.path.join(staged_bin, source['dest'])
                if os.path.lexists(path):
                    raise InstallError('%s from %s clashes with an executable of another source'
                                       % (source['dest'], source['src']))
                recorded[BIN_DIR + '/' + source['dest']] = copy_verified(source['src'], path, source['sha256'])
                os.chmod(path, BIN_MODE)
        for relpath, content in sorted(files.items()):
            path = os.path.join(staged, relpath)
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent, DIR_MODE)
            data = content.encode('utf-8') if isinstance(content, str) else content
            write_bytes(path, data, FILE_MODE)
            recorded[relpath] = hashlib.sha256(data).hexdigest()
        manifest = build_manifest(version, sources, recorded, now)
        write_manifest(staged, manifest)
        for dirpath, dirnames, dummy in os.walk(staged):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), DIR_MODE)
        os.chmod(staged, DIR_MODE)
        if uid is not None:
            chown_tree(staged, uid, gid)
        unchanged = '%s was not installed, the active version and link are unchanged: %s'
        if platform:
            problem = bin_platform_problem(staged_bin, os.listdir(staged_bin), platform)
            if problem:
                raise InstallError(unchanged % (version, problem))
        for check in checks:
            argv = [os.path.join(staged_bin, check['command'])] + check['args']
            if not os.path.isfile(argv[0]):
                raise InstallError('check: %s is not among the installed executables (%s)'
                                   % (check['command'], ', '.join(sorted(os.listdir(staged_bin)))))
            rc, output = runner(argv, staged)
            problem = check_problem([check['command']] + check['args'], check, rc, output)
            if problem:
                raise InstallError(unchanged % (version, problem))
        return staged
    except BaseException:
        remove_entry(staged)
        raise


def put_in_place(root, version, staged):
    """Move a staged build to root/version, replacing a broken copy in one step where the host can.

    With an atomic exchange the broken copy ends up under the staged (temp) name, which the
    caller removes or a later run sweeps; without one it is moved aside first, leaving a short
    window, which a kill could make long, in which root/version is missing.
    """
    final = os.path.join(root, version)
    if os.path.lexists(final) and exchange(staged, final):
        return final
    if os.path.lexists(final):
        aside = os.path.join(root, '.%s%sold-%s' % (version, TMP_MARK, secrets.token_hex(4)))
        os.rename(final, aside)
        try:
            os.rename(staged, final)
        except BaseException:
            # Put the old copy back: a broken version beats no version for a live link.
            os.rename(aside, final)
            raise
        remove_entry(aside)
    else:
        os.rename(staged, final)
    return final


def switch_link(link, value):
    """Point link at value with one rename(2): readers see the old or the new target, never none."""
    tmp = '%s%s%s' % (link, TMP_MARK, secrets.token_hex(6))
    os.symlink(value, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        remove_entry(tmp)
        raise


def stamp_manifest(vdir, key, now, uid, gid):
    """Record use of a version for the pruning order.

    Best effort: the stamp only orders pruning, and the switch it follows has
    already happened, so failing the task over it would misreport the host.
    """
    manifest = read_manifest(vdir)
    if manifest is None:
        return False
    manifest[key] = now
    try:
        write_manifest(vdir, manifest, uid, gid)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------
# The whole job
# ---------------------------------------------------------------------------

def ensure_version(root, version, sources, link, files=None, checks=None, platform=None, keep=2,
                   owner='root', group=None, switch=True, check_mode=False,
                   now=time.time, runner=None, ids=None):
    """Install version under root if needed, switch link to it, prune; return the result dict.

    runner runs the checks of a staged version (check_runner over AnsibleModule.run_command, which
    also decides who runs them: the service account when there is one); ids,
    when given, is the (uid, gid) pair to use instead of resolving owner and group (tests running
    without root pass their own ids).
    """
    root = os.path.abspath(root)
    link = os.path.abspath(link)
    version = validate_version_name(version)
    sources = normalize_sources(sources)
    files = normalize_files(files)
    checks = normalize_checks(checks)
    platform = normalize_platform(platform)
    if keep is None or int(keep) < 1:
        raise InstallError('keep must be at least 1')
    keep = int(keep)
    if os.path.dirname(link) == root:
        raise InstallError('link %s must not live inside root %s' % (link, root))
    uid, gid = ids if ids is not None else resolve_ids(owner, group)

    vdir = os.path.join(root, version)
    file_hashes = dict((rel, content_sha256(c)) for rel, c in files.items())
    manifest = read_manifest(vdir) if is_real_dir(vdir) else None
    problem = installed_problem(vdir, manifest, source_identities(sources), file_hashes, uid, gid)
    need_install = problem is not None
    if not need_install and platform:
        # Rebuilding would give the same verified bytes: the artifacts
        # themselves are for another platform (or the disk moved hosts).
        wrong = bin_platform_problem(os.path.join(vdir, BIN_DIR), bin_names(manifest), platform)
        if wrong:
            raise InstallError('%s is installed but cannot run on this host, the active version and link '
                               'are unchanged: %s' % (version, wrong))

    current = read_link(link)
    previous = version_from_target(link, current, root)
    desired = link_value(root, version, link)
    need_switch = bool(switch) and current != desired

    result = {
        'changed': False, 'version': version, 'path': vdir, 'previous': previous,
        'installed': False, 'switched': False, 'pruned': [], 'cleaned': [], 'files': [],
        'reason': problem,
    }
    active = version if switch else previous

    if check_mode:
        candidates = version_dirs(root)
        candidates[version] = now()
        result['pruned'] = plan_prune(candidates, keep, set([version, active]) - set([None]))
        result['cleaned'] = temp_leftovers(root, link)
        result['installed'] = need_install
        result['switched'] = need_switch
        if manifest and not need_install:
            result['files'] = bin_names(manifest)
        else:
            # Without the artifacts (a fresh host under --check) only raw files
            # and requested archive members are known by name.
            names = set()
            for source in sources:
                names.update([source['dest']] if not source['archive'] else (source['members'] or []))
            result['files'] = sorted(names)
        result['changed'] = bool(need_install or need_switch or result['pruned'] or result['cleaned'])
        return result

    if need_install:
        for path in (root, os.path.dirname(link)):
            if not os.path.isdir(path):
                os.makedirs(path, DIR_MODE)
        staged = stage(root, version, sources, files, checks, uid, gid, now(), runner, platform)
        try:
            put_in_place(root, version, staged)
        finally:
            if os.path.lexists(staged):
                remove_entry(staged)
        result['installed'] = True

    if need_switch:
        if not os.path.isdir(os.path.dirname(link)):
            os.makedirs(os.path.dirname(link), DIR_MODE)
        switch_link(link, desired)
        stamp = now()
        stamp_manifest(vdir, 'activated_at', stamp, uid, gid)
        if previous and previous != version:
            stamp_manifest(os.path.join(root, previous), 'deactivated_at', stamp, uid, gid)
        result['switched'] = True

    for path in temp_leftovers(root, link):
        remove_entry(path)
        result['cleaned'].append(path)
    doomed = plan_prune(version_dirs(root), keep, set([version, active]) - set([None]))
    # Re-read the link right before deleting: never remove what it points at.
    live = version_from_target(link, read_link(link), root)
    for name in doomed:
        if name in (live, version):
            continue
        remove_entry(os.path.join(root, name))
        result['pruned'].append(name)

    result['files'] = bin_names(read_manifest(vdir))
    result['changed'] = bool(result['installed'] or result['switched']
                             or result['pruned'] or result['cleaned'])
    return result


def bin_names(manifest):
    files = (manifest or {}).get('files') or {}
    prefix = BIN_DIR + '/'
    return sorted(p[len(prefix):] for p in files if p.startswith(prefix))


# ---------------------------------------------------------------------------
# Reading what is installed, trusting nothing but the records (stigmer_info)
# ---------------------------------------------------------------------------

def trust_problem(rel, st):
    """Believe only what root or the reading account wrote and nobody else can change."""
    if st.st_uid not in (0, os.geteuid()):
        return '%s is owned by uid %d' % (rel, st.st_uid)
    if st.st_mode & 0o022:
        return '%s is writable by group or others (mode %o)' % (rel, stat.S_IMODE(st.st_mode))
    return None


def open_beneath(dir_fd, relpath, directory=False):
    """Open relpath below dir_fd one component at a time with O_NOFOLLOW; return the fd.

    A planted symlink, a FIFO or a file others may write ends the walk with
    InstallError instead of being followed, blocked on or believed.
    """
    parts = relpath.split('/')
    fd = dir_fd
    for index, part in enumerate(parts):
        rel = '/'.join(parts[:index + 1])
        want_dir = directory or index < len(parts) - 1
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
        if want_dir:
            flags |= os.O_DIRECTORY
        try:
            child = os.open(part, flags, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                problem = '%s is missing' % rel
            elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                problem = '%s is a symbolic link or not a %s' % (rel, 'directory' if want_dir else 'file')
            else:
                problem = '%s cannot be opened: %s' % (rel, exc.strerror or exc)
            raise InstallError(problem)
        finally:
            if fd != dir_fd:
                os.close(fd)
        fd = child
        st = os.fstat(fd)
        problem = None if want_dir or stat.S_ISREG(st.st_mode) else '%s is not a regular file' % rel
        problem = problem or trust_problem(rel, st)
        if problem:
            os.close(fd)
            raise InstallError(problem)
    return fd


def read_beneath(dir_fd, relpath, limit=RECORD_LIMIT):
    fd = open_beneath(dir_fd, relpath)
    try:
        data = b''
        while len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InstallError('%s is larger than %d bytes' % (relpath, limit))
    return data


def read_active(link, read=(), present=()):
    """Read the install record of the version link points at; run nothing, follow no planted link.

    Only link itself is followed, and only when its text is ``<dir>/<version>``
    (see link_target_parts). Returns None when link does not exist, else a dict:
    version (the directory name, confirmed by its manifest); contents, {relpath:
    bytes} for each path in read whose content matches the manifest's sha256;
    present, the paths in present that the manifest records and that are
    regular files; problems, why a requested path is in neither. Raises
    InstallError when the link, the version directory or its manifest cannot
    be trusted.
    """
    try:
        st = os.lstat(link)
    except FileNotFoundError:
        return None
    if not stat.S_ISLNK(st.st_mode):
        raise InstallError('%s is not a symbolic link' % link)
    if st.st_uid not in (0, os.geteuid()):
        raise InstallError('%s is owned by uid %d' % (link, st.st_uid))
    versions_name, version = link_target_parts(link, os.readlink(link))
    base = os.open(os.path.dirname(os.path.abspath(link)),
                   os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0))
    try:
        vfd = open_beneath(base, versions_name + '/' + version, directory=True)
    finally:
        os.close(base)
    result = {'version': version, 'contents': {}, 'present': [], 'problems': []}
    try:
        try:
            manifest = json.loads(read_beneath(vfd, MANIFEST_NAME).decode('utf-8'))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or manifest.get('format') != MANIFEST_FORMAT \
                or manifest.get('version') != version or not isinstance(manifest.get('files'), dict):
            raise InstallError('%s/%s has no manifest for version %s' % (versions_name, version, version))
        recorded = manifest['files']
        for rel in read:
            if rel not in recorded:
                result['problems'].append('%s is not part of the install of %s' % (rel, version))
                continue
            try:
                data = read_beneath(vfd, rel)
            except InstallError as exc:
                result['problems'].append(str(exc))
                continue
            if hashlib.sha256(data).hexdigest() != recorded[rel]:
                result['problems'].append('%s does not match its recorded sha256' % rel)
                continue
            result['contents'][rel] = data
        for rel in present:
            if rel not in recorded:
                result['problems'].append('%s is not part of the install of %s' % (rel, version))
                continue
            try:
                os.close(open_beneath(vfd, rel))
            except InstallError as exc:
                result['problems'].append(str(exc))
                continue
            result['present'].append(rel)
    finally:
        os.close(vfd)
    return result
