"""Role variables mean what they say, in the key=value form of -e too, on real systemd hosts.

``-e key=value`` hands Ansible strings: "false" must switch a feature off, not on. Values that
would reach a unit file are checked for where they go before any host changes, and values that
systemd would expand (``%``, ``$``) reach the process literally. verify.yml knows the version asked.
"""
import json
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_playbooks  # noqa: E402
from test_playbooks import IMAGE, host_sh, podman, recap, run_site, start_hosts  # noqa: E402

releases, tls, server = test_playbooks.releases, test_playbooks.tls, test_playbooks.server

# Everything a run could leave on a fresh host: the role's directories, units and the account.
FOOTPRINT = ("ls -d /opt/stigmer /etc/stigmer /var/lib/stigmer /usr/local/bin/stigmer "
             "/etc/systemd/system/stigmer* 2>/dev/null; getent passwd stigmer; getent group stigmer; true")
LITERAL = '50%_off_$HOME_%n_$$'


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.skip('%s is missing: run tests/env/build-images.sh' % IMAGE)
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-ts-%s-%d' % (tag, i) for i in (1, 2)]
    inventory = start_hosts(names, tmp_path_factory.mktemp('inventory') / 'hosts.yml')
    yield names, inventory
    podman('rm', '-f', *names, check=False)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('cache')


def kv(**values):
    """-e key=value flags: every value reaches Ansible as a string."""
    flags = []
    for key, value in values.items():
        flags += ['-e', '%s=%s' % (key, value)]
    return tuple(flags)


