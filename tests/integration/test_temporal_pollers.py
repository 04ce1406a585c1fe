"""What Temporal itself sees of a fleet, on two systemd hosts that share one external, real Temporal:
upstream's own `temporal` dev server, run on the controller's loopback (the containers reach it as
10.0.2.2), with `stigmer_temporal_enabled: false` on both hosts.

- Temporal lists every component of each host among the pollers of its task queues, for the task
  types it registers, under an identity that names a process of the component's own unit and the
  host; the agent-runner only as an activity poller.
- An agent-runner killed by SIGKILL is restarted by systemd and Temporal lists a new PID.
- An agent-runner that logs "Worker ready" but never polls fails site.yml and verify.yml naming
  `agent_execution_runner`, although the other host's agent-runner polls that queue on the same
  Temporal: each host's gate counts only its own processes.

The tests share the fleet and run in file order.
"""
import json
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_playbooks import IMAGE, ROOT, host_sh, podman, run_site, start_hosts  # noqa: E402

sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import build_releases  # noqa: E402
import server_ctl  # noqa: E402
from ansible_collections.stigmer.runtime.plugins.module_utils._temporal import (  # noqa: E402
    Temporal, identity_host, identity_pid, partitions)

START = 'v0.1.0'
# An agent-runner that logs its ready line and then idles without a worker: what the gate's log
# check took for ready, and Temporal does not.
SILENT = {'tag': 'v0.0.9', 'published_at': '2026-02-01T12:00:00Z', 'platforms': build_releases.ALL_PLATFORMS,
          'shape': 'newer', 'workflow_runner': 'works', 'agent_runner': 'never-polls'}
FAST_GATE = {'stigmer_health_timeout': 45, 'stigmer_health_settle': 3}
# Each unit's processes, by the control group systemd gives it (unified hierarchy, else the v1 one).
UNIT_PIDS = ('g=$(systemctl show -p ControlGroup --value %s); '
             'cat /sys/fs/cgroup$g/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/systemd$g/cgroup.procs')
UNITS = {'server': 'stigmer-server.service', 'workflow-runner': 'stigmer-workflow-runner.service',
         'agent-runner': 'stigmer-agent-runner.service'}


@pytest.fixture(scope='module')
def catalogue(tmp_path_factory):
    out = tmp_path_factory.mktemp('poller-releases')
    build_releases.build(str(out), extra_releases=[SILENT])
    return out


@pytest.fixture(scope='module')
def server(catalogue):
    with server_ctl.serving(catalogue) as handle:
        yield handle


