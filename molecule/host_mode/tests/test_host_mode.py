"""host_mode scenario: each host resolves latest, downloads and verifies for itself.

latest is v0.1.0, the newer shape: its CLI prints its bare version and its server has the
standard gRPC health service, which must then say SERVING.
"""
import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


def test_latest_is_the_newest_release_that_carries_a_cli(host):
    assert checks.installed_tag(host) == 'v0.1.0'
    assert host.check_output('/usr/local/bin/stigmer --version') == '0.1.0'


def test_host_downloaded_and_verified_its_own_artifacts(host):
    staged = '/var/cache/stigmer/artifacts/v0.1.0/'
    for name in ('stigmer-v0.1.0-linux-amd64.tar.gz', 'agent-runner-v0.1.0-linux-amd64'):
        record = host.file(staged + name + '.sha256').content_string.split()[0]
        assert checks.sha256_on_host(host, staged + name) == record


def test_no_download_leftovers_on_the_host(host):
    assert host.run("find /var/cache/stigmer /opt/stigmer -name '.*.tmp*' -o -name '*.part'").stdout == ''


def test_the_server_health_service_says_serving(host):
    assert checks.health(host)['status'] == 'SERVING'
