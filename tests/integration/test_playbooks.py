"""site.yml against real systemd containers and the local release server, with faults.

The stand-in releases behave like upstream's v0.0.x (docs/runtime-facts.md): no version
flag, no gRPC health service, an agent-runner that ignores argv. A baseline installs v0.0.6
(services running) on two amd64 hosts; every fault test then tries to move them to v0.0.7 and must fail with a message that names the cause and the fix,
leaving v0.0.6 installed and running and no temporary file behind.
"""
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / 'build' / 'collections'
sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import build_releases  # noqa: E402
import server_ctl  # noqa: E402
from roundtrips import recap  # noqa: E402  (test_host_safety imports it from here)

IMAGE = 'localhost/stigmer-test-debian:bookworm-amd64'
TOKEN = 'fake-token-integration-0123456789abcdef'


def podman(*args, check=True):
    return subprocess.run(['podman'] + list(args), check=check, capture_output=True, text=True)


def host_sh(name, script):
    return podman('exec', name, 'sh', '-c', script, check=False)


@pytest.fixture(scope='module')
def releases(tmp_path_factory):
    out = tmp_path_factory.mktemp('releases')
    build_releases.build(str(out))
    return out


@pytest.fixture(scope='module')
def tls(tmp_path_factory):
    """A throw-away CA and a certificate for 127.0.0.1: the server's HTTPS listeners."""
    return server_ctl.make_tls(str(tmp_path_factory.mktemp('tls')))


@pytest.fixture(scope='module')
def server(releases, tls):
    handle = server_ctl.start(str(releases), server_ctl.free_port(), server_ctl.free_port(), token=TOKEN,
                              tls=tls, tls_port=server_ctl.free_port(), tls_asset_port=server_ctl.free_port())
    yield handle
    server_ctl.stop(handle)


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.skip('%s is missing: run tests/env/build-images.sh' % IMAGE)
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-it-%s-%d' % (tag, i) for i in (1, 2)]
    inventory = start_hosts(names, tmp_path_factory.mktemp('inventory') / 'hosts.yml')
    yield names, inventory
    podman('rm', '-f', *names, check=False)


# These containers' systemd lacks CAP_SYS_ADMIN, so it cannot enforce the server's IPAddressDeny=
# (the role stops unless this accepts it); slirp4netns lets no other network in anyway. Molecule's
# default scenario runs with the capability and proves the filter.
HOST_VARS = {'stigmer_server_accept_unfiltered_network': True}


def start_hosts(names, inventory):
    """Start a systemd container per name, wait for systemd, write their inventory; return its path."""
    for name in names:
        podman('run', '-d', '--name', name, '--hostname', name, '--systemd=always',
               '--network', 'slirp4netns:allow_host_loopback=true', '--label', 'owner=stigmer-it', IMAGE, '/sbin/init')
    for name in names:
        for _attempt in range(60):
            if host_sh(name, 'systemctl is-system-running').stdout.strip() in ('running', 'degraded'):
                break
            time.sleep(1)
    inventory.write_text(json.dumps({'all': {
        'vars': dict(HOST_VARS, ansible_connection='containers.podman.podman', ansible_become=False,
                     ansible_python_interpreter='/usr/bin/python3'),
        'hosts': {name: {} for name in names}}}))
    return inventory


def site_command(server, inventory, cache_dir, extra=None, limit=None, env=None, playbook='site.yml', flags=()):
    """(argv, environment, extra vars) of an ansible-playbook run of this checkout's playbook."""
    extra_vars = {
        'stigmer_github_url': server.base_url,
        'stigmer_github_api_url': server.api_url,
        'stigmer_cache_dir': str(cache_dir),
        'stigmer_llm_provider': 'anthropic',
        'stigmer_anthropic_api_key': 'integration-key-not-a-secret',
    }
    extra_vars.update(extra or {})
    cmd = ['ansible-playbook', '-i', str(inventory), str(ROOT / 'playbooks' / playbook), '-e', json.dumps(extra_vars)]
    if limit:
        cmd += ['--limit', limit]
    cmd += list(flags)
    if (COLLECTIONS / 'ansible_collections' / 'stigmer' / 'runtime').resolve() != ROOT:
        pytest.fail('%s does not expose this checkout as stigmer.runtime: run make collection-link' % COLLECTIONS)
    proc_env = dict(os.environ)
    proc_env.pop('GITHUB_TOKEN', None)
    # This checkout, never a copy installed elsewhere, whether or not pytest runs from make.
    proc_env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CONFIG=str(ROOT / 'tests' / 'ansible.cfg'),
                    PYTHONUNBUFFERED='1')
    proc_env.update(env or {})
    return cmd, proc_env, extra_vars


