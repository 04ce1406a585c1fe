# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import os
import plistlib
import stat

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _launchd as launchd
from ansible_collections.stigmer.runtime.plugins.module_utils._launchd import (
    LaunchdError,
    attr_problems,
    build_plist,
    ensure_daemon,
    parse_plist,
    serialize_plist,
)

LABEL = 'io.stigmer.server'
LC = '/bin/launchctl'
PRINT = [LC, 'print', 'system/' + LABEL]
ENABLE = [LC, 'enable', 'system/' + LABEL]
BOOTOUT = [LC, 'bootout', 'system/' + LABEL]
KICK = [LC, 'kickstart', '-k', 'system/' + LABEL]
DSCL_USER = ['/usr/bin/dscl', '.', '-read', '/Users/_stigmer', 'UniqueID']


class FakeHost(object):
    """launchctl and dscl as a macOS host answers them, for the system domain only."""

    def __init__(self, loaded=(), users=('_stigmer',), groups=(), unload_lag=0, fail=None):
        self.loaded = set(loaded)
        self.users = set(users)
        self.groups = set(groups)
        self.calls = []
        self.unload_lag = unload_lag   # prints that still succeed after a bootout
        self.pending = {}
        self.fail = fail or {}

    def __call__(self, argv):
        self.calls.append(list(argv))
        key = tuple(argv[:2])
        if key in self.fail:
            return self.fail[key]
        if argv[0] == '/usr/bin/dscl':
            kind, name = argv[3].split('/')[1:]
            if name in (self.users if kind == 'Users' else self.groups):
                return 0, '%s: 401\n' % argv[4], ''
            return 56, '', '<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\n'
        verb = argv[1]
        if verb == 'print':
            label = argv[2].split('/', 1)[1]
            if self.pending.get(label):
                self.pending[label] -= 1
                if not self.pending[label]:
                    self.loaded.discard(label)
                return 0, 'system/%s = {\n}\n' % label, ''
            if label in self.loaded:
                return 0, 'system/%s = {\n\tstate = running\n}\n' % label, ''
            return 113, 'Could not find service "%s" in domain for system\n' % label, ''
        if verb == 'bootstrap':
            with open(argv[3], 'rb') as handle:
                label = plistlib.load(handle)['Label']
            if label in self.loaded:
                return 5, '', 'Bootstrap failed: 5: Input/output error\n'
            self.loaded.add(label)
            return 0, '', ''
        if verb == 'bootout':
            label = argv[2].split('/', 1)[1]
            if label not in self.loaded:
                return 3, '', 'Boot-out failed: 3: No such process\n'
            if self.unload_lag:
                self.pending[label] = self.unload_lag
            else:
                self.loaded.discard(label)
            return 0, '', ''
        if verb in ('enable', 'kickstart'):
            return 0, '', ''
        raise AssertionError('unexpected command %r' % (argv,))


class Chown(object):
    def __init__(self):
        self.calls = []

    def __call__(self, path, uid, gid):
        self.calls.append((path, uid, gid))


@pytest.fixture
def env(tmp_path):
    return {'path': str(tmp_path / (LABEL + '.plist')), 'host': FakeHost(), 'chown': Chown(),
            'sleeps': []}


def daemon(env, **kwargs):
    args = dict(label=LABEL, program_arguments=['/opt/stigmer/current/bin/stigmer', 'internal-server'],
                user_name='_stigmer', group_name=None, environment={'HOME': '/var/lib/stigmer', 'MODE': 'local'},
                working_directory='/var/lib/stigmer', stdout_path='/var/log/stigmer/server.log',
                stderr_path='/var/log/stigmer/server.log', path=env['path'], runner=env['host'],
                uid=os.getuid(), gid=os.getgid(), chown=env['chown'], sleep=env['sleeps'].append)
    args.update(kwargs)
    return ensure_daemon(**args)


def read(path):
    with open(path, 'rb') as handle:
        return plistlib.load(handle)


# --- pure ---------------------------------------------------------------------

