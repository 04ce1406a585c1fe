# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one SHA256 parser: digests, checksum files and hashing of local files."""

import hashlib
import posixpath
import re

_HEX_RE = re.compile(r'^[0-9a-fA-F]+$')
# BSD `shasum --tag` / `sha256 -r`-less output and OpenSSL 1.x/3.x dgst output:
#   SHA256 (name) = hex | SHA256(name)= hex | SHA2-256(name)= hex
_BSD_RE = re.compile(r'^(?P<algo>[A-Za-z0-9-]+) ?\((?P<name>.*)\) ?= ?(?P<hex>\S+)$')
_BSD_ALGOS = ('sha256', 'sha2-256')
_MAX_LISTED = 20
_CHUNK = 1 << 20


class ChecksumError(Exception):
    """A digest or checksum file cannot be trusted to say what a file's SHA256 is."""


def _shorten(text, limit=80):
    text = text if len(text) <= limit else text[:limit - 3] + '...'
    return repr(text)


def normalize_sha256(value):
    """Return a lowercase 64-hex digest from 'HEX' or 'sha256:HEX'."""
    if not isinstance(value, str):
        raise ChecksumError('a sha256 digest must be a string, got %s' % type(value).__name__)
    digest = value.strip()
    if not digest:
        raise ChecksumError('the sha256 digest is empty')
    if ':' in digest:
        algo, digest = digest.split(':', 1)
        if algo.strip().lower() != 'sha256':
            raise ChecksumError('unsupported digest algorithm %r in %s; only sha256 is accepted'
                                % (algo.strip(), _shorten(value.strip())))
        digest = digest.strip()
    if not _HEX_RE.match(digest):
        raise ChecksumError('%s is not a sha256 digest: it contains characters that are not hex digits'
                            % _shorten(value.strip()))
    if len(digest) != 64:
        raise ChecksumError('%s is not a sha256 digest: expected 64 hex digits, got %d'
                            % (_shorten(value.strip()), len(digest)))
    return digest.lower()


def _clean_name(name):
    """Reduce a listed file name to what it names: no '*' mode flag, no './'."""
    name = name.strip()
    if name.startswith('*'):
        name = name[1:]
    while name.startswith('./'):
        name = name[2:]
    return name


def _unescape_gnu(name):
    # sha256sum prefixes a line with '\' when the name holds '\' or a newline.
    return name.replace('\\n', '\n').replace('\\\\', '\\')


def _parse_line(line, lineno, context):
    """Return (name or None, hex) for one checksum line or raise ChecksumError."""
    def bad(problem):
        return ChecksumError('%s: line %d %s: %s' % (context, lineno, problem, _shorten(line)))

    bsd = _BSD_RE.match(line)
    if bsd:
        if bsd.group('algo').lower() not in _BSD_ALGOS:
            raise bad('is a %s checksum, not sha256' % bsd.group('algo'))
        try:
            return _clean_name(bsd.group('name')), normalize_sha256(bsd.group('hex'))
        except ChecksumError as exc:
            raise bad('has a bad digest (%s)' % exc)

    escaped = line.startswith('\\')
    if escaped:
        line = line[1:]
    parts = line.split(None, 1)
    token = parts[0]
    if len(parts) == 1 and ':' in token:
        # A bare digest file may carry the API's 'sha256:HEX' spelling.
        try:
            return None, normalize_sha256(token)
        except ChecksumError as exc:
            raise bad('has a bad digest (%s)' % exc)
    if not _HEX_RE.match(token):
        raise bad('is not a checksum line')
    if len(token) != 64:
        raise bad('has a %d-digit hash where sha256 has 64' % len(token))
    if len(parts) == 1:
        return None, token.lower()
    name = _clean_name(parts[1])
    if escaped:
        name = _unescape_gnu(name)
    if not name:
        raise bad('has a hash but no file name')
    return name, token.lower()


def _same_file(listed, wanted):
    return listed == wanted or posixpath.basename(listed) == posixpath.basename(wanted)


def parse_checksum_file(text, filename):
    """Return the lowercase sha256 a checksum file gives for filename.

    Accepts a bare digest, GNU `hex  name` / `hex *name` / `hex  ./name`,
    BSD `SHA256 (name) = hex` and multi-file lists such as checksums.txt.
    """
    context = 'checksum file for %s' % filename
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    if text is None:
        text = ''
    text = text.lstrip('\ufeff')

    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        entries.append(_parse_line(line, lineno, context))

    if not entries:
        raise ChecksumError('%s is empty: it holds no sha256 digest' % context)

    bare = [digest for name, digest in entries if name is None]
    if bare:
        if len(entries) > 1:
            raise ChecksumError('%s holds %d hashes without file names; cannot tell which one is for %s'
                                % (context, len(entries), filename))
        return bare[0]

    found = sorted(set(digest for name, digest in entries if _same_file(name, filename)))
    if len(found) > 1:
        raise ChecksumError('%s lists %d different hashes for %s: %s'
                            % (context, len(found), filename, ', '.join(found)))
    if not found:
        names = sorted(set(name for name, dummy in entries))
        listed = ', '.join(names[:_MAX_LISTED])
        if len(names) > _MAX_LISTED:
            listed += ', ... (%d more)' % (len(names) - _MAX_LISTED)
        raise ChecksumError('%s does not list %s; it lists %s' % (context, filename, listed))
    return found[0]


def sha256_stream(fileobj, chunk_size=_CHUNK, sink=None):
    """Hash a binary file object from its current position to its end.

    sink, when given, receives every chunk as it is hashed: a copy made that
    way holds exactly the bytes the digest is of.
    """
    digest = hashlib.sha256()
    while True:
        chunk = fileobj.read(chunk_size)
        if not chunk:
            break
        digest.update(chunk)
        if sink is not None:
            sink(chunk)
    return digest.hexdigest()


def sha256_file(path, chunk_size=_CHUNK):
    """Hash a file in chunks so 60 MB executables never sit in memory."""
    with open(path, 'rb') as handle:
        return sha256_stream(handle, chunk_size)