def run_site(server, inventory, cache_dir, extra=None, limit=None, env=None, playbook='site.yml', flags=()):
    cmd, proc_env, extra_vars = site_command(server, inventory, cache_dir, extra, limit, env, playbook, flags)
    result = subprocess.run(cmd, capture_output=True, text=True, env=proc_env, cwd=str(ROOT), check=False)
    # Whatever happens (failures, rollbacks, log dumps), an API key never reaches the output.
    assert extra_vars['stigmer_anthropic_api_key'] not in result.stdout + result.stderr
    return result


# Everything the role writes on a system-scope host, plus the services' main PIDs so that
# a restart counts as a change. Temporal's database and the journal change on their own.
STATE_SCRIPT = r"""
paths="/opt/stigmer /etc/stigmer /var/cache/stigmer /var/lib/stigmer/.stigmer/bin
       /var/lib/stigmer/.stigmer/data/bin $(find /etc/systemd/system -name 'stigmer*')"
find $paths -printf '%p %y %m %u:%g %l\n' | sort
find $paths -type f -exec sha256sum {} + | sort
systemctl show -p Id -p MainPID -p ActiveState stigmer-temporal stigmer-server stigmer-workflow-runner \
  stigmer-agent-runner
"""


def host_state(name):
    return host_sh(name, STATE_SCRIPT).stdout


def assert_untouched(name, before):
    """The host is exactly as before the run: same files, same links, same service processes, v0.0.6
    current and running, and no temporary file anywhere the role writes."""
    after = host_state(name)
    assert after == before
    assert '/opt/stigmer/current l 777 root:root versions/v0.0.6\n' in after
    assert host_sh(name, 'stigmer --help').returncode == 0
    assert host_sh(name, 'systemctl is-active stigmer-server stigmer-agent-runner').stdout.split() == ['active'] * 2
    leftovers = host_sh(name, "find /opt/stigmer /var/cache/stigmer /var/lib/stigmer -name '.*tmp*'").stdout
    assert leftovers == ''


def assert_no_temp(cache_dir):
    assert [p.name for p in Path(cache_dir).rglob('.*') if p.is_file() and not p.name.endswith('.lock')] == []


@pytest.fixture(scope='module')
def baseline(server, fleet, tmp_path_factory):
    names, inventory = fleet
    cache = tmp_path_factory.mktemp('cache')
    server_ctl.reset(server.port)
    first = run_site(server, inventory, cache, {'stigmer_version': '0.0.6'})
    assert first.returncode == 0, first.stdout[-4000:]
    downloads = server_ctl.stats(server.port)['downloads']
    server_ctl.reset(server.port)
    second = run_site(server, inventory, cache, {'stigmer_version': '0.0.6'})
    assert second.returncode == 0, second.stdout[-4000:]
    return {'downloads': downloads, 'second': second, 'second_stats': server_ctl.stats(server.port), 'cache': cache}


def test_two_hosts_of_one_platform_download_each_artifact_once(baseline):
    downloads = baseline['downloads']
    assert downloads == {name: 1 for name in downloads}
    assert set(downloads) >= {'stigmer-v0.0.6-linux-amd64.tar.gz', 'agent-runner-v0.0.6-linux-amd64',
                              'temporal_cli_1.5.1_linux_amd64.tar.gz'}


