"""arm64 scenario: one emulated arm64 and one amd64 host in the same play."""
import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


def test_each_host_runs_the_build_for_its_own_architecture(host):
    arch = {'aarch64': 'arm64', 'x86_64': 'amd64'}[host.check_output('uname -m')]
    expected = checks.controller_artifact('agent-runner-v0.1.0-linux-%s' % arch)
    assert checks.sha256_on_host(host, checks.DATA_BIN + '/agent-runner') == expected
    assert host.check_output('/usr/local/bin/stigmer --version') == '0.1.0'


def test_failed_pin_left_the_host_on_v0_1_0_and_running(host):
    assert host.file('/opt/stigmer/current').linked_to == '/opt/stigmer/versions/v0.1.0'
    assert not host.file('/opt/stigmer/versions/v0.0.6').exists
    assert checks.health(host)['status'] == 'SERVING'
