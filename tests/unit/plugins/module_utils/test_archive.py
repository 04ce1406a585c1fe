# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import io
import os
import stat
import tarfile

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _archive as archive
from ansible_collections.stigmer.runtime.plugins.module_utils._archive import (
    UnsafeArchiveError,
    extract_executables,
    safe_members,
)


def _file(name, data=b'#!/bin/sh\necho hi\n', mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def _special(name, kind, linkname=''):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info, None


def make_tar(path, members):
    """Write a .tar.gz from (TarInfo, data) pairs exactly as given, unsanitised."""
    with tarfile.open(str(path), 'w:gz', format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / 'bin'
    path.mkdir()
    return path


def extract(path, dest, **kwargs):
    """extract_executables over the archive at path, opened once as the installer does."""
    with open(str(path), 'rb') as archive:
        return extract_executables(archive, str(dest), label=str(path), **kwargs)


def _listing(path):
    return sorted(os.listdir(str(path)))


def test_installs_every_top_level_file(tmp_path, dest):
    tar_path = make_tar(tmp_path / 'stigmer.tar.gz', [
        _file('stigmer', b'cli'),
        _file('stigmer-server', b'server'),
        _file('./stigmer-workflow-runner', b'runner'),
    ])
    assert extract(tar_path, str(dest)) == ['stigmer', 'stigmer-server', 'stigmer-workflow-runner']
    assert _listing(dest) == ['stigmer', 'stigmer-server', 'stigmer-workflow-runner']
    assert (dest / 'stigmer').read_bytes() == b'cli'
    assert (dest / 'stigmer-workflow-runner').read_bytes() == b'runner'
    for name in _listing(dest):
        assert stat.S_IMODE(os.stat(str(dest / name)).st_mode) == 0o755


def test_mode_is_applied_regardless_of_archive_mode(tmp_path, dest):
    tar_path = make_tar(tmp_path / 'a.tar.gz', [_file('stigmer', mode=0o4777)])
    extract(tar_path, str(dest), mode=0o750)
    assert stat.S_IMODE(os.stat(str(dest / 'stigmer')).st_mode) == 0o750


def test_nested_members_are_ignored_unless_named(tmp_path, dest):
    tar_path = make_tar(tmp_path / 't.tar.gz', [
        _special('docs', tarfile.DIRTYPE),
        _file('docs/README.md', b'readme'),
        _file('stigmer', b'cli'),
    ])
    assert extract(tar_path, str(dest)) == ['stigmer']
    assert _listing(dest) == ['stigmer']


def test_named_members(tmp_path, dest):
    tar_path = make_tar(tmp_path / 'temporal.tar.gz', [
        _file('LICENSE', b'license'),
        _file('temporal', b'temporal'),
        _file('extra/tool', b'tool'),
    ])
    assert extract(tar_path, str(dest), names=['temporal']) == ['temporal']
    assert _listing(dest) == ['temporal']
    assert extract(tar_path, str(dest), names=['extra/tool']) == ['tool']
    assert extract(tar_path, str(dest), names='tool') == ['tool']
    assert (dest / 'tool').read_bytes() == b'tool'


def test_named_member_missing_lists_contents(tmp_path, dest):
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('LICENSE'), _file('temporal')])
    with pytest.raises(UnsafeArchiveError) as info:
        extract(tar_path, str(dest), names=['temporal', 'stigmer'])
    message = str(info.value)
    assert 'stigmer' in message and 'LICENSE, temporal' in message
    assert _listing(dest) == []


def test_ambiguous_bare_name(tmp_path, dest):
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('a/tool'), _file('b/tool')])
    with pytest.raises(UnsafeArchiveError) as info:
        extract(tar_path, str(dest), names=['tool'])
    assert 'several' in str(info.value)


def test_no_top_level_file(tmp_path, dest):
    tar_path = make_tar(tmp_path / 't.tar.gz', [_special('dir', tarfile.DIRTYPE), _file('dir/stigmer')])
    with pytest.raises(UnsafeArchiveError) as info:
        extract(tar_path, str(dest))
    assert 'dir/stigmer' in str(info.value)


def test_replaces_existing_file_atomically(tmp_path, dest):
    (dest / 'stigmer').write_bytes(b'old')
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('stigmer', b'new')])
    extract(tar_path, str(dest))
    assert (dest / 'stigmer').read_bytes() == b'new'
    assert _listing(dest) == ['stigmer']  # no temp files left behind


def test_creates_missing_destination(tmp_path):
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('stigmer')])
    target = tmp_path / 'versions' / 'v1.0.0' / 'bin'
    assert extract(tar_path, str(target)) == ['stigmer']
    assert (target / 'stigmer').exists()


UNSAFE = {
    'parent traversal': [_file('stigmer'), _file('../evil')],
    'nested traversal': [_file('stigmer'), _file('bin/../../evil')],
    'absolute path': [_file('stigmer'), _file('/abs/evil')],
    'symlink to passwd': [_file('stigmer'), _special('passwd', tarfile.SYMTYPE, '/etc/passwd')],
    'relative symlink': [_file('stigmer'), _special('helper', tarfile.SYMTYPE, 'stigmer')],
    'hardlink escaping': [_file('stigmer'), _special('evil', tarfile.LNKTYPE, '../../etc/shadow')],
    'hardlink inside': [_file('stigmer'), _special('copy', tarfile.LNKTYPE, 'stigmer')],
    'char device': [_file('stigmer'), _special('null', tarfile.CHRTYPE)],
    'block device': [_file('stigmer'), _special('sda', tarfile.BLKTYPE)],
    'fifo': [_file('stigmer'), _special('pipe', tarfile.FIFOTYPE)],
    'duplicate name': [_file('stigmer', b'one'), _file('./stigmer', b'two')],
}


