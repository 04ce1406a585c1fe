# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import functools
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _checksum as checksum, _install as install
from ansible_collections.stigmer.runtime.plugins.module_utils._install import (
    MANIFEST_NAME,
    InstallError,
    check_problem,
    ensure_version,
    link_value,
    plan_prune,
    validate_relpath,
    validate_version_name,
    version_from_target,
)
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils import module_host
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.test_binary_header import (
    ELF_ARMHF,
    HOST,
    OTHER_LINUX,
)

IDS = (os.getuid(), os.getgid())
# A header for a CPU this host is not: the other 64-bit Linux arch, or 32-bit ARM on macOS.
FOREIGN = OTHER_LINUX.get(HOST, ELF_ARMHF)


def script(version, rc=0, extra=''):
    """A stand-in CLI: prints its version like `stigmer --version` does, or fails."""
    body = '#!/bin/sh\n%s' % extra
    if rc:
        body += 'echo "cannot execute binary file" >&2\nexit %d\n' % rc
    else:
        body += 'echo "stigmer version v%s"\n' % version
    return body.encode()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_tar(path, members):
    """members: list of (name, bytes, mode)."""
    with tarfile.open(str(path), 'w:gz') as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return str(path)


class Release(object):
    """One version's staged artifacts: a CLI tarball and a raw agent-runner."""

    def __init__(self, tmp_path, version, cli=None, runner=None):
        self.version = version
        self.tag = 'v' + version
        cache = tmp_path / 'cache' / self.tag
        cache.mkdir(parents=True, exist_ok=True)
        cli = script(version) if cli is None else cli
        runner = script(version) if runner is None else runner
        self.cli_bytes = cli
        self.runner_bytes = runner
        self.tar = make_tar(cache / ('stigmer-%s-linux-amd64.tar.gz' % self.tag),
                            [('stigmer', cli, 0o755), ('README.md', b'read me\n', 0o644)])
        self.raw = str(cache / ('agent-runner-%s-linux-amd64' % self.tag))
        with open(self.raw, 'wb') as handle:
            handle.write(runner)

        with open(self.tar, 'rb') as handle:
            self.tar_sha = sha(handle.read())

    def sources(self):
        return [
            {'src': self.tar, 'sha256': self.tar_sha, 'archive': True},
            {'src': self.raw, 'sha256': sha(self.runner_bytes), 'dest': 'agent-runner'},
        ]

    def checks(self):
        # Only the CLI: the agent-runner ignores its arguments and would start a worker.
        return [{'command': 'stigmer', 'args': ['--version'], 'expect': self.tag}]


class Clock(object):
    """Monotonic fake time so pruning order is decided by the test, not the CPU."""

    def __init__(self, start=1000.0):
        self.value = start

    def __call__(self):
        self.value += 10
        return self.value


@pytest.fixture
def tree(tmp_path):
    base = tmp_path / 'opt'
    base.mkdir()
    return {'root': str(base / 'versions'), 'link': str(base / 'current'), 'tmp': tmp_path,
            'clock': Clock()}


def run(tree, release, **kwargs):
    args = dict(root=tree['root'], version=release.tag, sources=release.sources(), link=tree['link'],
                files={'share/agent-runner.version': release.tag + '\n'},
                checks=release.checks(), platform=HOST, ids=IDS, now=tree['clock'], runner=module_host.runner())
    args.update(kwargs)
    return ensure_version(**args)


def leftovers(tree):
    names = os.listdir(tree['root']) if os.path.isdir(tree['root']) else []
    names += [os.path.join(n, m) for n in list(names) if os.path.isdir(os.path.join(tree['root'], n))
              for m in os.listdir(os.path.join(tree['root'], n))]
    names += os.listdir(os.path.dirname(tree['link']))
    return sorted(n for n in names if '.tmp-' in n)


def versions(tree):
    return sorted(n for n in os.listdir(tree['root']) if not n.startswith('.'))


# --- pure functions -------------------------------------------------------

def test_link_value_is_relative_and_stable(tmp_path):
    assert link_value('/opt/stigmer/versions', 'v1.2.3', '/opt/stigmer/current') == 'versions/v1.2.3'
    assert link_value('/opt/stigmer/temporal/versions', '1.5.1', '/opt/stigmer/temporal/current') == 'versions/1.5.1'
    assert link_value('/opt/a/versions', 'v1', '/usr/local/current') == '../../opt/a/versions/v1'


def test_version_from_target():
    assert version_from_target('/opt/s/current', 'versions/v1.0.0', '/opt/s/versions') == 'v1.0.0'
    assert version_from_target('/opt/s/current', '/opt/s/versions/v2.0.0', '/opt/s/versions') == 'v2.0.0'
    assert version_from_target('/opt/s/current', '/elsewhere/v2.0.0', '/opt/s/versions') is None
    assert version_from_target('/opt/s/current', None, '/opt/s/versions') is None


