# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_runtime: the location guards, the restart and reinstall decisions, the file-system helpers that never
follow links, the lock, and a user-scope plan (no services) compared, applied, rolled back and removed
in a temporary directory. Owners are the current uid/gid, so this runs without root too."""

import grp
import hashlib
import io
import json
import os
import pathlib
import plistlib
import pwd
import shutil
import stat
import tarfile
import tempfile
import time
import types

import pytest

from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils import module_host
from ansible_collections.stigmer.runtime.tests.unit.plugins.plugin_utils.conftest import build_plan
from ansible_collections.stigmer.runtime.plugins.module_utils import _host, _runtime, _launchd as launchd
from ansible_collections.stigmer.runtime.plugins.module_utils._host import (
    other_homes,
    read_nofollow,
    refused_location,
    remove_entry,
    unsafe_ancestor,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._runtime import (
    START_SLACK,
    Changes,
    Lock,
    PlanError,
    Runtime,
    check_locations,
    diff_text,
    ensure_directory,
    ensure_file,
    ensure_link,
    process_start,
    recorded_path_problem,
    remove_recorded,
    source_problem,
    stale_reason,
    state_left_behind,
    stop_commands,
    unsafe_directory,
)

UID, GID = os.getuid(), os.getgid()
OWNER = pwd.getpwuid(UID).pw_name
GROUP = grp.getgrgid(GID).gr_name
ROOT = os.geteuid() == 0
TAR = 'stigmer-%s-linux-amd64.tar.gz'
RUNNER = 'agent-runner-%s-linux-amd64'


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def outside(tmp_path):
    """A directory the plan does not own, with a file that must survive every test."""
    base = tmp_path / 'outside'
    base.mkdir()
    base.chmod(0o700)
    (base / 'keep').write_text('not yours\n')
    return base


def intact(base):
    return mode(base) == 0o700 and (base / 'keep').read_text() == 'not yours\n'


# ---------------------------------------------------------------------------------- locations

@pytest.mark.parametrize('path', ['/', '/usr/local', '/etc', '/home', '/usr/local/', '//usr', '///usr/local',
                                  '/opt/stigmer/..', '/var/lib'])
def test_refused_location_system_directories(path):
    assert refused_location(path, set()) == 'it is a system directory'


@pytest.mark.parametrize('path', ['opt/stigmer', '', None, './opt', 'relative/../x'])
def test_refused_location_relative(path):
    assert refused_location(path, set()) == 'it is not an absolute path'


def test_refused_location_homes_and_allowed_paths():
    homes = {'/home/alice', '/srv/bob'}
    assert refused_location('/home/alice', homes) == "it is a user's home directory"
    assert refused_location('/home/alice/', homes) == "it is a user's home directory"
    assert refused_location('/srv/bob', homes) == "it is a user's home directory"
    for allowed in ('/opt/stigmer', '/var/lib/stigmer', '/home/alice/stigmer', '/srv/bob/stigmer'):
        assert refused_location(allowed, homes) is None, allowed


def test_check_locations_names_each_variable_and_value():
    with pytest.raises(PlanError) as info:
        check_locations([('stigmer_prefix', '/usr/local'), ('stigmer_state_dir', '/home/alice')],
                        homes={'/home/alice'})
    msg = str(info.value)
    assert msg.startswith('Refused before touching anything: ')
    assert 'stigmer_prefix=/usr/local (it is a system directory)' in msg
    assert "stigmer_state_dir=/home/alice (it is a user's home directory)" in msg
    assert check_locations([('stigmer_prefix', '/opt/stigmer'), ('stigmer_state_dir', '/var/lib/stigmer')],
                           homes=set()) is None


def test_other_homes_leaves_out_the_service_account():
    me = pwd.getpwuid(UID)
    shared = [e for e in pwd.getpwall() if e.pw_dir == me.pw_dir and e.pw_name != me.pw_name]
    if me.pw_dir in ('', '/') or shared:
        pytest.skip('the current account has no home of its own')
    assert os.path.normpath(me.pw_dir) in other_homes()
    assert os.path.normpath(me.pw_dir) not in other_homes(me.pw_name)


# ---------------------------------------------------------------------------------- decisions

def test_stale_reason():
    assert START_SLACK == 1.0
    assert stale_reason(100.0, {'/opt/s/current': 101.5, '/etc/s/a.env': 90.0}) == 'started before /opt/s/current changed'
    assert stale_reason(100.0, {'/b': 102.0, '/a': 103.0}) == 'started before /a, /b changed'
    assert stale_reason(100.0, {'/opt/s/current': 100.0 + START_SLACK}, START_SLACK) is None   # within the slack
    assert stale_reason(100.0, {'/opt/s/current': 100.9, '/missing': None}, START_SLACK) is None  # absent paths ignored
    assert stale_reason(None, {'/opt/s/current': 5000.0}) is None                   # not running
    # Without slack (Linux: start times exact to the clock tick) any later change counts, an equal one does not.
    assert stale_reason(100.0, {'/opt/s/current': 100.01}) == 'started before /opt/s/current changed'
    assert stale_reason(100.0, {'/opt/s/current': 100.0, '/missing': None}) is None


def test_start_slack_is_for_launchd_only():
    assert _runtime.start_slack('launchd') == START_SLACK
    assert _runtime.start_slack('systemd') == 0.0 and _runtime.start_slack('none') == 0.0
    assert _runtime.stale_paths(100.0, {'/b': 100.5, '/a': 100.2, '/c': 99.0}) == ['/a', '/b']
    assert _runtime.stale_paths(100.0, {'/b': 100.5, '/a': 100.2}, _runtime.start_slack('launchd')) == []


def wanted(sha=None, archive=True, members=None):
    return [{'name': 'cli.tar.gz', 'archive': archive, 'dest': None, 'members': members, 'sha256': sha},
            {'name': 'runner', 'archive': False, 'dest': 'agent-runner', 'members': None, 'sha256': None}]


def recorded(sha='ab' * 32, archive=True, members=None):
    return {'cli.tar.gz': {'name': 'cli.tar.gz', 'sha256': sha, 'archive': archive, 'members': members},
            'runner': {'name': 'runner', 'sha256': 'cd' * 32, 'archive': False, 'members': None}}


def test_source_problem():
    assert source_problem(wanted(), recorded()) is None
    assert source_problem(wanted(sha='AB' * 32), recorded()) is None                 # case does not matter
    # A pin written the way stigmer_checksums accepts it matches the same install (no reinstall each run).
    assert source_problem(wanted(sha='sha256:' + 'ab' * 32), recorded()) is None
    with pytest.raises(PlanError, match='checksum given for cli.tar.gz is not usable'):
        source_problem(wanted(sha='md5:' + 'ab' * 16), recorded())
    assert source_problem(wanted(sha='ef' * 32), recorded()) == \
        'cli.tar.gz has another SHA256 than the release publishes'
    assert source_problem(wanted(archive=False), recorded()) == 'cli.tar.gz was unpacked differently'
    assert source_problem(wanted(members=['stigmer']), recorded()) == 'cli.tar.gz was unpacked differently'
    assert source_problem(wanted(members=['stigmer']), recorded(members=['stigmer'])) is None
    other = dict(recorded(), **{'runner-arm64': {}})
    del other['runner']
    assert source_problem(wanted(), other) == 'it was built from other artifacts (cli.tar.gz, runner-arm64)'
    assert source_problem(wanted(), {}) == 'its manifest lists no artifacts'


def test_recorded_path_problem():
    record = {'prefix': '/opt/stigmer', 'state_dir': '/var/lib/stigmer'}
    for ok in ('/opt/stigmer', '/opt/stigmer/current', '/var/lib/stigmer/.stigmer/bin', '/usr/local/bin/stigmer',
               '/etc/stigmer', '/etc/stigmer/server.env'):
        assert recorded_path_problem(ok, record) is None, ok
    for bad in ('/opt/stigmer-other/x', '/usr/local/bin', '/var/lib', '/root/.ssh'):
        assert recorded_path_problem(bad, record, homes={'/root'}) in (
            'it lies outside the prefix and the state directory and is not named stigmer',
            'it is a system directory', "it is a user's home directory"), bad
    assert recorded_path_problem('/opt/stigmer-other/x', record) == \
        'it lies outside the prefix and the state directory and is not named stigmer'
    for bad in ('opt/stigmer/x', '/opt/stigmer/../../etc', '/opt/stigmer/', None):
        assert recorded_path_problem(bad, record) == 'it is not a normalised absolute path', bad
    assert recorded_path_problem('/var/lib/stigmer/x', {'prefix': '/opt/stigmer', 'state_dir': None}) is not None


def test_diff_text_is_sorted_and_stable():
    assert diff_text({'b': 'x', 'a': {'z': 1, 'y': 'v2'}, 'c': {}}) == 'a:\n    y: v2\n    z: 1\nb: x\nc:\n'


# ---------------------------------------------------------------------------------- ensure_directory

def test_ensure_directory_creates_with_mode(tmp_path):
    path = str(tmp_path / 'd')
    changes = Changes(False)
    ensure_directory(path, UID, GID, 0o750, True, changes)
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and mode(path) == 0o750 and (st.st_uid, st.st_gid) == (UID, GID)
    assert changes.items == ['create directory %s' % path] and changes.paths == {path}
    again = Changes(False)
    ensure_directory(path, UID, GID, 0o750, True, again)
    assert again.items == []


def test_ensure_directory_own_fixes_mode_and_owner(tmp_path):
    path = tmp_path / 'd'
    path.mkdir()
    path.chmod(0o777)
    if ROOT:
        os.chown(str(path), 12345, 12345)
    changes = Changes(False)
    ensure_directory(str(path), UID, GID, 0o755, True, changes)
    st = os.lstat(str(path))
    assert mode(path) == 0o755 and (st.st_uid, st.st_gid) == (UID, GID)
    assert len(changes.items) == 1 and changes.items[0].startswith('set %s to %d:%d mode 755 (was ' % (path, UID, GID))
    assert changes.items[0].endswith('mode 777)')


def test_ensure_directory_shared_keeps_an_existing_directory(tmp_path):
    path = tmp_path / 'bin'
    path.mkdir()
    path.chmod(0o775)
    changes = Changes(False)
    ensure_directory(str(path), UID, GID, 0o755, False, changes)
    assert mode(path) == 0o775 and changes.items == []


def test_ensure_directory_shared_accepts_a_link_to_a_directory_but_not_a_file(tmp_path):
    real = tmp_path / 'real'
    real.mkdir()
    (tmp_path / 'bin').symlink_to(real)
    changes = Changes(False)
    ensure_directory(str(tmp_path / 'bin'), UID, GID, 0o755, False, changes)
    assert changes.items == [] and os.path.islink(str(tmp_path / 'bin'))
    (tmp_path / 'file').write_text('x')
    (tmp_path / 'dangling').symlink_to(tmp_path / 'nowhere')
    for name in ('file', 'dangling'):
        with pytest.raises(PlanError, match='is not a directory; move it away'):
            ensure_directory(str(tmp_path / name), UID, GID, 0o755, False, Changes(False))
    assert (tmp_path / 'file').read_text() == 'x'


def test_ensure_directory_replaces_a_link_without_touching_its_target(tmp_path):
    target = outside(tmp_path)
    path = tmp_path / 'prefix'
    path.symlink_to(target)
    changes = Changes(False)
    ensure_directory(str(path), UID, GID, 0o755, True, changes)
    assert not os.path.islink(str(path)) and os.path.isdir(str(path)) and os.listdir(str(path)) == []
    assert mode(path) == 0o755
    assert intact(target)
    assert changes.items == ['replace %s (a link) with a directory' % path, 'create directory %s' % path]


def test_ensure_directory_replaces_a_file(tmp_path):
    path = tmp_path / 'prefix'
    path.write_text('x')
    changes = Changes(False)
    ensure_directory(str(path), UID, GID, 0o755, True, changes)
    assert os.path.isdir(str(path))
    assert changes.items[0] == 'replace %s (a file) with a directory' % path


def test_ensure_directory_check_mode_changes_nothing(tmp_path):
    target = outside(tmp_path)
    (tmp_path / 'link').symlink_to(target)
    loose = tmp_path / 'loose'
    loose.mkdir()
    loose.chmod(0o777)
    changes = Changes(True)
    ensure_directory(str(tmp_path / 'new'), UID, GID, 0o755, True, changes)
    ensure_directory(str(tmp_path / 'link'), UID, GID, 0o755, True, changes)
    ensure_directory(str(loose), UID, GID, 0o755, True, changes)
    assert len(changes.items) == 3
    assert changes.items[0] == 'create directory %s' % (tmp_path / 'new')
    assert changes.items[1] == 'replace %s (a link) with a directory' % (tmp_path / 'link')
    assert changes.items[2].startswith('set %s to ' % loose)
    assert not os.path.lexists(str(tmp_path / 'new'))
    assert os.path.islink(str(tmp_path / 'link')) and intact(target)
    assert mode(loose) == 0o777


# ---------------------------------------------------------------------------------- ensure_link

def test_ensure_link_creates_and_is_idempotent(tmp_path):
    path, target = str(tmp_path / 'stigmer'), '/opt/stigmer/current/bin/stigmer'
    changes = Changes(False)
    ensure_link(path, target, UID, GID, changes)
    assert os.readlink(path) == target and os.lstat(path).st_uid == UID
    assert changes.items == ['link %s -> %s' % (path, target)] and changes.paths == {path}
    again = Changes(False)
    ensure_link(path, target, UID, GID, again)
    assert again.items == []
    ensure_link(path, '/elsewhere', UID, GID, again)
    assert os.readlink(path) == '/elsewhere' and again.items == ['link %s -> /elsewhere' % path]


def test_ensure_link_replaces_a_directory_without_following_links_inside(tmp_path):
    target = outside(tmp_path)
    planted = tmp_path / 'stigmer'
    planted.mkdir()
    (planted / 'escape').symlink_to(target)
    (planted / 'file').write_text('planted')
    changes = Changes(False)
    ensure_link(str(planted), '/opt/stigmer/current/bin/stigmer', UID, GID, changes)
    assert os.readlink(str(planted)) == '/opt/stigmer/current/bin/stigmer'
    assert intact(target)
    assert len(changes.items) == 1


def test_ensure_link_replaces_a_file(tmp_path):
    path = tmp_path / 'stigmer'
    path.write_text('old binary')
    ensure_link(str(path), '/t', UID, GID, Changes(False))
    assert os.readlink(str(path)) == '/t'


def test_ensure_link_check_mode(tmp_path):
    planted = tmp_path / 'stigmer'
    planted.mkdir()
    changes = Changes(True)
    ensure_link(str(tmp_path / 'new'), '/t', UID, GID, changes)
    ensure_link(str(planted), '/t', UID, GID, changes)
    assert changes.items == ['link %s -> /t' % (tmp_path / 'new'), 'link %s -> /t' % planted]
    assert not os.path.lexists(str(tmp_path / 'new')) and os.path.isdir(str(planted))


# ---------------------------------------------------------------------------------- files

def test_ensure_file_writes_with_mode_and_is_idempotent(tmp_path):
    path = str(tmp_path / 'server.env')
    changes = Changes(False)
    assert ensure_file(path, 'A=1\n', UID, GID, 0o640, changes) is True
    assert open(path, 'rb').read() == b'A=1\n' and mode(path) == 0o640
    assert changes.items == ['write %s' % path] and changes.paths == {path}
    assert [n for n in os.listdir(str(tmp_path)) if n != 'server.env'] == []  # no temp file left
    again = Changes(False)
    assert ensure_file(path, b'A=1\n', UID, GID, 0o640, again) is False and again.items == []
    os.chmod(path, 0o644)
    assert ensure_file(path, 'A=1\n', UID, GID, 0o640, again) is True and mode(path) == 0o640
    assert ensure_file(path, 'A=2\n', UID, GID, 0o640, again) is True and open(path).read() == 'A=2\n'
    assert again.items == ['write %s' % path] * 2


def test_ensure_file_replaces_a_link_and_leaves_its_target(tmp_path):
    target = outside(tmp_path)
    path = tmp_path / 'server.env'
    path.symlink_to(target / 'keep')
    assert ensure_file(str(path), 'A=1\n', UID, GID, 0o640, Changes(False)) is True
    assert not os.path.islink(str(path)) and path.read_text() == 'A=1\n'
    assert intact(target)


def test_ensure_file_check_mode(tmp_path):
    path = tmp_path / 'server.env'
    changes = Changes(True)
    assert ensure_file(str(path), 'A=1\n', UID, GID, 0o640, changes) is True
    assert changes.items == ['write %s' % path] and not os.path.lexists(str(path))


def test_a_temp_file_left_by_a_killed_write_is_removed_even_when_the_file_is_current(tmp_path):
    # A SIGKILL between mkstemp and rename leaves the keys the file was about to hold.
    path = str(tmp_path / 'agent-runner.env')
    ensure_file(path, 'KEY=new\n', UID, GID, 0o640, Changes(False))
    leftover = tmp_path / '.agent-runner.env.tmp-k1ll3d00'
    leftover.write_text('KEY=old\n')
    (tmp_path / '.other.env.tmp-k1ll3d00').write_text('not ours to judge here\n')
    checked = Changes(True)
    assert ensure_file(path, 'KEY=new\n', UID, GID, 0o640, checked) is False
    assert checked.items == ['remove %s (left by an interrupted run)' % leftover] and leftover.exists()
    assert checked.paths == set()  # the file itself is unchanged: nothing restarts over it
    changes = Changes(False)
    assert ensure_file(path, 'KEY=new\n', UID, GID, 0o640, changes) is False
    assert changes.items == checked.items and not leftover.exists()
    assert sorted(os.listdir(str(tmp_path))) == ['.other.env.tmp-k1ll3d00', 'agent-runner.env']


def test_read_nofollow(tmp_path):
    target = outside(tmp_path)
    (tmp_path / 'link').symlink_to(target / 'keep')
    os.mkfifo(str(tmp_path / 'fifo'))
    (tmp_path / 'file').write_bytes(b'data')
    assert read_nofollow(str(tmp_path / 'link')) == (None, None)
    assert read_nofollow(str(tmp_path / 'fifo')) == (None, None)      # does not block
    assert read_nofollow(str(tmp_path / 'missing')) == (None, None)
    assert read_nofollow(str(target)) == (None, None)                # a directory
    data, st = read_nofollow(str(tmp_path / 'file'))
    assert data == b'data' and stat.S_ISREG(st.st_mode)


def test_remove_entry_never_follows_links(tmp_path):
    target = outside(tmp_path)
    link = tmp_path / 'link'
    link.symlink_to(target)
    assert remove_entry(str(link)) is True
    assert not os.path.lexists(str(link)) and intact(target)

    tree = tmp_path / 'tree'
    (tree / 'sub').mkdir(parents=True)
    (tree / 'sub' / 'escape').symlink_to(target)
    (tree / 'escape-file').symlink_to(target / 'keep')
    assert remove_entry(str(tree)) is True
    assert not os.path.lexists(str(tree)) and intact(target)
    assert remove_entry(str(tree)) is False


# ---------------------------------------------------------------------------------- unsafe_ancestor

def fake_os(stats):
    """The os module with stat answering from stats (path -> (uid, mode)); other paths do not exist."""
    def fake_stat(path):
        if path not in stats:
            raise FileNotFoundError(path)
        uid, perm = stats[path]
        return types.SimpleNamespace(st_uid=uid, st_mode=stat.S_IFDIR | perm)
    proxy = types.SimpleNamespace(**dict((k, getattr(os, k)) for k in dir(os) if not k.startswith('__')))
    proxy.stat = fake_stat
    return proxy


def test_unsafe_ancestor_decisions(monkeypatch):
    monkeypatch.setattr(_host, 'os', fake_os({
        '/': (0, 0o755), '/opt': (0, 0o755), '/opt/shared': (0, 0o777), '/opt/sticky': (0, 0o1777),
        '/opt/group': (0, 0o775), '/opt/alice': (1000, 0o755), '/opt/safe': (0, 0o755)}))
    assert unsafe_ancestor('/opt/safe/stigmer/versions') is None
    assert unsafe_ancestor('/opt/shared/stigmer') == '/opt/shared (owner uid 0, mode 777)'
    assert unsafe_ancestor('/opt/sticky/stigmer') == '/opt/sticky (owner uid 0, mode 1777)'
    assert unsafe_ancestor('/opt/group/stigmer') == '/opt/group (owner uid 0, mode 775)'
    assert unsafe_ancestor('/opt/alice/stigmer') == '/opt/alice (owner uid 1000, mode 755)'
    # The path itself is not an ancestor; a missing ancestor ends the walk (it will be created root's).
    assert unsafe_ancestor('/opt/shared') is None
    assert unsafe_ancestor('/opt/new/deeper/stigmer') is None


def test_unsafe_ancestor_on_this_host(tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir()
    shared.chmod(0o777)
    path = str(shared / 'stigmer' / 'versions')
    found = unsafe_ancestor(path)
    # Some ancestor is reported: the 0777 directory, or one above it (/tmp is 1777, or not root's).
    assert found is not None
    named = found.split(' (owner uid ')[0]
    assert str(shared) == named or str(shared).startswith(named.rstrip('/') + '/')
    ancestors = [str(tmp_path)] + [str(a) for a in tmp_path.parents]
    if not ROOT or any(os.stat(a).st_uid != 0 or os.stat(a).st_mode & 0o022 for a in ancestors):
        pytest.skip('the temporary directory lies below a directory others can change')
    assert found == '%s (owner uid 0, mode 777)' % shared


def test_a_shared_directory_is_not_checked_for_its_ancestors_an_own_one_is(monkeypatch):
    """The bin link's directory (shared) may lie below a directory others can change; what the install
    owns may not."""
    monkeypatch.setattr(_host, 'os', fake_os({
        '/': (0, 0o755), '/opt': (0, 0o755), '/usr': (0, 0o755), '/usr/local': (501, 0o775),
        '/usr/local/bin': (501, 0o775)}))
    planned = [{'path': '/opt/stigmer', 'own': True}, {'path': '/opt/stigmer/versions', 'own': True},
               {'path': '/usr/local/bin', 'own': False}]
    assert unsafe_directory(planned) is None
    assert unsafe_directory(planned + [{'path': '/usr/local/etc/stigmer', 'own': True}]) == (
        '/usr/local/etc/stigmer', '/usr/local (owner uid 501, mode 775)')
    # Below a directory the install owns, the owner vouches for it.
    monkeypatch.setattr(_host, 'os', fake_os({'/': (0, 0o755), '/opt': (0, 0o755), '/opt/stigmer': (501, 0o777)}))
    assert unsafe_directory(planned[:2]) is None


# ---------------------------------------------------------------------------------- macOS layouts

ADMIN = (501, 80)   # the Mac's first user, group admin: who Homebrew gives its directories to
MAC_DIRS = {'': 0o755, 'private': 0o755, 'private/etc': 0o755, 'private/var': 0o755, 'private/tmp': 0o1777,
            'usr': 0o755, 'opt': 0o755, 'Library': 0o755, 'Library/LaunchDaemons': 0o755}
# What Homebrew leaves: on Apple silicon its own /opt/homebrew (no /usr/local at all on a fresh Mac); on
# Intel /usr/local/{bin,etc,var} group-writable for the admin, and /usr/local too on older installs.
HOMEBREW = {
    'apple-silicon': {'opt/homebrew': 0o775, 'opt/homebrew/bin': 0o775, 'opt/homebrew/etc': 0o775},
    'intel': {'usr/local': None, 'usr/local/bin': 0o775, 'usr/local/etc': 0o775, 'usr/local/var': 0o775},
    'intel-legacy': {'usr/local': 0o775, 'usr/local/bin': 0o775, 'usr/local/etc': 0o775, 'usr/local/var': 0o775},
}


def mac_tree(base, homebrew):
    """A Mac's / below base as the role meets it (run as root: the admin's directories are chowned).
    /etc, /var and /tmp are links into /private, as on every Mac; a mode None is a root-owned 0755."""
    for rel, perm in sorted(list(MAC_DIRS.items()) + list(HOMEBREW[homebrew].items())):
        path = os.path.join(str(base), rel)
        os.makedirs(path, exist_ok=True)
        os.chown(path, *(ADMIN if perm is not None and rel not in MAC_DIRS else (0, 0)))
        os.chmod(path, 0o755 if perm is None else perm)
    for name in ('etc', 'var', 'tmp'):
        os.symlink('private/' + name, os.path.join(str(base), name))
    return str(base)


MACS = [('darwin-arm64', 'apple-silicon'), ('darwin-amd64', 'intel'), ('darwin-amd64', 'intel-legacy')]


@pytest.mark.skipif(not ROOT, reason='giving directories to the admin takes root')
@pytest.mark.parametrize('platform, homebrew', MACS)
def test_the_macos_defaults_are_root_only_on_every_mac(tmp_path, platform, homebrew):
    """The darwin defaults pass the checks a run makes before any change, with Homebrew on either Mac."""
    root = mac_tree(tmp_path / 'mac', homebrew)
    host = build_plan(platform).host()
    assert unsafe_directory(host['directories'], root) is None
    check_locations([('stigmer_prefix', host['prefix']), ('stigmer_state_dir', host['account']['home'])],
                    'stigmer', homes=set())
    for comp in host['components']:
        assert unsafe_ancestor(comp['path'], root) is None      # /Library/LaunchDaemons
    if homebrew == 'intel-legacy':
        # Only because the bin link's directory is shared and not checked: /usr/local is the admin's.
        assert unsafe_ancestor('/usr/local/bin/stigmer', root) == '/usr/local (owner uid 501, mode 775)'


@pytest.mark.skipif(not ROOT, reason='giving directories to the admin takes root')
@pytest.mark.parametrize('homebrew, refused', [
    ('apple-silicon', None),
    ('intel', '/usr/local/etc (owner uid 501, mode 775)'),
    ('intel-legacy', '/usr/local (owner uid 501, mode 775)')])
def test_the_earlier_macos_defaults_were_refused_under_homebrew_on_intel(tmp_path, homebrew, refused):
    """Why the defaults moved: configuration and state in /usr/local/etc and /usr/local/var stopped every run
    on an Intel Mac with Homebrew, and passed where nothing had taken /usr/local (hosts installed so). Their
    configuration directory can go (Runtime.retired) unless /usr/local itself is the admin's."""
    root = mac_tree(tmp_path / 'mac', homebrew)
    earlier = [{'path': '/usr/local/etc/stigmer', 'own': True}, {'path': '/usr/local/var/stigmer', 'own': True}]
    found = unsafe_directory(earlier, root)
    assert (found and found[1]) == refused
    retired = build_plan('darwin-amd64').host()['retired']
    assert retired == ['/usr/local/etc/stigmer']
    assert unsafe_ancestor(os.path.dirname(retired[0]), root) == (refused if homebrew == 'intel-legacy' else None)


