# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Realistic inputs of the controller-side settings and plan: the role's own defaults
(defaults/main.yml, its templated defaults rendered by hand as the controller renders them),
its per-OS data (vars/linux.yml, vars/darwin.yml), stigmer_platform facts and stigmer_release
results as those modules return them.

The helpers are plain functions so that tests elsewhere (tests/unit/plugins/action) can import
them by module name; the fixtures below only hand them out.
"""

import copy
import json
import os
import re

import pytest
import yaml

from ansible_collections.stigmer.runtime.plugins.module_utils._release import plan_artifacts
from ansible_collections.stigmer.runtime.plugins.plugin_utils import _plan, _settings

COLLECTION = os.path.normpath(os.path.join(os.path.dirname(_settings.__file__), '..', '..'))
ROLE = os.path.join(COLLECTION, 'roles', 'stigmer')

# The defaults that are templates, as the controller renders them: GITHUB_TOKEN unset, HOME of
# the controller's user /home/ops, the playbook in /home/ops/playbooks.
TEMPLATED_DEFAULTS = {
    'stigmer_github_token': '',
    'stigmer_cache_dir': '/home/ops/.cache/stigmer.runtime',
    'stigmer_report_dir': '/home/ops/playbooks/../reports',
    'stigmer_mirror_temporal_versions': ['1.5.1'],
}

PLATFORMS = {
    'linux-amd64': {'os': 'linux', 'arch': 'amd64', 'platform': 'linux-amd64', 'machine': 'x86_64',
                    'rosetta': False, 'service_manager': 'systemd'},
    'linux-arm64': {'os': 'linux', 'arch': 'arm64', 'platform': 'linux-arm64', 'machine': 'aarch64',
                    'rosetta': False, 'service_manager': 'systemd'},
    'darwin-arm64': {'os': 'darwin', 'arch': 'arm64', 'platform': 'darwin-arm64', 'machine': 'arm64',
                     'rosetta': False, 'service_manager': 'launchd'},
    'darwin-amd64': {'os': 'darwin', 'arch': 'amd64', 'platform': 'darwin-amd64', 'machine': 'x86_64',
                     'rosetta': False, 'service_manager': 'launchd'},
}

STIGMER_TAG = 'v0.1.0'
TEMPORAL_TAG = 'v1.5.1'


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def role_vars(**overrides):
    """The role's defaults as task variables, templated ones rendered, then overrides."""
    data = _load(os.path.join(ROLE, 'defaults', 'main.yml'))
    templated = sorted(name for name, value in data.items() if '{{' in json.dumps(value))
    assert templated == sorted(TEMPLATED_DEFAULTS), (
        'defaults/main.yml has templated defaults %s; render the new ones in TEMPLATED_DEFAULTS' % templated)
    data.update(copy.deepcopy(TEMPLATED_DEFAULTS))
    data.update(overrides)
    return data


def os_data(os_name):
    """The role's per-OS data (vars/<os>.yml), as include_vars loads it."""
    return _load(os.path.join(ROLE, 'vars', '%s.yml' % os_name))['_stigmer_os']


def settings(**overrides):
    """(settings, derived) of the defaults with overrides, through normalise() and check()."""
    s = _settings.normalise(_settings.role_options(), role_vars(**overrides))
    return s, _settings.check(s)


def platform_fact(platform='linux-amd64', **changes):
    return dict(PLATFORMS[platform], **changes)


def release_result(repo, tag, components, digests=None):
    """What stigmer_release returns for a mirror (every platform planned), with optional GitHub digests."""
    artifacts = plan_artifacts({'tag': tag, 'assets': None, 'download_base': 'https://mirror.example/%s/' % tag},
                               repo, components)
    for items in artifacts.values():
        for item in items:
            item['digest'] = (digests or {}).get(item['name'])
    return {'changed': False, 'tag': tag, 'artifacts': artifacts, 'source': 'mirror'}


def release_results(digests=None):
    return {'stigmer': release_result('stigmer/stigmer', STIGMER_TAG, ['stigmer', 'agent-runner'], digests),
            'temporal': release_result('temporalio/cli', TEMPORAL_TAG, ['temporal'], digests)}


ALICE = {'dir': '/home/alice', 'uid': 'alice', 'gid': 1000}


def build_plan(platform='linux-amd64', user=None, releases=True, **overrides):
    """_plan.build() for the defaults with overrides on a host of that platform."""
    s, derived = settings(**overrides)
    fact = platform_fact(platform)
    return _plan.build(s, derived, fact, os_data(fact['os']), user, release_results() if releases else None)


class FakeTemplar(object):
    """Renders what the role's variables hold once the lookups are done: "{{ name }}" and
    "text {{ name }} text" from the task variables, recursively; everything else as it is."""

    _EXPR = re.compile(r'\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}')

    def __init__(self, variables):
        self.variables = variables
        self.rendered = []

    def template(self, value):
        self.rendered.append(value)
        if isinstance(value, dict):
            return dict((k, self.template(v)) for k, v in value.items())
        if isinstance(value, list):
            return [self.template(v) for v in value]
        if isinstance(value, str):
            whole = self._EXPR.fullmatch(value.strip())
            if whole:
                return self.template(self.variables[whole.group(1)])
            return self._EXPR.sub(lambda m: str(self.template(self.variables[m.group(1)])), value)
        return value


def task_vars(platform='linux-amd64', facts=None, **overrides):
    """An action plugin's task_vars on a host whose platform the role has detected."""
    fact = platform_fact(platform)
    result = role_vars(**overrides)
    result['ansible_facts'] = dict({'stigmer_platform': fact}, **(facts or {}))
    result['_stigmer_os'] = os_data(fact['os'])
    result['inventory_hostname'] = 'host1'
    return result


@pytest.fixture
def linux_plan():
    return build_plan()
