"""upgrade scenario: v1.0.0 (prepare) -> v1.1.0 (converge), then an unchanged run."""
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


def test_current_points_at_the_new_release_and_the_old_one_is_kept(host):
    assert host.file('/opt/stigmer/current').linked_to == '/opt/stigmer/versions/v1.1.0'
    assert host.file('/opt/stigmer/versions/v1.0.0/bin/stigmer').exists
    assert checks.cli_version(host) == 'v1.1.0'
    assert checks.marker_bytes(host) == ['v', '1', '.', '1', '.', '0', '\\n']


def test_files_only_the_old_tarball_carried_are_not_in_the_new_version(host):
    assert host.file('/opt/stigmer/versions/v1.0.0/bin/stigmer-server').exists
    assert not host.file('/opt/stigmer/versions/v1.1.0/bin/stigmer-server').exists


@pytest.mark.parametrize('unit', checks.UNITS)
def test_each_component_restarted_exactly_once_for_the_upgrade(host, unit):
    # Started once by prepare (v1.0.0) and once by the upgrade; the idempotence run added none.
    assert checks.started_count(host, unit) == 2


def test_upgraded_runtime_is_healthy_with_the_new_agent_runner(host):
    health = checks.health(host)
    assert health['status'] == 'SERVING'
    assert health['version'] == 'v1.1.0'
    assert 'v1.1.0' in [runner['version'] for runner in health['agent_runners']]
