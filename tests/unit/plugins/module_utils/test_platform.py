# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _platform as plat
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import (
    SUPPORTED_PLATFORMS,
    UnsupportedPlatformError,
    check_supported,
    detect_platform,
    gather_host_facts,
    normalize_arch,
    normalize_os,
)


@pytest.mark.parametrize('system, expected', [
    ('Linux', 'linux'), ('linux', 'linux'), ('LINUX', 'linux'), (' Darwin ', 'darwin'),
    ('darwin', 'darwin'), ('Windows', None), ('FreeBSD', None), ('', None), (None, None),
])
def test_normalize_os(system, expected):
    assert normalize_os(system) == expected


@pytest.mark.parametrize('machine, expected', [
    ('x86_64', 'amd64'), ('amd64', 'amd64'), ('AMD64', 'amd64'), ('x64', 'amd64'),
    ('aarch64', 'arm64'), ('arm64', 'arm64'), ('arm64e', 'arm64'), ('ARM64', 'arm64'),
    ('aarch64_be', None), ('armv7l', None), ('armv6l', None), ('i386', None), ('i686', None),
    ('riscv64', None), ('s390x', None), ('ppc64le', None), ('mips', None), ('mips64', None),
    ('', None), (None, None),
])
def test_normalize_arch(machine, expected):
    assert normalize_arch(machine) == expected


@pytest.mark.parametrize('system, machine, expected', [
    ('Linux', 'x86_64', 'linux-amd64'),
    ('Linux', 'aarch64', 'linux-arm64'),
    ('Darwin', 'arm64', 'darwin-arm64'),
    ('Darwin', 'arm64e', 'darwin-arm64'),
])
def test_detect_plain_platforms(system, machine, expected):
    facts = detect_platform(system, machine, 64, proc1_comm='systemd')
    assert facts['platform'] == expected
    assert facts['platform'] in SUPPORTED_PLATFORMS
    assert facts['machine'] == machine
    assert facts['rosetta'] is False
    assert set(facts) == {'os', 'arch', 'platform', 'machine', 'rosetta', 'service_manager'}


def test_intel_mac_without_arm64_sysctl():
    facts = detect_platform('Darwin', 'x86_64', 64, sysctl_arm64=None, proc_translated=None)
    assert facts['platform'] == 'darwin-amd64'
    assert facts['rosetta'] is False


def test_intel_mac_with_arm64_sysctl_zero():
    facts = detect_platform('Darwin', 'x86_64', 64, sysctl_arm64='0\n', proc_translated='0')
    assert facts['platform'] == 'darwin-amd64'
    assert facts['rosetta'] is False


@pytest.mark.parametrize('sysctl_arm64', [1, '1', '1\n'])
def test_rosetta_detected_by_hw_optional_arm64(sysctl_arm64):
    facts = detect_platform('Darwin', 'x86_64', 64, sysctl_arm64=sysctl_arm64)
    assert facts['arch'] == 'arm64'
    assert facts['platform'] == 'darwin-arm64'
    assert facts['machine'] == 'x86_64'
    assert facts['rosetta'] is True


def test_rosetta_detected_by_proc_translated_alone():
    facts = detect_platform('Darwin', 'x86_64', 64, sysctl_arm64=None, proc_translated='1')
    assert facts['platform'] == 'darwin-arm64'
    assert facts['rosetta'] is True


def test_native_apple_silicon_is_not_rosetta():
    facts = detect_platform('Darwin', 'arm64', 64, sysctl_arm64=1, proc_translated=0)
    assert facts['platform'] == 'darwin-arm64'
    assert facts['rosetta'] is False


def test_arm64_sysctl_ignored_on_linux():
    # hw.optional.arm64 is a macOS notion; a stray value must not remap Linux.
    facts = detect_platform('Linux', 'x86_64', 64, sysctl_arm64=1)
    assert facts['platform'] == 'linux-amd64'
    assert facts['rosetta'] is False


def _refusal(*args, **kwargs):
    with pytest.raises(UnsupportedPlatformError) as info:
        detect_platform(*args, **kwargs)
    message = str(info.value)
    for supported in SUPPORTED_PLATFORMS:
        assert supported in message
    return message


@pytest.mark.parametrize('machine', ['aarch64', 'arm64'])
def test_32bit_arm_userland_on_64bit_kernel_refused(machine):
    message = _refusal('Linux', machine, 32)
    assert machine in message
    assert '32-bit' in message
    assert 'Linux' in message


def test_32bit_x86_userland_on_64bit_kernel_refused():
    message = _refusal('Linux', 'x86_64', 32)
    assert 'x86_64' in message
    assert '32-bit' in message


@pytest.mark.parametrize('machine, bits', [
    ('riscv64', 64), ('s390x', 64), ('armv7l', 32), ('i686', 32), ('ppc64le', 64), ('aarch64_be', 64),
])
def test_unknown_arch_message_names_what_was_seen(machine, bits):
    message = _refusal('Linux', machine, bits)
    assert machine in message
    assert 'uname -m' in message
    assert '%d-bit' % bits in message
    assert 'Linux' in message


def test_unknown_os_message():
    message = _refusal('FreeBSD', 'amd64', 64)
    assert 'FreeBSD' in message
    assert 'amd64' in message


def test_pointer_bits_unknown_is_tolerated():
    assert detect_platform('Linux', 'x86_64', None)['platform'] == 'linux-amd64'


