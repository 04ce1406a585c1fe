# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""stigmer_runtime's main(): what compare reports in and out of check mode, refusals as failures,
and environment files (secrets) never echoed. The plan logic itself is tested in test_runtime.py."""

import json
import os

import pytest

from ansible_collections.stigmer.runtime.plugins.modules import stigmer_runtime
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.test_runtime import (
    GROUP,
    OWNER,
    artifacts,
    make_plan,
)
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

SECRET = 'STIGMER-TEST-SECRET-8d2f61c0a9'


def run_module(args, capsys):
    """(exit code, raw stdout, parsed result) of one main() run."""
    with harness.patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            stigmer_runtime.main()
    out = capsys.readouterr().out
    return info.value.code, out, json.loads(out)


def test_compare_reports_changed_only_in_check_mode_and_diff_only_with_diff(tmp_path, capsys):
    plan = make_plan(tmp_path)
    code, dummy, checked = run_module({'plan': plan, '_ansible_check_mode': True, '_ansible_diff': True}, capsys)
    assert code == 0 and checked['changed'] is True
    assert 'install stigmer v0.0.7 (it is not installed)' in checked['changes']
    assert checked['needs'] == ['agent-runner-v0.0.7-linux-amd64', 'stigmer-v0.0.7-linux-amd64.tar.gz']
    assert checked['diff']['after_header'] == 'plan' and 'version: v0.0.7' in checked['diff']['after']

    code, dummy, plain = run_module({'plan': plan, '_ansible_check_mode': True}, capsys)
    assert plain['changed'] is True and 'diff' not in plain

    code, dummy, compared = run_module({'plan': plan, 'action': 'compare'}, capsys)
    assert code == 0 and compared['changed'] is False and 'diff' not in compared
    assert compared['changes'] == checked['changes'] and compared['needs'] == checked['needs']
    assert os.listdir(str(tmp_path)) == []  # compare made nothing, in check mode or not


def test_apply_reports_what_compare_in_check_mode_reported(tmp_path, capsys):
    plan = make_plan(tmp_path)
    given = list(artifacts(tmp_path, 'v0.0.7').values())
    code, dummy, checked = run_module({'plan': plan, '_ansible_check_mode': True}, capsys)
    assert code == 0 and checked['changed'] is True
    code, dummy, applied = run_module({'plan': plan, 'action': 'apply', 'artifacts': given}, capsys)
    assert code == 0 and applied['changed'] is True
    assert applied['changes'] == checked['changes']
    code, dummy, again = run_module({'plan': plan, '_ansible_check_mode': True}, capsys)
    assert again['changed'] is False and again['changes'] == []


def test_other_actions_in_check_mode_change_nothing(tmp_path, capsys):
    plan = make_plan(tmp_path)
    code, dummy, result = run_module({'plan': plan, 'action': 'apply', '_ansible_check_mode': True}, capsys)
    assert code == 0 and result['changed'] is True
    assert result['changes'] == ['apply (check mode: not done)']
    assert os.listdir(str(tmp_path)) == []


def test_remove_refuses_a_system_prefix(tmp_path, capsys):
    plan = {'prefix': '/usr/local', 'record': '/usr/local/install-record.json', 'system': True, 'account': None}
    code, dummy, result = run_module({'action': 'remove', 'plan': plan, 'purge': True}, capsys)
    assert code == 1 and result['failed'] is True
    assert 'stigmer_prefix=/usr/local (it is a system directory)' in result['msg']


def test_environment_files_never_appear_in_the_output(tmp_path, capsys):
    env = str(tmp_path / 'config' / 'server.env')
    plan = make_plan(tmp_path, account={'user': OWNER, 'group': GROUP, 'home': str(tmp_path / 'state')})
    args = {'plan': plan, 'environment_files': {env: 'STIGMER_TOKEN=%s\n' % SECRET},
            '_ansible_check_mode': True, '_ansible_diff': True}
    code, out, result = run_module(args, capsys)
    assert code == 0 and 'write %s' % env in result['changes']
    assert SECRET not in out
    code, out, result = run_module(dict(args, action='bogus'), capsys)  # a failure echoes no secret either
    assert code == 1 and SECRET not in out
