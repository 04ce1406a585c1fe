# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import io

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils._checksum import (
    ChecksumError,
    normalize_sha256,
    parse_checksum_file,
    sha256_file,
    sha256_stream,
)

NAME = 'stigmer-v1.0.0-linux-amd64.tar.gz'
HEX = hashlib.sha256(b'stigmer').hexdigest()
OTHER = hashlib.sha256(b'other').hexdigest()


@pytest.mark.parametrize('value', [
    HEX, HEX.upper(), 'sha256:' + HEX, 'SHA256:' + HEX.upper(), '  %s\n' % HEX, 'sha256: %s ' % HEX,
])
def test_normalize_sha256_accepts(value):
    assert normalize_sha256(value) == HEX


@pytest.mark.parametrize('value, fragment', [
    ('', 'empty'),
    ('   ', 'empty'),
    (HEX[:40], '64 hex digits, got 40'),
    (HEX + 'ab', '64 hex digits, got 66'),
    ('g' * 64, 'not hex'),
    ('md5:' + HEX, "algorithm 'md5'"),
    ('sha512:' + HEX, "algorithm 'sha512'"),
    ('%s  %s' % (HEX, NAME), 'not hex'),
])
def test_normalize_sha256_rejects(value, fragment):
    with pytest.raises(ChecksumError) as info:
        normalize_sha256(value)
    assert fragment in str(info.value)


def test_normalize_sha256_rejects_non_strings():
    with pytest.raises(ChecksumError):
        normalize_sha256(None)
    with pytest.raises(ChecksumError):
        normalize_sha256(123)


@pytest.mark.parametrize('text', [
    HEX,
    HEX + '\n',
    HEX.upper() + '\r\n',
    '\n\n  %s  \n\n' % HEX,
    'sha256:%s\n' % HEX,
    '%s  %s\n' % (HEX, NAME),                       # sha256sum / shasum -a 256
    '%s %s\n' % (HEX, NAME),                        # one space
    '%s *%s\n' % (HEX, NAME),                       # binary mode
    '%s  ./%s\n' % (HEX, NAME),                     # run from the directory
    '%s\t%s\n' % (HEX, NAME),
    '%s  dist/%s\n' % (HEX, NAME),                  # path: basename matches
    'SHA256 (%s) = %s\n' % (NAME, HEX),             # BSD / shasum --tag
    'SHA256(%s)= %s\n' % (NAME, HEX),               # openssl 1.x
    'SHA2-256(%s)= %s\n' % (NAME, HEX),             # openssl 3
    'SHA256 (./%s) = %s\n' % (NAME, HEX),
    '%s  %s\r\n' % (HEX, NAME),                     # CRLF
    '\ufeff%s  %s\n' % (HEX, NAME),                 # BOM from a Windows editor
])
def test_single_file_formats(text):
    assert parse_checksum_file(text, NAME) == HEX


def test_bytes_input():
    assert parse_checksum_file(('%s  %s\n' % (HEX, NAME)).encode(), NAME) == HEX


def test_checksums_txt_picks_the_right_line():
    text = '\n'.join([
        '# goreleaser checksums',
        '%s  temporal_cli_1.5.1_darwin_amd64.tar.gz' % OTHER,
        '',
        '%s  temporal_cli_1.5.1_linux_amd64.tar.gz' % HEX,
        '%s  temporal_cli_1.5.1_linux_arm64.tar.gz' % hashlib.sha256(b'x').hexdigest(),
        '',
    ])
    assert parse_checksum_file(text, 'temporal_cli_1.5.1_linux_amd64.tar.gz') == HEX
    assert parse_checksum_file(text, 'temporal_cli_1.5.1_darwin_amd64.tar.gz') == OTHER


def test_filename_given_as_path_matches_basename():
    text = '%s  %s\n%s  other\n' % (HEX, NAME, OTHER)
    assert parse_checksum_file(text, '/var/cache/stigmer/' + NAME) == HEX


def test_same_hash_listed_twice_is_fine():
    text = '%s  %s\n%s *./%s\n' % (HEX, NAME, HEX.upper(), NAME)
    assert parse_checksum_file(text, NAME) == HEX


def test_gnu_escaped_name():
    text = '\\%s  dir\\\\%s\n' % (HEX, NAME)
    assert parse_checksum_file(text, 'dir\\' + NAME) == HEX


def _error(text, filename=NAME):
    with pytest.raises(ChecksumError) as info:
        parse_checksum_file(text, filename)
    message = str(info.value)
    assert filename in message
    return message


def test_filename_not_listed_names_what_is():
    message = _error('%s  a.tar.gz\n%s  b.tar.gz\n' % (HEX, OTHER))
    assert 'does not list' in message
    assert 'a.tar.gz, b.tar.gz' in message


def test_two_different_hashes_for_one_name():
    message = _error('%s  %s\n%s  ./%s\n' % (HEX, NAME, OTHER, NAME))
    assert 'different' in message
    assert HEX in message and OTHER in message


@pytest.mark.parametrize('text, fragment', [
    ('', 'empty'),
    ('\n\n# only a comment\n', 'empty'),
    ('<html><body>Not Found</body></html>\n', 'line 1'),
    ('Not Found', 'line 1'),
    ('%s  %s\n' % (HEX[:63], NAME), '63-digit'),
    ('%s  %s\n' % (HEX + '0', NAME), '65-digit'),
    ('%s  %s\n' % ('z' + HEX[1:], NAME), 'not a checksum line'),
    ('%s  %s\n' % (hashlib.sha512(b'x').hexdigest(), NAME), '128-digit'),
    ('%s  other\ngarbage here\n' % HEX, 'line 2'),
    ('MD5 (%s) = %s\n' % (NAME, 'a' * 32), 'MD5'),
    ('SHA256 (%s) = %s\n' % (NAME, HEX[:10]), 'bad digest'),
    ('%s\n%s\n' % (HEX, OTHER), '2 hashes without file names'),
    ('%s\n%s  %s\n' % (HEX, OTHER, NAME), 'without file names'),
    ('sha512:%s\n' % HEX, 'sha512'),
])
def test_malformed_files(text, fragment):
    assert fragment in _error(text)


def test_sha256_file_and_stream(tmp_path):
    data = b'\x7fELF' + b'\x00' * 3000000 + b'end'
    path = tmp_path / 'agent-runner'
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == expected
    assert sha256_file(str(path), chunk_size=7) == expected
    assert sha256_stream(io.BytesIO(data)) == expected
    assert sha256_file(str(tmp_path / 'agent-runner')) == normalize_sha256('sha256:' + expected)


def test_sha256_stream_hands_what_it_hashes_to_a_sink():
    data = bytes(range(256)) * 41
    copied = []
    assert sha256_stream(io.BytesIO(data), chunk_size=100, sink=copied.append) == hashlib.sha256(data).hexdigest()
    assert b''.join(copied) == data and len(copied) == 105


def test_sha256_of_empty_file(tmp_path):
    path = tmp_path / 'empty'
    path.write_bytes(b'')
    assert sha256_file(str(path)) == hashlib.sha256(b'').hexdigest()
