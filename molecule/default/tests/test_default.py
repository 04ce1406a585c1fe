"""default scenario: site.yml on a fresh systemd host, controller download mode."""
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


@pytest.mark.parametrize('unit', checks.UNITS + ('stigmer',))
def test_unit_is_active_and_enabled(host, unit):
    suffix = '.target' if unit == 'stigmer' else '.service'
    assert host.run('systemctl is-active %s%s' % (unit, suffix)).stdout.strip() == 'active'
    assert host.run('systemctl is-enabled %s%s' % (unit, suffix)).stdout.strip() == 'enabled'


@pytest.mark.parametrize('unit', checks.UNITS)
def test_component_runs_as_the_service_account(host, unit):
    pid = host.check_output('systemctl show -p MainPID --value %s.service' % unit)
    assert pid != '0'
    uid = host.check_output("awk '/^Uid:/ {print $2}' /proc/%s/status" % pid)
    assert uid == host.check_output('id -u stigmer')


@pytest.mark.parametrize('unit', checks.UNITS)
def test_unit_scores_safe_in_systemd_analyze_security(host, unit):
    score = checks.security_score(host, unit)
    print('systemd-analyze security %s.service: %.1f' % (unit, score))
    assert score <= 2.0


@pytest.mark.parametrize('port', [7233, 7234])
def test_port_is_listening(host, port):
    assert host.socket('tcp://127.0.0.1:%d' % port).is_listening


def test_cli_and_agent_runner_report_the_latest_release(host):
    assert checks.cli_version(host) == 'v1.1.0'
    assert host.check_output(checks.DATA_BIN + '/agent-runner --version') == 'agent-runner v1.1.0'
    assert checks.marker_bytes(host) == ['v', '1', '.', '1', '.', '0', '\\n']


def test_agent_runner_is_the_verified_artifact_after_the_services_ran(host):
    expected = checks.controller_artifact('agent-runner-v1.1.0-linux-amd64')
    assert checks.sha256_on_host(host, checks.DATA_BIN + '/agent-runner') == expected


def test_service_account_cannot_modify_the_binaries(host):
    for path in (checks.DATA_BIN, checks.DATA_BIN + '/agent-runner', '/opt/stigmer/current/bin/stigmer'):
        assert host.run('runuser -u stigmer -- test -w %s' % path).rc != 0, path
        assert host.file(path).user == 'root'


def test_environment_file_is_private_to_root_and_the_service_account(host):
    env = host.file('/etc/stigmer/stigmer.env')
    assert (env.user, env.group, env.mode) == ('root', 'stigmer', 0o640)
    assert 'ANTHROPIC_API_KEY=' in env.content_string


def test_server_is_healthy_with_a_matching_agent_runner(host):
    health = checks.health(host)
    assert health['status'] == 'SERVING'
    assert 'v1.1.0' in [runner['version'] for runner in health['agent_runners']]


def test_crashed_agent_runner_was_restarted_by_systemd(host):
    restarts = int(host.check_output('systemctl show -p NRestarts --value stigmer-agent-runner.service'))
    assert restarts >= 1


def test_the_cli_never_replaced_the_agent_runner(host):
    logs = host.run('journalctl --no-pager -o cat -u stigmer-server.service').stdout
    assert 'marker mismatch' not in logs