@pytest.mark.parametrize('case', sorted(UNSAFE))
def test_unsafe_archive_writes_nothing(tmp_path, dest, case):
    # The safe member comes first: it must not be written before the bad one is seen.
    tar_path = make_tar(tmp_path / 'bad.tar.gz', UNSAFE[case])
    with pytest.raises(UnsafeArchiveError):
        extract(tar_path, str(dest))
    assert _listing(dest) == []
    assert not (tmp_path / 'evil').exists()


@pytest.mark.parametrize('case', sorted(UNSAFE))
def test_unsafe_archive_refused_even_when_bad_member_is_not_selected(tmp_path, dest, case):
    tar_path = make_tar(tmp_path / 'bad.tar.gz', UNSAFE[case])
    with pytest.raises(UnsafeArchiveError):
        extract(tar_path, str(dest), names=['stigmer'])
    assert _listing(dest) == []


@pytest.mark.parametrize('case, fragment', [
    ('parent traversal', "'../evil'"),
    ('absolute path', 'absolute'),
    ('symlink to passwd', "'/etc/passwd'"),
    ('hardlink escaping', 'hard link'),
    ('char device', 'device'),
    ('fifo', 'FIFO'),
])
def test_safe_members_messages(tmp_path, case, fragment):
    tar_path = make_tar(tmp_path / 'bad.tar.gz', UNSAFE[case])
    with tarfile.open(tar_path, 'r:gz') as tar:
        with pytest.raises(UnsafeArchiveError) as info:
            safe_members(tar)
    assert fragment in str(info.value)


def test_safe_members_returns_regular_files_only(tmp_path):
    tar_path = make_tar(tmp_path / 'ok.tar.gz', [
        _special('./', tarfile.DIRTYPE), _special('docs', tarfile.DIRTYPE), _file('docs/a'), _file('stigmer'),
        _file('a/../b'),
    ])
    with tarfile.open(tar_path, 'r:gz') as tar:
        assert [m.name for m in safe_members(tar)] == ['docs/a', 'stigmer', 'a/../b']


def test_not_a_tarball(tmp_path, dest):
    path = tmp_path / 'stigmer.tar.gz'
    path.write_bytes(b'<html>Not Found</html>')
    with pytest.raises(UnsafeArchiveError) as info:
        extract(str(path), str(dest))
    assert 'not a readable' in str(info.value)
    assert _listing(dest) == []


def test_truncated_tarball(tmp_path, dest):
    data = os.urandom(200000)
    tar_path = make_tar(tmp_path / 'full.tar.gz', [_file('stigmer', data)])
    cut = tmp_path / 'cut.tar.gz'
    cut.write_bytes(open(tar_path, 'rb').read()[:5000])
    with pytest.raises(UnsafeArchiveError):
        extract(str(cut), str(dest))
    assert _listing(dest) == []


def test_never_uses_extractall(tmp_path, dest, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError('extractall/extract must not be used')

    monkeypatch.setattr(tarfile.TarFile, 'extractall', forbidden)
    monkeypatch.setattr(tarfile.TarFile, 'extract', forbidden)
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('stigmer')])
    assert extract(tar_path, str(dest)) == ['stigmer']


def test_write_failure_leaves_no_temp_and_no_partial_install(tmp_path, dest, monkeypatch):
    tar_path = make_tar(tmp_path / 't.tar.gz', [_file('a', b'a'), _file('b', b'b')])
    real = archive.shutil.copyfileobj
    calls = []

    def flaky(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return real(src, dst, length)

    monkeypatch.setattr(archive.shutil, 'copyfileobj', flaky)
    with pytest.raises(OSError):
        extract(tar_path, str(dest))
    assert _listing(dest) == []


def test_too_many_members_are_refused_before_anything_is_written(tmp_path, dest):
    path = str(tmp_path / 'many.tar.gz')
    make_tar(path, [_file('f%d' % n, b'x') for n in range(6)])
    with pytest.raises(UnsafeArchiveError) as info:
        extract(path, dest, max_members=5)
    assert 'more than 5 members' in str(info.value)
    assert _listing(dest) == []
    assert extract(path, dest, max_members=6) == ['f%d' % n for n in range(6)]


def test_an_archive_expanding_past_the_ceiling_is_refused(tmp_path, dest):
    path = str(tmp_path / 'bomb.tar.gz')
    # Compresses to almost nothing; its headers declare what it expands to.
    make_tar(path, [_file('stigmer', b'\0' * 300000), _file('stigmer-server', b'\0' * 300000)])
    with pytest.raises(UnsafeArchiveError) as info:
        extract(path, dest, max_total_bytes=500000)
    assert 'more than 500000 bytes' in str(info.value)
    assert _listing(dest) == []
    assert archive.MAX_TOTAL_BYTES >= 1024 * 1024 * 1024 and archive.MAX_MEMBERS >= 1000
