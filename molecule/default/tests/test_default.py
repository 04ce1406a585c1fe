"""default scenario: site.yml on a fresh systemd host, controller download mode, v0.0.7.

v0.0.7's stand-ins behave like upstream's: a CLI without a version flag, a server without a
gRPC health service, an agent-runner that ignores argv (docs/runtime-facts.md).
"""
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402

TAG = 'v0.0.7'
LLM_KEYS = ('ANTHROPIC_API_KEY', 'OPENAI_API_KEY', 'STIGMER_LLM_API_KEY', 'STIGMER_LLM_PROVIDER')
RUNNER_ENV = {
    'MODE': 'local', 'STIGMER_BACKEND_ENDPOINT': '127.0.0.1:7234', 'STIGMER_API_KEY': 'dummy-local-key',
    'STIGMER_SERVICE_USE_TLS': 'false', 'TEMPORAL_SERVICE_ADDRESS': '127.0.0.1:7233',
    'TEMPORAL_NAMESPACE': 'default', 'SANDBOX_TYPE': 'filesystem',
    'SANDBOX_ROOT_DIR': checks.HOME + '/.stigmer/workspace',
}
# What each component must find in its process environment, and what it must not.
EXPECTED_ENV = {
    'stigmer-server': ({'ENV': 'local', 'GRPC_PORT': '7234', 'DB_PATH': checks.HOME + '/.stigmer/stigmer.db',
                        'TEMPORAL_HOST_PORT': '127.0.0.1:7233', 'TEMPORAL_NAMESPACE': 'default'},
                       LLM_KEYS + ('STIGMER_API_KEY', 'TEMPORAL_SERVICE_ADDRESS', 'MODE')),
    'stigmer-workflow-runner': (RUNNER_ENV, LLM_KEYS + ('GRPC_PORT', 'DB_PATH')),
    'stigmer-agent-runner': (dict(RUNNER_ENV, STIGMER_LLM_PROVIDER='anthropic',
                                  ANTHROPIC_API_KEY='molecule-key-not-a-secret'),
                             ('OPENAI_API_KEY', 'STIGMER_LLM_API_KEY', 'GRPC_PORT', 'DB_PATH')),
    'stigmer-temporal': ({'HOME': checks.HOME}, LLM_KEYS + ('STIGMER_API_KEY', 'STIGMER_BACKEND_ENDPOINT')),
}
# The task queues each component polls and the task types it registers there (docs/runtime-facts.md).
POLLS = {
    'stigmer-server': {'agent_execution_stigmer': {'workflow', 'activity'},
                       'workflow_execution_stigmer': {'workflow', 'activity'},
                       'workflow_validation_stigmer': {'workflow'}},
    'stigmer-workflow-runner': {'workflow_execution_runner': {'activity'}, 'workflow_validation_runner': {'activity'},
                                'zigflow_execution': {'workflow', 'activity'}},
    'stigmer-agent-runner': {'agent_execution_runner': {'activity'}},
}


@pytest.mark.parametrize('unit', checks.UNITS + ('stigmer',))
def test_unit_is_active_and_enabled(host, unit):
    suffix = '.target' if unit == 'stigmer' else '.service'
    assert host.run('systemctl is-active %s%s' % (unit, suffix)).stdout.strip() == 'active'
    assert host.run('systemctl is-enabled %s%s' % (unit, suffix)).stdout.strip() == 'enabled'


@pytest.mark.parametrize('unit', checks.UNITS)
def test_component_runs_as_the_service_account(host, unit):
    uid = host.check_output("awk '/^Uid:/ {print $2}' /proc/%s/status" % checks.main_pid(host, unit))
    assert uid == host.check_output('id -u stigmer')


@pytest.mark.parametrize('unit', checks.UNITS)
def test_unit_scores_safe_in_systemd_analyze_security(host, unit):
    score = checks.security_score(host, unit)
    print('systemd-analyze security %s.service: %.1f' % (unit, score))
    assert score <= 2.0


@pytest.mark.parametrize('unit', sorted(EXPECTED_ENV))
def test_each_component_gets_the_environment_it_reads_and_only_that(host, unit):
    expected, forbidden = EXPECTED_ENV[unit]
    environment = checks.process_environment(host, unit)
    assert {key: environment.get(key) for key in expected} == expected
    assert sorted(key for key in forbidden if key in environment) == []


def test_environment_files_are_private_to_root_and_the_service_account(host):
    for unit in checks.UNITS:
        env = host.file('/etc/stigmer/%s.env' % unit.replace('stigmer-', ''))
        assert (env.user, env.group, env.mode) == ('root', 'stigmer', 0o640), unit
    assert not host.file('/etc/stigmer/stigmer.env').exists