@pytest.mark.parametrize('bad', ['', '.', '..', 'a/b', '.hidden', ' v1'])
def test_bad_version_names(bad):
    with pytest.raises(InstallError):
        validate_version_name(bad)


@pytest.mark.parametrize('bad', ['/etc/passwd', '../x', 'share/../../x', '.manifest.json', 'bin/evil'])
def test_bad_relpaths(bad):
    with pytest.raises(InstallError):
        validate_relpath(bad)


def test_relpath_normalised():
    assert validate_relpath('share//x/./y') == 'share/x/y'


def test_plan_prune_by_use_not_semver():
    candidates = {'v3.0.0': 10.0, 'v1.0.0': 30.0, 'v2.0.0': 20.0, 'v4.0.0': 40.0}
    assert plan_prune(candidates, 2, {'v4.0.0'}) == ['v3.0.0', 'v2.0.0']
    # The link target is kept even when it is the least recently used.
    assert plan_prune(candidates, 2, {'v3.0.0'}) == ['v2.0.0', 'v1.0.0']
    assert plan_prune(candidates, 1, {'v4.0.0', 'v3.0.0'}) == ['v2.0.0', 'v1.0.0']
    assert plan_prune(candidates, 10, {'v4.0.0'}) == []
    with pytest.raises(InstallError):
        plan_prune(candidates, 0, set())


def check(expect='1.1.0', version_optional=False):
    return install.normalize_checks([{'command': 'stigmer', 'expect': expect,
                                      'version_optional': version_optional}])[0]


def test_check_problem_with_expect():
    argv = ['stigmer', '--version']
    assert check_problem(argv, check(), 0, 'stigmer version v1.1.0\n') is None
    assert check_problem(['stigmer', 'version'], check(), 0, 'Stigmer CLI 1.1.0+abc (go1.22.5)') is None
    msg = check_problem(argv, check(), 0, 'stigmer version v1.0.0')
    assert 'reports version 1.0.0, expected 1.1.0' in msg and 'stigmer --version' in msg
    msg = check_problem(argv, check(), 126, 'cannot execute binary file')
    assert 'exited with 126' in msg and 'architecture' in msg and 'cannot execute binary file' in msg
    assert 'expected version 1.1.0' in msg
    assert 'reports version none' in check_problem(['x'], check(), 0, 'usage: x')
    # The right version does not excuse a failing exit.
    assert 'exited with 1' in check_problem(argv, check(), 1, 'v1.1.0')


def test_check_problem_version_optional():
    argv = ['stigmer', '--version']
    optional = check(version_optional=True)
    # stigmer v0.0.5-v0.0.7: no version flag, prints nothing, exits 1.
    assert check_problem(argv, optional, 1, '') is None
    assert check_problem(argv, optional, 0, 'usage: stigmer') is None
    assert 'exited with 1; expected version 1.1.0; output: (no output)' in check_problem(argv, check(), 1, '')
    # A CLI that does print a version must print this one.
    assert 'reports version 1.0.0' in check_problem(argv, optional, 0, '1.0.0\n')
    assert 'exited with 2' in check_problem(argv, optional, 2, '1.1.0\n')
    # Could not start or timed out: never a pass.
    assert 'did not run to completion' in check_problem(argv, optional, None, '(timed out after 30 s)')


def test_check_problem_exit_status_only():
    help_check = install.normalize_checks([{'command': 'stigmer', 'args': ['--help']}])[0]
    assert help_check == {'command': 'stigmer', 'args': ['--help'], 'expect': None, 'version_optional': False}
    assert check_problem(['stigmer', '--help'], help_check, 0, 'Usage: stigmer') is None
    msg = check_problem(['stigmer', '--help'], help_check, 1, 'x' * 1000)
    assert msg.startswith('check failed: stigmer --help exited with 1; output: ...') and len(msg) < 500


def test_normalize_checks_refusals():
    with pytest.raises(InstallError, match='version_optional needs expect'):
        install.normalize_checks([{'command': 'stigmer', 'version_optional': True}])
    with pytest.raises(InstallError, match='holds no version number'):
        install.normalize_checks([{'command': 'stigmer', 'expect': 'latest'}])
    with pytest.raises(InstallError, match='plain file name'):
        install.normalize_checks([{'command': '../stigmer'}])


def test_check_failures_have_no_exit_status(tmp_path):
    rc, output = module_host.runner()([str(tmp_path / 'absent'), '--version'], str(tmp_path))
    assert rc is None and 'could not be executed' in output
    started = time.monotonic()
    rc, output = module_host.runner(0.5)(['/bin/sh', '-c', 'echo started; exec sleep 20'], str(tmp_path))
    assert rc is None and 'started' in output and 'timed out' in output
    assert time.monotonic() - started < 10


def test_a_check_runs_in_its_directory_with_only_a_plain_path(tmp_path):
    rc, output = module_host.runner()(['/bin/sh', '-c', 'pwd; echo "$PATH"; echo ran >&2; exit 3'], str(tmp_path))
    assert (rc, output.split()) == (3, [str(tmp_path), '/usr/bin:/bin', 'ran'])


