"""upgrade scenario: v0.0.6 (prepare) -> v0.0.7 (converge), then an unchanged run."""
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


def test_current_points_at_the_new_release_and_the_old_one_is_kept(host):
    assert host.file('/opt/stigmer/current').linked_to == '/opt/stigmer/versions/v0.0.7'
    assert host.file('/opt/stigmer/versions/v0.0.6/bin/stigmer').exists
    assert checks.marker_bytes(host) == ['v', '0', '.', '0', '.', '7', '\\n']


def test_files_only_the_old_tarball_carried_are_not_in_the_new_version(host):
    assert host.file('/opt/stigmer/versions/v0.0.6/bin/stigmer-server').exists
    assert not host.file('/opt/stigmer/versions/v0.0.7/bin/stigmer-server').exists


@pytest.mark.parametrize('unit', checks.UNITS)
def test_each_stigmer_component_restarted_exactly_once_for_the_upgrade(host, unit):
    # Started once by prepare (v0.0.6) and once by the upgrade; the idempotence run added none.
    # Temporal's binary, unit and environment did not change, so it kept running.
    assert checks.started_count(host, unit) == (1 if unit == 'stigmer-temporal' else 2)


def test_upgraded_runtime_runs_the_new_agent_runner_and_polls(host):
    expected = checks.controller_artifact('agent-runner-v0.0.7-linux-amd64')
    assert checks.sha256_on_host(host, checks.DATA_BIN + '/agent-runner') == expected
    assert checks.READY_LINE in checks.current_start_log(host, 'stigmer-agent-runner')
    assert checks.health(host)['grpc']
