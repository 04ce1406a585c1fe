# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import random

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils._version import (
    SEMVER_RE,
    VersionError,
    extract_version,
    is_prerelease,
    normalize_tag,
    parse_semver,
    tag_to_version,
)


@pytest.mark.parametrize('text', [
    '0.0.0', '1.2.3', '10.20.30', '1.2.0-rc.1', '1.0.0-alpha', '1.0.0-alpha.beta.1', '1.0.0-0.3.7',
    '1.0.0-x-y-z.--', '1.0.0+20130313144700', '1.0.0-beta+exp.sha.5114f85', '1.0.0+21AF26D3----117B344092BD',
])
def test_semver_re_accepts(text):
    assert SEMVER_RE.match(text)


@pytest.mark.parametrize('text', [
    '1', '1.2', '1.2.3.4', '01.2.3', '1.02.3', '1.2.03', 'v1.2.3', '1.2.3-', '1.2.3+', '1.2.3-rc..1',
    '1.2.3 ', '1.2.3\n', 'a.b.c', '',
])
def test_semver_re_rejects(text):
    assert not SEMVER_RE.match(text)


@pytest.mark.parametrize('value, tag', [
    ('1.2.3', 'v1.2.3'), ('v1.2.3', 'v1.2.3'), ('V1.2.3', 'v1.2.3'), (' v1.2.3\n', 'v1.2.3'),
    ('v1.2.0-rc.1', 'v1.2.0-rc.1'), ('1.2.0-rc.1', 'v1.2.0-rc.1'), ('1.0.0+build.5', 'v1.0.0+build.5'),
])
def test_normalize_tag(value, tag):
    assert normalize_tag(value) == tag


@pytest.mark.parametrize('value, fragment', [
    ('latest', "'latest' is not a release tag"),
    ('LATEST', 'resolve it'),
    ('1.2', 'not a semantic version'),
    ('abc', 'not a semantic version'),
    ('vv1.2.3', 'not a semantic version'),
    ('1.2.3.4', 'not a semantic version'),
    ('', 'empty'),
    ('  ', 'empty'),
    (None, 'empty'),
    (1.2, 'quote it'),
])
def test_normalize_tag_rejects_with_help(value, fragment):
    with pytest.raises(VersionError) as info:
        normalize_tag(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize('value', ['1.2', 'abc', 'vv1.2.3', '', None])
def test_normalize_tag_error_shows_a_good_value(value):
    with pytest.raises(VersionError) as info:
        normalize_tag(value)
    assert 'v1.2.3' in str(info.value)


@pytest.mark.parametrize('tag, version', [
    ('v1.2.3', '1.2.3'), ('1.5.1', '1.5.1'), ('v1.2.0-rc.1', '1.2.0-rc.1'),
])
def test_tag_to_version(tag, version):
    assert tag_to_version(tag) == version


def test_tag_to_version_rejects_garbage():
    with pytest.raises(VersionError):
        tag_to_version('latest')


def test_semver_precedence_from_the_spec():
    # The chain from semver.org section 11, plus numeric comparisons.
    ordered = [
        '0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2',
        '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0-rc.1', '1.2.0-rc.2', '1.2.0-rc.10',
        '1.2.0', '1.9.0', '1.10.0', '2.0.0',
    ]
    shuffled = list(ordered)
    random.Random(4).shuffle(shuffled)
    assert sorted(shuffled, key=parse_semver) == ordered


def test_numeric_identifiers_sort_before_alphanumeric():
    assert parse_semver('1.0.0-1') < parse_semver('1.0.0-alpha')
    assert parse_semver('1.0.0-2') < parse_semver('1.0.0-10')


def test_v_prefix_and_build_metadata_do_not_change_precedence():
    assert parse_semver('v1.2.3') == parse_semver('1.2.3') == parse_semver('1.2.3+build.9')
    assert isinstance(parse_semver('1.2.3'), tuple)


def test_max_by_semver_not_by_string():
    tags = ['v1.9.0', 'v1.10.0', 'v1.10.0-rc.1', 'v1.2.0']
    assert max(tags, key=parse_semver) == 'v1.10.0'


def test_parse_semver_rejects_garbage():
    with pytest.raises(VersionError):
        parse_semver('1.2')


@pytest.mark.parametrize('tag, expected', [
    ('v1.2.3', False), ('1.2.3', False), ('v1.2.0-rc.1', True), ('v1.0.0-alpha', True), ('v1.0.0+build', False),
])
def test_is_prerelease(tag, expected):
    assert is_prerelease(tag) is expected


@pytest.mark.parametrize('output, version', [
    ('v1.1.0', '1.1.0'),
    ('1.1.0\n', '1.1.0'),
    ('stigmer version v1.0.0 (commit 3f2a9c1, built 2026-01-15)', '1.0.0'),
    ('temporal version 1.5.1 (Server 1.29.1, UI 2.41.0)', '1.5.1'),
    ('agent-runner v1.2.0-rc.1', '1.2.0-rc.1'),
    ('agent-runner v1.2.0-rc.1\n', '1.2.0-rc.1'),
    ('Stigmer CLI\nVersion: V2.0.0\nGo: go1.22.5', '2.0.0'),
    ('built with go1.22.5, stigmer 1.3.0', '1.3.0'),
    ('version=1.4.0+abc.1; ok', '1.4.0+abc.1'),
    ('(v1.0.0)', '1.0.0'),
    (b'stigmer v1.0.0\n', '1.0.0'),
])
def test_extract_version(output, version):
    assert extract_version(output) == version


@pytest.mark.parametrize('output', [
    '', None, 'stigmer: command not found', 'unknown command "version" for "stigmer"',
    'built 2026-01-15', '10.0.0.1 is the address', 'go1.22.5', 'version 1.2',
])
def test_extract_version_finds_nothing(output):
    assert extract_version(output) is None
