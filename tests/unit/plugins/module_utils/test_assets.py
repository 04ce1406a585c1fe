# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils._assets import (
    COMPONENTS,
    asset_name,
    asset_names,
    checksum_name,
    component_label,
    is_archive,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError


@pytest.mark.parametrize('component, tag, os_name, arch, asset, checksum', [
    ('stigmer', 'v1.0.0', 'darwin', 'arm64', 'stigmer-v1.0.0-darwin-arm64.tar.gz',
     'stigmer-v1.0.0-darwin-arm64.tar.gz.sha256'),
    ('stigmer', '1.0.0', 'linux', 'amd64', 'stigmer-v1.0.0-linux-amd64.tar.gz',
     'stigmer-v1.0.0-linux-amd64.tar.gz.sha256'),
    ('agent-runner', 'v1.0.0', 'linux', 'amd64', 'agent-runner-v1.0.0-linux-amd64',
     'agent-runner-v1.0.0-linux-amd64.sha256'),
    ('agent-runner', 'v1.2.0-rc.1', 'darwin', 'amd64', 'agent-runner-v1.2.0-rc.1-darwin-amd64',
     'agent-runner-v1.2.0-rc.1-darwin-amd64.sha256'),
    ('temporal', 'v1.5.1', 'linux', 'arm64', 'temporal_cli_1.5.1_linux_arm64.tar.gz', 'checksums.txt'),
    ('temporal', '1.5.1', 'darwin', 'amd64', 'temporal_cli_1.5.1_darwin_amd64.tar.gz', 'checksums.txt'),
])
def test_names(component, tag, os_name, arch, asset, checksum):
    assert asset_name(component, tag, os_name, arch) == asset
    assert checksum_name(component, tag, os_name, arch) == checksum
    assert asset_names(component, tag, os_name, arch) == (asset, checksum)


def test_is_archive():
    assert is_archive('stigmer') is True
    assert is_archive('agent-runner') is False
    assert is_archive('temporal') is True
    assert sorted(COMPONENTS) == ['agent-runner', 'stigmer', 'temporal']


def test_component_label():
    assert [component_label(c) for c in ('stigmer', 'agent-runner', 'temporal')] == [
        'stigmer CLI', 'agent-runner', 'temporal CLI']
    with pytest.raises(ValueError):
        component_label('ollama')


def test_unknown_component():
    with pytest.raises(ValueError) as info:
        asset_name('ollama', 'v1.0.0', 'linux', 'amd64')
    assert 'agent-runner, stigmer, temporal' in str(info.value)
    with pytest.raises(ValueError):
        is_archive('ollama')


def test_bad_tag():
    with pytest.raises(VersionError):
        asset_name('stigmer', 'latest', 'linux', 'amd64')