@pytest.mark.parametrize('proc1_comm, systemd_booted, expected', [
    ('systemd', False, 'systemd'),
    ('systemd\n', False, 'systemd'),
    (None, True, 'systemd'),
    ('init', True, 'systemd'),
    ('init', False, 'none'),
    ('bash', False, 'none'),
    ('tini', False, 'none'),
    (None, False, 'none'),
])
def test_linux_service_manager(proc1_comm, systemd_booted, expected):
    facts = detect_platform('Linux', 'x86_64', 64, proc1_comm=proc1_comm, systemd_booted=systemd_booted)
    assert facts['service_manager'] == expected


def test_darwin_service_manager_is_launchd():
    assert detect_platform('Darwin', 'arm64', 64)['service_manager'] == 'launchd'
    # launchd regardless of any Linux-style hints.
    assert detect_platform('Darwin', 'arm64', 64, proc1_comm='systemd')['service_manager'] == 'launchd'


def test_check_supported_narrows():
    facts = detect_platform('Linux', 'aarch64', 64)
    assert check_supported(facts, SUPPORTED_PLATFORMS) is facts
    with pytest.raises(UnsupportedPlatformError) as info:
        check_supported(facts, ['linux-amd64', 'darwin-arm64'])
    message = str(info.value)
    assert 'linux-arm64' in message and 'aarch64' in message
    assert 'linux-amd64, darwin-arm64' in message


class FakeRunner(object):
    """Stands in for AnsibleModule.run_command at the process boundary."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers.get(argv[-1], (1, '', 'unknown oid'))


def _fake_host(monkeypatch, system, machine, pointer_size=8):
    monkeypatch.setattr(plat.platform, 'system', lambda: system)
    monkeypatch.setattr(plat.os, 'uname', lambda: (system, 'host', '1', 'v', machine))
    monkeypatch.setattr(plat.struct, 'calcsize', lambda fmt: pointer_size)


def test_gather_on_apple_silicon_under_rosetta(monkeypatch):
    _fake_host(monkeypatch, 'Darwin', 'x86_64')
    runner = FakeRunner({'hw.optional.arm64': (0, '1\n', ''), 'sysctl.proc_translated': (0, '1\n', '')})
    raw = gather_host_facts(runner)
    assert [call[1:] for call in runner.calls] == [['-n', 'hw.optional.arm64'], ['-n', 'sysctl.proc_translated']]
    assert all(call[0].endswith('sysctl') for call in runner.calls)
    assert raw['sysctl_arm64'] == 1 and raw['proc_translated'] == 1
    assert raw['pointer_bits'] == 64
    facts = detect_platform(**raw)
    assert facts['platform'] == 'darwin-arm64' and facts['rosetta'] is True
    assert facts['service_manager'] == 'launchd'


def test_gather_on_intel_mac_where_sysctl_key_is_missing(monkeypatch):
    _fake_host(monkeypatch, 'Darwin', 'x86_64')
    runner = FakeRunner({})
    raw = gather_host_facts(runner)
    assert raw['sysctl_arm64'] is None and raw['proc_translated'] is None
    assert detect_platform(**raw)['platform'] == 'darwin-amd64'


def test_gather_survives_a_runner_that_raises(monkeypatch):
    _fake_host(monkeypatch, 'Darwin', 'arm64')

    def broken(argv):
        raise OSError('no sysctl')

    raw = gather_host_facts(broken)
    assert detect_platform(**raw)['platform'] == 'darwin-arm64'


def test_gather_on_linux_reads_proc_and_run(monkeypatch, tmp_path):
    _fake_host(monkeypatch, 'Linux', 'aarch64')
    comm = tmp_path / 'comm'
    comm.write_text('systemd\n')
    run_dir = tmp_path / 'run-systemd'
    runner = FakeRunner({})
    raw = gather_host_facts(runner, proc1_comm_path=str(comm), systemd_dir=str(run_dir))
    assert runner.calls == []  # no sysctl on Linux
    assert raw['proc1_comm'] == 'systemd'
    assert raw['systemd_booted'] is False
    facts = detect_platform(**raw)
    assert facts['platform'] == 'linux-arm64'
    assert facts['service_manager'] == 'systemd'


def test_gather_on_linux_container_without_systemd(monkeypatch, tmp_path):
    _fake_host(monkeypatch, 'Linux', 'x86_64')
    raw = gather_host_facts(FakeRunner({}), proc1_comm_path=str(tmp_path / 'missing'),
                            systemd_dir=str(tmp_path / 'missing-dir'))
    assert raw['proc1_comm'] is None
    assert detect_platform(**raw)['service_manager'] == 'none'


def test_gather_on_linux_booted_with_systemd_dir(monkeypatch, tmp_path):
    _fake_host(monkeypatch, 'Linux', 'x86_64')
    run_dir = tmp_path / 'systemd'
    run_dir.mkdir()
    raw = gather_host_facts(FakeRunner({}), proc1_comm_path=str(tmp_path / 'missing'), systemd_dir=str(run_dir))
    assert raw['systemd_booted'] is True
    assert detect_platform(**raw)['service_manager'] == 'systemd'


def test_gather_reports_32bit_userland(monkeypatch, tmp_path):
    _fake_host(monkeypatch, 'Linux', 'aarch64', pointer_size=4)
    raw = gather_host_facts(FakeRunner({}), proc1_comm_path=str(tmp_path / 'x'), systemd_dir=str(tmp_path / 'y'))
    assert raw['pointer_bits'] == 32
    with pytest.raises(UnsupportedPlatformError):
        detect_platform(**raw)
