# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_mirror module against the GitHub stand-in: results, check and diff mode, failures, documentation."""

import json
import os

import pytest

from ansible.module_utils.common.warnings import _global_warnings

from ansible_collections.stigmer.runtime.plugins.modules import stigmer_mirror
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.test_mirror import TOKEN, tree


@pytest.fixture
def origin(shared_origin):
    shared_origin.reset()
    yield shared_origin
    # Module warnings are process-global in ansible-core: do not leak ours into later tests.
    _global_warnings.clear()


def args_for(origin, dest, **extra):
    args = {'dest': dest, 'repo': 'stigmer/stigmer', 'platforms': ['linux-amd64'],
            'github_url': origin.handle.base_url, 'api_url': origin.handle.api_url}
    args.update(extra)
    return args


def test_mirror_then_nothing_to_do(origin, capsys, tmp_path):
    dest = str(tmp_path / 'stigmer')
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, versions=['latest', '0.0.6'],
                                                            _ansible_diff=True), capsys)
    assert code == 0 and out['changed'] is True
    assert out['tags'] == {'latest': 'v0.1.0', '0.0.6': 'v0.0.6'}
    assert out['releases'] == ['v0.1.0', 'v0.0.6'] and out['latest'] == 'v0.1.0'
    assert sorted(out['written']) == sorted(tree(dest))
    assert out['msg'] == ('mirrored v0.0.6, v0.1.0 of stigmer/stigmer into %s (%d files written); latest is v0.1.0'
                          % (dest, len(out['written'])))
    assert [d['after_header'] for d in out['diff']] == ['latest', 'manifest.json']
    assert out['diff'][0] == {'before_header': 'latest', 'after_header': 'latest', 'before': '', 'after': 'v0.1.0\n'}
    # ansible-core 2.19 returns each warning as a dict, older releases as text.
    assert 'latest: skipped v3.27.2 (no assets)' in json.dumps(out['warnings'])
    assert 'v0.0.6 of stigmer/stigmer has no build for linux-arm64' not in json.dumps(out['warnings'])

    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, versions=['latest', '0.0.6'],
                                                            _ansible_diff=True), capsys)
    assert code == 0 and out['changed'] is False and out['written'] == [] and 'diff' not in out
    assert 'already up to date' in out['msg']


def test_check_mode_reports_and_writes_nothing(origin, capsys, tmp_path):
    dest = str(tmp_path / 'stigmer')
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, _ansible_check_mode=True), capsys)
    assert code == 0 and out['changed'] is True and not os.path.exists(dest)
    assert 'v0.1.0/agent-runner-v0.1.0-linux-amd64' in out['written'] and 'would be written' in out['msg']
    assert not [name for name in origin.stats()['downloads'] if not name.endswith('.sha256')]


def test_temporal(origin, capsys, tmp_path):
    dest = str(tmp_path / 'temporal')
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, repo='temporalio/cli', versions=['1.5.1'],
                                                            components=['temporal']), capsys)
    assert code == 0 and out['tags'] == {'1.5.1': 'v1.5.1'}
    assert tree(dest) == ['latest', 'manifest.json', 'v1.5.1/checksums.txt',
                          'v1.5.1/temporal_cli_1.5.1_linux_amd64.tar.gz']


def test_failures_name_the_problem_and_show_no_secret(origin, capsys, tmp_path):
    dest = str(tmp_path / 'stigmer')
    origin.faults(corrupt=['stigmer-v0.1.0-linux-amd64.tar.gz'])
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, token=TOKEN + '\n', url_username='bob',
                                                            url_password='pw-SECRET', attempts=1), capsys)
    assert code == 1 and out['failed'] is True
    assert out['msg'].startswith('mirroring v0.1.0 of stigmer/stigmer: checksum mismatch for '
                                 'stigmer-v0.1.0-linux-amd64.tar.gz')
    assert TOKEN not in json.dumps(out) and 'pw-SECRET' not in json.dumps(out)

    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, versions=['one']), capsys)
    assert code == 1 and 'not a semantic version' in out['msg']
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, versions=['9.9.9']), capsys)
    assert code == 1 and 'release v9.9.9 not found in stigmer/stigmer' in out['msg']
    github_url = origin.handle.base_url.replace('//', '//bob:pw-SECRET-2@')
    code, out = harness.run_module(stigmer_mirror, args_for(origin, dest, github_url=github_url), capsys)
    assert code == 1 and 'must not carry' in out['msg'] and 'pw-SECRET-2' not in json.dumps(out)


def test_documentation_matches_the_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_mirror)
    assert spec['token']['no_log'] is True and spec['url_password']['no_log'] is True
    assert str(doc['version_added']) == '0.1.0'
    assert set(doc['attributes']) == {'check_mode', 'diff_mode', 'platform'}
    assert set(returned) == {'tags', 'written', 'releases', 'latest', 'warnings', 'msg'}