def test_the_pinned_release_is_installed_without_running_a_version_flag(host):
    assert checks.installed_tag(host) == TAG
    # Like upstream's v0.0.x CLI: no version flag, silence and exit 1; --help works.
    silent = host.run('/usr/local/bin/stigmer --version')
    assert (silent.rc, silent.stdout, silent.stderr) == (1, '', '')
    assert host.run('/usr/local/bin/stigmer --help').rc == 0
    assert checks.marker_bytes(host) == ['v', '0', '.', '0', '.', '7', '\\n']


def test_agent_runner_is_the_verified_artifact_after_the_services_ran(host):
    expected = checks.controller_artifact('agent-runner-%s-linux-amd64' % TAG)
    assert checks.sha256_on_host(host, checks.DATA_BIN + '/agent-runner') == expected


def test_only_systemd_ever_started_the_agent_runner(host):
    # The stand-in records each start with its parent: the install never ran it (it would
    # have started a worker as root), only systemd did.
    starts = checks.agent_runner_starts(host)
    assert starts, 'the agent-runner never started'
    assert [(s['ppid'], s['uid']) for s in starts] == [(1, int(host.check_output('id -u stigmer')))] * len(starts)
    assert not host.file('/root/.stigmer').exists


def test_the_agent_runner_polls_since_its_current_start(host):
    assert checks.READY_LINE in checks.current_start_log(host, 'stigmer-agent-runner')


def test_server_answers_grpc_without_a_health_service_like_upstream(host):
    answer = checks.health(host)
    assert (answer['grpc'], answer['status']) == (True, None), answer


def test_server_port_is_open_to_local_clients_only(host):
    assert checks.health(host, '127.0.0.1')['grpc']
    # The same port from this host's own network address: not loopback, so dropped.
    address = host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1")
    assert address
    remote = checks.health(host, address)
    assert not remote['grpc'], remote
    deny = host.check_output('systemctl show -p IPAddressDeny --value stigmer-server.service').split()
    allow = host.check_output('systemctl show -p IPAddressAllow --value stigmer-server.service').split()
    assert (sorted(deny), sorted(allow)) == (['0.0.0.0/0', '::/0'], ['127.0.0.0/8', '::1/128'])


def test_service_account_cannot_modify_the_binaries(host):
    for path in (checks.DATA_BIN, checks.DATA_BIN + '/agent-runner', '/opt/stigmer/current/bin/stigmer'):
        assert host.run('runuser -u stigmer -- test -w %s' % path).rc != 0, path
        assert host.file(path).user == 'root'


def test_crashed_agent_runner_was_restarted_by_systemd(host):
    restarts = int(host.check_output('systemctl show -p NRestarts --value stigmer-agent-runner.service'))
    assert restarts >= 1


def test_the_cli_accepts_the_installed_agent_runner_and_marker(host):
    # Upstream's `stigmer server` checks data/bin before it starts its own stack and wipes it on
    # a version mismatch. With the server stopped, it must find the installed agent-runner and
    # marker right and go no further than the stand-in's refusal to daemonize. (Last: it stops
    # the server for a moment.)
    # The account cannot write its .stigmer (root's, by design), so the CLI's first-run config is
    # put there for the duration of the check.
    config = checks.HOME + '/.stigmer/config.yaml'
    host.run('systemctl stop stigmer-server.service')
    host.run('echo "backend: {type: local}" > %s' % config)
    try:
        result = host.run('runuser -u stigmer -- env HOME=%s /usr/local/bin/stigmer server' % checks.HOME)
    finally:
        host.run('rm -f %s; systemctl start stigmer.target' % config)
    output = result.stdout + result.stderr
    assert 'does not daemonize' in output, output
    assert 'mismatch' not in output and 'First run' not in output and 'extract' not in output, output
    assert checks.sha256_on_host(host, checks.DATA_BIN + '/agent-runner') == \
        checks.controller_artifact('agent-runner-%s-linux-amd64' % TAG)
    assert checks.marker_bytes(host) == ['v', '0', '.', '0', '.', '7', '\\n']


@pytest.mark.parametrize('unit', sorted(POLLS))
def test_temporal_lists_each_component_polling_its_queues_from_a_process_of_its_unit(host, unit):
    pids, hostname = checks.unit_pids(host, unit), host.check_output('hostname')
    for queue, types in POLLS[unit].items():
        ours = set((kind, int(identity.split('@')[0])) for kind, identity in checks.temporal_pollers(host, queue)
                   if identity.split('@')[1] == hostname and int(identity.split('@')[0]) in pids)
        # Every task type it registers, none other (the agent-runner is never a workflow poller).
        assert set(kind for kind, _pid in ours) == types, (queue, ours, pids)
