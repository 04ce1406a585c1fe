"""uninstall scenario: site.yml (prepare), then uninstall.yml twice."""
import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'resources'))
import stigmer_checks as checks  # noqa: E402


@pytest.mark.parametrize('path', [
    '/opt/stigmer', '/usr/local/bin/stigmer', '/etc/stigmer', '/var/cache/stigmer/artifacts',
    '/etc/systemd/system/stigmer.target', checks.DATA_BIN, checks.HOME + '/.stigmer/bin',
] + ['/etc/systemd/system/%s.service' % unit for unit in checks.UNITS])
def test_installed_file_is_gone(host, path):
    assert not host.file(path).exists


def test_no_stigmer_process_is_left(host):
    assert host.run('pgrep -u stigmer').rc == 1


def test_state_directory_and_account_stay_by_default(host):
    assert host.file(checks.HOME + '/.stigmer/data').is_directory
    assert host.user('stigmer').exists
