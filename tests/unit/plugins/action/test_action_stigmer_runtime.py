# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_runtime action plugin: stigmer_artifact's registered loop results become artifacts, the
environment files are built on the controller from the role's settings and go to the module only,
controller-side artifacts are copied into the task's private temporary directory."""

import json
from types import SimpleNamespace

import pytest

from ansible_collections.stigmer.runtime.tests.unit.plugins.plugin_utils.conftest import (
    FakeTemplar, build_plan, task_vars)

SHA_A = 'a' * 64
SHA_B = 'b' * 64
ANTHROPIC = 'anthropic-test-value-SECRET-0815'
REMOTE_TMP = '/home/ops/.ansible/tmp/ansible-tmp-1-2'


@pytest.fixture
def host_artifacts(runtime_action):
    return runtime_action.host_artifacts


def loop_result(name, path=None, sha256=None, **extra):
    """One entry of stigmer_artifact's registered `results` list."""
    result = dict({'changed': bool(path), 'item': {'name': name, 'component': 'stigmer', 'url': 'https://x/' + name},
                   'ansible_loop_var': 'item', 'invocation': {'module_args': {'token': 'VALUE_SPECIFIED_IN_NO_LOG'}}},
                  **extra)
    if path:
        result['path'] = path
    if sha256:
        result['sha256'] = sha256
    return result


# ---------------------------------------------------------------------------
# host_artifacts()
# ---------------------------------------------------------------------------

def test_loop_results_become_name_path_sha256(host_artifacts):
    given = [
        loop_result('stigmer-v0.1.0-linux-amd64.tar.gz', '/cache/stigmer-v0.1.0-linux-amd64.tar.gz', SHA_A,
                    downloaded=True, verified_against=['checksum_file']),
        loop_result('agent-runner-v0.1.0-linux-amd64', skipped=True, skip_reason='Conditional result was False'),
        loop_result('temporal_cli_1.5.1_linux_amd64.tar.gz', '/cache/temporal_cli_1.5.1_linux_amd64.tar.gz', SHA_B),
    ]
    assert host_artifacts(given) == [
        {'name': 'stigmer-v0.1.0-linux-amd64.tar.gz', 'path': '/cache/stigmer-v0.1.0-linux-amd64.tar.gz',
         'sha256': SHA_A},
        {'name': 'temporal_cli_1.5.1_linux_amd64.tar.gz', 'path': '/cache/temporal_cli_1.5.1_linux_amd64.tar.gz',
         'sha256': SHA_B},
    ]


def test_loop_results_without_sha256_are_left_out(host_artifacts):
    """A result that verified nothing (check mode, a failure ignored) carries no artifact."""
    given = [loop_result('a', '/cache/a', None, failed=True, msg='404'),
             loop_result('b', '/cache/b', SHA_B)]
    assert host_artifacts(given) == [{'name': 'b', 'path': '/cache/b', 'sha256': SHA_B}]


def test_skipped_result_is_left_out_even_with_a_checksum(host_artifacts):
    assert host_artifacts([loop_result('a', '/cache/a', SHA_A, skipped=True)]) == []


def test_name_comes_from_the_loop_item(host_artifacts):
    result = loop_result('stigmer-v0.1.0-linux-amd64.tar.gz', '/cache/x.tar.gz', SHA_A)
    result['name'] = 'something else'
    assert host_artifacts([result])[0]['name'] == 'stigmer-v0.1.0-linux-amd64.tar.gz'


def test_plain_artifacts_pass_with_only_their_three_keys(host_artifacts):
    given = [{'name': 'a', 'path': '/cache/a', 'sha256': SHA_A, 'size': 10, 'url': 'https://x/a'}]
    assert host_artifacts(given) == [{'name': 'a', 'path': '/cache/a', 'sha256': SHA_A}]


@pytest.mark.parametrize('given', [None, []])
def test_no_artifacts(host_artifacts, given):
    assert host_artifacts(given) == []


def test_nothing_of_the_loop_result_but_the_three_keys_passes(host_artifacts):
    out = host_artifacts([loop_result('a', '/cache/a', SHA_A)])
    assert 'VALUE_SPECIFIED_IN_NO_LOG' not in json.dumps(out) and 'invocation' not in json.dumps(out)


# ---------------------------------------------------------------------------
# ActionModule.run() with a stand-in connection and module
# ---------------------------------------------------------------------------

class Harness(object):
    """The action plugin of `module` with a stand-in connection, file transfer and module call."""

    def __init__(self, module, args, variables, check_mode=False):
        task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, action='stigmer.runtime.stigmer_runtime')
        shell = SimpleNamespace(tmpdir=REMOTE_TMP, join_path=lambda *parts: '/'.join(parts))
        self.action = module.ActionModule(task, SimpleNamespace(_shell=shell), SimpleNamespace(check_mode=check_mode),
                                          None, FakeTemplar(variables), None)
        self.variables = variables
        self.calls, self.transfers, self.fixups, self.removed = [], [], [], []
        self.module_result = {'changed': False, 'changes': [], 'needs': []}
        self.action._execute_module = self._execute_module
        self.action._transfer_file = lambda local, remote: self.transfers.append((local, remote)) or remote
        self.action._fixup_perms2 = lambda paths, *a, **k: self.fixups.append(list(paths))
        self.action._remove_tmp_path = lambda path, *a, **k: self.removed.append(path)

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.calls.append((module_name, module_args))
        return dict(self.module_result)

    def run(self):
        return self.action.run(task_vars=self.variables)


