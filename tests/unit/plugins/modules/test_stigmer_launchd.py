# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import os
import plistlib

import pytest

from ansible.module_utils import basic

from ansible_collections.stigmer.runtime.plugins.module_utils import launchd
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_launchd
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

LABEL = 'io.stigmer.server'


class FakeLaunchctl(object):
    """Stands in for /bin/launchctl and /usr/bin/dscl behind AnsibleModule.run_command."""

    def __init__(self):
        self.loaded = False
        self.calls = []

    def run_command(self, module, args, **kwargs):  # replaces AnsibleModule.run_command
        self.calls.append(list(args))
        if args[0] == '/usr/bin/dscl':
            return (0, 'UniqueID: 401\n', '') if args[3] == '/Users/_stigmer' else (56, '', 'eDSRecordNotFound')
        verb = args[1]
        if verb == 'print':
            return (0, 'state = running', '') if self.loaded else (113, 'Could not find service', '')
        if verb == 'bootstrap':
            self.loaded = True
        if verb == 'bootout':
            self.loaded = False
        return 0, '', ''


@pytest.fixture
def fake(monkeypatch):
    fake = FakeLaunchctl()

    def run_command(module, args, **kwargs):
        return fake.run_command(module, args, **kwargs)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(stigmer_launchd, 'is_macos', lambda: True)
    # Unit tests may run without root: expect the test user's ids instead of root:wheel.
    monkeypatch.setattr(launchd, 'ROOT_UID', os.getuid())
    monkeypatch.setattr(launchd, 'ROOT_GID', os.getgid())
    return fake


def run_module(args, capsys):
    return harness.run_module(stigmer_launchd, args, capsys)[1]


def args_for(tmp_path, **kwargs):
    args = {
        'label': LABEL,
        'path': str(tmp_path / (LABEL + '.plist')),
        'program_arguments': ['/opt/stigmer/current/bin/stigmer', 'internal-server'],
        'user_name': '_stigmer',
        'environment': {'HOME': '/var/lib/stigmer'},
        'working_directory': '/var/lib/stigmer',
    }
    args.update(kwargs)
    return args


def test_present_then_unchanged(tmp_path, capsys, fake):
    args = args_for(tmp_path)
    result = run_module(dict(args, _ansible_diff=True), capsys)
    assert result['changed'] and result['plist_changed'] and result['loaded']
    assert result['actions'] == [['/bin/launchctl', 'enable', 'system/' + LABEL],
                                 ['/bin/launchctl', 'bootstrap', 'system', args['path']]]
    assert '<key>ProgramArguments</key>' in result['diff']['after']
    with open(args['path'], 'rb') as handle:
        plist = plistlib.load(handle)
    assert plist['UserName'] == '_stigmer' and plist['KeepAlive'] is True
    assert oct(os.stat(args['path']).st_mode & 0o777) == oct(0o644)

    fake.calls[:] = []
    result = run_module(args, capsys)
    assert not result['changed'] and result['actions'] == []
    assert 'diff' not in result
    assert fake.calls == [['/bin/launchctl', 'print', 'system/' + LABEL]]


def test_check_mode(tmp_path, capsys, fake):
    args = args_for(tmp_path)
    result = run_module(dict(args, _ansible_check_mode=True), capsys)
    assert result['changed']
    assert fake.calls == [['/bin/launchctl', 'print', 'system/' + LABEL]]
    assert not os.path.exists(args['path'])


def test_missing_user_fails_clearly(tmp_path, capsys, fake):
    result = run_module(args_for(tmp_path, user_name='nobody-here'), capsys)
    assert result['failed'] and "'nobody-here' does not exist" in result['msg']


def test_program_arguments_required_for_present(tmp_path, capsys, fake):
    args = args_for(tmp_path)
    del args['program_arguments']
    result = run_module(args, capsys)
    assert result['failed'] and 'program_arguments' in result['msg']


def test_absent_needs_no_program(tmp_path, capsys, fake):
    args = args_for(tmp_path)
    run_module(args, capsys)
    result = run_module({'label': LABEL, 'path': args['path'], 'state': 'absent'}, capsys)
    assert result['changed'] and not result['loaded'] and not os.path.exists(args['path'])


def test_refuses_other_platforms(tmp_path, capsys, fake, monkeypatch):
    monkeypatch.setattr(stigmer_launchd, 'is_macos', lambda: False)
    result = run_module(args_for(tmp_path), capsys)
    assert result['failed'] and 'macOS only' in result['msg']
    assert fake.calls == []


def test_documentation_matches_argument_spec():
    doc = harness.check_documentation(stigmer_launchd)[0]
    assert doc['attributes']['platform']['platforms'] == 'darwin'
