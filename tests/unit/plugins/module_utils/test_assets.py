# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils.assets import (
    COMPONENTS,
    AssetNotFoundError,
    asset_name,
    asset_names,
    available_platforms,
    checksum_name,
    component_label,
    is_archive,
    release_platforms,
    select_asset,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.version import VersionError

UPSTREAM = ('darwin-amd64', 'darwin-arm64', 'linux-amd64')


def upstream_release(tag='v1.0.0', platforms=UPSTREAM):
    """Asset names as the upstream release workflow publishes them."""
    names = []
    for plat in platforms:
        os_name, arch = plat.split('-')
        names += [
            'stigmer-%s-%s-%s.tar.gz' % (tag, os_name, arch),
            'stigmer-%s-%s-%s.tar.gz.sha256' % (tag, os_name, arch),
            'agent-runner-%s-%s-%s' % (tag, os_name, arch),
            'agent-runner-%s-%s-%s.sha256' % (tag, os_name, arch),
        ]
    return names


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


def test_release_platforms_upstream():
    assert release_platforms(upstream_release(), 'v1.0.0') == list(UPSTREAM)
    assert available_platforms(upstream_release(), '1.0.0') == list(UPSTREAM)


def test_release_platforms_mirror_with_linux_arm64():
    names = upstream_release(platforms=UPSTREAM + ('linux-arm64',))
    assert release_platforms(names, 'v1.0.0') == ['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64']


def test_release_platforms_needs_both_cli_and_agent_runner():
    names = upstream_release()
    names.remove('agent-runner-v1.0.0-darwin-amd64')
    names.append('stigmer-v1.0.0-linux-arm64.tar.gz')  # CLI without agent-runner
    names.append('agent-runner-v1.0.0-windows-amd64')  # agent-runner without CLI
    assert release_platforms(names, 'v1.0.0') == ['darwin-arm64', 'linux-amd64']


def test_release_platforms_ignores_other_tags_and_noise():
    names = upstream_release('v0.9.0') + ['stigmer-v1.0.0-linux-amd64.tar.gz.sha256', 'checksums.txt',
                                          'stigmer-v1.0.0-linux.tar.gz', 'agent-runner-v1.0.0-linux']
    assert release_platforms(names, 'v1.0.0') == []


def test_release_platforms_accepts_api_assets():
    api = [{'name': n, 'size': 1, 'digest': 'sha256:' + '0' * 64} for n in upstream_release()]
    assert release_platforms(api, 'v1.0.0') == list(UPSTREAM)
    assert release_platforms(dict((a['name'], a) for a in api), 'v1.0.0') == list(UPSTREAM)


def _api(names):
    return dict((n, {'name': n, 'browser_download_url': 'https://example.invalid/' + n}) for n in names)


def test_select_asset_found():
    assets = _api(upstream_release())
    name = 'stigmer-v1.0.0-linux-amd64.tar.gz'
    assert select_asset(assets, name, 'v1.0.0', 'linux-amd64', None) is assets[name]
    # A raw API list works too.
    assert select_asset(list(assets.values()), name, 'v1.0.0')['name'] == name


def test_select_asset_missing_platform_message():
    assets = _api(upstream_release())
    with pytest.raises(AssetNotFoundError) as info:
        select_asset(assets, 'stigmer-v1.0.0-linux-arm64.tar.gz', 'v1.0.0', 'linux-arm64',
                     release_platforms(assets, 'v1.0.0'))
    assert str(info.value) == (
        'release v1.0.0 has no asset stigmer-v1.0.0-linux-arm64.tar.gz for linux-arm64; it offers '
        'darwin-amd64, darwin-arm64, linux-amd64. Pin a release that has linux-arm64 or exclude this host.')


def test_select_asset_computes_offered_when_not_given():
    assets = _api(upstream_release())
    with pytest.raises(AssetNotFoundError) as info:
        select_asset(assets, 'agent-runner-v1.0.0-linux-arm64', 'v1.0.0', 'linux-arm64')
    assert 'it offers darwin-amd64, darwin-arm64, linux-amd64.' in str(info.value)


def test_select_asset_incomplete_release():
    names = upstream_release()
    names.remove('stigmer-v1.0.0-linux-amd64.tar.gz.sha256')
    with pytest.raises(AssetNotFoundError) as info:
        select_asset(_api(names), 'stigmer-v1.0.0-linux-amd64.tar.gz.sha256', 'v1.0.0', 'linux-amd64')
    message = str(info.value)
    assert 'looks incomplete' in message
    assert message.endswith('stigmer-v1.0.0-linux-amd64.tar.gz.')
    assert 'Pin a release' not in message


def test_select_asset_temporal_release_lists_assets():
    assets = _api(['temporal_cli_1.5.1_linux_amd64.tar.gz', 'checksums.txt'])
    with pytest.raises(AssetNotFoundError) as info:
        select_asset(assets, 'temporal_cli_1.5.1_linux_arm64.tar.gz', 'v1.5.1', 'linux-arm64',
                     ['linux-amd64'])
    assert 'it offers linux-amd64.' in str(info.value)
    with pytest.raises(AssetNotFoundError) as info:
        select_asset(assets, 'temporal_cli_1.5.1_linux_arm64.tar.gz', 'v1.5.1')
    assert 'its assets are: checksums.txt, temporal_cli_1.5.1_linux_amd64.tar.gz.' in str(info.value)


def test_select_asset_empty_release():
    with pytest.raises(AssetNotFoundError) as info:
        select_asset({}, 'stigmer-v1.0.0-linux-amd64.tar.gz', 'v1.0.0', 'linux-amd64')
    message = str(info.value)
    assert 'its assets are: none.' in message
    assert 'Pin a release that has linux-amd64' in message
