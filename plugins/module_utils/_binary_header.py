# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a file is built to run on, read from its first bytes; nothing is ever executed.

The agent-runner ignores its arguments (``--version`` starts a worker) and older
CLIs have no version flag, so running a binary tells nothing reliable. Its
header does: ELF (Linux), thin or universal Mach-O (macOS), or a ``#!`` script
whose interpreter must itself be able to run here.

parse_header() and header_problem() are pure; platform_problem() reads files.
Standard library only: this runs on managed hosts.
"""

import os
import stat
import struct

from ansible_collections.stigmer.runtime.plugins.module_utils._platform import normalize_arch

HEADER_SIZE = 4096
# Linux follows at most 4 nested #! interpreters (BINPRM_MAX_RECURSION).
MAX_INTERPRETER_DEPTH = 4
# Where `#!/usr/bin/env NAME` is looked up: the PATH services and checks run with,
# not whatever the connecting user's shell had.
ENV_PATH = ('/usr/local/bin', '/usr/bin', '/bin')

_ELF_MAGIC = b'\x7fELF'
# e_machine -> (uname -m spelling, so platform.normalize_arch maps it; constant name).
_ELF_MACHINES = {
    2: ('sparc', 'EM_SPARC'),
    3: ('i386', 'EM_386'),
    8: ('mips', 'EM_MIPS'),
    20: ('ppc', 'EM_PPC'),
    21: ('ppc64', 'EM_PPC64'),
    22: ('s390', 'EM_S390'),
    40: ('arm', 'EM_ARM'),
    43: ('sparc64', 'EM_SPARCV9'),
    62: ('x86_64', 'EM_X86_64'),
    183: ('aarch64', 'EM_AARCH64'),
    243: ('riscv', 'EM_RISCV'),
    258: ('loongarch', 'EM_LOONGARCH'),
}

# Thin Mach-O magics as they appear on disk -> (pointer bits, big-endian).
_MACHO_MAGICS = {
    b'\xcf\xfa\xed\xfe': (64, False),   # MH_MAGIC_64
    b'\xfe\xed\xfa\xcf': (64, True),    # MH_CIGAM_64
    b'\xce\xfa\xed\xfe': (32, False),   # MH_MAGIC
    b'\xfe\xed\xfa\xce': (32, True),    # MH_CIGAM
}
# Universal headers are always big-endian on disk -> size of one fat_arch entry.
_FAT_MAGICS = {
    b'\xca\xfe\xba\xbe': 20,            # FAT_MAGIC, fat_arch
    b'\xca\xfe\xba\xbf': 32,            # FAT_MAGIC_64, fat_arch_64
}
# FAT_MAGIC is also a Java class file's magic; there the next word is
# minor/major version (major >= 45), so a real nfat_arch is far smaller (file(1) uses 30).
MAX_FAT_ARCHES = 30
_MACHO_CPUS = {
    7: 'i386',
    0x01000007: 'x86_64',
    12: 'arm',
    0x0100000c: 'arm64',
    0x0200000c: 'arm64_32',
    18: 'ppc',
    0x01000012: 'ppc64',
}
_CPU_SUBTYPE_MASK = 0x00ffffff      # the high byte carries capability bits
_CPU_SUBTYPE_ARM64E = 2


class BinaryHeaderError(Exception):
    """The bytes are not a header this module can read; the message says what they are instead."""


# ---------------------------------------------------------------------------
# Pure parsing
# ---------------------------------------------------------------------------

def _slice(machine, label, bits, big_endian):
    """One architecture a binary carries: its name, a label for messages, the release arch or None."""
    # Only 64-bit little-endian builds exist for any supported platform.
    arch = normalize_arch(machine) if bits == 64 and not big_endian else None
    return {'machine': machine, 'label': label, 'arch': arch}


def _parse_elf(data):
    if len(data) < 20:
        raise BinaryHeaderError('its ELF header is truncated (%d bytes)' % len(data))
    ei_class, ei_data = data[4], data[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise BinaryHeaderError('its ELF header is damaged (EI_CLASS %d, EI_DATA %d)' % (ei_class, ei_data))
    bits = 32 if ei_class == 1 else 64
    big_endian = ei_data == 2
    e_machine = struct.unpack_from('>H' if big_endian else '<H', data, 18)[0]
    machine, constant = _ELF_MACHINES.get(e_machine, (None, None))
    if machine:
        label = '%s (%s, e_machine %d)' % (machine, constant, e_machine)
    else:
        label = 'e_machine %d' % e_machine
    return {'format': 'ELF', 'os': 'linux', 'bits': bits, 'big_endian': big_endian,
            'slices': [_slice(machine, label, bits, big_endian)]}


def _macho_machine(cputype, cpusubtype):
    machine = _MACHO_CPUS.get(cputype)
    if machine == 'arm64' and cpusubtype & _CPU_SUBTYPE_MASK == _CPU_SUBTYPE_ARM64E:
        machine = 'arm64e'
    return machine, machine or 'cputype 0x%x' % cputype


def _parse_macho(data, bits, big_endian):
    if len(data) < 12:
        raise BinaryHeaderError('its Mach-O header is truncated (%d bytes)' % len(data))
    cputype, cpusubtype = struct.unpack_from('>II' if big_endian else '<II', data, 4)
    machine, label = _macho_machine(cputype, cpusubtype)
    return {'format': 'Mach-O', 'os': 'darwin', 'bits': bits, 'big_endian': big_endian,
            'slices': [_slice(machine, label, bits, big_endian)]}


def _parse_fat(data, entry_size):
    if len(data) < 8:
        raise BinaryHeaderError('its universal Mach-O header is truncated (%d bytes)' % len(data))
    count = struct.unpack_from('>I', data, 4)[0]
    if count > MAX_FAT_ARCHES and entry_size == 20:
        raise BinaryHeaderError('it is a Java class file')
    if not 0 < count <= MAX_FAT_ARCHES:
        raise BinaryHeaderError('its universal Mach-O header lists %d architectures' % count)
    if len(data) < 8 + count * entry_size:
        raise BinaryHeaderError('its universal Mach-O header is truncated (%d architectures in %d bytes)'
                                % (count, len(data)))
    slices = []
    for index in range(count):
        cputype, cpusubtype = struct.unpack_from('>II', data, 8 + index * entry_size)
        machine, label = _macho_machine(cputype, cpusubtype)
        # A slice's CPU type says its pointer size (CPU_ARCH_ABI64); thin headers say it again.
        bits = 64 if cputype & 0x01000000 else 32
        slices.append(_slice(machine, label, bits, False))
    return {'format': 'universal Mach-O', 'os': 'darwin', 'bits': None, 'big_endian': False,
            'slices': slices}


def _parse_script(data):
    line, newline, dummy = data[2:].partition(b'\n')
    if not newline and len(data) >= HEADER_SIZE:
        raise BinaryHeaderError('its #! line is longer than %d bytes' % HEADER_SIZE)
    # The kernel splits at the first blank and passes the rest as one argument;
    # it strips blanks but not a carriage return ("/bin/sh\r" is not found).
    text = line.decode('utf-8', 'surrogateescape').strip(' \t')
    interpreter, dummy, argument = text.replace('\t', ' ').partition(' ')
    if not interpreter:
        raise BinaryHeaderError('its #! line names no interpreter')
    return {'format': 'script', 'interpreter': interpreter, 'argument': argument.strip(' ') or None}


def parse_header(data):
    """Tell what the first bytes of a file are built for; raise BinaryHeaderError if not an executable.

    Returns a dict with format ('ELF', 'Mach-O', 'universal Mach-O' or
    'script'). Binaries add os, bits, big_endian and slices (one per
    architecture: machine, label, arch, the release arch or None); scripts add
    interpreter and argument (None without one).
    """
    data = bytes(data)
    if not data:
        raise BinaryHeaderError('it is empty')
    if data[:2] == b'#!':
        return _parse_script(data)
    if data[:4] == _ELF_MAGIC:
        return _parse_elf(data)
    if data[:4] in _MACHO_MAGICS:
        bits, big_endian = _MACHO_MAGICS[data[:4]]
        return _parse_macho(data, bits, big_endian)
    if data[:4] in _FAT_MAGICS:
        return _parse_fat(data, _FAT_MAGICS[data[:4]])
    if len(data) < 4:
        raise BinaryHeaderError('it is only %d bytes long' % len(data))
    raise BinaryHeaderError('its header is neither ELF, Mach-O nor a #! script (it starts with %s)'
                            % data[:8].hex(' '))


def describe(info):
    """'an ELF executable for linux-arm64 (aarch64)' and the like, for a parsed binary."""
    labels = []
    for item in info['slices']:
        if item['arch']:
            labels.append('%s-%s (%s)' % (info['os'], item['arch'], item['machine']))
        else:
            labels.append(item['label'])
    qualifiers = []
    if info['bits'] == 32:
        qualifiers.append('32-bit')
    if info['big_endian']:
        qualifiers.append('big-endian')
    words = ' '.join(qualifiers + [info['format']])
    article = 'an' if words[0] in 'AEIOU' else 'a'
    text = '%s %s executable for %s' % (article, words, ', '.join(labels))
    if not any(item['arch'] for item in info['slices']):
        text += ', which no supported platform runs'
    return text


def header_problem(info, host):
    """Why a parsed binary cannot run on host ('linux-amd64' ...), or None when it can.

    A universal binary can when one of its slices is the host's architecture.
    """
    host_os, dummy, host_arch = host.partition('-')
    if info['os'] == host_os and any(item['arch'] == host_arch for item in info['slices']):
        return None
    return '%s; this host is %s' % (describe(info), host)


def env_program(argument):
    """The program `#!/usr/bin/env ARGUMENT` runs, or None when that cannot be told.

    Skips VAR=value assignments and understands -S (split the rest); any
    other env option is refused rather than guessed at.
    """
    words = (argument or '').split()
    if words[:1] == ['-S']:
        words = words[1:]
    while words and '=' in words[0] and not words[0].startswith('-'):
        words = words[1:]
    if not words or words[0].startswith('-'):
        return None
    return words[0]


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------

def read_header(path, follow_symlinks=True):
    """The first HEADER_SIZE bytes of a regular file; OSError otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError('not a regular file')
        data = b''
        while len(data) < HEADER_SIZE:
            chunk = os.read(fd, HEADER_SIZE - len(data))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)