# ---------------------------------------------------------------------------------- lock, processes

def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    with Lock(str(tmp_path), 0) as held:
        assert held.path == str(tmp_path / '.lock')
        with pytest.raises(PlanError) as info:
            Lock(str(tmp_path), 0).__enter__()
        msg = str(info.value)
        assert 'lock %s' % held.path in msg and '(pid %d)' % os.getpid() in msg
    with Lock(str(tmp_path), 0) as again:
        assert open(again.path).read() == str(os.getpid())


def test_a_lock_file_hard_linked_to_another_file_is_replaced_and_its_target_kept(tmp_path):
    # Possible where the prefix was writable before the first run: the pid would overwrite the target.
    target = outside(tmp_path) / 'keep'
    before = target.read_bytes()
    os.link(str(target), str(tmp_path / '.lock'))
    with Lock(str(tmp_path), 0) as held:
        st = os.lstat(held.path)
        assert st.st_nlink == 1 and open(held.path).read() == str(os.getpid())
    assert target.read_bytes() == before and os.stat(str(target)).st_nlink == 1


@pytest.mark.skipif(not ROOT, reason='making a file of another owner needs root')
def test_a_lock_file_of_another_owner_is_replaced(tmp_path):
    lock = tmp_path / '.lock'
    lock.write_text('4242')
    os.chown(str(lock), 65534, 65534)
    with Lock(str(tmp_path), 0) as held:
        assert os.lstat(held.path).st_uid == 0 and open(held.path).read() == str(os.getpid())