def test_build_plist_keys_and_types():
    plist = build_plist(LABEL, ['/bin/prog', 'serve', 7234], user_name='_stigmer', group_name='_stigmer',
                        environment={'PORT': 7234, 'DEBUG': False, 'MODE': 'local'},
                        working_directory='/var/lib/stigmer', stdout_path='/tmp/o', stderr_path='/tmp/e',
                        extra={'ProcessType': 'Background', 'KeepAlive': {'SuccessfulExit': False}})
    assert plist == {
        'Label': LABEL,
        'ProgramArguments': ['/bin/prog', 'serve', '7234'],
        'UserName': '_stigmer',
        'GroupName': '_stigmer',
        'EnvironmentVariables': {'PORT': '7234', 'DEBUG': 'false', 'MODE': 'local'},
        'WorkingDirectory': '/var/lib/stigmer',
        'StandardOutPath': '/tmp/o',
        'StandardErrorPath': '/tmp/e',
        'KeepAlive': {'SuccessfulExit': False},
        'RunAtLoad': True,
        'ThrottleInterval': 10,
        'ProcessType': 'Background',
    }


def test_build_plist_minimal_omits_unset_keys():
    plist = build_plist(LABEL, ['/bin/prog'], keep_alive=False, run_at_load=False, throttle_interval=30)
    assert plist == {'Label': LABEL, 'ProgramArguments': ['/bin/prog'], 'KeepAlive': False,
                     'RunAtLoad': False, 'ThrottleInterval': 30}


@pytest.mark.parametrize('kwargs, match', [
    ({'program_arguments': []}, 'program_arguments'),
    ({'extra': {'Label': 'other'}}, 'Label'),
    ({'extra': {'Nothing': None}}, 'null'),
    ({'environment': {'X': ['a']}}, 'environment variable X'),
])
def test_build_plist_refuses(kwargs, match):
    args = dict(label=LABEL, program_arguments=['/bin/prog'])
    args.update(kwargs)
    with pytest.raises(LaunchdError, match=match):
        build_plist(**args)


@pytest.mark.parametrize('label', ['', 'a/b', '.hidden', ' x'])
def test_bad_labels(label):
    with pytest.raises(LaunchdError):
        build_plist(label, ['/bin/prog'])


def test_serialisation_is_deterministic_and_sorted():
    one = build_plist(LABEL, ['/bin/prog'], environment={'B': '2', 'A': '1'})
    two = build_plist(LABEL, ['/bin/prog'], environment={'A': '1', 'B': '2'})
    assert serialize_plist(one) == serialize_plist(two)
    text = serialize_plist(one).decode()
    assert text.startswith('<?xml')
    assert text.index('<key>KeepAlive</key>') < text.index('<key>Label</key>') < text.index('<key>RunAtLoad</key>')
    assert parse_plist(serialize_plist(one)) == one


def test_parse_plist_garbage():
    assert parse_plist(b'not a plist') is None
    assert parse_plist(plistlib.dumps(['a list'])) is None
    assert parse_plist(None) is None


def test_attr_problems():
    class St(object):
        def __init__(self, uid, gid, mode):
            self.st_uid, self.st_gid, self.st_mode = uid, gid, stat.S_IFREG | mode
    assert attr_problems(St(0, 0, 0o644)) == []
    assert attr_problems(St(501, 0, 0o644)) == ['owner']
    assert attr_problems(St(0, 20, 0o664)) == ['owner', 'mode']
    assert attr_problems(St(0, 0, 0o666)) == ['mode']
    assert attr_problems(St(0, 0, 0o600)) == ['mode']


def test_production_defaults_are_root_wheel_0644():
    assert (launchd.ROOT_UID, launchd.ROOT_GID, launchd.PLIST_MODE) == (0, 0, 0o644)
    assert launchd.default_path(LABEL) == '/Library/LaunchDaemons/io.stigmer.server.plist'


# --- sequences against a fake host ----------------------------------------------

def test_fresh_bootstrap_sequence(env):
    result = daemon(env)
    assert env['host'].calls == [PRINT, DSCL_USER, ENABLE, [LC, 'bootstrap', 'system', env['path']]]
    assert result['changed'] and result['plist_changed'] and result['loaded']
    assert result['actions'] == [ENABLE, [LC, 'bootstrap', 'system', env['path']]]
    plist = read(env['path'])
    assert plist['Label'] == LABEL
    assert plist['UserName'] == '_stigmer'
    assert plist['ProgramArguments'] == ['/opt/stigmer/current/bin/stigmer', 'internal-server']
    assert plist['EnvironmentVariables'] == {'HOME': '/var/lib/stigmer', 'MODE': 'local'}
    assert plist['KeepAlive'] is True and plist['RunAtLoad'] is True and plist['ThrottleInterval'] == 10
    assert stat.S_IMODE(os.stat(env['path']).st_mode) == 0o644
    # The owner is set on the temp file before it is renamed into place.
    assert len(env['chown'].calls) == 1
    assert env['chown'].calls[0][1:] == (os.getuid(), os.getgid())
    assert result['diff']['before'] == ''
    assert '<string>internal-server</string>' in result['diff']['after']
    assert [n for n in os.listdir(os.path.dirname(env['path'])) if '.tmp-' in n] == []


