# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the host layer every job shares: paths and ownership checks, the lock, atomic writes, removal.

There is one of each so that the rules hold everywhere, not only where they were last fixed:

* paths are examined with lstat and opened with O_NOFOLLOW; a link is described, never followed;
* a location the collection would own is refused when it is a system or someone's home directory,
  and an ancestor others could change is named (``unsafe_ancestor``);
* one lock (``Lock``): an flock opened with O_NOFOLLOW, waited for up to a timeout or as long as
  it takes, that names the pid holding it;
* one atomic write (``atomic_write``): readers see the old content or the new, never half of it;
* one remover (``remove_entry``): fd-based, never following a link.

Standard library only: this runs on managed hosts.
"""

import ctypes
import errno
import fcntl
import os
import pwd
import shutil
import stat
import sys
import tempfile
import time


class HostError(Exception):
    """The host cannot be changed safely; the message names the cause and the fix."""


# Never a prefix or a state directory: deleting or re-owning one of these breaks the host.
SYSTEM_DIRS = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/media', '/mnt', '/opt',
    '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/include', '/usr/lib',
    '/usr/libexec', '/usr/local', '/usr/local/bin', '/usr/local/lib', '/usr/local/sbin', '/usr/local/share',
    '/usr/sbin', '/usr/share', '/var', '/var/cache', '/var/lib', '/var/log', '/var/run', '/var/tmp',
    '/Applications', '/Library', '/Library/LaunchDaemons', '/System', '/Users', '/Volumes', '/cores',
    '/private', '/private/etc', '/private/tmp', '/private/var', '/opt/homebrew', '/nix',
])


# ---------------------------------------------------------------------------
# Locations and ownership
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


def unsafe_ancestor(path, root='/'):
    """The first existing ancestor of path that someone other than root could change, or None.

    root is the directory that stands for / (tests map a host's tree into one); the ancestor is
    named as the host sees it. Links among the ancestors are followed (macOS's /etc -> private/etc).
    """
    parts = os.path.normpath(path).split('/')[1:-1]
    current = '/'
    for part in [''] + parts:
        current = os.path.join(current, part) if part else current
        try:
            st = os.stat(os.path.join(root, current.lstrip('/')))
        except FileNotFoundError:
            return None
        if st.st_uid != 0 or st.st_mode & 0o022:
            return '%s (owner uid %d, mode %o)' % (current, st.st_uid, stat.S_IMODE(st.st_mode))
    return None


# ---------------------------------------------------------------------------
# Reading and changing paths, never following links
# ---------------------------------------------------------------------------

def lstat_or_none(path):
    """os.lstat, or None when nothing is there: a link is described, never followed."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def open_dir(path):
    """A descriptor on the directory at path; fails on a link rather than following it."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))


def set_owner_mode(path, uid, gid, mode):
    """Owner and mode of the directory at path, through an O_NOFOLLOW descriptor."""
    fd = open_dir(path)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


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


def remove_entry(path):
    """Remove path without following it: a link or file is unlinked, a directory deleted below.

    The one remover of the collection: shutil.rmtree is only used where it works on directory
    descriptors (avoids_symlink_attacks), so a link swapped in mid-removal is unlinked, never
    entered. Returns whether anything was there.
    """
    st = lstat_or_none(path)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        if not shutil.rmtree.avoids_symlink_attacks:
            raise HostError('this Python cannot delete %s without following links; remove it by hand' % path)
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # renameat2(2), Linux 3.15+
_RENAME_SWAP = 2  # renamex_np(2), macOS 10.12+


def exchange(first, second):
    """Swap two existing paths in one rename (each name then holds what the other did).

    True when swapped; False where the kernel, libc or file system cannot, and nothing moved.
    A replacement never leaves a moment, or a crash window, in which neither is in place.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith('linux'):
            call, args = libc.renameat2, (_AT_FDCWD, first, _AT_FDCWD, second, _RENAME_EXCHANGE)
            call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        elif sys.platform == 'darwin':
            call, args = libc.renamex_np, (first, second, _RENAME_SWAP)
            call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        else:
            return False
    except (AttributeError, OSError):
        return False
    args = tuple(os.fsencode(a) if isinstance(a, str) else a for a in args)
    if call(*args) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), first)


