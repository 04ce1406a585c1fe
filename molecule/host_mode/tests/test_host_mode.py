"""host_mode scenario: each host downloads and verifies for itself."""
import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


def test_pinned_release_is_installed(host):
    assert checks.cli_version(host) == 'v1.1.0'
    assert host.file('/opt/stigmer/current').linked_to == '/opt/stigmer/versions/v1.1.0'


def test_host_downloaded_and_verified_its_own_artifacts(host):
    staged = '/var/cache/stigmer/artifacts/v1.1.0/'
    for name in ('stigmer-v1.1.0-linux-amd64.tar.gz', 'agent-runner-v1.1.0-linux-amd64'):
        record = host.file(staged + name + '.sha256').content_string.split()[0]
        assert checks.sha256_on_host(host, staged + name) == record


def test_no_download_leftovers_on_the_host(host):
    assert host.run("find /var/cache/stigmer /opt/stigmer -name '.*.tmp*' -o -name '*.part'").stdout == ''


def test_runtime_is_healthy(host):
    assert checks.health(host)['status'] == 'SERVING'