@pytest.fixture(scope='module')
def temporal(tmp_path_factory):
    """Upstream's Temporal dev server on 127.0.0.1, from the archive the release server publishes."""
    archive = build_releases.packed_temporal(build_releases.temporal_cache_dir(), '1.5.1', 'linux-amd64',
                                             build_releases.temporal_pins())[0]
    folder = tmp_path_factory.mktemp('shared-temporal')
    with tarfile.open(archive) as tar:
        tar.extract('temporal', str(folder), filter='data')
    port = server_ctl.free_port()
    log = (folder / 'temporal.log').open('w')
    proc = subprocess.Popen([str(folder / 'temporal'), 'server', 'start-dev', '--headless', '--ip', '127.0.0.1',
                             '--port', str(port), '--http-port', str(server_ctl.free_port()),
                             '--metrics-port', str(server_ctl.free_port()), '--log-level', 'warn'],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Temporal('127.0.0.1', port, 'default')
    deadline = time.monotonic() + 60
    while not client.serving()['healthy']:
        assert proc.poll() is None and time.monotonic() < deadline, (folder / 'temporal.log').read_text()[-3000:]
        time.sleep(0.5)
    yield client
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.skip('%s is missing: run tests/env/build-images.sh' % IMAGE)
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-tp-%s-%d' % (tag, i) for i in (1, 2)]
    inventory = start_hosts(names, tmp_path_factory.mktemp('poller-inventory') / 'hosts.yml')
    yield names, inventory
    podman('rm', '-f', *names, check=False)


@pytest.fixture(scope='module')
def external(temporal):
    return {'stigmer_temporal_enabled': False, 'stigmer_temporal_address': '10.0.2.2:%d' % temporal.port}


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('poller-cache')


@pytest.fixture(scope='module')
def converged(server, fleet, cache, external):
    names, inventory = fleet
    result = run_site(server, inventory, cache, dict(external, stigmer_version=START))
    assert result.returncode == 0, result.stdout[-4000:]
    return names


def unit_pids(name, unit):
    return {int(pid) for pid in host_sh(name, UNIT_PIDS % unit).stdout.split()}


def listed(temporal, queue, task_type):
    """Every poller Temporal lists for the queue and type, over all the partitions the gate reads."""
    return [p for part in partitions(queue) for p in temporal.pollers(part, task_type)]


def host_pollers(temporal, queue, task_type, host):
    return {identity_pid(p['identity']) for p in listed(temporal, queue, task_type)
            if identity_host(p['identity']) == host}


def verify(server, fleet, cache, external, reports, limit=None):
    names, inventory = fleet
    result = run_site(server, inventory, cache, dict(external, stigmer_report_dir=str(reports)),
                      playbook='verify.yml', limit=limit)
    rows = {row['host']: row for row in json.loads((reports / 'fleet-report.json').read_text())['hosts']}
    return result, rows


def test_temporal_lists_each_component_of_each_host_by_the_pids_of_its_own_unit(
        temporal, converged, server, fleet, cache, external, tmp_path):
    queues = {'server': [('agent_execution_stigmer', 'workflow'), ('agent_execution_stigmer', 'activity'),
                         ('workflow_execution_stigmer', 'workflow'), ('workflow_execution_stigmer', 'activity'),
                         ('workflow_validation_stigmer', 'workflow')],
              'workflow-runner': [('workflow_execution_runner', 'activity'), ('workflow_validation_runner', 'activity'),
                                  ('zigflow_execution', 'workflow'), ('zigflow_execution', 'activity')],
              'agent-runner': [('agent_execution_runner', 'activity')]}
    for name in converged:
        for component, pairs in queues.items():
            pids = unit_pids(name, UNITS[component])
            assert pids, (name, component)
            for queue, task_type in pairs:
                # Earlier processes stay listed for a few minutes: one of the unit's must be there.
                polling = host_pollers(temporal, queue, task_type, name)
                assert polling & pids, (name, component, queue, task_type, polling, pids)
        # Activities only: Temporal never lists the agent-runner as a workflow poller.
        assert host_pollers(temporal, 'agent_execution_runner', 'workflow', name) == set()
    # Upstream's server is a Go worker: its identity ends with '@', the Python agent-runner's not.
    identities = [p['identity'] for p in listed(temporal, 'agent_execution_stigmer', 'workflow')]
    assert all(i.endswith('@') for i in identities) and {identity_host(i) for i in identities} >= set(converged)
    assert not any(p['identity'].endswith('@') for p in listed(temporal, 'agent_execution_runner', 'activity'))

    result, rows = verify(server, fleet, cache, external, tmp_path / 'reports')
    assert result.returncode == 0, result.stdout[-3000:]
    for name in converged:
        assert rows[name]['state'] == 'healthy' and rows[name]['polling'] == ['server', 'workflow-runner',
                                                                              'agent-runner'], rows[name]


def test_a_killed_agent_runner_is_polled_again_under_a_new_pid(
        temporal, converged, server, fleet, cache, external, tmp_path):
    name = converged[1]
    before = host_pollers(temporal, 'agent_execution_runner', 'activity', name) & unit_pids(
        name, UNITS['agent-runner'])
    assert len(before) == 1, before
    killed = before.pop()
    assert host_sh(name, 'kill -KILL %d' % killed).returncode == 0
    deadline, now = time.monotonic() + 90, set()
    while time.monotonic() < deadline:
        now = host_pollers(temporal, 'agent_execution_runner', 'activity', name) & unit_pids(
            name, UNITS['agent-runner'])
        if now and killed not in now:
            break
        time.sleep(1)
    assert now and killed not in now, (killed, now)
    result, rows = verify(server, fleet, cache, external, tmp_path / 'reports', limit=name)
    assert result.returncode == 0, result.stdout[-3000:]
    assert rows[name]['state'] == 'healthy', rows[name]


def test_an_agent_runner_that_logs_ready_but_never_polls_fails_naming_its_queue(
        temporal, converged, server, fleet, cache, external, tmp_path):
    silent, other = converged
    missing = 'Temporal lists no activity poller of this unit on agent_execution_runner'
    tag = SILENT['tag']
    # The gate fails and rolls back, with the ready line in the log it shows.
    failed = run_site(server, fleet[1], cache, dict(external, **FAST_GATE, stigmer_version=tag), limit=silent)
    assert failed.returncode != 0
    assert 'Stigmer %s on %s is not healthy' % (tag, silent) in failed.stdout, failed.stdout[-4000:]
    assert 'agent-runner: ' + missing in failed.stdout, failed.stdout[-4000:]
    assert 'Worker ready, polling for tasks' in failed.stdout.split('--- agent-runner (last log lines) ---')[1]
    assert 'Rolled back to stigmer %s, which is running again.' % START in failed.stdout, failed.stdout[-4000:]
    try:
        # Left in place, verify.yml calls the host unhealthy, naming the queue; the other host's
        # agent-runner polls that queue on the same Temporal and is no help to it.
        kept = run_site(server, fleet[1], cache, dict(external, **FAST_GATE, stigmer_version=tag,
                                                      stigmer_rollback_on_failure=False), limit=silent)
        assert kept.returncode != 0 and missing in kept.stdout, kept.stdout[-4000:]
        assert host_pollers(temporal, 'agent_execution_runner', 'activity', other)
        assert host_sh(silent, 'systemctl is-active stigmer-agent-runner').stdout.strip() == 'active'
        result, rows = verify(server, fleet, cache, external, tmp_path / 'reports')
        assert result.returncode != 0
        assert rows[silent]['state'] == 'unhealthy', rows[silent]
        assert any('agent_execution_runner' in reason for reason in rows[silent]['reasons']), rows[silent]
        assert rows[silent]['polling'] == ['server', 'workflow-runner'], rows[silent]
        assert rows[other]['state'] == 'healthy', rows[other]
    finally:
        restored = run_site(server, fleet[1], cache, dict(external, stigmer_version=START), limit=silent)
        assert restored.returncode == 0, restored.stdout[-3000:]
