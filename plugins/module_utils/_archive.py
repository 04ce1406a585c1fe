# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack release tarballs with the standard library.

GNU tar is absent on stock macOS, and tar.extractall trusts the archive;
here every member is checked before a single byte is written, and only
regular files are written, by basename, into one directory. The number of
members and the bytes they expand to are bounded, so a small archive cannot
fill the disk or exhaust memory. The archive comes as an open file, so the
caller can unpack exactly the bytes it hashed.
"""

import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib

# Release tarballs hold a handful of executables of some 100 MB together.
MAX_MEMBERS = 10000
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024


class UnsafeArchiveError(Exception):
    """The archive cannot be installed from: an unsafe member, a corrupt file, or a missing executable."""


def _member_path(member):
    """Return the normalised relative path of a member or raise UnsafeArchiveError."""
    name = member.name
    if not name or '\x00' in name:
        raise UnsafeArchiveError('archive member %r has an invalid name' % (name,))
    if name.startswith('/') or posixpath.isabs(name):
        raise UnsafeArchiveError('archive member %r has an absolute path' % (name,))
    path = posixpath.normpath(name)
    if path == '..' or path.startswith('../') or '..' in path.split('/'):
        raise UnsafeArchiveError('archive member %r points outside the archive (..)' % (name,))
    return path


def safe_members(tar, max_members=MAX_MEMBERS, max_total_bytes=MAX_TOTAL_BYTES):
    """Validate every member of an open TarFile; return its regular files.

    Links of any kind, devices, FIFOs and unknown types are refused rather
    than judged: a release executable never needs them. Headers are read one
    at a time, so an archive past ``max_members`` is refused before all of
    them are in memory; regular files may hold ``max_total_bytes`` together.
    """
    regular = []
    seen = set()
    total = 0
    for count, member in enumerate(tar, 1):
        if count > max_members:
            raise UnsafeArchiveError('archive has more than %d members, more than a release archive holds; nothing '
                                     'was unpacked: check that the artifact is the release\'s own tarball'
                                     % max_members)
        path = _member_path(member)
        if member.issym():
            raise UnsafeArchiveError('archive member %r is a symbolic link to %r' % (member.name, member.linkname))
        if member.islnk():
            raise UnsafeArchiveError('archive member %r is a hard link to %r' % (member.name, member.linkname))
        if member.ischr() or member.isblk():
            raise UnsafeArchiveError('archive member %r is a device node' % (member.name,))
        if member.isfifo():
            raise UnsafeArchiveError('archive member %r is a FIFO' % (member.name,))
        if member.isdir() or path == '.':
            continue
        if not member.isreg():
            raise UnsafeArchiveError('archive member %r has an unsupported type %r' % (member.name, member.type))
        # A repeated name means the archive says two things about one file.
        if path in seen:
            raise UnsafeArchiveError('archive member %r appears more than once' % (member.name,))
        seen.add(path)
        total += member.size
        if total > max_total_bytes:
            raise UnsafeArchiveError('archive expands to more than %d bytes' % max_total_bytes)
        regular.append(member)
    return regular


def _select(members, names, label):
    """The members to install: those named, or by default the top-level files.

    A release tarball may carry a README or LICENSE beside its binaries: when
    the archive marks some top-level files executable, only those are taken.
    """
    by_path = dict((posixpath.normpath(m.name), m) for m in members)
    if names is None:
        top = [m for p, m in by_path.items() if '/' not in p]
        if not top:
            raise UnsafeArchiveError('%s holds no file at its top level; it holds: %s'
                                     % (label, ', '.join(sorted(by_path)) or 'nothing'))
        return [m for m in top if m.mode & 0o111] or top
    chosen = []
    for wanted in names:
        wanted_path = posixpath.normpath(wanted)
        member = by_path.get(wanted_path)
        if member is None and '/' not in wanted_path:
            # A bare name may live in a subdirectory, if only once.
            nested = [m for p, m in by_path.items() if posixpath.basename(p) == wanted_path]
            if len(nested) > 1:
                raise UnsafeArchiveError('%s holds several files named %s: %s'
                                         % (label, wanted, ', '.join(sorted(m.name for m in nested))))
            member = nested[0] if nested else None
        if member is None:
            raise UnsafeArchiveError('%s has no file %s; it holds: %s'
                                     % (label, wanted, ', '.join(sorted(by_path)) or 'nothing'))
        chosen.append(member)
    return chosen


def _write_temp(tar, member, dest_dir, mode):
    """Stream one member into a temp file beside its target; return the temp path."""
    base = posixpath.basename(posixpath.normpath(member.name))
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeArchiveError('archive member %r cannot be read as a file' % (member.name,))
    fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % base, suffix='.tmp', dir=dest_dir)
    try:
        with os.fdopen(fd, 'wb') as out:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_path, mode)
    except BaseException:
        _remove(tmp_path)
        raise
    return tmp_path


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def extract_executables(archive, dest_dir, names=None, mode=0o755, max_members=MAX_MEMBERS,
                        max_total_bytes=MAX_TOTAL_BYTES, label='the archive'):
    """Install executables from an open .tar.gz into dest_dir; return their sorted basenames.

    archive is a binary file object positioned at the archive's start; it is
    read through that object only, never reopened by name, and label names it
    in messages. names=None installs the top-level regular files (those marked
    executable, when any are); otherwise exactly the named files (a bare name
    may sit in a subdirectory). All members are validated before anything is
    written, and the files replace their targets only once all were written.
    More than ``max_members`` members, or regular files of more than
    ``max_total_bytes`` together, make the archive unsafe.
    """
    if names is not None and isinstance(names, str):
        names = [names]
    try:
        tar = tarfile.open(fileobj=archive, mode='r:gz')
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise UnsafeArchiveError('%s is not a readable .tar.gz archive: %s' % (label, exc))

    staged = []
    try:
        with tar:
            try:
                members = safe_members(tar, max_members, max_total_bytes)
            except (tarfile.TarError, zlib.error, EOFError) as exc:
                raise UnsafeArchiveError('%s is corrupt: %s' % (label, exc))
            chosen = _select(members, names, label)
            targets = {}
            for member in chosen:
                base = posixpath.basename(posixpath.normpath(member.name))
                if base in targets:
                    raise UnsafeArchiveError('%s: %s and %s would both install as %s'
                                             % (label, targets[base].name, member.name, base))
                targets[base] = member

            if not os.path.isdir(dest_dir):
                os.makedirs(dest_dir)
            for base in sorted(targets):
                try:
                    tmp_path = _write_temp(tar, targets[base], dest_dir, mode)
                except (tarfile.TarError, zlib.error, EOFError) as exc:
                    raise UnsafeArchiveError('%s is corrupt while reading %s: %s' % (label, targets[base].name, exc))
                staged.append((tmp_path, os.path.join(dest_dir, base)))

        for tmp_path, target in staged:
            os.replace(tmp_path, target)
        staged = []
    finally:
        for tmp_path, dummy in staged:
            _remove(tmp_path)
    return sorted(targets)