def test_a_directory_where_the_lock_file_belongs_is_refused_and_kept(tmp_path):
    (tmp_path / '.lock').mkdir()
    with pytest.raises(PlanError, match='is a directory'):
        Lock(str(tmp_path), 0).__enter__()
    assert (tmp_path / '.lock').is_dir()


def test_process_start():
    now = time.time()
    started = process_start(os.getpid())
    assert started is not None and now - 86400 * 365 < started <= time.time()
    assert process_start(0) is None
    assert process_start(None) is None


def test_process_start_falls_back_to_ps():
    pid = 2 ** 31 - 2
    if os.path.exists('/proc/%d' % pid):
        pytest.skip('pid %d exists' % pid)
    calls = []

    def run(argv, environ_update=None):
        calls.append((argv, environ_update))
        return 0, 'Tue Jan  6 10:00:03 2026\n', ''
    assert process_start(pid, run) == time.mktime((2026, 1, 6, 10, 0, 3, 0, 0, -1))
    assert calls == [(['ps', '-o', 'lstart=', '-p', str(pid)], {'LC_ALL': 'C'})]
    assert process_start(pid) is None
    assert process_start(pid, lambda argv, environ_update=None: (1, '', 'no such process')) is None
    assert process_start(pid, lambda argv, environ_update=None: (0, 'garbage', '')) is None


# ---------------------------------------------------------------------------------- a whole plan