def test_second_run_with_a_warm_cache_changes_nothing_and_sends_no_request(baseline):
    assert all(counts['changed'] == 0 for counts in recap(baseline['second'].stdout).values())
    stats = baseline['second_stats']
    assert (stats['api_requests']['total'], stats['web_requests']['total'], stats['downloads_total']) == (0, 0, 0)


@pytest.mark.parametrize('fault, expected', [
    ({'corrupt': ['agent-runner-v0.0.7-linux-amd64']}, 'checksum mismatch for agent-runner-v0.0.7-linux-amd64'),
    ({'bad_checksum': ['stigmer-v0.0.7-linux-amd64.tar.gz']},
     'the GitHub API digest of stigmer-v0.0.7-linux-amd64.tar.gz (sha256:'),
    ({'missing': ['agent-runner-v0.0.7-linux-amd64']}, 'has no build for linux-amd64'),
], ids=['corrupt-download', 'wrong-checksum', 'missing-asset'])
def test_fault_fails_clearly_and_leaves_the_host_as_it_was(baseline, server, fleet, tmp_path, fault, expected):
    names, inventory = fleet
    before = host_state(names[0])
    server_ctl.reset(server.port)
    server_ctl.faults(server.port, fault)
    try:
        result = run_site(server, inventory, tmp_path / 'cache', {'stigmer_version': '0.0.7'}, limit=names[0])
    finally:
        server_ctl.reset(server.port)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout[-3000:]
    assert_untouched(names[0], before)
    assert_no_temp(tmp_path / 'cache')


@pytest.mark.parametrize('missing, expected', [
    ('agent-runner-v0.0.7-linux-amd64', ['404', 'agent-runner-v0.0.7-linux-amd64']),
    # A mirror has no API digest: without the published .sha256 nothing can prove the bytes.
    ('agent-runner-v0.0.7-linux-amd64.sha256', ['agent-runner-v0.0.7-linux-amd64.sha256', 'stigmer_checksums']),
], ids=['asset', 'checksum-file'])
def test_a_file_missing_on_a_mirror_fails_naming_it(baseline, server, fleet, tmp_path, missing, expected):
    names, inventory = fleet
    before = host_state(names[0])
    server_ctl.faults(server.port, {'missing': [missing]})
    try:
        result = run_site(server, inventory, tmp_path / 'cache', {
            'stigmer_version': '0.0.7',
            'stigmer_mirror_url': 'http://127.0.0.1:%d/mirror/stigmer/stigmer' % server.asset_port,
            'stigmer_temporal_mirror_url': 'http://127.0.0.1:%d/mirror/temporalio/cli' % server.asset_port,
        }, limit=names[0])
    finally:
        server_ctl.reset(server.port)
    assert result.returncode != 0
    assert all(text in result.stdout for text in expected), result.stdout[-3000:]
    assert_untouched(names[0], before)


RUNNER_007 = 'agent-runner-v0.0.7-linux-amd64'


# 429 with Retry-After and an oversized body are covered per module in test_network_faults.py.
@pytest.mark.parametrize('fault, hits', [
    ({'status_then_ok': {RUNNER_007: [503, 502]}}, {'status_then_ok': {RUNNER_007: 2}}),
    ({'reset': {RUNNER_007: 1}}, {'reset': {RUNNER_007: 1}}),
], ids=['5xx-twice', 'reset-mid-body'])
def test_transient_faults_are_retried_and_the_run_succeeds(baseline, server, fleet, tmp_path, fault, hits):
    names, inventory = fleet
    # A kept v0.0.7 would be switched to without a download.
    host_sh(names[0], 'rm -rf /opt/stigmer/versions/v0.0.7')
    server_ctl.reset(server.port)
    server_ctl.faults(server.port, fault)
    try:
        # A real upgrade (a --check run downloads nothing), undone afterwards for the other tests.
        result = run_site(server, inventory, tmp_path / 'cache', {'stigmer_version': '0.0.7'}, limit=names[0])
        stats = server_ctl.stats(server.port)
        upgraded = host_sh(names[0], 'readlink /opt/stigmer/current').stdout.strip()
    finally:
        server_ctl.reset(server.port)
        restored = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.6'}, limit=names[0])
        assert restored.returncode == 0, restored.stdout[-3000:]
        # Back to the baseline: the tests after this one must have v0.0.7 to download.
        host_sh(names[0], 'rm -rf /opt/stigmer/versions/v0.0.7')
    assert result.returncode == 0, result.stdout[-3000:]
    assert {fault: keys for fault, keys in stats['fault_hits'].items() if keys} == hits
    assert stats['downloads'][RUNNER_007] == 1
    assert upgraded == 'versions/v0.0.7'
    assert_no_temp(tmp_path / 'cache')


