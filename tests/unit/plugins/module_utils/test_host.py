# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_host.atomic_write: content, mode, owner before the rename, and no temp file left behind."""

import errno
import os
import stat

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _host, _install as install


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def test_writes_str_as_utf8_and_bytes_as_is(tmp_path):
    path = str(tmp_path / 'a.txt')
    _host.atomic_write(path, 'caf\u00e9\n')
    assert read(path) == 'caf\u00e9\n'.encode('utf-8')
    _host.atomic_write(path, b'\x00\x01', mode=0o600)
    assert read(path) == b'\x00\x01'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ['a.txt']


def test_make_dirs(tmp_path):
    path = str(tmp_path / 'x' / 'y' / 'c.json')
    with pytest.raises(OSError):
        _host.atomic_write(path, '{}')
    _host.atomic_write(path, '{}', make_dirs=True)
    assert read(path) == b'{}'


def test_owner_is_set_on_the_temp_file_before_the_rename(tmp_path):
    path = str(tmp_path / 'p.plist')
    calls = []

    def chown(target, uid, gid):
        calls.append((os.path.basename(target), uid, gid, os.path.exists(path)))

    _host.atomic_write(path, b'x', uid=7, chown=chown)
    (name, uid, gid, existed), = calls
    assert name.startswith('.p.plist' + _host.TMP_MARK) and (uid, gid, existed) == (7, -1, False)
    _host.atomic_write(path, b'x', chown=chown)
    assert len(calls) == 1  # neither uid nor gid: no chown


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = str(tmp_path / 'keep.json')
    _host.atomic_write(path, 'old')

    def chown(*args):
        raise PermissionError('no')

    with pytest.raises(PermissionError):
        _host.atomic_write(path, 'new', uid=0, gid=0, chown=chown)
    assert read(path) == b'old'
    assert os.listdir(str(tmp_path)) == ['keep.json']


def test_crash_leftovers_are_recognised_by_install(tmp_path):
    seen = []

    def chown(target, uid, gid):
        seen.append(os.path.basename(target))
        raise KeyboardInterrupt  # like a crash between write and rename

    with pytest.raises(KeyboardInterrupt):
        _host.atomic_write(str(tmp_path / 'v1.0.0'), 'x', uid=0, chown=chown)
    assert install.is_temp_name(seen[0])


def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    first, second = tmp_path / 'a', tmp_path / 'b'
    first.mkdir()
    second.mkdir()
    (first / 'new').write_text('new')
    (second / 'old').write_text('old')
    if not _host.exchange(str(first), str(second)):
        pytest.skip('this kernel or file system has no atomic exchange')
    assert os.listdir(str(second)) == ['new'] and os.listdir(str(first)) == ['old']


def test_exchange_names_a_missing_path(tmp_path):
    (tmp_path / 'a').mkdir()
    try:
        swapped = _host.exchange(str(tmp_path / 'a'), str(tmp_path / 'missing'))
    except OSError as exc:
        assert exc.errno == errno.ENOENT
    else:
        assert swapped is False  # no exchange here: nothing moved
    assert (tmp_path / 'a').is_dir() and not (tmp_path / 'missing').exists()


def test_a_repair_never_leaves_the_version_directory_missing(tmp_path, monkeypatch):
    # The old way moved the broken copy aside first: a kill between the two renames left
    # the live link dangling. With an exchange there is no second rename to be killed before.
    root = tmp_path / 'versions'
    (root / 'v1.0.0').mkdir(parents=True)
    (root / 'v1.0.0' / 'broken').write_text('x')
    staged = root / '.v1.0.0.tmp-abcd'
    staged.mkdir()
    (staged / 'good').write_text('y')
    if not _host.exchange(str(staged), str(root / 'v1.0.0')):
        pytest.skip('this kernel or file system has no atomic exchange')
    _host.exchange(str(staged), str(root / 'v1.0.0'))  # back as it was

    def no_rename(*args):
        raise AssertionError('a rename left a window without the version: %r' % (args,))

    monkeypatch.setattr(os, 'rename', no_rename)
    assert install.put_in_place(str(root), 'v1.0.0', str(staged)) == str(root / 'v1.0.0')
    assert os.listdir(str(root / 'v1.0.0')) == ['good'] and os.listdir(str(staged)) == ['broken']
