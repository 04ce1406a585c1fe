# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place release asset names are spelled."""

from ansible_collections.stigmer.runtime.plugins.module_utils.version import VersionError, normalize_tag, tag_to_version

# {tag} is 'v1.2.3', {version} is '1.2.3', {asset} is the asset's own name;
# 'label' names the component in messages.
COMPONENTS = {
    'stigmer': {
        'asset': 'stigmer-{tag}-{os}-{arch}.tar.gz',
        'checksum': '{asset}.sha256',
        'archive': True,
        # Installed into bin/: an archive's executables (members None: every one) or a raw file as dest.
        'members': None,
        'dest': None,
        'label': 'stigmer CLI',
    },
    'agent-runner': {
        'asset': 'agent-runner-{tag}-{os}-{arch}',
        'checksum': '{asset}.sha256',
        'archive': False,
        'members': None,
        'dest': 'agent-runner',
        'label': 'agent-runner',
    },
    'temporal': {
        'asset': 'temporal_cli_{version}_{os}_{arch}.tar.gz',
        'checksum': 'checksums.txt',
        'archive': True,
        'members': ['temporal'],
        'dest': None,
        'label': 'temporal CLI',
    },
}

_MAX_LISTED = 30


class AssetNotFoundError(Exception):
    """A release lacks an asset this host needs."""


def _component(component):
    try:
        return COMPONENTS[component]
    except KeyError:
        raise ValueError('unknown component %r; known components: %s'
                         % (component, ', '.join(sorted(COMPONENTS))))


def _fields(tag, os_name, arch):
    tag = normalize_tag(tag)
    return {'tag': tag, 'version': tag_to_version(tag), 'os': os_name, 'arch': arch}


def asset_name(component, tag, os_name, arch):
    """Name of the downloadable file for one component and platform."""
    return _component(component)['asset'].format(**_fields(tag, os_name, arch))


def checksum_name(component, tag, os_name, arch):
    """Name of the release file that holds the asset's sha256."""
    fields = _fields(tag, os_name, arch)
    fields['asset'] = asset_name(component, tag, os_name, arch)
    return _component(component)['checksum'].format(**fields)


def asset_names(component, tag, os_name, arch):
    """(asset, checksum file) for one component and platform."""
    return asset_name(component, tag, os_name, arch), checksum_name(component, tag, os_name, arch)


def is_archive(component):
    """True when the asset is a tarball to unpack, False for a raw executable."""
    return bool(_component(component)['archive'])


def install_shape(component):
    """{'members': ..., 'dest': ...}: what of the asset goes into the version's bin/."""
    spec = _component(component)
    return {'members': list(spec['members']) if spec['members'] is not None else None, 'dest': spec['dest']}


def component_label(component):
    """How messages name a component ('stigmer CLI', 'agent-runner', 'temporal CLI')."""
    return _component(component)['label']


def _names(assets):
    """Asset names from a list of names, API asset dicts, or a name->info dict."""
    names = []
    for item in assets or ():
        if isinstance(item, dict):
            item = item.get('name')
        if item:
            names.append(item)
    return names


def release_platforms(asset_names, tag):
    """Sorted 'os-arch' list for which a release has both the CLI archive and the agent-runner.

    asset_names may be names, API asset dicts or a dict keyed by name.
    """
    tag = normalize_tag(tag)
    names = set(_names(asset_names))
    prefix = 'stigmer-%s-' % tag
    suffix = '.tar.gz'
    platforms = set()
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        plat = name[len(prefix):-len(suffix)]
        parts = plat.split('-')
        if len(parts) != 2 or not all(parts):
            continue
        # The agent-runner must match the CLI: a platform without it is not served.
        if asset_name('agent-runner', tag, parts[0], parts[1]) in names:
            platforms.add(plat)
    return sorted(platforms)


available_platforms = release_platforms


def select_asset(assets, name, tag, platform=None, offered=None):
    """Return assets[name] or raise AssetNotFoundError explaining what the release does offer.

    assets is a dict name -> asset info (a list of API asset dicts is also
    accepted). offered is the release's platform list; when None it is
    computed with release_platforms().
    """
    if not isinstance(assets, dict):
        assets = dict((item['name'], item) for item in assets or () if isinstance(item, dict) and item.get('name'))
    if name in assets:
        return assets[name]

    if offered is None:
        try:
            offered = release_platforms(assets, tag)
        except VersionError:
            offered = []
    offered = sorted(offered)
    where = ' for %s' % platform if platform else ''
    message = 'release %s has no asset %s%s; ' % (tag, name, where)
    if platform and platform in offered:
        # The platform is there, so the release itself is incomplete.
        message += 'it offers %s but looks incomplete; its assets are: %s.' % (platform, _listing(assets))
    elif offered:
        message += 'it offers %s.' % ', '.join(offered)
    else:
        # Nothing recognisable (e.g. a Temporal release): show what is there.
        message += 'its assets are: %s.' % _listing(assets)
    if platform and platform not in offered:
        message += ' Pin a release that has %s or exclude this host.' % platform
    raise AssetNotFoundError(message)


def _listing(assets):
    listed = sorted(assets)
    shown = ', '.join(listed[:_MAX_LISTED]) or 'none'
    if len(listed) > _MAX_LISTED:
        shown += ', ... (%d more)' % (len(listed) - _MAX_LISTED)
    return shown