def find_on_path(program, path):
    for directory in path:
        candidate = os.path.join(directory, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _script_problem(info, host, name, depth):
    interpreter = info['interpreter']
    if depth >= MAX_INTERPRETER_DEPTH:
        return '%s is a script whose interpreters nest more than %d deep' % (name, MAX_INTERPRETER_DEPTH)
    if not interpreter.startswith('/'):
        return '%s is a script for %s, which is not an absolute path' % (name, interpreter)
    programs = [interpreter]
    if os.path.basename(interpreter) == 'env':
        program = env_program(info['argument'])
        if program is None:
            return '%s is a script run by %s %s; cannot tell which program that runs' % (
                name, interpreter, info['argument'] or '')
        if '/' in program:
            resolved = program if program.startswith('/') else None
        else:
            resolved = find_on_path(program, ENV_PATH)
        if resolved is None:
            return '%s is a script for %s, which is not found on %s on this host (%s)' % (
                name, program, ':'.join(ENV_PATH), host)
        programs.append(resolved)
    for program in programs:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            return '%s is a script for %s, which does not exist or is not executable on this host (%s)' % (
                name, program, host)
        problem = _problem(program, host, program, depth + 1)
        if problem:
            return '%s is a script run by %s: %s' % (name, program, problem)
    return None


def _problem(path, host, name, depth):
    try:
        # The file itself is opened without following a symlink; a system
        # interpreter such as /usr/bin/python3 is commonly one and is followed.
        data = read_header(path, follow_symlinks=depth > 0)
    except OSError as exc:
        return '%s cannot be read: %s' % (name, exc.strerror or exc)
    try:
        info = parse_header(data)
    except BinaryHeaderError as exc:
        return '%s is not an executable for %s: %s' % (name, host, exc)
    if info['format'] == 'script':
        return _script_problem(info, host, name, depth)
    problem = header_problem(info, host)
    return '%s is %s' % (name, problem) if problem else None


def platform_problem(path, host, name=None):
    """Why the file at path cannot run on host, as a message naming it; None when it can.

    host is a release platform such as 'linux-amd64'. Reads headers only:
    the file's, and for a script its interpreter's (and env's program).
    """
    return _problem(path, host, name or os.path.basename(path), 0)
