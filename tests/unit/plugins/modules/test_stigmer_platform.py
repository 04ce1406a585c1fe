# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible.module_utils import basic

from ansible_collections.stigmer.runtime.plugins.modules import stigmer_platform
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules.harness import (
    ModuleExit,
    ModuleFail,
    patch_module_args,
)


def _host(monkeypatch, **raw):
    facts = dict(system='Linux', machine='x86_64', pointer_bits=64, sysctl_arm64=None,
                 proc_translated=None, proc1_comm='systemd', systemd_booted=True)
    facts.update(raw)
    seen = []

    def fake_gather(run_command):
        seen.append(run_command)
        return dict(facts)

    monkeypatch.setattr(stigmer_platform, 'gather_host_facts', fake_gather)
    return seen


def _run(args=None, check_mode=False):
    args = dict(args or {})
    if check_mode:
        args['_ansible_check_mode'] = True
    with patch_module_args(args):
        stigmer_platform.main()


def test_linux_host(monkeypatch, module_exits):
    seen = _host(monkeypatch)
    with pytest.raises(ModuleExit) as info:
        _run()
    result = info.value.args[0]
    expected = {'os': 'linux', 'arch': 'amd64', 'platform': 'linux-amd64', 'machine': 'x86_64',
                'rosetta': False, 'service_manager': 'systemd'}
    assert result['changed'] is False
    assert result['platform'] == expected
    assert result['ansible_facts'] == {'stigmer_platform': expected}
    assert len(seen) == 1 and callable(seen[0])  # run_command handed through


def test_rosetta_mac_in_check_mode(monkeypatch, module_exits):
    _host(monkeypatch, system='Darwin', machine='x86_64', sysctl_arm64=1, proc_translated=1,
          proc1_comm=None, systemd_booted=False)
    with pytest.raises(ModuleExit) as info:
        _run(check_mode=True)
    facts = info.value.args[0]['ansible_facts']['stigmer_platform']
    assert facts['platform'] == 'darwin-arm64'
    assert facts['rosetta'] is True
    assert facts['service_manager'] == 'launchd'
    assert info.value.args[0]['changed'] is False


@pytest.mark.parametrize('raw, seen_text', [
    (dict(machine='riscv64'), 'riscv64'),
    (dict(machine='armv7l', pointer_bits=32), 'armv7l'),
    (dict(machine='aarch64', pointer_bits=32), '32-bit'),
    (dict(system='FreeBSD', machine='amd64'), 'FreeBSD'),
])
def test_unsupported_host_fails_with_message(monkeypatch, module_exits, raw, seen_text):
    _host(monkeypatch, **raw)
    with pytest.raises(ModuleFail) as info:
        _run()
    result = info.value.args[0]
    assert result['failed'] is True
    assert seen_text in result['msg']
    assert 'darwin-amd64, darwin-arm64, linux-amd64, linux-arm64' in result['msg']
    assert 'ansible_facts' not in result


def test_supported_option_narrows(monkeypatch, module_exits):
    _host(monkeypatch, machine='aarch64')
    with pytest.raises(ModuleFail) as info:
        _run({'supported': ['darwin-amd64', 'darwin-arm64', 'linux-amd64']})
    msg = info.value.args[0]['msg']
    assert 'linux-arm64' in msg and 'aarch64' in msg
    assert 'darwin-amd64, darwin-arm64, linux-amd64.' in msg


def test_supported_option_allows(monkeypatch, module_exits):
    _host(monkeypatch, machine='aarch64')
    with pytest.raises(ModuleExit) as info:
        _run({'supported': ['linux-arm64']})
    assert info.value.args[0]['platform']['platform'] == 'linux-arm64'


def test_supported_option_rejects_unknown_platform(monkeypatch, module_exits):
    _host(monkeypatch)
    with pytest.raises(ModuleFail) as info:
        _run({'supported': ['windows-amd64']})
    assert 'windows-amd64' in info.value.args[0]['msg']


def test_real_gather_on_this_machine(monkeypatch, module_exits):
    # Real uname and /proc, faked processes: this machine is either a
    # supported platform or a clean refusal, never a traceback.
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: (1, '', 'faked'))
    with pytest.raises((ModuleExit, ModuleFail)) as info:
        _run()
    result = info.value.args[0]
    if 'msg' in result:
        assert 'Supported platforms' in result['msg']
    else:
        assert result['platform']['platform'] in stigmer_platform.SUPPORTED_PLATFORMS