def listening_ports(name):
    """TCP ports in LISTEN state on the host, from /proc (no ss/netstat in the image)."""
    out = host_sh(name, 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null').stdout
    return sorted({int(f[1].split(':')[1], 16) for f in (line.split() for line in out.splitlines()[1:])
                   if len(f) > 3 and f[3] == '0A'})


@pytest.mark.parametrize('extra, variable', [
    ({'stigmer_server_allowed_networks': ['10.0.0.0/8\nExecStartPre=+/bin/touch /tmp/pwned']},
     'stigmer_server_allowed_networks'),
    ({'stigmer_temporal_namespace': 'default\nExecStartPre=+/bin/touch /tmp/pwned'}, 'stigmer_temporal_namespace'),
    ({'stigmer_server_allowed_networks': ['10.0.0.0/33']}, 'stigmer_server_allowed_networks'),
], ids=['newline-in-allow-list', 'newline-in-namespace', 'bad-network'])
def test_a_value_that_cannot_go_into_a_unit_is_refused_before_any_host_changes(server, hosts, cache, extra, variable):
    names, inventory = hosts
    before = host_sh(names[0], FOOTPRINT).stdout
    result = run_site(server, inventory, cache, extra, limit=names[0])
    assert result.returncode != 0
    assert variable in result.stdout and 'Nothing was changed on any host' in result.stdout, result.stdout[-3000:]
    assert host_sh(names[0], FOOTPRINT).stdout == before == ''
    assert host_sh(names[0], 'test -e /tmp/pwned').returncode != 0


def test_a_host_that_would_not_enforce_the_servers_network_filter_is_refused_before_any_change(server, hosts, cache):
    # This container's systemd has no CAP_SYS_ADMIN: IPAddressDeny= would be ignored (checked below).
    names, inventory = hosts
    result = run_site(server, inventory, cache, limit=names[0],
                      flags=kv(stigmer_server_accept_unfiltered_network='false'))
    assert result.returncode != 0
    flat = ' '.join(result.stdout.split())
    assert 'would not be enforced here' in flat and 'CAP_SYS_ADMIN' in flat, result.stdout[-3000:]
    assert 'stigmer_server_accept_unfiltered_network=true' in flat and 'Nothing was changed' in flat
    assert host_sh(names[0], FOOTPRINT).stdout == ''
    # What the refusal is about: a unit with the same filter is reachable from the host's own address.
    probe = host_sh(names[0], 'systemd-run --unit=filter-probe -p IPAddressDeny=any -p IPAddressAllow=localhost '
                              'python3 -m http.server 8999 >/dev/null 2>&1; sleep 1; '
                              'address=$(hostname -I | cut -d" " -f1); '
                              'python3 -c "import socket,sys; socket.create_connection((sys.argv[1], 8999), 3)" "$address" '
                              '&& echo reachable; systemctl stop filter-probe')
    assert 'reachable' in probe.stdout, probe.stdout + probe.stderr


def test_create_user_false_without_the_account_fails_up_front_naming_it(server, hosts, cache):
    names, inventory = hosts
    result = run_site(server, inventory, cache, limit=names[0], flags=kv(stigmer_service_create_user='false'))
    assert result.returncode != 0
    assert 'does not exist' in result.stdout and 'stigmer_service_create_user is false' in result.stdout, \
        result.stdout[-3000:]
    assert host_sh(names[0], FOOTPRINT).stdout == ''


def test_service_enabled_false_gives_binaries_only(server, hosts, cache):
    names, inventory = hosts
    flags = kv(stigmer_service_enabled='false')
    first = run_site(server, inventory, cache, limit=names[0], flags=flags)
    assert first.returncode == 0, first.stdout[-3000:]
    host = names[0]
    assert host_sh(host, 'stigmer --help').returncode == 0
    assert host_sh(host, 'test -x /opt/stigmer/current/bin/agent-runner').returncode == 0
    assert host_sh(host, 'getent passwd stigmer; getent group stigmer').stdout == ''
    assert host_sh(host, 'ls /etc/systemd/system | grep stigmer; ls /etc/stigmer').stdout == ''
    assert host_sh(host, 'systemctl list-units --all "stigmer*" --no-legend').stdout.strip() == ''
    assert not {7233, 7234, 8233} & set(listening_ports(host))
    second = run_site(server, inventory, cache, limit=names[0], flags=flags)
    assert second.returncode == 0 and recap(second.stdout)[host]['changed'] == 0, second.stdout[-3000:]


@pytest.fixture(scope='module')
def runner_off(server, hosts, cache):
    """The second host on v0.0.6 (whose workflow runner exits at once) with the runner switched off by
    key=value and an environment value systemd would expand if the role let it."""
    names, inventory = hosts
    extra = {'stigmer_version': '0.0.6', 'stigmer_extra_environment': {'STIGMER_TEST_LITERAL': LITERAL}}
    flags = kv(stigmer_workflow_runner_enabled='false', stigmer_health_timeout='60')
    first = run_site(server, inventory, cache, extra, limit=names[1], flags=flags)
    second = run_site(server, inventory, cache, extra, limit=names[1], flags=flags)
    return names[1], inventory, first, second


def test_workflow_runner_enabled_false_converges_without_waiting_for_it(runner_off):
    host, dummy, first, second = runner_off
    assert first.returncode == 0, first.stdout[-3000:]
    assert 'workflow-runner' not in host_sh(host, 'ls /etc/systemd/system /etc/stigmer').stdout
    active = host_sh(host, 'systemctl is-active stigmer-temporal stigmer-server stigmer-agent-runner').stdout.split()
    assert active == ['active'] * 3
    assert second.returncode == 0 and recap(second.stdout)[host]['changed'] == 0, second.stdout[-3000:]


def test_percent_and_dollar_reach_the_process_literally(runner_off):
    host = runner_off[0]
    environ = host_sh(host, 'tr "\\0" "\\n" < /proc/$(systemctl show -p MainPID --value stigmer-server)/environ').stdout
    assert 'STIGMER_TEST_LITERAL=%s' % LITERAL in environ.splitlines()


def test_verify_reports_drift_when_the_fleet_is_on_an_older_pin_than_asked(server, runner_off, cache, tmp_path):
    host, inventory, first, dummy = runner_off
    assert first.returncode == 0
    flags = kv(stigmer_workflow_runner_enabled='false')
    asked_older = run_site(server, inventory, cache, {'stigmer_version': '0.0.6', 'stigmer_report_dir': str(tmp_path / 'a')},
                           limit=host, playbook='verify.yml', flags=flags)
    assert asked_older.returncode == 0, asked_older.stdout[-3000:]
    asked_newer = run_site(server, inventory, cache, {'stigmer_version': '0.0.7', 'stigmer_report_dir': str(tmp_path / 'b')},
                           limit=host, playbook='verify.yml', flags=flags)
    assert asked_newer.returncode != 0
    assert 'asked v0.0.7, found v0.0.6' in asked_newer.stdout, asked_newer.stdout[-3000:]
    report = json.loads((tmp_path / 'b' / 'fleet-report.json').read_text())
    assert [h['state'] for h in report['hosts']] == ['drift']