def script(body):
    return ('#!/bin/sh\n%s\n' % body).encode()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def artifacts(tmp_path, tag, cli=None):
    """A CLI tarball and a raw agent-runner for tag, as the role would hand them over."""
    cache = tmp_path / 'cache' / tag
    cache.mkdir(parents=True)
    cli = script('echo "Usage: stigmer %s"' % tag) if cli is None else cli
    tar = cache / (TAR % tag)
    with tarfile.open(str(tar), 'w:gz') as archive:
        for name, data, perm in (('stigmer', cli, 0o755), ('README.md', b'read me\n', 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), perm
            archive.addfile(info, io.BytesIO(data))
    runner = cache / (RUNNER % tag)
    runner.write_bytes(script('echo agent-runner %s' % tag))
    return dict((p.name, {'name': p.name, 'path': str(p), 'sha256': sha(p.read_bytes())}) for p in (tar, runner))


def make_plan(tmp_path, tag='v0.0.7', **overrides):
    prefix = tmp_path / 'prefix'
    plan = {
        'platform': None, 'service_manager': 'none', 'system': False, 'owner': OWNER, 'group': GROUP, 'keep': 2,
        'lock_timeout': 5, 'prefix': str(prefix), 'record': str(prefix / 'install-record.json'), 'account': None,
        'trees': [{'name': 'stigmer', 'root': str(prefix / 'versions'), 'link': str(prefix / 'current'),
                   'version': tag,
                   'sources': [{'name': TAR % tag, 'archive': True, 'dest': None, 'members': None, 'sha256': None},
                               {'name': RUNNER % tag, 'archive': False, 'dest': 'agent-runner', 'members': None,
                                'sha256': None}],
                   'files': {'share/agent-runner.version': tag + '\n'},
                   'checks': [{'command': 'stigmer', 'args': ['--help']}]}],
        'directories': [{'path': str(prefix), 'own': True}, {'path': str(prefix / 'versions'), 'own': True},
                        {'path': str(tmp_path / 'bin'), 'own': False}],
        'leaves': [], 'links': [{'path': str(tmp_path / 'bin' / 'stigmer'), 'target': str(prefix / 'current/bin/stigmer'),
                                 'shared': True}],
        'remove': [], 'uninstall': [str(tmp_path / 'bin' / 'stigmer')], 'components': [], 'target': None,
    }
    plan.update(overrides)
    return plan


class Recorder(object):
    """run_command that records calls; a plan without services must make none."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        return 0, '', ''


def runtime(plan, run=None, env=None):
    # The checks of staged versions run for real; run fakes the service manager.
    return Runtime(plan, env or {}, run or Recorder(), run_checks=module_host.run_command)


def installed(tmp_path, tag='v0.0.7'):
    """Apply the plan for tag; return (plan, artifacts)."""
    given = artifacts(tmp_path, tag)
    plan = make_plan(tmp_path, tag)
    runtime(plan).apply(given)
    return plan, given


def test_compare_on_an_empty_host(tmp_path):
    plan = make_plan(tmp_path)
    run = Recorder()
    result = runtime(plan, run).compare()
    prefix = plan['prefix']
    assert result['changed'] is True
    assert result['needs'] == sorted([TAR % 'v0.0.7', RUNNER % 'v0.0.7'])
    assert result['versions'] == {'stigmer': 'none'} and result['account_missing'] is False
    assert result['changes'] == [
        'create directory %s' % prefix,
        'create directory %s/versions' % prefix,
        'create directory %s' % (tmp_path / 'bin'),
        'install stigmer v0.0.7 (it is not installed)',
        'link %s -> %s/current/bin/stigmer' % (tmp_path / 'bin' / 'stigmer', prefix),
        'write the install record %s' % plan['record'],
    ]
    assert result['diff']['before'] == 'changes:\nstigmer:\n    version: none\n'
    assert result['diff']['after'].endswith('stigmer:\n    version: v0.0.7\n')
    assert sorted(os.listdir(str(tmp_path))) == []  # nothing was made
    assert run.calls == []


def test_apply_then_compare_finds_nothing_to_do(tmp_path):
    plan = make_plan(tmp_path)
    given = artifacts(tmp_path, 'v0.0.7')
    run = Recorder()
    compared = runtime(plan, run).compare()
    result = runtime(plan, run).apply(given)
    prefix = tmp_path / 'prefix'
    assert result['changed'] is True and result['switched'] == ['stigmer'] and result['previous'] == {}
    assert result['restarted'] == [] and result['versions'] == {'stigmer': 'v0.0.7'}
    assert 'install stigmer v0.0.7 (it is not installed)' in result['changes']
    assert result['changes'] == compared['changes']       # apply did what compare reported, in its words
    assert os.readlink(str(prefix / 'current')) == 'versions/v0.0.7'
    assert sorted(os.listdir(str(prefix / 'versions' / 'v0.0.7' / 'bin'))) == ['agent-runner', 'stigmer']
    assert os.readlink(str(tmp_path / 'bin' / 'stigmer')) == str(prefix / 'current/bin/stigmer')
    assert mode(prefix) == 0o755 and mode(prefix / 'versions') == 0o755
    with open(plan['record']) as handle:
        assert json.load(handle) == {
            'format': 1, 'prefix': str(prefix), 'state_dir': None, 'account': None, 'service_manager': 'none',
            'units': [], 'remove': [str(tmp_path / 'bin' / 'stigmer')], 'shared': [str(tmp_path / 'bin' / 'stigmer')],
            'versions': {'stigmer': 'v0.0.7'}}
    assert mode(plan['record']) == 0o644

    result = runtime(plan, run).compare()
    assert result['changes'] == [] and result['needs'] == [] and result['changed'] is False
    assert result['versions'] == {'stigmer': 'v0.0.7'}
    again = runtime(plan, run).apply(given)
    assert again['changed'] is False and again['changes'] == [] and again['switched'] == []
    assert run.calls == []


@pytest.mark.parametrize('tamper, reason', [
    (lambda vdir: os.chmod(os.path.join(vdir, 'bin', 'stigmer'), 0o775), 'bin/stigmer has mode 775 instead of 755'),
    (lambda vdir: open(os.path.join(vdir, 'bin', 'agent-runner'), 'ab').write(b'# swapped\n'),
     'bin/agent-runner does not match its recorded sha256'),
])
def test_a_tampered_install_is_installed_again(tmp_path, tamper, reason):
    plan, given = installed(tmp_path)
    tamper(os.path.join(plan['trees'][0]['root'], 'v0.0.7'))
    result = runtime(plan).compare()
    assert result['changes'] == ['install stigmer v0.0.7 (%s)' % reason]
    assert result['needs'] == sorted(given)
    result = runtime(plan).apply(given)
    assert result['changes'] == ['install stigmer v0.0.7 (%s)' % reason]
    assert runtime(plan).compare()['changes'] == []


def test_a_pinned_sha256_that_differs_from_the_install(tmp_path):
    plan, given = installed(tmp_path)
    plan['trees'][0]['sources'][0]['sha256'] = 'ab' * 32
    assert runtime(plan).compare()['changes'] == [
        'install stigmer v0.0.7 (%s has another SHA256 than the release publishes)' % (TAR % 'v0.0.7')]
    expected = 'was verified as %s, but the plan expects %s' % (given[TAR % 'v0.0.7']['sha256'], 'ab' * 32)
    with pytest.raises(PlanError, match=expected):
        runtime(plan).apply(given)


def test_apply_without_a_needed_artifact(tmp_path):
    plan = make_plan(tmp_path)
    given = artifacts(tmp_path, 'v0.0.7')
    del given[RUNNER % 'v0.0.7']
    with pytest.raises(PlanError) as info:
        runtime(plan).apply(given)
    assert str(info.value) == ('stigmer v0.0.7 must be installed (it is not installed) but its artifact %s '
                               'was not provided' % (RUNNER % 'v0.0.7'))
    assert not os.path.lexists(plan['trees'][0]['link'])
    assert not os.path.exists(os.path.join(plan['trees'][0]['root'], 'v0.0.7'))


def test_upgrade_then_rollback_without_a_service_manager(tmp_path):
    installed(tmp_path, 'v0.0.6')
    plan = make_plan(tmp_path, 'v0.0.7')
    compared = runtime(plan).compare()
    assert compared['versions'] == {'stigmer': 'v0.0.6'}
    assert 'install stigmer v0.0.7 (it is not installed)' in compared['changes']
    run = Recorder()
    result = runtime(plan, run).apply(artifacts(tmp_path, 'v0.0.7'))
    assert result['previous'] == {'stigmer': 'v0.0.6'} and result['switched'] == ['stigmer']
    assert 'switch stigmer from v0.0.6 to v0.0.7' in result['changes']
    link = plan['trees'][0]['link']
    assert os.readlink(link) == 'versions/v0.0.7'

    back = runtime(plan, run).rollback(result['previous'])
    assert os.readlink(link) == 'versions/v0.0.6'
    record = 'write the install record %s' % plan['record']
    assert back == {'changed': True, 'changes': ['switch stigmer back to v0.0.6', record],
                    'versions': {'stigmer': 'v0.0.6'}}
    with open(plan['record']) as handle:
        assert json.load(handle)['versions'] == {'stigmer': 'v0.0.6'}   # what is installed now
    assert run.calls == []
    # The plan still asks for v0.0.7, which is intact: only the switch (and its record) is left to do.
    assert runtime(plan).compare()['changes'] == ['switch stigmer from v0.0.6 to v0.0.7', record]


def test_rollback_to_a_version_that_is_gone(tmp_path):
    plan, dummy = installed(tmp_path)
    with pytest.raises(PlanError, match='Cannot roll stigmer back: v0.0.1 is no longer installed under '):
        runtime(plan).rollback({'stigmer': 'v0.0.1'})
    assert os.readlink(plan['trees'][0]['link']) == 'versions/v0.0.7'


def test_apply_waits_for_the_lock(tmp_path):
    plan, given = installed(tmp_path)
    plan['lock_timeout'] = 0
    with Lock(plan['prefix'], 0):
        with pytest.raises(PlanError, match='holds the lock'):
            runtime(plan).apply(given)


def test_compare_removes_nothing_and_apply_removes_what_is_obsolete(tmp_path):
    plan, given = installed(tmp_path)
    old = tmp_path / 'prefix' / 'stigmer.env'
    old.write_text('OLD=1\n')
    plan['remove'] = [str(old)]
    result = runtime(plan).compare()
    assert result['changes'] == ['remove %s' % old]
    assert old.read_text() == 'OLD=1\n'
    assert runtime(plan).apply(given)['changes'] == ['remove %s' % old]
    assert not os.path.lexists(str(old))


def test_a_plan_owner_that_does_not_exist(tmp_path):
    with pytest.raises(PlanError, match="owner 'no-such-stigmer-owner' does not exist"):
        runtime(make_plan(tmp_path, owner='no-such-stigmer-owner'))


def test_system_plan_locations_are_checked_first(tmp_path):
    plan = make_plan(tmp_path, system=True, prefix='/usr/local')
    with pytest.raises(PlanError, match=r'stigmer_prefix=/usr/local \(it is a system directory\)'):
        runtime(plan).compare()
    shared = tmp_path / 'shared'
    shared.mkdir()
    shared.chmod(0o777)
    plan = make_plan(shared, system=True)
    with pytest.raises(PlanError, match='which someone other than root can change'):
        runtime(plan).apply({})
    assert os.listdir(str(shared)) == []


# ---------------------------------------------------------------------------------- remove_recorded

def test_remove_what_the_record_lists(tmp_path):
    plan, dummy = installed(tmp_path)
    sibling = tmp_path / 'bin' / 'other-tool'
    sibling.write_text('keep me\n')
    target = outside(tmp_path)
    run = Recorder()
    args = {'prefix': plan['prefix'], 'record': plan['record'], 'system': False, 'account': None}

    preview = remove_recorded(args, False, run, check_mode=True, homes=set())
    assert preview['changes'] == ['remove %s' % (tmp_path / 'bin' / 'stigmer'), 'remove %s' % plan['prefix']]
    assert os.path.isdir(plan['prefix']) and os.path.islink(str(tmp_path / 'bin' / 'stigmer'))

    result = remove_recorded(args, False, run, homes=set())
    assert result == dict(preview, changed=True)
    assert not os.path.lexists(plan['prefix']) and not os.path.lexists(str(tmp_path / 'bin' / 'stigmer'))
    assert sibling.read_text() == 'keep me\n' and os.path.isdir(str(tmp_path / 'bin')) and intact(target)
    assert run.calls == []

    again = remove_recorded(args, False, run, homes=set())
    assert again == {'changed': False, 'changes': [],
                     'msg': 'no install record at %s: nothing to remove' % plan['record']}


@pytest.mark.parametrize('plant, described', [
    (lambda path: path.write_text('#!/bin/sh\n'), 'a file, not a link'),
    (lambda path: path.symlink_to('/opt/homebrew/Cellar/stigmer/0.0.5/bin/stigmer'),
     'a link to /opt/homebrew/Cellar/stigmer/0.0.5/bin/stigmer'),
])
def test_a_stigmer_of_another_install_in_the_bin_dir_is_refused_before_any_change(tmp_path, plant, described):
    plan = make_plan(tmp_path)
    (tmp_path / 'bin').mkdir()
    bin_link = tmp_path / 'bin' / 'stigmer'
    plant(bin_link)
    for call in (lambda: runtime(plan).compare(), lambda: runtime(plan).apply(artifacts(tmp_path, 'v0.0.7'))):
        with pytest.raises(PlanError) as info:
            call()
        assert '%s is already there and is not this collection\'s (%s)' % (bin_link, described) in str(info.value)
        assert 'stigmer_bin_dir' in str(info.value)
    assert not os.path.lexists(plan['prefix']) and os.path.lexists(str(bin_link))


def test_an_older_link_of_this_install_in_the_bin_dir_is_replaced(tmp_path):
    plan = make_plan(tmp_path)
    (tmp_path / 'bin').mkdir()
    (tmp_path / 'bin' / 'stigmer').symlink_to(os.path.join(plan['prefix'], 'versions/v0.0.6/bin/stigmer'))
    runtime(plan).apply(artifacts(tmp_path, 'v0.0.7'))
    assert os.readlink(str(tmp_path / 'bin' / 'stigmer')) == os.path.join(plan['prefix'], 'current/bin/stigmer')


@pytest.mark.parametrize('shared_in_record', [True, False])
def test_uninstall_keeps_a_bin_link_another_install_took_over(tmp_path, shared_in_record):
    plan, dummy = installed(tmp_path)
    if not shared_in_record:  # a record written before the key existed: the plan's shared links count
        write_record(plan, shared=None)
    bin_link = tmp_path / 'bin' / 'stigmer'
    bin_link.unlink()
    bin_link.write_text('#!/bin/sh\n# the distribution\'s stigmer\n')
    args = {'prefix': plan['prefix'], 'record': plan['record'], 'system': False, 'account': None, 'links': plan['links']}
    result = remove_recorded(args, False, Recorder(), homes=set())
    assert result['changes'] == ['remove %s' % plan['prefix']]
    assert result['warnings'] == ['kept %s, which another install now owns (a file, not a link)' % bin_link]
    assert 'distribution' in bin_link.read_text() and not os.path.lexists(plan['prefix'])


def write_record(plan, **changes):
    with open(plan['record']) as handle:
        record = json.load(handle)
    record.update(changes)
    with open(plan['record'], 'w') as handle:
        json.dump(record, handle)
    os.chmod(plan['record'], 0o644)


def test_a_tampered_record_removes_nothing(tmp_path):
    plan, dummy = installed(tmp_path)
    target = outside(tmp_path)
    write_record(plan, remove=[str(tmp_path / 'bin' / 'stigmer'), str(target)])
    args = {'prefix': plan['prefix'], 'record': plan['record'], 'system': False, 'account': None}
    with pytest.raises(PlanError) as info:
        remove_recorded(args, False, Recorder(), homes=set())
    assert str(info.value) == ('%s lists %s, which it lies outside the prefix and the state directory and is not '
                               'named stigmer: refusing to remove anything' % (plan['record'], target))
    assert intact(target) and os.path.isdir(plan['prefix'])
    assert os.path.islink(str(tmp_path / 'bin' / 'stigmer'))


def test_a_record_with_a_system_prefix_or_writable_by_others_removes_nothing(tmp_path):
    plan, dummy = installed(tmp_path)
    args = {'prefix': plan['prefix'], 'record': plan['record'], 'system': False, 'account': None}
    write_record(plan, prefix='/usr')
    with pytest.raises(PlanError, match=r'stigmer_prefix=/usr \(it is a system directory\)'):
        remove_recorded(args, False, Recorder(), homes=set())
    write_record(plan, prefix=plan['prefix'])
    os.chmod(plan['record'], 0o666)
    with pytest.raises(PlanError, match='is writable by others: it is not trusted'):
        remove_recorded(args, False, Recorder(), homes=set())
    assert os.path.isdir(plan['prefix']) and os.path.islink(str(tmp_path / 'bin' / 'stigmer'))


def test_remove_refuses_a_system_prefix_before_reading_a_record(tmp_path):
    # The record does not exist: had the location not been refused first, this would report "nothing to remove".
    args = {'prefix': '/usr/local', 'record': str(tmp_path / 'install-record.json'), 'system': True,
            'account': {'user': 'stigmer', 'home': '/var/lib/stigmer'}}
    with pytest.raises(PlanError) as info:
        remove_recorded(args, True, Recorder(), homes=set())
    assert 'stigmer_prefix=/usr/local (it is a system directory)' in str(info.value)
    assert 'stigmer_state_dir=' not in str(info.value)
    args['account'] = {'user': 'stigmer', 'home': '/home/stigmer-admin'}
    with pytest.raises(PlanError, match="stigmer_state_dir=/home/stigmer-admin \\(it is a user's home directory\\)"):
        remove_recorded(dict(args, prefix='/opt/stigmer'), True, Recorder(), homes={'/home/stigmer-admin'})


def test_the_record_names_the_installed_tag_of_each_tree(tmp_path):
    plan = make_plan(tmp_path)
    temporal = dict(plan['trees'][0], name='temporal', version='v1.5.1', root=str(tmp_path / 'prefix/temporal/versions'),
                    link=str(tmp_path / 'prefix/temporal/current'))
    plan['trees'].append(temporal)
    record = runtime(plan).record_data()
    assert record['versions'] == {'stigmer': 'v0.0.7', 'temporal': 'v1.5.1'}
    assert set(record) == {'format', 'prefix', 'state_dir', 'account', 'service_manager', 'units', 'remove', 'shared',
                           'versions'}
    # A rollback records what it switched back to, the other trees keep the plan's tag.
    assert runtime(plan).record_data({'stigmer': 'v0.0.6'})['versions'] == {'stigmer': 'v0.0.6', 'temporal': 'v1.5.1'}


@pytest.fixture
def open_dir():
    """A directory every account can reach (pytest's base directory is its owner's alone)."""
    path = tempfile.mkdtemp(prefix='stigmer-unit-', dir='/tmp')
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.mark.skipif(not ROOT, reason='switching to the service account needs root')
def test_the_checks_of_a_staged_version_run_as_the_service_account(tmp_path, open_dir):
    nobody = pwd.getpwnam('nobody')
    who = '%d:%d:%d' % (nobody.pw_uid, nobody.pw_gid, nobody.pw_gid)
    cli = script('[ "$(id -u):$(id -g):$(id -G)" = %s ] || { echo "ran as $(id)"; exit 9; }\necho Usage' % who)
    given = artifacts(tmp_path, 'v0.0.7', cli=cli)
    account = {'user': 'nobody', 'group': grp.getgrgid(nobody.pw_gid).gr_name, 'home': str(open_dir / 'state')}
    plan = make_plan(open_dir, account=account)
    result = runtime(plan).apply(given)
    assert result['versions'] == {'stigmer': 'v0.0.7'}
    assert os.readlink(str(open_dir / 'prefix' / 'current')) == 'versions/v0.0.7'


# ---------------------------------------------------------------------------------- services: compare is apply

FAKE_PID = 2 ** 31 - 50000   # above any pid_max: never a live process here, so process_start asks ps
DAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')
MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')


def lstart(epoch):
    """`ps -o lstart=` under LC_ALL=C: local time, to the second."""
    t = time.localtime(epoch)
    return '%s %s %2d %02d:%02d:%02d %d\n' % (
        DAYS[t.tm_wday], MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_year)


class FakeProcesses(object):
    """Fake pids with their start times; ps answers for them as macOS does (to the second)."""

    def __init__(self):
        self.calls = []
        self.started = {}
        self.last_pid = FAKE_PID

    def spawn(self, at=None):
        self.last_pid += 1
        self.started[self.last_pid] = time.time() if at is None else at
        return self.last_pid

    def ps(self, argv):
        pid = int(argv[-1])
        if pid not in self.started:
            return 1, '', ''
        return 0, lstart(self.started[pid]), ''

    def changes(self):
        """The calls that change state (not show, print or ps)."""
        return [c for c in self.calls if c[0] != 'ps' and c[1] not in ('show', 'print')]


class FakeSystemctl(FakeProcesses):
    """systemctl as systemd answers it: unit files are read at daemon-reload, start needs a loaded unit."""

    def __init__(self, plan):
        FakeProcesses.__init__(self)
        self.paths = dict((c['unit'], c['path']) for c in plan['components'] + [plan['target']])
        self.loaded = {}     # unit -> the file's content at the last daemon-reload
        self.enabled = set()
        self.pids = {}       # running unit -> pid ('' for the target)

    def on_disk(self, unit):
        try:
            with open(self.paths[unit], 'rb') as handle:
                return handle.read()
        except (KeyError, FileNotFoundError):
            return None

    def block(self, unit):
        loaded, pid = unit in self.loaded, self.pids.get(unit)
        return ('Id=%s\nLoadState=%s\nActiveState=%s\nSubState=%s\nMainPID=%s\nUnitFileState=%s\nNeedDaemonReload=%s\n'
                % (unit, 'loaded' if loaded else 'not-found', 'active' if pid is not None else 'inactive',
                   'running' if pid is not None else 'dead', pid or 0,
                   'enabled' if unit in self.enabled else ('disabled' if self.on_disk(unit) is not None else ''),
                   'yes' if loaded and self.loaded[unit] != self.on_disk(unit) else 'no'))

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        if argv[0] == 'ps':
            return self.ps(argv)
        assert argv[0] == 'systemctl', argv
        verb, units = argv[1], [a for a in argv[2:] if not a.startswith('--')]
        if verb == 'show':
            return 0, '\n'.join(self.block(u) for u in units), ''
        if verb == 'daemon-reload':
            self.loaded = dict((u, self.on_disk(u)) for u in self.paths if self.on_disk(u) is not None)
        elif verb == 'enable':
            missing = [u for u in units if self.on_disk(u) is None]
            if missing:
                return 1, '', 'Failed to enable unit: Unit file %s does not exist.\n' % missing[0]
            self.enabled.update(units)
        elif verb == 'disable':
            self.enabled.difference_update(units)
            for unit in units if '--now' in argv else []:
                self.pids.pop(unit, None)
        elif verb in ('start', 'restart'):
            missing = [u for u in units if u not in self.loaded]
            if missing:
                return 5, '', 'Failed to %s %s: Unit %s not found.\n' % (verb, missing[0], missing[0])
            for unit in units:
                if verb == 'restart' or unit not in self.pids:
                    self.pids[unit] = '' if unit.endswith('.target') else self.spawn()
        elif verb != 'reset-failed':
            raise AssertionError('unexpected command %r' % (argv,))
        return 0, '', ''

    def process_start(self, pid, run=None):
        """/proc/<pid>/stat: exact (to the clock tick), so no ps and no rounding."""
        return self.started.get(pid)


LC = '/bin/launchctl'


class FakeLaunchctl(FakeProcesses):
    """launchctl in the system domain: a job keeps the plist it was bootstrapped with."""

    def __init__(self):
        FakeProcesses.__init__(self)
        self.jobs = {}   # label -> {'plist', 'path', 'pid'}

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        if argv[0] == 'ps':
            return self.ps(argv)
        assert argv[0] == LC, argv
        verb = argv[1]
        label = argv[-1].split('/', 1)[1] if verb in ('print', 'bootout', 'kickstart', 'enable') else None
        if verb == 'print':
            job = self.jobs.get(label)
            if job is None:
                return 113, 'Could not find service "%s" in domain for system\n' % label, ''
            lines = ['system/%s = {' % label, '\tpath = %s' % job['path'],
                     '\tstate = %s' % ('running' if job['pid'] else 'not running'), '\targuments = {']
            lines += ['\t\t%s' % arg for arg in job['plist']['ProgramArguments']] + ['\t}']
            lines += ['\tpid = %d' % job['pid']] if job['pid'] else []
            return 0, '\n'.join(lines + ['}']) + '\n', ''
        if verb == 'enable':
            return 0, '', ''
        if verb == 'bootstrap':
            st = os.lstat(argv[3])
            with open(argv[3], 'rb') as handle:
                plist = plistlib.load(handle)
            if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o022 or plist['Label'] in self.jobs:
                return 5, '', 'Bootstrap failed: 5: Input/output error\n'
            self.jobs[plist['Label']] = {'plist': plist, 'path': argv[3],
                                         'pid': self.spawn() if plist.get('RunAtLoad') else None}
            return 0, '', ''
        if verb == 'bootout':
            if self.jobs.pop(label, None) is None:
                return 3, '', 'Boot-out failed: 3: No such process\n'
            return 0, '', ''
        if verb == 'kickstart':
            assert argv[2] == '-k'
            if label not in self.jobs:
                return 113, '', 'Could not find service "%s" in domain for system\n' % label
            self.jobs[label]['pid'] = self.spawn()
            return 0, '', ''
        raise AssertionError('unexpected command %r' % (argv,))

    def pids(self):
        return dict((label, job['pid']) for label, job in self.jobs.items())


COMMANDS = (('temporal', ['server', 'start-dev', '--ui-port', '8233']), ('server', ['internal-server']),
            ('agent-runner', []))


def service_plan(tmp_path, manager):
    """make_plan with three components under systemd (and stigmer.target) or launchd."""
    plan = make_plan(tmp_path)
    current = plan['trees'][0]['link']
    units = tmp_path / ('system' if manager == 'systemd' else 'LaunchDaemons')
    state = tmp_path / 'state'
    plan.update(service_manager=manager, account={'user': OWNER, 'group': GROUP, 'home': str(state)},
                leaves=[str(state / 'logs')])
    plan['directories'] += [{'path': str(units), 'own': False}, {'path': str(state), 'own': True}]
    plan['components'] = []
    for name, command in COMMANDS:
        program = ['%s/bin/%s' % (current, 'agent-runner' if name == 'agent-runner' else 'stigmer')] + command
        env = str(tmp_path / 'config' / ('%s.env' % name))
        if manager == 'systemd':
            unit = 'stigmer-%s.service' % name
            path = str(units / unit)
            spec = None
            content = '[Unit]\nPartOf=stigmer.target\n\n[Service]\nEnvironmentFile=%s\nExecStart=%s\n' % (
                env, ' '.join(program))
        else:
            unit = 'io.stigmer.%s' % name
            path = str(units / ('%s.plist' % unit))
            content = None
            spec = {'program_arguments': ['/bin/sh', '-c', '. "$0" && exec "$@"', env] + program,
                    'user_name': OWNER, 'group_name': GROUP, 'working_directory': str(state),
                    'stdout_path': str(state / 'logs' / (name + '.log')),
                    'stderr_path': str(state / 'logs' / (name + '.log')), 'extra': {'ExitTimeOut': 30}}
        plan['components'].append({'name': name, 'enabled': True, 'unit': unit, 'path': path,
                                   'watch': [path, env, current], 'content': content, 'launchd': spec})
    if manager == 'systemd':
        plan['target'] = {'unit': 'stigmer.target', 'path': str(units / 'stigmer.target'),
                          'content': '[Unit]\nWants=%s\n' % ' '.join(c['unit'] for c in plan['components'])}
    return plan


def compare_then_apply(plan, host, given):
    """(compare's result, apply's result, the state-changing commands apply ran); compare ran none."""
    done = len(host.changes())
    compared = runtime(plan, host).compare()
    assert host.changes()[done:] == []
    applied = runtime(plan, host).apply(given)
    assert applied['changes'] == compared['changes']      # the same sentences, in the same order
    return compared, applied, host.changes()[done:]


def fresh_layout(tmp_path, units):
    prefix = tmp_path / 'prefix'
    return ['create directory %s' % prefix, 'create directory %s/versions' % prefix,
            'create directory %s' % (tmp_path / 'bin'), 'create directory %s' % (tmp_path / units),
            'create directory %s' % (tmp_path / 'state'), 'create directory %s' % (tmp_path / 'state' / 'logs'),
            'install stigmer v0.0.7 (it is not installed)',
            'link %s -> %s/current/bin/stigmer' % (tmp_path / 'bin' / 'stigmer', prefix)]


@pytest.fixture
def systemd_host(tmp_path, monkeypatch):
    plan = service_plan(tmp_path, 'systemd')
    host = FakeSystemctl(plan)
    monkeypatch.setattr(_runtime, 'process_start', host.process_start)
    return plan, host


def test_systemd_on_a_fresh_host_compare_is_what_apply_does(tmp_path, systemd_host):
    plan, host = systemd_host
    compared, applied, commands = compare_then_apply(plan, host, artifacts(tmp_path, 'v0.0.7'))
    units = [c['unit'] for c in plan['components']]
    assert compared['changes'] == fresh_layout(tmp_path, 'system') + [
        'write %s' % c['path'] for c in plan['components']] + [
        'write %s' % plan['target']['path'],
        'reload the systemd units (daemon-reload)',
        'enable %s, stigmer.target' % ', '.join(units),
        'start temporal, server, agent-runner',
        'write the install record %s' % plan['record']]
    assert commands == [['systemctl', 'daemon-reload'], ['systemctl', 'enable'] + units + ['stigmer.target'],
                        ['systemctl', 'start', 'stigmer.target'] + units]
    assert applied['restarted'] == ['temporal', 'server', 'agent-runner']
    assert sorted(host.pids) == sorted(units + ['stigmer.target'])
    again = runtime(plan, host).compare()
    assert again['changes'] == [] and host.changes() == commands


def test_a_first_install_that_fails_at_start_is_left_with_nothing_by_uninstall(tmp_path, systemd_host):
    plan, host = systemd_host
    real = host.__call__

    def start_fails(argv, **kwargs):
        if argv[:2] == ['systemctl', 'start']:
            host.calls.append(list(argv))
            return 1, '', 'Job for stigmer-server.service failed.\n'
        return real(argv, **kwargs)

    with pytest.raises(PlanError, match='systemctl start'):
        runtime(plan, start_fails).apply(artifacts(tmp_path, 'v0.0.7'))
    units = [c['unit'] for c in plan['components']]
    assert host.enabled == set(units + ['stigmer.target'])  # enabled, Restart=always: they would come back
    with open(plan['record']) as handle:
        record = json.load(handle)
    assert record['versions'] == {} and record['remove'] == plan['uninstall']
    assert sorted(record['units']) == sorted([c['unit'], c['path']] for c in plan['components'] + [plan['target']])

    args = {'prefix': plan['prefix'], 'record': plan['record'], 'system': False, 'account': None}
    removed = remove_recorded(args, False, host, homes=set())
    assert removed['changed'] and ['systemctl', 'disable', '--now'] + units + ['stigmer.target'] in host.calls
    assert host.enabled == set() and not os.path.lexists(plan['prefix'])
    assert not any(os.path.lexists(c['path']) for c in plan['components'] + [plan['target']])
    assert not os.path.lexists(str(tmp_path / 'bin' / 'stigmer'))


def test_the_provisional_record_keeps_what_the_old_record_listed_until_the_run_ends(tmp_path, systemd_host):
    plan, host = systemd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    # What an older plan installed and this one no longer knows of, listed by the old record.
    gone = ['stigmer-old.service', str(tmp_path / 'system' / 'stigmer-old.service')]
    with open(plan['record']) as handle:
        old = json.load(handle)
    write_record(plan, units=old['units'] + [gone], remove=old['remove'] + [str(tmp_path / 'state' / 'old')])
    plan['components'][1]['content'] += 'Environment=LOG_LEVEL=debug\n'
    real = host.__call__

    def reload_fails(argv, **kwargs):
        if argv[:2] == ['systemctl', 'daemon-reload']:
            return 1, '', 'Failed to reload daemon: Access denied\n'
        return real(argv, **kwargs)

    with pytest.raises(PlanError, match='daemon-reload'):
        runtime(plan, reload_fails).apply(given)
    with open(plan['record']) as handle:
        record = json.load(handle)
    assert gone in record['units'] and str(tmp_path / 'state' / 'old') in record['remove']
    assert record['versions'] == {'stigmer': 'v0.0.7'}
    runtime(plan, host).apply(given)
    with open(plan['record']) as handle:
        assert json.load(handle) == runtime(plan, host).record_data()


def test_a_record_of_an_older_collection_is_rewritten_once_and_reported(tmp_path, systemd_host):
    # The provisional write must not take the final write's place, or apply would report less than compare.
    plan, host = systemd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    with open(plan['record']) as handle:
        current = json.load(handle)
    write_record(plan, shared=None)
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['write the install record %s' % plan['record']] and applied['changed']
    with open(plan['record']) as handle:
        assert json.load(handle) == current
    assert commands == []


def test_systemd_one_unit_change_compare_is_what_apply_does(tmp_path, systemd_host):
    plan, host = systemd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    pids = dict(host.pids)
    server = plan['components'][1]
    server['content'] += 'Environment=LOG_LEVEL=debug\n'
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['write %s' % server['path'], 'reload the systemd units (daemon-reload)',
                                   'restart server (changed in this run: %s)' % server['path']]
    assert commands == [['systemctl', 'daemon-reload'], ['systemctl', 'restart', 'stigmer-server.service']]
    assert applied['restarted'] == ['server']
    assert dict(host.pids, **{'stigmer-server.service': pids['stigmer-server.service']}) == pids
    assert host.pids['stigmer-server.service'] != pids['stigmer-server.service']
    assert runtime(plan, host).compare()['changes'] == []


def test_systemd_a_disabled_component_is_stopped_and_removed(tmp_path, systemd_host):
    plan, host = systemd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    runner = plan['components'][2]
    runner['enabled'] = False
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['stop and remove stigmer-agent-runner.service',
                                   'reload the systemd units (daemon-reload)']
    assert commands == [['systemctl', 'disable', '--now', 'stigmer-agent-runner.service'],
                        ['systemctl', 'daemon-reload']]
    assert not os.path.lexists(runner['path']) and 'stigmer-agent-runner.service' not in host.pids
    assert runtime(plan, host).compare()['changes'] == []


@pytest.fixture
def launchd_host(tmp_path):
    if os.path.exists('/proc/%d' % (FAKE_PID + 1)):
        pytest.skip('pid %d exists' % (FAKE_PID + 1))
    return service_plan(tmp_path, 'launchd'), FakeLaunchctl()


def bootstrap(comp):
    return [[LC, 'enable', 'system/' + comp['unit']], [LC, 'bootstrap', 'system', comp['path']]]


def test_launchd_on_a_fresh_host_compare_is_what_apply_does(tmp_path, launchd_host):
    plan, host = launchd_host
    compared, applied, commands = compare_then_apply(plan, host, artifacts(tmp_path, 'v0.0.7'))
    comps = plan['components']
    assert compared['changes'] == fresh_layout(tmp_path, 'LaunchDaemons') + [
        'write %s' % c['path'] for c in comps] + ['load %s' % c['unit'] for c in comps] + [
        'write the install record %s' % plan['record']]
    assert commands == sum((bootstrap(c) for c in comps), [])
    assert applied['restarted'] == ['temporal', 'server', 'agent-runner']
    for comp in comps:
        assert host.jobs[comp['unit']]['plist'] == launchd.build_plist(comp['unit'], **comp['launchd'])
        assert mode(comp['path']) == 0o644
    assert runtime(plan, host).compare()['changes'] == [] and host.changes() == commands


def test_launchd_a_plist_only_change_is_compared_and_applied_to_its_own_job(tmp_path, launchd_host):
    plan, host = launchd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    pids = host.pids()
    temporal = plan['components'][0]
    temporal['launchd']['program_arguments'][-1] = '8234'      # a new Temporal UI port, nothing else
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['write %s' % temporal['path'],
                                   'reload io.stigmer.temporal (changed in this run: %s)' % temporal['path']]
    assert commands == [[LC, 'bootout', 'system/io.stigmer.temporal']] + bootstrap(temporal)
    assert applied['restarted'] == ['temporal']
    assert host.jobs['io.stigmer.temporal']['plist']['ProgramArguments'][-2:] == ['--ui-port', '8234']
    assert dict(host.pids(), **{'io.stigmer.temporal': pids['io.stigmer.temporal']}) == pids
    assert host.pids()['io.stigmer.temporal'] != pids['io.stigmer.temporal']
    assert runtime(plan, host).compare()['changes'] == []
    # The running state came from launchctl print and ps, as on a Mac.
    assert ['ps', '-o', 'lstart=', '-p', str(pids['io.stigmer.server'])] in host.calls


def test_launchd_a_formatting_only_plist_difference_is_no_change(tmp_path, launchd_host):
    plan, host = launchd_host
    runtime(plan, host).apply(artifacts(tmp_path, 'v0.0.7'))
    path = plan['components'][1]['path']
    with open(path, 'rb') as handle:
        data = plistlib.load(handle)
    with open(path, 'wb') as handle:
        plistlib.dump(data, handle, fmt=plistlib.FMT_BINARY)
    os.chmod(path, 0o644)
    assert runtime(plan, host).compare()['changes'] == []
    os.chmod(path, 0o664)    # launchd refuses a writable plist: rewritten, and the job reloaded from it
    assert runtime(plan, host).compare()['changes'] == [
        'write %s' % path, 'reload io.stigmer.server (changed in this run: %s)' % path]


def backdate(paths, when):
    for path in paths:
        if os.path.lexists(path):
            os.utime(path, (when, when), follow_symlinks=False)


def test_launchd_a_stale_process_is_kickstarted_alone(tmp_path, launchd_host):
    plan, host = launchd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    pids = host.pids()
    server = plan['components'][1]
    started = host.started[pids['io.stigmer.server']] = time.time() - 60
    backdate(server['watch'], started - 60)
    env = server['watch'][1]      # changed after the server started (by hand, or by a run that stopped)
    os.makedirs(os.path.dirname(env))
    with open(env, 'w') as handle:
        handle.write('LOG_LEVEL=debug\n')
    os.utime(env, (started + 30, started + 30))
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['restart server (started before %s changed)' % env]
    assert commands == [[LC, 'kickstart', '-k', 'system/io.stigmer.server']]
    assert dict(host.pids(), **{'io.stigmer.server': pids['io.stigmer.server']}) == pids
    assert runtime(plan, host).compare()['changes'] == []


def test_launchd_a_plist_newer_than_its_process_is_loaded_again(tmp_path, launchd_host):
    # A run wrote the plist and stopped before it reloaded the job: kickstart would restart the old plist.
    plan, host = launchd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    runner = plan['components'][2]
    later = host.started[host.pids()[runner['unit']]] + 5
    os.utime(runner['path'], (later, later))
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['reload %s (started before %s changed)' % (runner['unit'], runner['path'])]
    assert commands == [[LC, 'bootout', 'system/' + runner['unit']]] + bootstrap(runner)


def test_launchd_a_job_that_does_not_run_is_started_and_a_disabled_one_removed(tmp_path, launchd_host):
    plan, host = launchd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    host.jobs['io.stigmer.server']['pid'] = None
    runner = plan['components'][2]
    runner['enabled'] = False
    compared, applied, commands = compare_then_apply(plan, host, given)
    assert compared['changes'] == ['stop and remove io.stigmer.agent-runner', 'start server']
    assert commands == [[LC, 'bootout', 'system/io.stigmer.agent-runner'],
                        [LC, 'kickstart', '-k', 'system/io.stigmer.server']]
    assert not os.path.lexists(runner['path']) and runner['unit'] not in host.jobs
    assert host.jobs['io.stigmer.server']['pid']
    assert runtime(plan, host).compare()['changes'] == []


@pytest.mark.parametrize('manager, offset, restarted', [
    ('systemd', 0.4, True),      # Linux start times are exact: a change 0.4 s after the start is newer
    ('systemd', -0.4, False),
    ('launchd', 0.4, False),     # macOS's are to the second: within the slack
    ('launchd', 1.4, True),
])
def test_start_slack_applies_under_launchd_only(tmp_path, monkeypatch, manager, offset, restarted):
    plan = service_plan(tmp_path, manager)
    host = FakeSystemctl(plan) if manager == 'systemd' else FakeLaunchctl()
    if manager == 'systemd':
        monkeypatch.setattr(_runtime, 'process_start', host.process_start)
    runtime(plan, host).apply(artifacts(tmp_path, 'v0.0.7'))
    server = plan['components'][1]
    pid = host.pids[server['unit']] if manager == 'systemd' else host.pids()[server['unit']]
    start = float(int(time.time()) - 10)   # a whole second, which ps reports as it is
    host.started[pid] = start
    backdate(server['watch'], start - 5)
    env = server['watch'][1]
    os.makedirs(os.path.dirname(env))
    with open(env, 'w') as handle:
        handle.write('A=1\n')
    os.utime(env, (start + offset, start + offset))
    expected = ['restart server (started before %s changed)' % env] if restarted else []
    assert runtime(plan, host).compare()['changes'] == expected


# ---------------------------------------------------------------------------------- the server's network filter

def cgroup_host(tmp_path, roots, capeff):
    cgroup = tmp_path / 'cgroup'
    cgroup.mkdir()
    for root in roots:
        (cgroup / root).mkdir(exist_ok=True)
        (cgroup / root / 'cgroup.controllers').write_text('cpu memory pids\n')
    status = tmp_path / 'status'
    status.write_text('Name:\tsystemd\nCapInh:\t0000000000000000\nCapEff:\t%s\n' % capeff)
    return str(cgroup), str(status)


@pytest.mark.parametrize('roots, capeff, problem', [
    (['.'], '000001ffffffffff', None),                                # unified, a host's systemd
    (['unified'], '000001ffffffffff', None),                          # hybrid: systemd attaches to unified/
    ([], '000001ffffffffff', 'no cgroup2 hierarchy'),                 # cgroup v1 only
    ([], '00000000800405fb', 'no cgroup2 hierarchy (cgroup v1 only), which systemd needs for its BPF firewall; '
                             'and systemd (PID 1) runs without CAP_SYS_ADMIN'),   # a podman container: both
    (['.'], '00000000800405fb', 'without CAP_SYS_ADMIN'),             # podman's default capability set
    (['.'], 'not-hex', 'cannot be read'),
])
def test_ip_filter_problem(tmp_path, roots, capeff, problem):
    found = _runtime.ip_filter_problem(*cgroup_host(tmp_path, roots, capeff))
    assert (found is None) if problem is None else (problem in found)


def test_an_unenforced_filter_stops_the_run_before_any_change_and_names_the_variable(
        tmp_path, systemd_host, monkeypatch):
    plan, host = systemd_host
    plan['network_guard'] = {'port': 7234}
    monkeypatch.setattr(_runtime, 'ip_filter_problem', lambda: 'systemd (PID 1) runs without CAP_SYS_ADMIN')
    for call in (lambda: runtime(plan, host).compare(), lambda: runtime(plan, host).apply(artifacts(tmp_path, 'v0.0.7'))):
        with pytest.raises(PlanError) as info:
            call()
        assert 'port 7234' in str(info.value) and 'without CAP_SYS_ADMIN' in str(info.value)
        assert 'stigmer_server_accept_unfiltered_network=true' in str(info.value)
    assert not os.path.lexists(plan['prefix']) and host.changes() == []
    monkeypatch.setattr(_runtime, 'ip_filter_problem', lambda: None)
    assert runtime(plan, host).compare()['warnings'] == []
    plan['network_guard'] = None  # accepted, or nothing to filter: not even looked at
    monkeypatch.setattr(_runtime, 'ip_filter_problem', lambda: pytest.fail('checked without a guard'))
    assert runtime(plan, host).compare()['warnings'] == []


def test_launchd_warns_on_every_compare_that_the_port_is_open(tmp_path):
    plan = service_plan(tmp_path, 'launchd')
    plan['network_guard'] = {'port': 7234}
    warnings = runtime(plan, FakeLaunchctl()).compare()['warnings']
    assert len(warnings) == 1 and 'port 7234' in warnings[0] and 'stigmer_server_accept_unfiltered_network' in warnings[0]


# ---------------------------------------------------------------------------------- moved defaults: the upgrade

def test_state_left_behind(tmp_path):
    old, new = tmp_path / 'old', str(tmp_path / 'new')
    assert state_left_behind({'state_dir': str(old)}, new) is None          # gone: moved, or removed
    old.mkdir()
    assert state_left_behind({'state_dir': str(old)}, new) == str(old)
    assert state_left_behind({'state_dir': str(old) + '/'}, str(old)) is None    # the same, spelled otherwise
    for record in (None, [], {}, {'state_dir': None}, {'state_dir': 'old'}):    # no record, user scope, junk
        assert state_left_behind(record, new) is None
    assert state_left_behind({'state_dir': str(old)}, None) is None           # no services: no state directory
    (tmp_path / 'link').symlink_to(old)
    assert state_left_behind({'state_dir': str(tmp_path / 'link')}, new) is None  # a link is not the state


def test_stop_commands():
    assert stop_commands('launchd', ['ai.stigmer.temporal', 'ai.stigmer.server']) == [
        'sudo /bin/launchctl bootout system/ai.stigmer.temporal',
        'sudo /bin/launchctl bootout system/ai.stigmer.server']
    assert stop_commands('systemd', ['stigmer-temporal.service', 'stigmer-server.service']) == [
        'sudo systemctl stop stigmer-temporal.service stigmer-server.service']
    assert stop_commands('systemd', []) == [] and stop_commands('none', ['x']) == []


def moved_state(plan, old, new):
    """The plan with its state directory at new instead of old, as a changed default gives it."""
    return json.loads(json.dumps(plan).replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))


def test_state_left_in_its_earlier_location_stops_the_run_with_both_ways_out(tmp_path, launchd_host):
    """macOS's state directory moved from /usr/local/var/stigmer: an installed host keeps its database and
    workspace. The run changes nothing and says how to keep them where they are or move them; moved,
    the next run converges on the new location."""
    plan, host = launchd_host
    given = artifacts(tmp_path, 'v0.0.7')
    runtime(plan, host).apply(given)
    old, new = str(tmp_path / 'state'), str(tmp_path / 'new state')
    (tmp_path / 'state' / 'logs' / 'stigmer.db').write_text('the only copy\n')
    with open(plan['record']) as handle:
        record = handle.read()
    done = len(host.changes())
    moved = moved_state(plan, old, new)
    for call in (lambda: runtime(moved, host).compare(), lambda: runtime(moved, host).apply(given)):
        with pytest.raises(PlanError) as info:
            call()
        msg = str(info.value)
        assert ('The state of this install (its database and workspace) is in %s, as %s records, but the state '
                'directory is now %s, where this run would start an empty one. Nothing was changed.'
                % (old, plan['record'], new)) in msg
        assert 'set stigmer_state_dir: %s.' % old in msg
        assert 'stop the services (%s)' % '; '.join(
            '`sudo /bin/launchctl bootout system/%s`' % c['unit'] for c in plan['components']) in msg
        assert "`sudo mv %s '%s'`" % (old, new) in msg
    assert host.changes()[done:] == [] and not os.path.lexists(new)
    with open(plan['record']) as handle:
        assert handle.read() == record
    # Kept where it is: the plan as before.
    assert runtime(plan, host).compare()['changes'] == []
    # Moved as the message says: stopped, moved, run again.
    for comp in plan['components']:
        host([LC, 'bootout', 'system/' + comp['unit']])
    os.rename(old, new)
    runtime(moved, host).apply(given)
    with open(plan['record']) as handle:
        assert json.load(handle)['state_dir'] == new
    assert (tmp_path / 'new state' / 'logs' / 'stigmer.db').read_text() == 'the only copy\n'
    assert runtime(moved, host).compare()['changes'] == []


RETIRED = 'remove %s (the configuration directory of an earlier version of this collection)'


def earlier_config(base):
    """An earlier version's configuration directory, with a secret in it."""
    old = base / 'etc' / 'stigmer'
    old.mkdir(parents=True)
    (old / 'agent-runner.env').write_text("ANTHROPIC_API_KEY='an-old-SECRET'\n")
    return old


def test_the_configuration_directory_of_an_earlier_version_goes_once_the_record_shows_it_was_ours(tmp_path,
                                                                                                  monkeypatch):
    plan, given = installed(tmp_path)
    old = earlier_config(tmp_path / 'usr-local')
    plan['retired'] = [str(old)]
    # Not in the install record: not this install's (Homebrew's stigmer, say), so it stays.
    assert runtime(plan).compare()['changes'] == []
    runtime(plan).apply(given)
    assert (old / 'agent-runner.env').exists()
    with open(plan['record']) as handle:
        write_record(plan, remove=json.load(handle)['remove'] + [str(old)])
    # tmp_path lies below /tmp (1777): stand for a Mac where /usr/local is root's.
    monkeypatch.setattr(_runtime, 'unsafe_ancestor', lambda path, root='/': None)
    expected = [RETIRED % old, 'write the install record %s' % plan['record']]
    assert runtime(plan).compare()['changes'] == expected and (old / 'agent-runner.env').exists()
    assert runtime(plan).apply(given)['changes'] == expected
    assert not os.path.lexists(str(old)) and os.path.isdir(str(old.parent))
    with open(plan['record']) as handle:
        assert str(old) not in json.load(handle)['remove']
    assert runtime(plan).compare()['changes'] == []


def test_a_retired_configuration_directory_others_could_redirect_stops_the_run(tmp_path):
    """Its parent below a directory others can change (/usr/local the admin's): a link swapped in would send
    root's removal elsewhere, so the run stops and names the directory to remove by hand."""
    plan, given = installed(tmp_path)
    shared = tmp_path / 'usr-local'
    shared.mkdir()
    shared.chmod(0o777)
    old = earlier_config(shared)
    plan['retired'] = [str(old)]
    with open(plan['record']) as handle:
        write_record(plan, remove=json.load(handle)['remove'] + [str(old)])
    for call in (lambda: runtime(plan).compare(), lambda: runtime(plan).apply(given)):
        with pytest.raises(PlanError) as info:
            call()
        msg = str(info.value)
        assert msg.startswith('%s, where an earlier version of this collection kept the configuration (secrets '
                              'included), lies in a directory below ' % old)
        assert 'which someone other than root can change' in msg and '`sudo rm -r %s`' % old in msg
    assert (old / 'agent-runner.env').read_text() == "ANTHROPIC_API_KEY='an-old-SECRET'\n"