@pytest.fixture
def harness(runtime_action):
    """harness(args, task_vars, check_mode=False) -> Harness of the stigmer_runtime action plugin."""
    return lambda *args, **kwargs: Harness(runtime_action, *args, **kwargs)


def plan_args(action='compare', **extra):
    return dict({'action': action, 'plan': build_plan(releases=False).host()}, **extra)


def test_compare_builds_the_environment_files_for_the_module_only(harness):
    variables = task_vars(stigmer_llm_provider='anthropic', stigmer_anthropic_api_key=ANTHROPIC)
    h = harness(plan_args(), variables)
    result = h.run()
    assert 'failed' not in result
    (name, args), = h.calls
    assert name == 'stigmer.runtime.stigmer_runtime'
    expected = build_plan(releases=False, stigmer_llm_provider='anthropic',
                          stigmer_anthropic_api_key=ANTHROPIC).environment_files()
    assert args['environment_files'] == expected
    assert ANTHROPIC in args['environment_files']['/etc/stigmer/agent-runner.env']
    assert ANTHROPIC not in json.dumps(result)
    assert args['artifacts'] == []
    assert h.removed == [REMOTE_TMP]


def test_given_environment_files_are_not_rebuilt(harness):
    h = harness(plan_args('apply', environment_files={}), task_vars())
    h.run()
    assert h.calls[0][1]['environment_files'] == {}


@pytest.mark.parametrize('action', ['remove', 'rollback'])
def test_remove_and_rollback_need_no_settings(harness, action):
    variables = task_vars()
    del variables['ansible_facts']['stigmer_platform']   # nothing to plan from: not needed
    h = harness(plan_args(action), variables)
    result = h.run()
    assert 'failed' not in result
    assert 'environment_files' not in h.calls[0][1]


def test_bad_settings_fail_the_task_without_calling_the_module(harness):
    h = harness(plan_args(), task_vars(stigmer_server_port='0'))
    result = h.run()
    assert result['failed'] is True
    assert 'stigmer_server_port' in result['msg']
    assert h.calls == []
    assert h.removed == [REMOTE_TMP]


def test_apply_passes_host_artifacts_from_loop_results(harness):
    given = [loop_result('a', '/var/cache/stigmer/artifacts/v0.1.0/a', SHA_A), loop_result('b', skipped=True)]
    h = harness(plan_args('apply', artifacts=given, artifacts_from='host'), task_vars(stigmer_download_mode='host'))
    h.run()
    args = h.calls[0][1]
    assert args['artifacts'] == [{'name': 'a', 'path': '/var/cache/stigmer/artifacts/v0.1.0/a', 'sha256': SHA_A}]
    assert args['artifacts_from'] == 'host'
    assert h.transfers == []


def test_controller_artifacts_are_copied_into_the_private_tmpdir(harness, tmp_path):
    local_a = tmp_path / 'stigmer-v0.1.0-linux-amd64.tar.gz'
    local_b = tmp_path / 'agent-runner-v0.1.0-linux-amd64'
    local_a.write_bytes(b'a')
    local_b.write_bytes(b'b')
    given = [loop_result(local_a.name, str(local_a), SHA_A), loop_result(local_b.name, str(local_b), SHA_B)]
    h = harness(plan_args('apply', artifacts=given, artifacts_from='controller'), task_vars())
    result = h.run()
    assert 'failed' not in result
    remote_a, remote_b = REMOTE_TMP + '/' + local_a.name, REMOTE_TMP + '/' + local_b.name
    assert h.transfers == [(str(local_a), remote_a), (str(local_b), remote_b)]
    assert h.fixups == [[REMOTE_TMP, remote_a, remote_b]]
    args = h.calls[0][1]
    assert args['artifacts_from'] == 'host'
    assert args['artifacts'] == [{'name': local_a.name, 'path': remote_a, 'sha256': SHA_A},
                                 {'name': local_b.name, 'path': remote_b, 'sha256': SHA_B}]


def test_missing_controller_artifact_fails_naming_it(harness, tmp_path):
    given = [loop_result('stigmer-v0.1.0-linux-amd64.tar.gz', str(tmp_path / 'gone.tar.gz'), SHA_A)]
    h = harness(plan_args('apply', artifacts=given, artifacts_from='controller'), task_vars())
    result = h.run()
    assert result['failed'] is True
    assert 'stigmer-v0.1.0-linux-amd64.tar.gz' in result['msg'] and 'gone.tar.gz' in result['msg']
    assert h.calls == [] and h.transfers == []


def test_check_mode_copies_nothing(harness, tmp_path):
    local = tmp_path / 'a.tar.gz'
    local.write_bytes(b'a')
    h = harness(plan_args('apply', artifacts=[loop_result('a', str(local), SHA_A)], artifacts_from='controller'),
                task_vars(), check_mode=True)
    h.run()
    assert h.transfers == []
    assert h.calls[0][1]['artifacts'] == []