def test_unchanged_run_only_prints(env):
    daemon(env)
    env['host'].calls[:] = []
    result = daemon(env)
    assert env['host'].calls == [PRINT]
    assert not result['changed'] and not result['plist_changed'] and result['loaded']
    assert result['actions'] == []


def test_formatting_only_difference_is_not_a_change(env):
    daemon(env)
    plist = read(env['path'])
    with open(env['path'], 'wb') as handle:
        handle.write(plistlib.dumps(plist, fmt=plistlib.FMT_BINARY))
    os.chmod(env['path'], 0o644)
    env['host'].calls[:] = []
    result = daemon(env)
    assert not result['changed'] and env['host'].calls == [PRINT]
    assert result['diff']['before'] == result['diff']['after']


def test_changed_content_reloads(env):
    daemon(env)
    env['host'].calls[:] = []
    result = daemon(env, environment={'HOME': '/var/lib/stigmer', 'MODE': 'cloud'})
    bootstrap = [LC, 'bootstrap', 'system', env['path']]
    assert env['host'].calls == [PRINT, DSCL_USER, BOOTOUT, PRINT, ENABLE, bootstrap]
    assert result['actions'] == [BOOTOUT, ENABLE, bootstrap]
    assert result['changed'] and result['plist_changed']
    assert read(env['path'])['EnvironmentVariables']['MODE'] == 'cloud'
    assert '<string>local</string>' in result['diff']['before']
    assert '<string>cloud</string>' in result['diff']['after']


def test_bootout_waits_until_unloaded(env):
    daemon(env)
    env['host'].unload_lag = 3
    env['host'].calls[:] = []
    daemon(env, throttle_interval=5)
    assert env['host'].calls.count(PRINT) == 1 + 4
    assert env['sleeps'] == list(launchd.UNLOAD_DELAYS[:3])
    assert env['host'].calls[-1] == [LC, 'bootstrap', 'system', env['path']]


def test_bootout_that_never_finishes_fails(env):
    daemon(env)
    env['host'].unload_lag = 1000
    with pytest.raises(LaunchdError, match='did not unload'):
        daemon(env, throttle_interval=5, delays=(0.01, 0.01))
    assert env['sleeps'] == [0.01, 0.01]


def test_restarted_kickstarts(env):
    daemon(env)
    env['host'].calls[:] = []
    result = daemon(env, state='restarted')
    assert env['host'].calls == [PRINT, KICK]
    assert result['actions'] == [KICK] and result['changed'] and not result['plist_changed']


def test_restarted_on_fresh_host_does_not_double_start(env):
    result = daemon(env, state='restarted')
    assert result['actions'] == [ENABLE, [LC, 'bootstrap', 'system', env['path']]]
    result = daemon(env, state='restarted', run_at_load=False)
    assert KICK in result['actions']


def test_absent(env):
    daemon(env)
    env['host'].calls[:] = []
    result = daemon(env, state='absent')
    assert env['host'].calls == [PRINT, BOOTOUT, PRINT]
    assert result['actions'] == [BOOTOUT]
    assert result['changed'] and result['plist_changed'] and not result['loaded']
    assert not os.path.exists(env['path'])
    env['host'].calls[:] = []
    result = daemon(env, state='absent')
    assert env['host'].calls == [PRINT] and not result['changed']


def test_missing_user_is_a_clear_error(env):
    env['host'].users = set()
    with pytest.raises(LaunchdError) as excinfo:
        daemon(env)
    msg = str(excinfo.value)
    assert "'_stigmer' does not exist" in msg and 'user_name' in msg and 'eDSRecordNotFound' in msg
    assert env['host'].calls == [PRINT, DSCL_USER]
    # Neither the plist nor launchd was touched.
    assert not os.path.exists(env['path'])


def test_missing_user_does_not_bring_a_running_job_down(env):
    daemon(env)
    env['host'].users = set()
    env['host'].calls[:] = []
    with pytest.raises(LaunchdError, match='_stigmer'):
        daemon(env, throttle_interval=99)
    assert BOOTOUT not in env['host'].calls
    assert read(env['path'])['ThrottleInterval'] == 10