@pytest.mark.parametrize('fault, extra, expected', [
    ({'endless': [RUNNER_007]}, {}, 'larger than'),
    ({'drip': {RUNNER_007: 0.5}}, {'stigmer_download_timeout': 4}, 'did not finish within 4 s'),
], ids=['endless-body', 'slow-drip'])
def test_hostile_downloads_fail_fast_and_leave_host_and_cache_as_they_were(
        baseline, server, fleet, tmp_path, fault, extra, expected):
    names, inventory = fleet
    before = host_state(names[0])
    server_ctl.faults(server.port, fault)
    try:
        started = time.monotonic()
        result = run_site(server, inventory, tmp_path / 'cache', dict({'stigmer_version': '0.0.7'}, **extra),
                          limit=names[0])
        elapsed = time.monotonic() - started
    finally:
        server_ctl.reset(server.port)
    assert result.returncode != 0
    assert expected in result.stdout and RUNNER_007 in result.stdout and 'attempt' in result.stdout, \
        result.stdout[-3000:]
    assert elapsed < 120, elapsed
    assert_untouched(names[0], before)
    assert_no_temp(tmp_path / 'cache')


def test_an_https_download_never_continues_on_http(baseline, server, fleet, tls, tmp_path):
    names, inventory = fleet
    before = host_state(names[0])
    server_ctl.faults(server.port, {'downgrade': [RUNNER_007]})
    try:
        result = run_site(server, inventory, tmp_path / 'cache', {
            'stigmer_version': '0.0.7', 'stigmer_github_url': server.https_base_url,
            'stigmer_github_api_url': server.https_api_url}, limit=names[0], env={'SSL_CERT_FILE': tls.ca})
        stats = server_ctl.stats(server.port)
    finally:
        server_ctl.reset(server.port)
    assert result.returncode != 0
    assert server.https_base_url in result.stdout and 'http://127.0.0.1:%d/mirror/' % server.asset_port \
        in result.stdout, result.stdout[-3000:]
    assert RUNNER_007 not in stats['downloads']
    assert_untouched(names[0], before)
    assert_no_temp(tmp_path / 'cache')


