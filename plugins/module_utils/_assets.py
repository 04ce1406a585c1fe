# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place release asset names are spelled."""

from ansible_collections.stigmer.runtime.plugins.module_utils._version import normalize_tag, tag_to_version

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