# ---------------------------------------------------------------------------
# The lock and atomic writes
# ---------------------------------------------------------------------------

class Lock(object):
    """An exclusive flock on path, held for the with block.

    timeout None waits as long as it takes (Ansible forks downloading one artifact); a number of
    seconds gives up with a HostError naming the holder's pid (a second run on one host). The
    file is opened with O_NOFOLLOW, so a link planted in its place is refused, and never deleted:
    removing it while another process waits on it would let a third take a fresh lock. With
    parent_mode the missing parent directory is created with that mode first.

    The pid is written into the file, so it must be this process's own: a hard link (its target
    would be truncated) or a file someone else owns is unlinked and a fresh one made in its place.
    """

    def __init__(self, path, timeout=None, sleep=time.sleep, parent_mode=None):
        self.path = path
        self.timeout = timeout
        self.sleep = sleep
        self.parent_mode = parent_mode
        self.fd = None

    def __enter__(self):
        if self.parent_mode is not None:
            os.makedirs(os.path.dirname(self.path), mode=self.parent_mode, exist_ok=True)
        self.fd = self._open()
        try:
            self._acquire()
        except BaseException:
            os.close(self.fd)
            raise
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode('ascii'), 0)
        return self

    @staticmethod
    def _own_file(st):
        return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid()

    def _open(self):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
        st = lstat_or_none(self.path)
        if st is not None and not self._own_file(st):
            if stat.S_ISDIR(st.st_mode):
                raise HostError('%s is a directory, not the lock file of this install; remove it and run again'
                                % self.path)
            os.unlink(self.path)  # only the name: a hard link's target keeps its content
        fd = os.open(self.path, flags, 0o600)
        if not self._own_file(os.fstat(fd)):
            os.close(fd)
            raise HostError('the lock file %s changed while it was opened: something else writes %s; make that '
                            'directory writable by root only and run again' % (self.path, os.path.dirname(self.path)))
        return fd

    def _acquire(self):
        """flock, blocking without a timeout, else polling until the deadline."""
        if self.timeout is None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            return
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() >= deadline:
                    holder = os.pread(self.fd, 64, 0).decode('ascii', 'replace').strip() or 'unknown'
                    raise HostError('Another stigmer.runtime run (pid %s) holds the lock %s and did not release '
                                    'it within %d s. Wait for it to finish, then run again; if no run is active, '
                                    'the lock is free and this message will not repeat.'
                                    % (holder, self.path, self.timeout))
                self.sleep(0.5)

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


# Every temp file is named ``.<basename>.tmp-XXXXXXXX``; install.py relies on
# the marker to recognise (and remove) what a crashed run left behind.
TMP_MARK = '.tmp-'


def temp_siblings(path):
    """The temp files atomic_write left beside path when its run was killed mid-write.

    They hold what path was about to hold (API keys, for an environment file),
    so a later run removes them rather than letting old secrets outlive a rotation.
    """
    directory, base = os.path.split(path)
    prefix = '.' + base + TMP_MARK
    try:
        names = os.listdir(directory or '.')
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(os.path.join(directory, name) for name in names if name.startswith(prefix))


def atomic_write(path, data, mode=0o644, uid=None, gid=None, chown=os.chown, make_dirs=False):
    """Replace path with data (bytes, or str written as UTF-8) using rename(2).

    The temp file lives in path's directory so the rename stays on one
    filesystem, and it is synced, given its mode and (when uid or gid is set)
    its owner before the rename: the file never shows up short or with the
    wrong attributes. On any failure the temp file is removed and path is
    left as it was. chown is injectable so tests need no root.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(path) or '.'
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + TMP_MARK, dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None or gid is not None:
            chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
