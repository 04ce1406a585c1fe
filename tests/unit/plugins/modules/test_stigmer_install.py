# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import io
import os
import tarfile

from ansible_collections.stigmer.runtime.plugins.modules import stigmer_install
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.test_binary_header import (
    ELF_ARMHF,
    HOST,
)
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness


def run_module(args, capsys):
    return harness.run_module(stigmer_install, args, capsys)[1]


def release(tmp_path, version, data=None):
    """A CLI tarball for version; returns (sources, checks)."""
    if data is None:
        data = ('#!/bin/sh\necho "stigmer version v%s"\n' % version).encode()
    path = tmp_path / ('stigmer-v%s-linux-amd64.tar.gz' % version)
    with tarfile.open(str(path), 'w:gz') as tar:
        info = tarfile.TarInfo('stigmer')
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ([{'src': str(path), 'sha256': digest, 'archive': True}],
            [{'command': 'stigmer', 'expect': 'v' + version}])


def base_args(tmp_path, version, data=None):
    sources, checks = release(tmp_path, version, data)
    return {
        'root': str(tmp_path / 'opt' / 'versions'),
        'link': str(tmp_path / 'opt' / 'current'),
        'version': 'v' + version,
        'sources': sources,
        'checks': checks,
        'platform': HOST,
        'files': {'share/agent-runner.version': 'v%s\n' % version},
        'owner': str(os.getuid()),
        'group': str(os.getgid()),
    }


def test_install_then_idempotent_with_diff(tmp_path, capsys):
    args = base_args(tmp_path, '1.1.0')
    result = run_module(dict(args, _ansible_diff=True), capsys)
    assert result['changed'] and result['installed'] and result['switched']
    assert result['files'] == ['stigmer']
    assert result['diff']['before'] == {'version': None}
    assert result['diff']['after'] == {'version': 'v1.1.0'}
    assert os.readlink(args['link']) == 'versions/v1.1.0'

    result = run_module(args, capsys)
    assert not result['changed']
    assert result['previous'] == 'v1.1.0'


def test_upgrade_diff_and_check_mode(tmp_path, capsys):
    run_module(base_args(tmp_path, '1.0.0'), capsys)
    args = base_args(tmp_path, '1.1.0')
    result = run_module(dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert result['changed'] and result['installed'] and result['switched']
    assert result['diff']['before'] == {'version': 'v1.0.0'}
    assert result['diff']['after'] == {'version': 'v1.1.0'}
    assert os.readlink(args['link']) == 'versions/v1.0.0'
    assert not os.path.exists(os.path.join(args['root'], 'v1.1.0'))

    result = run_module(args, capsys)
    assert result['switched'] and result['previous'] == 'v1.0.0'


def test_check_mode_fresh_host_missing_artifacts(tmp_path, capsys):
    args = base_args(tmp_path, '1.1.0')
    os.unlink(args['sources'][0]['src'])
    result = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert result['changed'] and result['installed']
    assert not os.path.exists(args['root'])


def test_failed_check_is_a_module_failure(tmp_path, capsys):
    run_module(base_args(tmp_path, '1.0.0'), capsys)
    args = base_args(tmp_path, '1.1.0')
    args['checks'] = [{'command': 'stigmer', 'args': ['version'], 'expect': '1.2.0'}]
    result = run_module(args, capsys)
    assert result['failed']
    assert 'stigmer version' in result['msg'] and 'expected 1.2.0' in result['msg']
    assert os.readlink(args['link']) == 'versions/v1.0.0'
    assert sorted(os.listdir(args['root'])) == ['v1.0.0']


def test_checks_defaults_and_version_optional(tmp_path, capsys):
    # No version flag, like stigmer v0.0.5-v0.0.7; the module fills in args and version_optional.
    args = base_args(tmp_path, '0.0.7', data=b'#!/bin/sh\n[ "$1" = --help ] || exit 1\necho Usage\n')
    result = run_module(args, capsys)
    assert result['failed'] and 'stigmer --version exited with 1; expected version 0.0.7' in result['msg']
    args['checks'] = [{'command': 'stigmer', 'expect': 'v0.0.7', 'version_optional': True},
                      {'command': 'stigmer', 'args': ['--help']}]
    assert run_module(args, capsys)['installed']


def test_wrong_architecture_is_a_module_failure(tmp_path, capsys):
    args = base_args(tmp_path, '1.1.0', data=ELF_ARMHF)
    args['checks'] = []
    result = run_module(args, capsys)
    assert result['failed']
    assert result['msg'] == ('v1.1.0 was not installed, the active version and link are unchanged: stigmer is a '
                             '32-bit ELF executable for arm (EM_ARM, e_machine 40), which no supported platform '
                             'runs; this host is %s' % HOST)
    assert not os.path.lexists(args['link'])
    args['platform'] = 'windows-amd64'
    result = run_module(args, capsys)
    assert result['failed'] and 'value of platform must be one of' in result['msg']


def test_missing_required_options(capsys):
    result = run_module({'root': '/tmp/nowhere'}, capsys)
    assert result['failed'] and 'missing required arguments' in result['msg']


def test_documentation_matches_argument_spec():
    doc = harness.check_documentation(stigmer_install)[0]
    assert set(doc['attributes']) == {'check_mode', 'diff_mode', 'platform'}
