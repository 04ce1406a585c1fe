# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_plan action plugin: the typed settings without secrets, the derived facts, and the
public plan; a refused setting fails the task with its message and nothing else."""

import json
from types import SimpleNamespace

import pytest

from ansible_collections.stigmer.runtime.tests.unit.plugins.plugin_utils.conftest import (
    FakeTemplar, build_plan, release_results, task_vars)

ANTHROPIC = 'anthropic-test-value-SECRET-0815'
TOKEN = 'github-test-token-SECRET-4711'
MIRROR_PASSWORD = 'hunter2-SECRETmirror'


@pytest.fixture
def run(plan_action):
    """run(args, task_vars): the result of the action plugin on a host with those variables."""
    def run(args, variables):
        task = SimpleNamespace(args=args, async_val=0, check_mode=False, action='stigmer.runtime.stigmer_plan')
        action = plan_action.ActionModule(task, SimpleNamespace(_shell=SimpleNamespace(tmpdir=None)),
                                          SimpleNamespace(check_mode=False), None, FakeTemplar(variables), None)
        return action.run(task_vars=variables)
    return run


def secret_vars(**overrides):
    return task_vars(stigmer_llm_provider='anthropic', stigmer_anthropic_api_key=ANTHROPIC, stigmer_github_token=TOKEN,
                     stigmer_mirror_password=MIRROR_PASSWORD, **overrides)


def test_settings_only_returns_typed_settings_without_secrets(run):
    result = run({'settings_only': True}, secret_vars(stigmer_service_enabled='false', stigmer_download_mode='host'))
    assert result['changed'] is False and 'failed' not in result
    assert result['settings']['stigmer_service_enabled'] is False
    assert result['settings']['stigmer_temporal_port'] == 7233
    assert (result['services'], result['system'], result['controller_mode']) == (False, True, False)
    assert 'plan' not in result
    for name in ('stigmer_anthropic_api_key', 'stigmer_github_token', 'stigmer_mirror_password',
                 'stigmer_openai_api_key'):
        assert name not in result['settings']
    dumped = json.dumps(result)
    assert ANTHROPIC not in dumped and TOKEN not in dumped and MIRROR_PASSWORD not in dumped


def test_full_run_returns_the_public_plan_without_secrets(run):
    result = run({'releases': release_results()}, secret_vars())
    assert 'failed' not in result
    expected = build_plan(stigmer_llm_provider='anthropic', stigmer_anthropic_api_key=ANTHROPIC).public()
    for key in ('plan', 'releases', 'health_components', 'temporal', 'report_components', 'paths'):
        assert result[key] == expected[key], key
    assert result['releases']['stigmer']['tag'] == 'v0.1.0'
    dumped = json.dumps(result)
    assert ANTHROPIC not in dumped and TOKEN not in dumped and MIRROR_PASSWORD not in dumped


def test_without_releases_the_plan_has_no_trees(run):
    result = run({}, task_vars())
    assert result['plan']['trees'] == [] and result['releases'] == {}


def test_refused_setting_fails_with_its_message(run):
    result = run({'settings_only': True}, task_vars(stigmer_temporal_namespace='ns\nExecStartPre=/bin/id'))
    assert result['failed'] is True
    assert 'stigmer_temporal_namespace' in result['msg']
    assert result['msg'].endswith('Nothing was changed on any host.')
    assert 'settings' not in result


def test_type_error_never_shows_the_secret(run):
    result = run({'settings_only': True}, task_vars(stigmer_github_token=TOKEN, stigmer_request_timeout=TOKEN))
    assert result['failed'] is True
    assert 'stigmer_request_timeout' in result['msg'] and TOKEN not in result['msg']


def test_unknown_platform_fails_the_full_run_only(run):
    variables = task_vars()
    del variables['ansible_facts']['stigmer_platform']
    assert 'failed' not in run({'settings_only': True}, variables)
    result = run({}, variables)
    assert result['failed'] is True and 'platform' in result['msg']
