# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one platform map: what a host is, in release-asset terms.

Everything except gather_host_facts() is pure so that unit tests can feed
any uname/sysctl combination without owning such a machine.
"""

import os
import platform
import struct

SUPPORTED_PLATFORMS = ('darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64')

_OS_MAP = {
    'linux': 'linux',
    'darwin': 'darwin',
}

# Only 64-bit little-endian userlands get a build; big-endian aarch64
# (aarch64_be) and every 32-bit ARM or x86 name stay unmapped on purpose.
_ARCH_MAP = {
    'x86_64': 'amd64',
    'amd64': 'amd64',
    'x64': 'amd64',
    'aarch64': 'arm64',
    'arm64': 'arm64',
    'arm64e': 'arm64',
}

_SYSCTL = '/usr/sbin/sysctl'
_PROC1_COMM = '/proc/1/comm'
_SYSTEMD_RUNTIME_DIR = '/run/systemd/system'


class UnsupportedPlatformError(Exception):
    """The host is not one of the platforms releases are built for."""


def normalize_os(system):
    """Map platform.system() / uname -s to 'linux' or 'darwin', else None."""
    if not system:
        return None
    return _OS_MAP.get(str(system).strip().lower())


def normalize_arch(machine):
    """Map uname -m to 'amd64' or 'arm64', else None."""
    if not machine:
        return None
    return _ARCH_MAP.get(str(machine).strip().lower())


def _as_int(value):
    """sysctl answers arrive as '1\\n', 1 or None; anything unreadable is None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _describe(system, machine, pointer_bits):
    bits = '%s-bit' % pointer_bits if pointer_bits else 'unknown'
    return 'os %s, uname -m %s, userland %s' % (system or 'unknown', machine or 'unknown', bits)


def unsupported_message(reason, system, machine, pointer_bits, supported=SUPPORTED_PLATFORMS):
    """One message shape for every refusal: what was seen, what is served."""
    return '%s (seen: %s). Supported platforms: %s.' % (
        reason, _describe(system, machine, pointer_bits), ', '.join(supported))


def _service_manager(os_name, proc1_comm, systemd_booted):
    if os_name == 'darwin':
        return 'launchd'
    # sd_booted() checks /run/systemd/system; /proc/1/comm catches
    # containers where that directory is not mounted.
    if systemd_booted or (proc1_comm or '').strip() == 'systemd':
        return 'systemd'
    return 'none'


def detect_platform(system, machine, pointer_bits, sysctl_arm64=None, proc_translated=None,
                    proc1_comm=None, systemd_booted=False):
    """Decide the release platform of a host from raw facts.

    Returns a dict with os, arch, platform, machine, rosetta and
    service_manager; raises UnsupportedPlatformError otherwise.
    """
    os_name = normalize_os(system)
    if os_name is None:
        raise UnsupportedPlatformError(unsupported_message(
            'unsupported operating system %r' % (system,), system, machine, pointer_bits))

    arch = normalize_arch(machine)
    rosetta = False
    if os_name == 'darwin':
        # Under Rosetta 2, uname -m and Python both say x86_64; only the
        # sysctls tell the truth about Apple Silicon.
        translated = _as_int(proc_translated) == 1
        apple_silicon = _as_int(sysctl_arm64) == 1
        if apple_silicon or translated:
            rosetta = translated or arch == 'amd64'
            arch = 'arm64'

    if arch is None:
        raise UnsupportedPlatformError(unsupported_message(
            'unsupported CPU architecture %r' % (machine,), system, machine, pointer_bits))

    bits = _as_int(pointer_bits)
    if bits is not None and bits != 64:
        # A 64-bit kernel under a 32-bit userland (armhf on aarch64, i686 on
        # x86_64) cannot run the 64-bit binaries' companions reliably and
        # no 32-bit build exists.
        raise UnsupportedPlatformError(unsupported_message(
            'a %d-bit userland on a 64-bit kernel is not supported' % bits,
            system, machine, pointer_bits))

    return {
        'os': os_name,
        'arch': arch,
        'platform': '%s-%s' % (os_name, arch),
        'machine': machine,
        'rosetta': rosetta,
        'service_manager': _service_manager(os_name, proc1_comm, systemd_booted),
    }


def check_supported(facts, supported):
    """Raise UnsupportedPlatformError when a detected platform is outside a narrowed list."""
    supported = tuple(supported) if supported else SUPPORTED_PLATFORMS
    if facts['platform'] not in supported:
        raise UnsupportedPlatformError(
            'platform %s (os %s, uname -m %s) is not in the supported list. Supported platforms: %s.'
            % (facts['platform'], facts.get('os'), facts.get('machine'), ', '.join(supported)))
    return facts


def _sysctl_value(run_command, name):
    sysctl = _SYSCTL if os.path.exists(_SYSCTL) else 'sysctl'
    try:
        rc, out, dummy = run_command([sysctl, '-n', name])
    except (OSError, ValueError):
        return None
    # Intel Macs lack hw.optional.arm64 entirely: a failure means "no".
    if rc != 0:
        return None
    return _as_int(out)


def _read_text(path):
    try:
        with open(path, 'r') as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def gather_host_facts(run_command, proc1_comm_path=_PROC1_COMM, systemd_dir=_SYSTEMD_RUNTIME_DIR):
    """Collect the raw facts detect_platform() needs; the only I/O in here.

    run_command(argv) -> (rc, out, err), as AnsibleModule.run_command.
    """
    system = platform.system()
    facts = {
        'system': system,
        'machine': os.uname()[4],
        'pointer_bits': struct.calcsize('P') * 8,
        'sysctl_arm64': None,
        'proc_translated': None,
        'proc1_comm': None,
        'systemd_booted': False,
    }
    if normalize_os(system) == 'darwin':
        facts['sysctl_arm64'] = _sysctl_value(run_command, 'hw.optional.arm64')
        facts['proc_translated'] = _sysctl_value(run_command, 'sysctl.proc_translated')
    else:
        facts['proc1_comm'] = _read_text(proc1_comm_path)
        facts['systemd_booted'] = os.path.isdir(systemd_dir)
    return facts