@pytest.mark.parametrize('account, euid, ids', [
    ((65534, 65533), 0, (65534, 65533)),
    (None, 0, None),              # no service account: binaries only, or a user install
    ((65534, 65533), 1000, None),  # not root: nobody to switch to
    ((0, 0), 0, None),            # the account is root itself
])
def test_who_runs_the_checks(account, euid, ids):
    assert install.check_ids(account, euid) == ids


def test_a_check_for_the_service_account_switches_before_env_clears_the_environment(monkeypatch):
    calls = []

    def run_command(argv, **kwargs):
        calls.append(argv)
        return 126, '', 'switch-account: cannot run as uid 65534 gid 65533: [Errno 1] Operation not permitted\n'

    monkeypatch.setattr(install.os, 'geteuid', lambda: 0)
    rc, output = install.check_runner(run_command, account=(65534, 65533))(['/opt/v/bin/stigmer', '--help'], '/')
    assert calls == [[install.sys.executable, '-I', '-S', '-c', install.SWITCH_ACCOUNT, '65534', '65533',
                      '/usr/bin/env', '-i', 'PATH=/usr/bin:/bin', '/opt/v/bin/stigmer', '--help']]
    # Not a result a check could pass with (version_optional would accept an exit status with no version).
    assert rc is None and output.startswith('/opt/v/bin/stigmer could not be executed: switch-account: ')


def test_the_switch_fails_with_its_tag_and_exit_126(tmp_path):
    # As root the switch succeeds and the exec fails; otherwise setgroups fails first.
    argv = [install.sys.executable, '-I', '-S', '-c', install.SWITCH_ACCOUNT, '65534', '65534', str(tmp_path / 'absent')]
    rc, out, err = module_host.run_command(argv, expand_user_and_vars=False)
    assert rc == 126 and err.startswith(install.SWITCH_TAG + ': cannot run as uid 65534 gid 65534: ')


@pytest.mark.skipif(os.geteuid() != 0, reason='switching to another account needs root')
def test_a_check_runs_as_the_service_account_without_its_groups():
    rc, output = module_host.runner(account=(65534, 65533))(['/bin/sh', '-c', 'id -u; id -g; id -G; echo "home=$HOME"'], '/')
    assert (rc, output.split()) == (0, ['65534', '65533', '65533', 'home='])


# --- install, upgrade, rollback, prune ---------------------------------------

def test_fresh_install_layout(tree):
    rel = Release(tree['tmp'], '1.1.0')
    result = run(tree, rel)
    vdir = os.path.join(tree['root'], 'v1.1.0')
    assert result['changed'] and result['installed'] and result['switched']
    assert result['previous'] is None
    assert result['path'] == vdir
    assert result['files'] == ['agent-runner', 'stigmer']
    assert result['pruned'] == []
    assert os.readlink(tree['link']) == 'versions/v1.1.0'
    assert sorted(os.listdir(os.path.join(vdir, 'bin'))) == ['agent-runner', 'stigmer']  # no README
    for name in ('agent-runner', 'stigmer'):
        assert stat.S_IMODE(os.stat(os.path.join(vdir, 'bin', name)).st_mode) == 0o755
    version_file = os.path.join(vdir, 'share', 'agent-runner.version')
    assert open(version_file).read() == 'v1.1.0\n'
    assert stat.S_IMODE(os.stat(version_file).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(vdir).st_mode) == 0o755
    manifest = json.load(open(os.path.join(vdir, '.manifest.json')))
    assert manifest['version'] == 'v1.1.0'
    assert sorted(s['sha256'] for s in manifest['sources']) == sorted(s['sha256'] for s in rel.sources())
    assert manifest['files']['bin/agent-runner'] == sha(rel.runner_bytes)
    assert manifest['files']['bin/stigmer'] == sha(rel.cli_bytes)
    assert manifest['files']['share/agent-runner.version'] == sha(b'v1.1.0\n')
    assert isinstance(manifest['installed_at'], float)
    assert leftovers(tree) == []


def test_second_run_is_idempotent(tree):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    result = run(tree, rel)
    assert not result['changed']
    assert not result['installed'] and not result['switched']
    assert result['previous'] == 'v1.1.0'
    assert result['files'] == ['agent-runner', 'stigmer']


def test_idempotent_without_artifacts(tree):
    """Once installed, the cache may be gone: nothing reads src on an intact install."""
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    sources = rel.sources()
    os.unlink(rel.tar)
    os.unlink(rel.raw)
    assert not run(tree, rel, sources=sources)['changed']