def test_missing_group(env):
    dscl_group = ['/usr/bin/dscl', '.', '-read', '/Groups/_stigmer', 'PrimaryGroupID']
    with pytest.raises(LaunchdError, match="group '_stigmer'"):
        daemon(env, group_name='_stigmer')
    assert env['host'].calls == [PRINT, DSCL_USER, dscl_group]
    env['host'].groups.add('_stigmer')
    assert read_after(daemon(env, group_name='_stigmer'), env)['GroupName'] == '_stigmer'


def read_after(result, env):
    assert result['changed']
    return read(env['path'])


def test_bootstrap_failure_reports_launchctl_error(env):
    env['host'].fail = {(LC, 'bootstrap'): (5, '', 'Bootstrap failed: 5: Input/output error\n')}
    with pytest.raises(LaunchdError, match='Input/output error'):
        daemon(env)


def test_wrong_mode_and_owner_fixed_without_reload(env, tmp_path):
    daemon(env)
    os.chmod(env['path'], 0o666)
    env['chown'].calls[:] = []
    env['host'].calls[:] = []
    result = daemon(env)
    assert result['changed'] and not result['plist_changed']
    assert result['attributes_fixed'] == ['mode']
    assert stat.S_IMODE(os.stat(env['path']).st_mode) == 0o644
    assert env['host'].calls == [PRINT]
    assert env['chown'].calls == []
    # An owner that is not the expected one is corrected with chown.
    result = daemon(env, uid=os.getuid() + 1)
    assert result['attributes_fixed'] == ['owner']
    assert env['chown'].calls == [(env['path'], os.getuid() + 1, os.getgid())]


def test_unloaded_but_written_plist_is_bootstrapped(env):
    daemon(env)
    env['host'].loaded.clear()
    env['host'].calls[:] = []
    result = daemon(env)
    assert not result['plist_changed'] and result['changed']
    assert result['actions'] == [ENABLE, [LC, 'bootstrap', 'system', env['path']]]


def test_check_mode_does_nothing(env):
    result = daemon(env, check_mode=True)
    assert env['host'].calls == [PRINT]
    assert result['changed'] and result['plist_changed'] and result['loaded']
    assert result['actions'] == [ENABLE, [LC, 'bootstrap', 'system', env['path']]]
    assert not os.path.exists(env['path'])
    assert env['chown'].calls == []
    assert '<key>Label</key>' in result['diff']['after']

    daemon(env)
    env['host'].calls[:] = []
    result = daemon(env, check_mode=True, throttle_interval=1)
    assert env['host'].calls == [PRINT]
    assert result['actions'] == [BOOTOUT, ENABLE, [LC, 'bootstrap', 'system', env['path']]]
    assert read(env['path'])['ThrottleInterval'] == 10

    os.chmod(env['path'], 0o664)
    result = daemon(env, check_mode=True)
    assert result['changed'] and result['attributes_fixed'] == ['mode']
    assert stat.S_IMODE(os.stat(env['path']).st_mode) == 0o664

    env['host'].calls[:] = []
    result = daemon(env, state='absent', check_mode=True)
    assert env['host'].calls == [PRINT] and result['actions'] == [BOOTOUT]
    assert os.path.exists(env['path'])


def test_load_and_reload_touch_one_job(env):
    daemon(env)
    other = 'io.stigmer.temporal'
    env['host'].loaded.add(other)
    env['host'].calls[:] = []
    jobs = launchd.Launchd(env['host'], sleep=env['sleeps'].append)
    jobs.reload(LABEL, env['path'])
    bootstrap = [LC, 'bootstrap', 'system', env['path']]
    assert env['host'].calls == [BOOTOUT, PRINT, ENABLE, bootstrap]
    assert jobs.actions == [BOOTOUT, ENABLE, bootstrap]
    assert env['host'].loaded == {LABEL, other}
    # Without RunAtLoad the bootstrap does not start the program: kickstart does.
    env['host'].calls[:] = []
    jobs.reload(LABEL, env['path'], run_at_load=False)
    assert env['host'].calls == [BOOTOUT, PRINT, ENABLE, bootstrap, KICK]
    env['host'].loaded.discard(LABEL)
    env['host'].calls[:] = []
    jobs.load(LABEL, env['path'])
    assert env['host'].calls == [ENABLE, bootstrap]


def test_reload_reports_a_failed_bootstrap(env):
    daemon(env)
    env['host'].fail = {(LC, 'bootstrap'): (5, '', 'Bootstrap failed: 5: Input/output error\n')}
    with pytest.raises(LaunchdError, match='launchctl bootstrap system .*Input/output error'):
        launchd.Launchd(env['host']).reload(LABEL, env['path'])