def test_no_secret_reaches_the_output_of_a_play_at_vvv(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    password = 'mirror-pass-0f9e8d7c'
    proxy_password = 'pr0xy-s3cret-77aa'
    secrets = {TOKEN: 'token', password: 'mirror password', 'integration-key-not-a-secret': 'API key',
               base64.b64encode(('deployer:' + password).encode()).decode(): 'basic auth header',
               proxy_password: 'proxy password'}
    # The token as `echo TOKEN | ansible-vault encrypt_string` stores it, with its newline; the play
    # succeeds (--check keeps the host as it is). In host mode, with a proxy whose password must
    # stay off the host's command line (ps, and the EXEC lines of -vvv); NO_PROXY lets it succeed.
    # The host reaches the controller's loopback as 10.0.2.2 (slirp4netns).
    proxy = 'http://deployer:%s@127.0.0.1:9' % proxy_password
    with_token = run_site(server, inventory, tmp_path / 'cache', {
        'stigmer_version': '0.0.7', 'stigmer_download_mode': 'host',
        'stigmer_github_url': server.base_url.replace('127.0.0.1', '10.0.2.2'),
        'stigmer_github_api_url': server.api_url.replace('127.0.0.1', '10.0.2.2'),
        'stigmer_allow_insecure_transport': True,
        'stigmer_download_environment': {'HTTPS_PROXY': proxy, 'HTTP_PROXY': proxy, 'NO_PROXY': '*'}},
        limit=names[0], env={'GITHUB_TOKEN': TOKEN + '\n'}, flags=['-vvv', '--check'])
    assert with_token.returncode == 0, with_token.stdout[-3000:]
    # Mirror credentials in the URL; the test mirror refuses any Authorization, so this one fails
    # and its error paths are searched too.
    with_mirror = run_site(server, inventory, tmp_path / 'cache2', {
        'stigmer_version': '0.0.7',
        'stigmer_mirror_url': 'http://deployer:%s@127.0.0.1:%d/mirror/stigmer/stigmer' % (password, server.asset_port),
        'stigmer_temporal_mirror_url': 'http://127.0.0.1:%d/mirror/temporalio/cli' % server.asset_port},
        limit=names[0], flags=['-vvv', '--check'])
    output = with_token.stdout + with_token.stderr + with_mirror.stdout + with_mirror.stderr
    assert 'mirror/stigmer/stigmer' in with_mirror.stdout, with_mirror.stdout[-3000:]
    assert {name: output.count(secret) for secret, name in secrets.items()} == {name: 0 for name in secrets.values()}


def test_rate_limited_api_gives_the_reset_time_and_how_to_pass_a_token(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    before = host_state(names[0])
    server_ctl.faults(server.port, {'rate_limited': True, 'latest_redirect': False})
    try:
        result = run_site(server, inventory, tmp_path / 'cache', {'stigmer_version': 'latest'}, limit=names[0])
    finally:
        server_ctl.reset(server.port)
    assert result.returncode != 0
    assert 'rate limit exceeded' in result.stdout and 'resets at' in result.stdout, result.stdout[-3000:]
    assert 'GITHUB_TOKEN' in result.stdout
    assert_untouched(names[0], before)


def test_unsupported_architecture_fails_that_host_only_listing_supported_platforms(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    # A 32-bit personality: uname -m says i686 on this 64-bit kernel, as on a 32-bit userland.
    host_sh(names[1], 'printf "#!/bin/sh\\nexec setarch i686 /usr/bin/python3 \\"\\$@\\"\\n" > /usr/local/bin/python3-i686'
                      ' && chmod 0755 /usr/local/bin/python3-i686')
    inv = tmp_path / 'hosts.yml'
    data = json.loads(Path(inventory).read_text())
    data['all']['hosts'][names[1]] = {'ansible_python_interpreter': '/usr/local/bin/python3-i686'}
    inv.write_text(json.dumps(data))
    before = host_state(names[1])
    result = run_site(server, inv, baseline['cache'], {'stigmer_version': '0.0.6'})
    counts = recap(result.stdout)
    assert counts[names[1]]['failed'] == 1 and counts[names[0]]['failed'] == 0, result.stdout[-3000:]
    assert 'i686' in result.stdout and 'linux-amd64, linux-arm64' in result.stdout
    assert_untouched(names[1], before)


def test_token_goes_to_the_api_only_and_never_into_output(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    server_ctl.reset(server.port)
    result = run_site(server, inventory, tmp_path / 'cache', {'stigmer_version': '0.0.6'}, limit=names[0],
                      env={'GITHUB_TOKEN': TOKEN, 'ANSIBLE_VERBOSITY': '2'})
    assert result.returncode == 0, result.stdout[-3000:]
    stats = server_ctl.stats(server.port)
    assert stats['api_by_auth']['authenticated'] >= 1 and stats['api_by_auth']['anonymous'] == 0
    assert stats['requests_with_auth_on_asset_host'] == 0
    assert TOKEN not in result.stdout + result.stderr


def test_check_diff_on_an_installed_host_shows_the_version_change(baseline, server, fleet):
    names, inventory = fleet
    before = host_state(names[0])
    result = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.7'}, limit=names[0],
                      flags=['--check', '--diff'])
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)[names[0]]['changed'] > 0
    assert '-    version: v0.0.6\n+    version: v0.0.7' in result.stdout, result.stdout[-3000:]
    assert_untouched(names[0], before)


def test_upgrade_that_fails_its_health_check_rolls_back_to_the_running_version(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    # v0.0.7's server has no gRPC health service, like upstream's: requiring one fails the
    # gate, and the role switches current back and restarts v0.0.6. The gate then runs again on
    # v0.0.6, which has no health service either, and the message says so.
    result = run_site(server, inventory, baseline['cache'],
                      {'stigmer_version': '0.0.7', 'stigmer_health_require_status': True,
                       'stigmer_health_timeout': 8, 'stigmer_health_settle': 2},
                      limit=names[0])
    assert result.returncode != 0
    assert 'Rolled back to stigmer v0.0.6, which is not healthy either: ' in result.stdout, result.stdout[-3000:]
    assert '--- server (last log lines) ---' in result.stdout
    assert 'gave no health status' in result.stdout
    assert host_sh(names[0], 'readlink /opt/stigmer/current').stdout.strip() == 'versions/v0.0.6'
    # Every process was started after current was switched back, so from v0.0.6.
    switched = int(host_sh(names[0], 'stat -c %Y /opt/stigmer/current').stdout)
    for unit in ('stigmer-server', 'stigmer-workflow-runner', 'stigmer-agent-runner'):
        started = host_sh(names[0], 'date -d "$(ps -o lstart= -p $(systemctl show -p MainPID --value %s))" +%%s' % unit)
        assert int(started.stdout) >= switched, (unit, started)
    # The rolled-back host is consistent: asking for v0.0.6 again changes nothing.
    retry = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.6'}, limit=names[0])
    assert recap(retry.stdout)[names[0]] == dict(recap(retry.stdout)[names[0]], changed=0, failed=0), retry.stdout[-3000:]


def test_user_scope_installs_into_the_connecting_users_home_without_root(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    host_sh(names[1], 'id alice || useradd --create-home --shell /bin/sh alice')
    inv = tmp_path / 'hosts.yml'
    data = json.loads(Path(inventory).read_text())
    data['all']['hosts'] = {names[1]: {'ansible_user': 'alice'}}
    inv.write_text(json.dumps(data))
    extra = {'stigmer_version': '0.0.7', 'stigmer_install_scope': 'user', 'stigmer_service_enabled': False}
    before = host_state(names[1])
    first = run_site(server, inv, baseline['cache'], extra)
    assert first.returncode == 0, first.stdout[-3000:]
    second = run_site(server, inv, baseline['cache'], extra)
    assert recap(second.stdout)[names[1]]['changed'] == 0, second.stdout[-3000:]
    as_alice = 'runuser -u alice -- sh -c "cd ~ && %s"'
    assert host_sh(names[1], as_alice % '.local/bin/stigmer --help').returncode == 0
    assert host_sh(names[1], as_alice % 'cat .stigmer/data/bin/.version').stdout == 'v0.0.7\n'
    assert host_sh(names[1], as_alice % 'readlink .local/share/stigmer/current').stdout.strip() == 'versions/v0.0.7'
    assert host_sh(names[1], 'stat -c %U /home/alice/.local/share/stigmer/versions/v0.0.7/bin/stigmer').stdout.strip() \
        == 'alice'
    # The system install on the same host is untouched.
    assert_untouched(names[1], before)


def test_external_temporal_replaces_the_bundled_one(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    # "External" Temporal: the same Temporal CLI as a transient unit on another port.
    started = host_sh(names[1], 'systemd-run --unit external-temporal --property=User=nobody '
                                '/opt/stigmer/temporal/current/bin/temporal server start-dev --port 7299 '
                                '--ui-port 8299 --headless --db-filename /tmp/external-temporal.db')
    assert started.returncode == 0, started.stderr
    extra = {'stigmer_version': '0.0.6', 'stigmer_temporal_enabled': False,
             'stigmer_temporal_address': '127.0.0.1:7299'}
    result = run_site(server, inventory, baseline['cache'], extra, limit=names[1])
    assert result.returncode == 0, result.stdout[-3000:]
    assert host_sh(names[1], 'test -e /etc/systemd/system/stigmer-temporal.service').returncode != 0
    assert "TEMPORAL_HOST_PORT='127.0.0.1:7299'" in host_sh(names[1], 'cat /etc/stigmer/server.env').stdout
    assert "TEMPORAL_SERVICE_ADDRESS='127.0.0.1:7299'" in host_sh(names[1], 'cat /etc/stigmer/agent-runner.env').stdout
    assert host_sh(names[1], 'systemctl is-active stigmer-server stigmer-agent-runner').stdout.split() == ['active'] * 2
    again = run_site(server, inventory, baseline['cache'], extra, limit=names[1])
    assert recap(again.stdout)[names[1]]['changed'] == 0, again.stdout[-3000:]


def test_malformed_api_key_fails_up_front_with_a_visible_reason(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    before = host_state(names[0])
    result = run_site(server, inventory, baseline['cache'],
                      {'stigmer_version': '0.0.7', 'stigmer_anthropic_api_key': "sk-x'; rm -rf /"}, limit=names[0])
    assert result.returncode != 0
    assert 'An API key contains a quote' in result.stdout, result.stdout[-3000:]
    assert "rm -rf" not in result.stdout + result.stderr
    assert_untouched(names[0], before)


def test_latest_skips_releases_without_the_cli_and_says_so(baseline, server, fleet, tmp_path):
    names, inventory = fleet
    before = host_state(names[0])
    # GitHub's newest releases carry no CLI or agent-runner (as upstream's v3.x): latest is the
    # newest one that does, and the run names what it skipped.
    result = run_site(server, inventory, tmp_path / 'cache', {'stigmer_version': 'latest'}, limit=names[0],
                      flags=['--check', '--diff'])
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert 'v3.27.2' in output and 'v3.27.1' in output, output[-3000:]
    assert '+    version: v0.1.0' in result.stdout, result.stdout[-3000:]
    assert 'it offers .' not in output
    assert_untouched(names[0], before)


def server_main_pid(name):
    return int(host_sh(name, 'systemctl show -p MainPID --value stigmer-server').stdout)


def server_pollers(name):
    """The PIDs Temporal lists polling the server's agent_execution_stigmer queue for workflows,
    asked with upstream's `temporal` CLI on the host (its describe reads every partition)."""
    out = host_sh(name, '/opt/stigmer/temporal/current/bin/temporal task-queue describe --address 127.0.0.1:7233 '
                        '--task-queue agent_execution_stigmer -o json').stdout
    return {int(p['identity'].split('@')[0]) for p in json.loads(out).get('pollers') or []
            if p['taskQueueType'] == 'workflow' and p['identity'].split('@')[1] == name}


def test_a_server_started_without_temporal_is_caught_and_restarted_by_the_gate(baseline, server, fleet):
    names, inventory = fleet
    # As if started by hand or by an older unit: the server comes up while Temporal is down,
    # serves gRPC without its workers and would never reconnect.
    drop_in = '/etc/systemd/system/stigmer-server.service.d/no-wait.conf'
    setup = host_sh(names[0], 'mkdir -p %s && printf "[Service]\\nExecStartPre=\\n" > %s && systemctl daemon-reload'
                              ' && systemctl stop stigmer-temporal'
                              ' && systemctl start --job-mode=ignore-requirements stigmer-server'
                              ' && sleep 2 && systemctl start stigmer.target' % (drop_in.rsplit('/', 1)[0], drop_in))
    try:
        assert setup.returncode == 0, setup.stderr
        stale = host_sh(names[0], 'journalctl --no-pager -a -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p '
                                  'InvocationID --value stigmer-server)').stdout
        assert 'Failed to connect to Temporal server' in stale, stale
        # Temporal lists earlier servers for a few minutes after they stopped, but not this one.
        assert server_main_pid(names[0]) not in server_pollers(names[0])
        result = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.6'}, limit=names[0])
        assert result.returncode == 0, result.stdout[-3000:]
        assert recap(result.stdout)[names[0]]['changed'] == 1, result.stdout[-3000:]
        fresh = host_sh(names[0], 'journalctl --no-pager -a -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p '
                                  'InvocationID --value stigmer-server)').stdout
        assert 'Failed to connect to Temporal server' not in fresh and 'Connected to Temporal server' in fresh, fresh
        # Restarted because Temporal listed no poller of it: now Temporal lists its new process.
        assert server_main_pid(names[0]) in server_pollers(names[0])
    finally:
        host_sh(names[0], 'rm -rf %s && systemctl daemon-reload' % drop_in.rsplit('/', 1)[0])


def test_environment_values_arrive_byte_for_byte_or_are_refused(baseline, server, fleet):
    names, inventory = fleet
    tricky = 'x"y $(touch /var/lib/stigmer/pwned) `touch /var/lib/stigmer/pwned` a\\b\\\\c $HOME ${HOME} %h ;#'
    before = host_state(names[0])
    refused = run_site(server, inventory, baseline['cache'], {
        'stigmer_version': '0.0.6', 'stigmer_extra_environment': {'QUOTED': "it's", 'SPLIT': 'a\nb'}},
        limit=names[0])
    assert refused.returncode != 0
    assert 'cannot be written to the services' in refused.stdout and 'QUOTED, SPLIT' in refused.stdout, \
        refused.stdout[-3000:]
    assert_untouched(names[0], before)
    try:
        result = run_site(server, inventory, baseline['cache'], {
            'stigmer_version': '0.0.6', 'stigmer_extra_environment': {'TRICKY': tricky}}, limit=names[0])
        assert result.returncode == 0, result.stdout[-3000:]
        pid = host_sh(names[0], 'systemctl show -p MainPID --value stigmer-server').stdout.strip()
        environ = podman('exec', names[0], 'cat', '/proc/%s/environ' % pid).stdout
        assert 'TRICKY=%s' % tricky in environ.split('\0')
        assert host_sh(names[0], 'test -e /var/lib/stigmer/pwned').returncode != 0
    finally:
        restored = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.6'}, limit=names[0])
        assert restored.returncode == 0, restored.stdout[-3000:]
        # Back to the baseline: the tests after this one must have v0.0.7 to download.
        host_sh(names[0], 'rm -rf /opt/stigmer/versions/v0.0.7')


def test_a_crash_looping_component_fails_the_run_with_its_log_until_switched_off(baseline, server, fleet):
    names, inventory = fleet
    # v0.0.5's workflow-runner exits 1 at once, as upstream's v0.0.5 to v0.0.7 do.
    extra = {'stigmer_version': '0.0.5', 'stigmer_health_timeout': 60, 'stigmer_health_settle': 5}
    looping = run_site(server, inventory, baseline['cache'], extra, limit=names[0])
    assert looping.returncode != 0
    assert 'workflow-runner' in looping.stdout and 'crash loop' in looping.stdout, looping.stdout[-3000:]
    assert '--- workflow-runner (last log lines) ---' in looping.stdout
    assert 'Rolled back to stigmer v0.0.6, which is running again' in looping.stdout
    assert host_sh(names[0], 'readlink /opt/stigmer/current').stdout.strip() == 'versions/v0.0.6'
    try:
        off = run_site(server, inventory, baseline['cache'], dict(extra, stigmer_workflow_runner_enabled=False),
                       limit=names[0])
        assert off.returncode == 0, off.stdout[-3000:]
        assert host_sh(names[0], 'readlink /opt/stigmer/current').stdout.strip() == 'versions/v0.0.5'
        assert host_sh(names[0], 'test -e /etc/systemd/system/stigmer-workflow-runner.service').returncode != 0
        assert host_sh(names[0], 'systemctl is-active stigmer-server stigmer-agent-runner').stdout.split() == \
            ['active'] * 2
    finally:
        restored = run_site(server, inventory, baseline['cache'], {'stigmer_version': '0.0.6'}, limit=names[0])
        assert restored.returncode == 0, restored.stdout[-3000:]
        # Back to the baseline: the tests after this one must have v0.0.7 to download.
        host_sh(names[0], 'rm -rf /opt/stigmer/versions/v0.0.7')
