# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import os
import platform
import struct

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _binary_header as binary_header
from ansible_collections.stigmer.runtime.plugins.module_utils._binary_header import (
    BinaryHeaderError,
    env_program,
    header_problem,
    parse_header,
    platform_problem,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import detect_platform

# The first 64 bytes of real files, as `head -c 64 FILE | xxd -p` printed them.

# /usr/bin/true from Debian 12 coreutils 9.1-1 amd64: ELF 64-bit LSB pie executable, x86-64.
ELF_AMD64 = bytes.fromhex(
    '7f454c4602010100000000000000000003003e0001000000d023000000000000'
    '4000000000000000908300000000000000000000400038000d0040001f001e00')
# /bin/true from Debian 12 coreutils_9.1-1_arm64.deb (sha256 ec8f090a14c6...5e1c4d):
# ELF 64-bit LSB pie executable, ARM aarch64.
ELF_ARM64 = bytes.fromhex(
    '7f454c460201010000000000000000000300b70001000000c017000000000000'
    '4000000000000000e0030100000000000000000040003800090040001d001c00')
# /bin/true from Debian 12 coreutils_9.1-1_armhf.deb (sha256 63b1179dc344...48f4b5):
# ELF 32-bit LSB pie executable, ARM, EABI5.
ELF_ARMHF = bytes.fromhex(
    '7f454c460101010000000000000000000300280001000000a90e000034000000'
    '540301000004000534002000090028001d001c00010000704447000044470000')
# markupsafe/_speedups.cpython-311-darwin.so from markupsafe-3.0.4-cp311-cp311-macosx_11_0_arm64.whl
# (sha256 7d3391b2188d...a489fa2cadc91): Mach-O 64-bit arm64 bundle.
MACHO_ARM64 = bytes.fromhex(
    'cffaedfe0c00000100000000080000000e000000880500008500000000000000'
    '19000000280200005f5f54455854000000000000000000000000000000000000')
# The same file from markupsafe-3.0.4-cp311-cp311-macosx_10_9_x86_64.whl
# (sha256 9e25feb9e330...4ae195346): Mach-O 64-bit x86_64 bundle.
MACHO_AMD64 = bytes.fromhex(
    'cffaedfe0700000103000000080000000c000000200500008500000000000000'
    '19000000280200005f5f54455854000000000000000000000000000000000000')
# The same file from MarkupSafe-3.0.2-cp311-cp311-macosx_10_9_universal2.whl
# (sha256 9025b4018f3a...cb46db9d): Mach-O universal binary, x86_64 and arm64.
MACHO_UNIVERSAL = bytes.fromhex(
    'cafebabe00000002010000070000000300001000000023d00000000c0100000c'
    '00000000000040000000c5f00000000e00000000000000000000000000000000')
# /usr/share/gettext/javaversion.class from Debian 12 gettext 0.21-12: a Java class file,
# whose magic is FAT_MAGIC.
JAVA_CLASS = bytes.fromhex('cafebabe0003002d00210a0007001009')
# The first bytes of the universal2 wheel above: a zip archive.
ZIP = bytes.fromhex('504b030414000000')

HOST = detect_platform(platform.system(), os.uname()[4], struct.calcsize('P') * 8)['platform']
OTHER_LINUX = {'linux-amd64': ELF_ARM64, 'linux-arm64': ELF_AMD64}


def write(tmp_path, name, data, mode=0o755):
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def archs(info):
    return [item['arch'] for item in info['slices']]


# --- parsing real headers ------------------------------------------------------

def test_elf_amd64_and_arm64():
    info = parse_header(ELF_AMD64)
    assert (info['format'], info['os'], info['bits'], info['big_endian']) == ('ELF', 'linux', 64, False)
    assert archs(info) == ['amd64'] and info['slices'][0]['machine'] == 'x86_64'
    assert header_problem(info, 'linux-amd64') is None
    assert header_problem(parse_header(ELF_ARM64), 'linux-arm64') is None
    assert (header_problem(parse_header(ELF_ARM64), 'linux-amd64')
            == 'an ELF executable for linux-arm64 (aarch64); this host is linux-amd64')
    # An ELF is never a macOS binary, whatever its CPU.
    assert header_problem(info, 'darwin-amd64') == 'an ELF executable for linux-amd64 (x86_64); this host is darwin-amd64'


def test_elf_32_bit_is_named_by_number():
    info = parse_header(ELF_ARMHF)
    assert info['bits'] == 32 and archs(info) == [None]
    assert header_problem(info, 'linux-arm64') == (
        'a 32-bit ELF executable for arm (EM_ARM, e_machine 40), which no supported platform runs; '
        'this host is linux-arm64')


def test_elf_big_endian_and_unknown_machine():
    # Derived from ELF_ARM64: EI_DATA set to big-endian, e_machine stored big-endian.
    big = bytearray(ELF_ARM64)
    big[5] = 2
    big[18:20] = struct.pack('>H', 183)
    info = parse_header(bytes(big))
    assert info['big_endian'] and archs(info) == [None]
    assert 'a big-endian ELF executable for aarch64 (EM_AARCH64, e_machine 183)' in header_problem(info, 'linux-arm64')
    odd = bytearray(ELF_AMD64)
    odd[18:20] = struct.pack('<H', 4711)
    assert 'executable for e_machine 4711, which no supported' in header_problem(parse_header(bytes(odd)), 'linux-amd64')


def test_macho_thin():
    info = parse_header(MACHO_ARM64)
    assert (info['format'], info['os'], archs(info)) == ('Mach-O', 'darwin', ['arm64'])
    assert header_problem(info, 'darwin-arm64') is None
    assert (header_problem(info, 'darwin-amd64')
            == 'a Mach-O executable for darwin-arm64 (arm64); this host is darwin-amd64')
    assert header_problem(parse_header(MACHO_AMD64), 'darwin-amd64') is None
    assert 'this host is linux-amd64' in header_problem(parse_header(MACHO_AMD64), 'linux-amd64')


def test_macho_32_bit_and_big_endian():
    # Constructed: MH_MAGIC (little-endian) with CPU_TYPE_X86, and MH_CIGAM_64 with CPU_TYPE_POWERPC64.
    i386 = parse_header(b'\xce\xfa\xed\xfe' + struct.pack('<II', 7, 3))
    assert i386['bits'] == 32 and archs(i386) == [None]
    assert header_problem(i386, 'darwin-amd64').startswith('a 32-bit Mach-O executable for i386, which no')
    ppc = parse_header(b'\xfe\xed\xfa\xcf' + struct.pack('>II', 0x01000012, 0))
    assert ppc['big_endian'] and ppc['slices'][0]['machine'] == 'ppc64'


def test_universal_matches_either_architecture():
    info = parse_header(MACHO_UNIVERSAL)
    assert info['format'] == 'universal Mach-O' and sorted(archs(info)) == ['amd64', 'arm64']
    assert header_problem(info, 'darwin-arm64') is None
    assert header_problem(info, 'darwin-amd64') is None
    assert header_problem(info, 'linux-amd64') == (
        'a universal Mach-O executable for darwin-amd64 (x86_64), darwin-arm64 (arm64); this host is linux-amd64')


def test_universal_without_the_host_arch_and_arm64e():
    # Derived from MACHO_UNIVERSAL: only its first (x86_64) slice.
    x86_only = MACHO_UNIVERSAL[:4] + struct.pack('>I', 1) + MACHO_UNIVERSAL[8:28]
    assert (header_problem(parse_header(x86_only), 'darwin-arm64')
            == 'a universal Mach-O executable for darwin-amd64 (x86_64); this host is darwin-arm64')
    # Derived: the arm64 slice's subtype set to CPU_SUBTYPE_ARM64E with a capability bit.
    arm64e = bytearray(MACHO_UNIVERSAL)
    arm64e[32:36] = struct.pack('>I', 0x80000002)
    info = parse_header(bytes(arm64e))
    assert [item['machine'] for item in info['slices']] == ['x86_64', 'arm64e']
    assert header_problem(info, 'darwin-arm64') is None


def test_java_class_is_not_a_universal_binary():
    with pytest.raises(BinaryHeaderError, match='Java class file'):
        parse_header(JAVA_CLASS)


@pytest.mark.parametrize('data, message', [
    (b'', 'empty'),
    (ELF_AMD64[:10], 'ELF header is truncated'),
    (ELF_AMD64[:3], 'only 3 bytes'),
    (MACHO_ARM64[:8], 'Mach-O header is truncated'),
    (MACHO_UNIVERSAL[:30], r'truncated \(2 architectures in 30 bytes\)'),
    (MACHO_UNIVERSAL[:4] + b'\0\0\0\0', 'lists 0 architectures'),
    (ELF_AMD64[:4] + b'\x07\x01' + ELF_AMD64[6:], 'damaged'),
    (ZIP, r'neither ELF, Mach-O nor a #! script \(it starts with 50 4b 03 04 14 00 00 00\)'),
    (b'#!\n', 'names no interpreter'),
    (b'#!/bin/sh' + b' ' * 5000, 'longer than'),
])
def test_truncated_or_garbage(data, message):
    with pytest.raises(BinaryHeaderError, match=message):
        parse_header(data[:binary_header.HEADER_SIZE])


def test_script_lines():
    assert parse_header(b'#!/bin/sh\necho hi\n') == {'format': 'script', 'interpreter': '/bin/sh', 'argument': None}
    assert parse_header(b'#! /usr/bin/env\tpython3 -u \n')['argument'] == 'python3 -u'
    # The kernel keeps a carriage return: "/bin/sh\r" is what it looks for.
    assert parse_header(b'#!/bin/sh\r\n')['interpreter'] == '/bin/sh\r'


@pytest.mark.parametrize('argument, program', [
    ('python3', 'python3'),
    ('python3 -u', 'python3'),
    ('-S python3 -u', 'python3'),
    ('LANG=C python3', 'python3'),
    ('-i python3', None),
    ('', None),
    (None, None),
])
def test_env_program(argument, program):
    assert env_program(argument) == program


# --- reading files --------------------------------------------------------------

def test_platform_problem_names_the_file(tmp_path):
    path = write(tmp_path, 'agent-runner-v1.1.0-linux-arm64', ELF_ARM64)
    assert (platform_problem(path, 'linux-amd64', 'agent-runner')
            == 'agent-runner is an ELF executable for linux-arm64 (aarch64); this host is linux-amd64')
    assert platform_problem(path, 'linux-arm64') is None
    assert platform_problem(write(tmp_path, 'x', ZIP), 'linux-amd64').startswith(
        'x is not an executable for linux-amd64: its header is neither')


def test_reads_only_the_header_and_no_symlink(tmp_path):
    path = write(tmp_path, 'big', ELF_AMD64 + b'\0' * 10000)
    assert len(binary_header.read_header(path)) == binary_header.HEADER_SIZE
    os.symlink(path, str(tmp_path / 'link'))
    assert 'link cannot be read' in platform_problem(str(tmp_path / 'link'), 'linux-amd64')
    assert 'cannot be read' in platform_problem(str(tmp_path / 'absent'), 'linux-amd64')


def test_script_on_this_hosts_shell(tmp_path):
    assert platform_problem(write(tmp_path, 'tool', b'#!/bin/sh\nexit 0\n'), HOST) is None
    assert platform_problem(write(tmp_path, 'envtool', b'#!/usr/bin/env sh\nexit 0\n'), HOST) is None


def test_script_interpreter_for_another_cpu(tmp_path):
    interpreter = write(tmp_path, 'python3', ELF_ARM64)
    path = write(tmp_path, 'agent-runner', ('#!%s -u\n' % interpreter).encode())
    assert platform_problem(path, 'linux-amd64') == (
        'agent-runner is a script run by %s: %s is an ELF executable for linux-arm64 (aarch64); '
        'this host is linux-amd64' % (interpreter, interpreter))
    assert platform_problem(path, 'linux-arm64') is None


def test_script_interpreter_missing_or_not_executable(tmp_path):
    path = write(tmp_path, 'tool', b'#!/nonexistent/python3\n')
    assert platform_problem(path, 'linux-amd64') == (
        'tool is a script for /nonexistent/python3, which does not exist or is not executable on this host '
        '(linux-amd64)')
    interpreter = write(tmp_path, 'sh', ELF_AMD64, mode=0o644)
    path = write(tmp_path, 'tool2', ('#!%s\n' % interpreter).encode())
    assert 'does not exist or is not executable' in platform_problem(path, 'linux-amd64')
    assert 'not an absolute path' in platform_problem(write(tmp_path, 'rel', b'#!sh\n'), 'linux-amd64')
    assert 'which does not exist' in platform_problem(write(tmp_path, 'crlf', b'#!/bin/sh\r\n'), HOST)


def test_env_is_resolved_on_the_fixed_path(tmp_path, monkeypatch):
    interpreter = write(tmp_path, 'python3', OTHER_LINUX.get(HOST, ELF_ARMHF))
    monkeypatch.setattr(binary_header, 'ENV_PATH', (str(tmp_path / 'empty'), str(tmp_path)))
    path = write(tmp_path, 'tool', b'#!/usr/bin/env python3\n')
    if not os.access('/usr/bin/env', os.X_OK):
        pytest.skip('this host has no /usr/bin/env')
    problem = platform_problem(path, HOST)
    assert problem.startswith('tool is a script run by %s: %s is a' % (interpreter, interpreter))
    assert problem.endswith('this host is %s' % HOST)
    missing = write(tmp_path, 'tool2', b'#!/usr/bin/env no-such-program-stigmer\n')
    assert 'not found on %s/empty:%s' % (tmp_path, tmp_path) in platform_problem(missing, HOST)
    assert 'cannot tell which program' in platform_problem(write(tmp_path, 'tool3', b'#!/usr/bin/env -i x\n'), HOST)


def test_interpreter_chain_depth_is_bounded(tmp_path):
    previous = '/bin/sh'
    for index in range(binary_header.MAX_INTERPRETER_DEPTH + 1):
        previous = write(tmp_path, 'level%d' % index, ('#!%s\n' % previous).encode())
    assert 'nest more than 4 deep' in platform_problem(previous, HOST)
    # One level less is fine: the chain ends in this host's shell.
    assert platform_problem(str(tmp_path / 'level3'), HOST) is None
