# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release tags and semantic versions: spelling, precedence, and reading them from CLI output."""

import re

_CORE = r'(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)'
_IDENTS = r'[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*'
_BODY = _CORE + r'(?:-(?P<prerelease>' + _IDENTS + r'))?(?:\+(?P<build>' + _IDENTS + r'))?'

SEMVER_RE = re.compile(r'^' + _BODY + r'\Z')

# Inside free text a version must stand alone: not glued to a word
# ("go1.22.5") and not part of a longer dotted number ("1.2.3.4").
_SEARCH_RE = re.compile(r'(?<![0-9A-Za-z.])[vV]?(?P<version>' + _BODY + r')(?![0-9A-Za-z]|\.\d)')

_HINT = 'expected MAJOR.MINOR.PATCH such as v1.2.3, 1.2.3 or v1.2.0-rc.1'


class VersionError(Exception):
    """A value is not a release tag or semantic version."""


def _match(value):
    """Return the SEMVER_RE match for a tag or version, or raise VersionError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise VersionError('the version is empty; %s' % _HINT)
    if not isinstance(value, str):
        raise VersionError('the version must be a string, got %s %r; quote it in YAML'
                           % (type(value).__name__, value))
    text = value.strip()
    if text.lower() == 'latest':
        raise VersionError("'latest' is not a release tag; resolve it to a tag such as v1.2.3 first")
    body = text[1:] if text[:1] in ('v', 'V') else text
    match = SEMVER_RE.match(body)
    if not match:
        raise VersionError('%r is not a semantic version; %s' % (value, _HINT))
    return match


def normalize_tag(value):
    """Spell a version the way upstream tags are spelled: 'v1.2.3'."""
    return 'v' + _match(value).group(0)


def tag_to_version(tag):
    """'v1.2.3' -> '1.2.3' (Temporal's asset names and CLI output use no 'v')."""
    return _match(tag).group(0)


def _identifier_key(identifier):
    # SemVer 11.4: numeric identifiers compare numerically and sort
    # before alphanumeric ones, which compare in ASCII order.
    if identifier.isdigit():
        return (0, int(identifier), '')
    return (1, 0, identifier)


def parse_semver(text):
    """Return a tuple whose ordering is SemVer precedence (build metadata ignored)."""
    match = _match(text)
    core = (int(match.group('major')), int(match.group('minor')), int(match.group('patch')))
    prerelease = match.group('prerelease')
    if prerelease is None:
        # A release outranks every pre-release of the same core version.
        return core + ((1, ()),)
    return core + ((0, tuple(_identifier_key(part) for part in prerelease.split('.'))),)


def is_prerelease(tag):
    """True when the tag carries a pre-release suffix such as -rc.1."""
    return _match(tag).group('prerelease') is not None


def extract_version(output):
    """Return the first semantic version found in CLI output (without 'v'), or None."""
    if output is None:
        return None
    if isinstance(output, bytes):
        output = output.decode('utf-8', 'replace')
    match = _SEARCH_RE.search(output)
    return match.group('version') if match else None