def test_upgrade_switches_and_keeps_previous(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    result = run(tree, Release(tree['tmp'], '1.1.0'))
    assert result['changed'] and result['installed'] and result['switched']
    assert result['previous'] == 'v1.0.0'
    assert os.readlink(tree['link']) == 'versions/v1.1.0'
    assert versions(tree) == ['v1.0.0', 'v1.1.0']
    assert result['pruned'] == []


def test_rollback_to_kept_version_only_switches(tree):
    old = Release(tree['tmp'], '1.0.0')
    run(tree, old)
    run(tree, Release(tree['tmp'], '1.1.0'))
    result = run(tree, old)
    assert result['changed'] and result['switched'] and not result['installed']
    assert result['previous'] == 'v1.1.0'
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    assert versions(tree) == ['v1.0.0', 'v1.1.0']


def test_prune_follows_activation_order(tree):
    v1 = Release(tree['tmp'], '1.0.0')
    run(tree, v1)
    run(tree, Release(tree['tmp'], '2.0.0'))
    run(tree, Release(tree['tmp'], '3.0.0'), keep=3)
    # Roll back to the oldest: it becomes the most recently used.
    run(tree, v1, keep=3)
    result = run(tree, Release(tree['tmp'], '4.0.0'), keep=2)
    # v1 was left last (deactivated when 4.0.0 went live), so it is the rollback target.
    assert sorted(result['pruned']) == ['v2.0.0', 'v3.0.0']
    assert result['pruned'] == ['v2.0.0', 'v3.0.0']
    assert versions(tree) == ['v1.0.0', 'v4.0.0']


def test_keep_one_removes_all_but_active(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    result = run(tree, Release(tree['tmp'], '2.0.0'), keep=1)
    assert result['pruned'] == ['v1.0.0']
    assert versions(tree) == ['v2.0.0']


def test_switch_false_installs_without_touching_link(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    result = run(tree, Release(tree['tmp'], '2.0.0'), switch=False, keep=1)
    assert result['installed'] and not result['switched']
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    # keep=1 cannot drop either the active or the just-installed version.
    assert result['pruned'] == []
    assert versions(tree) == ['v1.0.0', 'v2.0.0']


# --- failures leave the host as it was ---------------------------------------

@pytest.mark.parametrize('cli_script', [
    script('0.9.0'),                 # reports the wrong version
    script('1.1.0', rc=126),         # cannot execute (e.g. a missing loader)
])
def test_failed_check_keeps_previous(tree, cli_script):
    run(tree, Release(tree['tmp'], '1.0.0'))
    bad = Release(tree['tmp'], '1.1.0', cli=cli_script)
    with pytest.raises(InstallError) as excinfo:
        run(tree, bad)
    msg = str(excinfo.value)
    assert 'stigmer --version' in msg and '1.1.0' in msg
    assert 'unchanged' in msg
    if b'exit 126' in cli_script:
        assert 'exited with 126' in msg and 'cannot execute binary file' in msg
    else:
        assert 'reports version 0.9.0' in msg
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    assert versions(tree) == ['v1.0.0']
    assert leftovers(tree) == []


def test_binary_for_another_cpu_is_refused_before_any_check_runs(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    ran = tree['tmp'] / 'cli-ran'
    bad = Release(tree['tmp'], '1.1.0', cli=script('1.1.0', extra='touch %s\n' % ran), runner=FOREIGN)
    with pytest.raises(InstallError) as excinfo:
        run(tree, bad)
    msg = str(excinfo.value)
    assert msg.startswith('v1.1.0 was not installed, the active version and link are unchanged: agent-runner is ')
    assert msg.endswith('; this host is %s' % HOST)
    assert not ran.exists()
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    assert versions(tree) == ['v1.0.0']
    assert leftovers(tree) == []


def test_agent_runner_is_never_executed(tree):
    """Its header is read; running it would start a Temporal worker."""
    ran = tree['tmp'] / 'runner-ran'
    rel = Release(tree['tmp'], '1.1.0', runner=('#!/bin/sh\ntouch %s\n' % ran).encode())
    assert run(tree, rel)['installed']
    assert run(tree, rel, check_mode=True)['changed'] is False
    assert not ran.exists()


def test_without_platform_headers_are_not_read(tree):
    rel = Release(tree['tmp'], '1.1.0', runner=FOREIGN)
    assert run(tree, rel, platform=None)['installed']


def test_installed_version_for_another_cpu_is_refused(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    bad = Release(tree['tmp'], '1.1.0', runner=FOREIGN)
    assert run(tree, bad, platform=None, switch=False)['installed']
    for check_mode in (True, False):
        with pytest.raises(InstallError, match='v1.1.0 is installed but cannot run on this host.*agent-runner is'):
            run(tree, bad, check_mode=check_mode)
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    assert versions(tree) == ['v1.0.0', 'v1.1.0']


def test_unknown_platform_refused(tree):
    with pytest.raises(InstallError, match="platform 'linux-386' is not one of"):
        run(tree, Release(tree['tmp'], '1.1.0'), platform='linux-386')


def test_version_optional_accepts_a_cli_without_version_flag(tree):
    # Like stigmer v0.0.5-v0.0.7: `--version` prints nothing and exits 1, `--help` exits 0.
    cli = b'#!/bin/sh\n[ "$1" = --help ] && { echo "Usage: stigmer"; exit 0; }\nexit 1\n'
    rel = Release(tree['tmp'], '0.0.7', cli=cli)
    strict = [{'command': 'stigmer', 'expect': rel.tag}]
    with pytest.raises(InstallError, match='exited with 1; expected version 0.0.7'):
        run(tree, rel, checks=strict)
    checks = [{'command': 'stigmer', 'expect': rel.tag, 'version_optional': True},
              {'command': 'stigmer', 'args': ['--help']}]
    assert run(tree, rel, checks=checks)['installed']


def test_check_runs_with_clean_env(tree, monkeypatch):
    monkeypatch.setenv('STIGMER_LEAK', 'yes')
    guard = '[ -z "$STIGMER_LEAK" ] || exit 3\n[ "$PATH" = /usr/bin:/bin ] || exit 4\n'
    rel = Release(tree['tmp'], '1.1.0', cli=script('1.1.0', extra=guard))
    assert run(tree, rel)['installed']


def test_missing_check_command(tree):
    rel = Release(tree['tmp'], '1.1.0')
    with pytest.raises(InstallError, match='not among the installed executables'):
        run(tree, rel, checks=[{'command': 'temporal', 'expect': '1.1.0'}])
    assert leftovers(tree) == []


def test_source_sha_mismatch_changes_nothing(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    sources[1]['sha256'] = '0' * 64
    with pytest.raises(InstallError, match='sha256 mismatch for .*agent-runner'):
        run(tree, rel, sources=sources)
    sources = rel.sources()
    sources[0]['sha256'] = 'sha256:' + 'a' * 64
    with pytest.raises(InstallError, match='sha256 mismatch for .*tar.gz'):
        run(tree, rel, sources=sources)
    assert os.readlink(tree['link']) == 'versions/v1.0.0'
    assert versions(tree) == ['v1.0.0']
    assert leftovers(tree) == []


def test_bad_sha_spelling_refused(tree):
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    sources[0]['sha256'] = 'not-a-digest'
    with pytest.raises(InstallError, match=r'sources\[0\]'):
        run(tree, rel, sources=sources)


def test_tampered_binary_is_repaired(tree):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    target = os.path.join(tree['root'], 'v1.1.0', 'bin', 'stigmer')
    with open(target, 'ab') as handle:
        handle.write(b'# evil\n')
    result = run(tree, rel)
    assert result['changed'] and result['installed'] and not result['switched']
    assert 'bin/stigmer' in result['reason']
    assert open(target, 'rb').read() == rel.cli_bytes
    assert leftovers(tree) == []
    assert not run(tree, rel)['changed']


@pytest.mark.parametrize('damage', ['chmod', 'chmod-bin-dir', 'extra', 'missing', 'manifest', 'files'])
def test_other_damage_is_repaired(tree, damage):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    vdir = os.path.join(tree['root'], 'v1.1.0')
    kwargs = {}
    if damage == 'chmod':
        os.chmod(os.path.join(vdir, 'bin', 'stigmer'), 0o777)
    elif damage == 'chmod-bin-dir':
        os.chmod(os.path.join(vdir, 'bin'), 0o777)
    elif damage == 'extra':
        open(os.path.join(vdir, 'bin', 'intruder'), 'w').close()
    elif damage == 'missing':
        os.unlink(os.path.join(vdir, 'share', 'agent-runner.version'))
    elif damage == 'manifest':
        open(os.path.join(vdir, '.manifest.json'), 'w').write('{not json')
    elif damage == 'files':
        # Same artifacts, but the role now asks for different file content.
        kwargs['files'] = {'share/agent-runner.version': 'v1.1.0-other\n'}
    result = run(tree, rel, **kwargs)
    assert result['installed'] and result['changed']
    assert sorted(os.listdir(os.path.join(vdir, 'bin'))) == ['agent-runner', 'stigmer']
    assert not run(tree, rel, **kwargs)['changed']


def test_stale_temp_dirs_are_cleaned(tree):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    crash = os.path.join(tree['root'], '.v1.2.0.tmp-abc123')
    os.makedirs(os.path.join(crash, 'bin'))
    os.symlink('versions/v1.1.0', tree['link'] + '.tmp-deadbeef')
    result = run(tree, rel)
    assert result['changed'] and not result['installed']
    assert crash in result['cleaned'] and tree['link'] + '.tmp-deadbeef' in result['cleaned']
    assert leftovers(tree) == []


def test_a_manifest_half_written_when_a_run_was_killed_is_cleaned(tree):
    # A switch re-stamps the previous version's manifest; a run killed inside
    # that write leaves the temp file in the old version's directory.
    old, new = Release(tree['tmp'], '1.1.0'), Release(tree['tmp'], '1.2.0')
    run(tree, old)
    half = os.path.join(tree['root'], 'v1.1.0', '.' + MANIFEST_NAME + '.tmp-p7g4huvr')
    with open(half, 'w') as handle:
        handle.write('{"format"')
    checked = run(tree, new, check_mode=True)
    assert half in checked['cleaned'] and os.path.exists(half)
    result = run(tree, new)
    assert half in result['cleaned'] and result['switched']
    assert leftovers(tree) == []
    assert not run(tree, new)['changed']


def test_link_that_is_a_directory_is_refused(tree):
    os.makedirs(tree['link'])
    with pytest.raises(InstallError, match='not a symbolic link'):
        run(tree, Release(tree['tmp'], '1.1.0'))


def test_absolute_link_rewritten_to_stable_form(tree):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    os.unlink(tree['link'])
    os.symlink(os.path.join(tree['root'], 'v1.1.0'), tree['link'])
    result = run(tree, rel)
    assert result['switched'] and result['previous'] == 'v1.1.0'
    assert os.readlink(tree['link']) == 'versions/v1.1.0'
    assert not run(tree, rel)['changed']


# --- archives ---------------------------------------------------------------

def test_archive_extra_files_and_members(tree):
    cache = tree['tmp'] / 'cache'
    cache.mkdir()
    tar = make_tar(cache / 'temporal_cli_1.5.1_linux_amd64.tar.gz', [
        ('LICENSE', b'MIT\n', 0o644),
        ('README.md', b'hi\n', 0o644),
        ('temporal', b'#!/bin/sh\necho "temporal version 1.5.1 (Server 1.29.0, UI 2.41.0)"\n', 0o755),
        ('helper', b'#!/bin/sh\necho helper 9.9.9\n', 0o755),
    ])
    with open(tar, 'rb') as handle:
        digest = sha(handle.read())
    args = dict(root=tree['root'], version='1.5.1', link=tree['link'], ids=IDS, now=tree['clock'],
                platform=HOST, runner=module_host.runner(), checks=[{'command': 'temporal', 'args': ['--version'], 'expect': '1.5.1'}])
    # Default: every executable at the top level, never README/LICENSE.
    result = ensure_version(sources=[{'src': tar, 'sha256': digest, 'archive': True}], **args)
    assert result['files'] == ['helper', 'temporal']
    # members restricts: the version is rebuilt with only temporal in bin/.
    result = ensure_version(sources=[{'src': tar, 'sha256': digest, 'archive': True, 'members': ['temporal']}],
                            **args)
    assert result['files'] == ['temporal']
    assert os.listdir(os.path.join(tree['root'], '1.5.1', 'bin')) == ['temporal']
    assert os.readlink(tree['link']) == 'versions/1.5.1'


def test_archive_missing_member(tree):
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    sources[0]['members'] = ['stigmer-server']
    with pytest.raises(InstallError, match='stigmer-server'):
        run(tree, rel, sources=sources)
    assert leftovers(tree) == []


def test_unsafe_archive_refused(tree):
    cache = tree['tmp'] / 'cache'
    cache.mkdir()
    tar = make_tar(cache / 'evil.tar.gz', [('../../etc/evil', b'x', 0o755), ('stigmer', b'x', 0o755)])
    digest = sha(open(tar, 'rb').read())
    with pytest.raises(InstallError, match='cannot extract'):
        ensure_version(root=tree['root'], version='v6.6.6', link=tree['link'], ids=IDS,
                       sources=[{'src': tar, 'sha256': digest, 'archive': True}])
    assert leftovers(tree) == []
    assert versions(tree) == []


def swap_once_opened(monkeypatch, path, replacement):
    """Put replacement at path as soon as the file open at path starts being hashed; return whether it was."""
    original = os.stat(path)
    swapped = []
    real = checksum.sha256_stream

    def hash_after_swapping(fileobj, *args, **kwargs):
        st = os.fstat(fileobj.fileno())
        if not swapped and (st.st_dev, st.st_ino) == (original.st_dev, original.st_ino):
            os.replace(replacement, path)
            swapped.append(path)
        return real(fileobj, *args, **kwargs)

    # _install hashes an artifact directly; sha256_file reaches it through _checksum.
    monkeypatch.setattr(checksum, 'sha256_stream', hash_after_swapping)
    monkeypatch.setattr(install, 'sha256_stream', hash_after_swapping)
    return swapped


def installed_bytes(tree, version, name):
    with open(os.path.join(tree['root'], version, 'bin', name), 'rb') as handle:
        return handle.read()


def test_an_archive_swapped_after_it_was_opened_is_not_what_gets_installed(tree, monkeypatch):
    rel = Release(tree['tmp'], '1.1.0')
    evil = script('1.1.0', extra='# not the release\n')
    other = make_tar(tree['tmp'] / 'other.tar.gz', [('stigmer', evil, 0o755)])
    swapped = swap_once_opened(monkeypatch, rel.tar, other)
    assert run(tree, rel)['installed']
    assert swapped == [rel.tar]
    assert installed_bytes(tree, rel.tag, 'stigmer') == rel.cli_bytes


def test_a_raw_file_swapped_after_it_was_opened_is_not_what_gets_installed(tree, monkeypatch):
    rel = Release(tree['tmp'], '1.1.0')
    other = tree['tmp'] / 'other'
    other.write_bytes(b'#!/bin/sh\necho not the release\n')
    swapped = swap_once_opened(monkeypatch, rel.raw, str(other))
    assert run(tree, rel)['installed']
    assert swapped == [rel.raw]
    assert installed_bytes(tree, rel.tag, 'agent-runner') == rel.runner_bytes


@pytest.mark.parametrize('which', [0, 1])
def test_an_artifact_given_as_a_symbolic_link_is_refused(tree, which):
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    link = str(tree['tmp'] / 'link')
    os.symlink(sources[which]['src'], link)
    sources[which]['src'] = link
    with pytest.raises(InstallError, match='%s is a symbolic link' % re.escape(link)):
        run(tree, rel, sources=sources)
    assert not os.path.lexists(tree['link']) and leftovers(tree) == []


def test_an_archive_past_the_member_cap_is_refused_one_header_past_the_cap(tree, monkeypatch):
    cache = tree['tmp'] / 'cache'
    cache.mkdir()
    tar = make_tar(cache / 'many.tar.gz', [('f%d' % n, b'x', 0o755) for n in range(50)])
    digest = sha(open(tar, 'rb').read())
    monkeypatch.setattr(install, 'extract_executables', functools.partial(install.extract_executables, max_members=5))
    headers = []
    real = tarfile.TarInfo.fromtarfile.__func__

    def counted(cls, tarfile_):
        member = real(cls, tarfile_)
        headers.append(member.name)
        return member

    monkeypatch.setattr(tarfile.TarInfo, 'fromtarfile', classmethod(counted))
    with pytest.raises(InstallError) as info:
        ensure_version(root=tree['root'], version='v6.6.6', link=tree['link'], ids=IDS,
                       sources=[{'src': tar, 'sha256': digest, 'archive': True}])
    assert headers == ['f%d' % n for n in range(6)]
    assert str(info.value).startswith('cannot extract %s: archive has more than 5 members' % tar)
    assert "check that the artifact is the release's own tarball" in str(info.value)
    assert leftovers(tree) == [] and versions(tree) == []


def test_clashing_names_refused(tree):
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    sources[1]['dest'] = 'stigmer'
    with pytest.raises(InstallError, match='clashes'):
        run(tree, rel, sources=sources, checks=[])
    assert leftovers(tree) == []


# --- check mode ---------------------------------------------------------------

def test_check_mode_fresh_host_without_artifacts(tree):
    rel = Release(tree['tmp'], '1.1.0')
    sources = rel.sources()
    os.unlink(rel.tar)
    os.unlink(rel.raw)
    result = run(tree, rel, sources=sources, check_mode=True)
    assert result['changed'] and result['installed'] and result['switched']
    assert result['previous'] is None
    assert result['files'] == ['agent-runner']
    assert not os.path.exists(tree['root'])
    assert not os.path.lexists(tree['link'])


def test_check_mode_installed_tree(tree):
    rel = Release(tree['tmp'], '1.1.0')
    run(tree, rel)
    result = run(tree, rel, check_mode=True)
    assert not result['changed'] and not result['installed'] and not result['switched']
    assert result['files'] == ['agent-runner', 'stigmer']


def test_check_mode_upgrade_reports_prune_without_acting(tree):
    run(tree, Release(tree['tmp'], '1.0.0'))
    run(tree, Release(tree['tmp'], '1.1.0'))
    new = Release(tree['tmp'], '1.2.0')
    sources = new.sources()
    os.unlink(new.raw)
    before = sorted(os.listdir(tree['root']))
    result = run(tree, new, sources=sources, check_mode=True)
    assert result['changed'] and result['installed'] and result['switched']
    assert result['previous'] == 'v1.1.0'
    assert result['pruned'] == ['v1.0.0']
    assert sorted(os.listdir(tree['root'])) == before
    assert os.readlink(tree['link']) == 'versions/v1.1.0'


def test_check_mode_rollback_is_switch_only(tree):
    old = Release(tree['tmp'], '1.0.0')
    run(tree, old)
    run(tree, Release(tree['tmp'], '1.1.0'))
    result = run(tree, old, check_mode=True)
    assert result['changed'] and result['switched'] and not result['installed']
    assert os.readlink(tree['link']) == 'versions/v1.1.0'


def test_default_group_is_root_group():
    assert install.default_group() in ('root', 'wheel')
    assert install.resolve_ids('0', '0') == (0, 0)
    with pytest.raises(InstallError, match='owner'):
        install.resolve_ids('no-such-user-stigmer', None)


# --- reading the active install record (stigmer_info) -------------------------

RUNNER_FILE = 'share/agent-runner.version'
BINS = ['bin/agent-runner', 'bin/stigmer']


def read(tree):
    return install.read_active(tree['link'], read=[RUNNER_FILE], present=BINS)


@pytest.mark.parametrize('target', ['/opt/s/versions/v1', '../elsewhere/v1', 'versions/sub/v1', 'v1',
                                    './v1', 'versions/..', 'versions/.v1.tmp-x'])
def test_link_target_parts_refuses_what_link_value_never_writes(target):
    with pytest.raises(InstallError, match='/opt/s/current points at'):
        install.link_target_parts('/opt/s/current', target)


def test_link_target_parts():
    assert install.link_target_parts('/opt/s/current', 'versions/v1.1.0') == ('versions', 'v1.1.0')


def test_read_active_reads_the_records(tree):
    run(tree, Release(tree['tmp'], '1.1.0'))
    record = read(tree)
    assert record == {'version': 'v1.1.0', 'contents': {RUNNER_FILE: b'v1.1.0\n'}, 'present': BINS,
                      'problems': []}
    os.unlink(tree['link'])
    assert read(tree) is None


def test_read_active_refuses_links_it_did_not_write(tree):
    run(tree, Release(tree['tmp'], '1.1.0'))
    os.unlink(tree['link'])
    os.symlink(os.path.join(tree['root'], 'v1.1.0'), tree['link'])
    with pytest.raises(InstallError, match='not at a version directory beside it'):
        read(tree)
    # A versions directory that is itself a planted link is not followed.
    os.unlink(tree['link'])
    os.symlink(os.path.basename(tree['root']), os.path.join(os.path.dirname(tree['link']), 'planted'))
    os.symlink('planted/v1.1.0', tree['link'])
    with pytest.raises(InstallError, match='planted is a symbolic link or not a directory'):
        read(tree)
    os.unlink(tree['link'])
    os.mkdir(tree['link'])
    with pytest.raises(InstallError, match='is not a symbolic link'):
        read(tree)


def test_read_active_needs_the_manifest_of_that_version(tree):
    run(tree, Release(tree['tmp'], '1.1.0'))
    manifest_path = os.path.join(tree['root'], 'v1.1.0', '.manifest.json')
    manifest = json.load(open(manifest_path))
    manifest['version'] = 'v9.9.9'
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    with pytest.raises(InstallError, match='has no manifest for version v1.1.0'):
        read(tree)
    os.unlink(manifest_path)
    with pytest.raises(InstallError, match='.manifest.json is missing'):
        read(tree)


@pytest.mark.parametrize('damage, problem', [
    ('symlink', 'share/agent-runner.version is a symbolic link or not a file'),
    ('content', 'share/agent-runner.version does not match its recorded sha256'),
    ('mode', r'share/agent-runner.version is writable by group or others \(mode 664\)'),
    ('fifo', 'share/agent-runner.version is not a regular file'),
    ('share-dir', 'share is a symbolic link or not a directory'),
])
def test_read_active_does_not_believe_planted_records(tree, damage, problem):
    run(tree, Release(tree['tmp'], '1.1.0'))
    vdir = os.path.join(tree['root'], 'v1.1.0')
    path = os.path.join(vdir, RUNNER_FILE)
    fake = tree['tmp'] / 'fake'
    fake.mkdir()
    (fake / 'agent-runner.version').write_text('v1.1.0\n')
    if damage == 'symlink':
        os.unlink(path)
        os.symlink(str(fake / 'agent-runner.version'), path)
    elif damage == 'content':
        with open(path, 'w') as handle:
            handle.write('v9.9.9\n')
    elif damage == 'mode':
        os.chmod(path, 0o664)
    elif damage == 'fifo':
        os.unlink(path)
        os.mkfifo(path)
    else:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
        os.symlink(str(fake), os.path.dirname(path))
    record = read(tree)
    assert record['contents'] == {}
    assert record['present'] == BINS
    assert len(record['problems']) == 1 and re.match(problem, record['problems'][0])


def test_read_active_reports_missing_and_foreign_owned_binaries(tree):
    run(tree, Release(tree['tmp'], '1.1.0'))
    bin_dir = os.path.join(tree['root'], 'v1.1.0', 'bin')
    os.unlink(os.path.join(bin_dir, 'agent-runner'))
    record = install.read_active(tree['link'], present=BINS + ['bin/temporal'])
    assert record['present'] == ['bin/stigmer']
    assert record['problems'] == ['bin/agent-runner is missing', 'bin/temporal is not part of the install of v1.1.0']
    if os.geteuid() == 0:
        os.chown(os.path.join(bin_dir, 'stigmer'), 4321, 4321)
        record = install.read_active(tree['link'], present=['bin/stigmer'])
        assert record['problems'] == ['bin/stigmer is owned by uid 4321']
