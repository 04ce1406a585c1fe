# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Build, and keep current, a directory that the role can use as a mirror.

The layout is what the role's mirror mode reads (release.resolve_release with
mirror_url, then plan_artifacts and ensure_artifact):

    {dest}/latest                    first line: the newest tag here
    {dest}/{tag}/{asset}             every artifact of every platform mirrored
    {dest}/{tag}/{checksum file}     as published: {asset}.sha256, or checksums.txt (Temporal)
    {dest}/manifest.json             what is here, with sha256 and size (no timestamps)

Releases are resolved with release.py and downloaded and verified with
artifact.py exactly as the role does it from GitHub; the checksum files are
kept byte for byte as published, since the role verifies the mirror's copies
against them. A file already here is rehashed on every run and fetched again
only when it no longer matches what the release publishes.

Standard library and ansible.module_utils only: this runs where the module runs.
"""

import errno
import hashlib
import json
import os
import random
import time

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import (
    DEFAULT_API_URL,
    ArtifactError,
    artifact_lock,
    ensure_artifact,
    fetch_checksum_file,
    hash_if_present,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._assets import asset_names
from ansible_collections.stigmer.runtime.plugins.module_utils._host import atomic_write
from ansible_collections.stigmer.runtime.plugins.module_utils._install import (
    InstallError,
    is_temp_name,
    validate_basename,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils._release import (
    DEFAULT_COMPONENTS,
    newest_first,
    plan_artifacts,
    resolve_release,
    split_repo,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError, parse_semver

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 1
LATEST = 'latest'
LOCK_DIR = '.locks'
FILE_MODE = 0o644
DIR_MODE = 0o755
DEFAULT_PLATFORMS = ('linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64')
# The lists of file rows a release entry of manifest.json holds.
FILE_LISTS = ('assets', 'checksum_files')


class MirrorError(Exception):
    """The mirror cannot be brought up to date; the message says why and what to change."""


# ---------------------------------------------------------------- pure helpers


def relpath(tag, name):
    """A file's path inside the mirror, as manifest.json and the results name it."""
    return '%s/%s' % (tag, name)


def is_plain_name(name):
    """Whether ``name`` is one path segment: manifest.json's tags and file names are joined onto
    dest, where '..', '/' or an empty name would reach outside it or mean another file, and a
    backslash is a separator to Windows and to some web servers serving the mirror."""
    try:
        validate_basename(name, 'name')
    except InstallError:
        return False
    return '\\' not in name


def is_release_tag(tag):
    """Whether ``tag`` names a release directory here: a plain name the mirror can order by version."""
    try:
        parse_semver(tag)
    except VersionError:
        return False
    return is_plain_name(tag) and tag == tag.strip()


def semver_order(tags):
    """Tags newest first by semantic version (their spelling breaks ties, so the order is stable)."""
    return sorted(sorted(tags), key=parse_semver, reverse=True)


def mirror_latest(releases, include_prereleases=False):
    """The tag {dest}/latest names: the newest by semantic version.

    ``releases`` is manifest.json's {tag: {'prerelease': bool, ...}}.
    Pre-releases count with ``include_prereleases``, or when nothing else is there.
    """
    listed = [{'tag_name': tag, 'prerelease': bool(entry.get('prerelease'))} for tag, entry in sorted(releases.items())]
    candidates = newest_first(listed, include_prereleases) or newest_first(listed, True)
    return candidates[0]['tag_name'] if candidates else None


def latest_text(tag):
    return '%s\n' % tag


def manifest_text(repo, latest, releases):
    """manifest.json: sorted and free of timestamps, so an unchanged mirror rewrites nothing."""
    document = {
        'format': MANIFEST_FORMAT,
        'repo': repo,
        'latest': latest,
        'releases': dict((tag, {
            'prerelease': bool(entry.get('prerelease')),
            'assets': sorted(entry.get('assets') or [], key=lambda item: item['name']),
            'checksum_files': sorted(entry.get('checksum_files') or [], key=lambda item: item['name']),
        }) for tag, entry in releases.items()),
    }
    return json.dumps(document, indent=2, sort_keys=True) + '\n'


def parse_manifest(text, repo, path):
    """{tag: entry} from manifest.json's text; MirrorError when it is not a manifest of ``repo``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise MirrorError('%s is not a mirror manifest (%s); move it away, or choose another dest' % (path, exc))
    if not isinstance(document, dict) or document.get('format') != MANIFEST_FORMAT \
            or not isinstance(document.get('releases'), dict):
        raise MirrorError('%s is not a mirror manifest of format %d; move it away, or choose another dest'
                          % (path, MANIFEST_FORMAT))
    if str(document.get('repo', '')).lower() != repo.lower():
        # One directory is the mirror of one repository: stigmer_mirror_url and
        # stigmer_temporal_mirror_url each point at their own.
        raise MirrorError('%s holds a mirror of %s, not of %s; give each repository a dest of its own'
                          % (os.path.dirname(path), document.get('repo'), repo))
    releases = {}
    for tag, entry in document['releases'].items():
        check_release_entry(path, tag, entry)
        releases[tag] = entry
    return releases


def check_release_entry(path, tag, entry):
    """MirrorError unless manifest.json's entry for ``tag`` names only files directly in {dest}/{tag}.

    Such a row is refused, not dropped: this module never writes one, so the manifest was edited or
    tampered with, and rewriting it quietly would hide that from whoever trusts the sha256 it lists.
    """
    fix = 'this module never writes that: remove it from %s, or move %s away to have it rebuilt' % (path, path)
    if not is_release_tag(tag):
        raise MirrorError('%s lists release %r, which is not a release tag such as v1.2.3 naming a directory '
                          'inside %s; %s' % (path, tag, os.path.dirname(path), fix))
    if not isinstance(entry, dict) or not all(isinstance(entry.get(key) or [], list) for key in FILE_LISTS):
        raise MirrorError('%s lists release %r without its files; move it away, or choose another dest'
                          % (path, tag))
    for key in FILE_LISTS:
        for row in entry.get(key) or []:
            if isinstance(row, dict) and not is_plain_name(row.get('name')):
                raise MirrorError('%s lists %r among the %s of %s, which is not a plain file name (no /, \\, .. '
                                  'or empty name) inside %s; %s'
                                  % (path, row.get('name'), key, tag, os.path.join(os.path.dirname(path), tag), fix))


def missing_platforms_warning(repo, tag, offered, missing, newest):
    """Warning for a pinned release that lacks some of the platforms asked for."""
    hints = []
    for platform in missing:
        hints.append('%s: %s' % (platform, newest.get(platform) or 'none'))
    return ('%s of %s has no build for %s, so only %s was mirrored. Newest release with a build, per platform: %s'
            % (tag, repo, ', '.join(missing), ', '.join(offered), '; '.join(hints)))


def unpublished_checksum_warning(repo, tag, checksum_name, artifacts):
    """Warning for a release that publishes no checksum file the role would fetch from the mirror."""
    return ('%s of %s publishes no %s, which hosts installing from this mirror fetch; they fail unless '
            'stigmer_checksums pins %s (sha256 in manifest.json)' % (tag, repo, checksum_name, ', '.join(artifacts)))


def replaced_warning(path, found, published, check_mode):
    verb = 'would replace' if check_mode else 'replaced'
    return '%s %s: its sha256 %s did not match the published %s' % (verb, path, found, published)


def _is_mismatch(exc):
    # artifact.py words a bad download, or a digest that contradicts the checksum file, like this.
    text = '%s' % exc
    return text.startswith('checksum mismatch for ') or 'does not match its checksum' in text


def _unique(items):
    seen = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


# ---------------------------------------------------------------- local files


def make_dirs(path):
    """Create ``path`` and missing parents 0755 whatever the umask; existing directories keep their mode."""
    missing = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            if not os.path.isdir(directory):
                raise MirrorError('%s exists and is not a directory' % directory)
            continue
        os.chmod(directory, DIR_MODE)


def remove_stale_temps(directory):
    """Remove the temp files of an earlier run that was killed (call under the mirror lock)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if is_temp_name(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def read_manifest(dest, repo):
    path = os.path.join(dest, MANIFEST)
    try:
        with open(path, 'r') as handle:
            text = handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return {}, None
        raise
    return parse_manifest(text, repo, path), text


def read_text(path):
    try:
        with open(path, 'r') as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def file_size(path, default=None):
    try:
        return os.path.getsize(path)
    except OSError:
        return default


# ---------------------------------------------------------------- one run


class _Run(object):
    """One run's options, transport and what it did; mirror_releases() is the entry point."""

    def __init__(self, dest, repo, options):
        self.dest = dest
        self.repo = repo
        self.lock_dir = os.path.join(dest, LOCK_DIR)
        self.written = []
        self.warnings = []
        # check_mode, include_prereleases, github_url, api_url, token, url_username, url_password,
        # validate_certs, timeout, attempts, allow_insecure, fetch, sleep, clock, rng
        self.__dict__.update(options)

    def transport(self):
        return dict(validate_certs=self.validate_certs, timeout=self.timeout, fetch=self.fetch,
                    attempts=self.attempts, allow_insecure=self.allow_insecure, url_username=self.url_username,
                    url_password=self.url_password, sleep=self.sleep, clock=self.clock, rng=self.rng)

    def error(self, message):
        return MirrorError(http.scrub(message, self.token, self.url_password))

    def resolve(self, version, components, platforms):
        return resolve_release(self.repo, version, github_url=self.github_url, api_url=self.api_url,
                               token=self.token, include_prereleases=self.include_prereleases,
                               components=components, platforms=platforms, **self.transport())

    def write(self, path, data):
        """Atomically replace ``path`` with ``data`` (0644), unless in check mode; record it as written."""
        if not self.check_mode:
            atomic_write(path, data, mode=FILE_MODE)
        self.written.append(os.path.relpath(path, self.dest).replace(os.sep, '/'))

    # ------------------------------------------------------------ checksum files

    def checksum_file(self, tag_dir, name, published, artifact):
        """(bytes as published, whether to write them) of one checksum file of the release.

        A copy here whose sha256 is the API digest of the checksum file is
        used without any request; otherwise it is fetched (small, capped).
        """
        path = os.path.join(tag_dir, name)
        found = hash_if_present(path)
        if published.get('digest') and found == published['digest']:
            with open(path, 'rb') as handle:
                return handle.read(), False
        token = self.token if published.get('api_url') else None
        try:
            content, source, warnings = fetch_checksum_file(
                artifact, checksum_url=published.get('download_url'), checksum_api_url=published.get('api_url'),
                token=token, github_api_url=self.api_url, **self.transport())
        except ArtifactError as exc:
            raise self.error('mirroring %s of %s: %s' % (os.path.basename(tag_dir), self.repo, exc))
        self.warnings.extend(warnings)
        got = hashlib.sha256(content).hexdigest()
        if published.get('digest') and got != published['digest']:
            raise self.error('mirroring %s of %s: the checksum file %s from %s has sha256 %s, but the GitHub API '
                             'states %s; the release changed while it was read, or the origin is inconsistent. '
                             'Nothing was written for it: run again' % (os.path.basename(tag_dir), self.repo, name,
                                                                        source, got, published['digest']))
        if found is not None and found != got:
            self.warnings.append(replaced_warning(relpath(os.path.basename(tag_dir), name), found, got,
                                                  self.check_mode))
        return content, found != got

    # ------------------------------------------------------------ artifacts

    def artifact(self, tag, tag_dir, item, checksum_content):
        """Make {tag}/{asset} a verified copy; returns its manifest row."""
        token = self.token if item['api_url'] else None
        try:
            result = ensure_artifact(
                item['name'], item['url'], tag_dir, checksum_url=item['checksum_url'],
                checksum_api_url=item['checksum_api_url'], checksum_content=checksum_content,
                digest=item['digest'], size=item['size'], api_url=item['api_url'], token=token,
                github_api_url=self.api_url, check_mode=self.check_mode, record=False, lock_dir=self.lock_dir,
                file_mode=FILE_MODE, **self.transport())
        except ArtifactError as exc:
            message = 'mirroring %s of %s: %s' % (tag, self.repo, exc)
            if _is_mismatch(exc):
                message += ('. %s was not written. Run again: a download corrupted on the way is fetched anew; if '
                            'it fails again, what %s publishes does not match its own checksum: do not mirror %s, '
                            'and tell its publishers' % (item['name'], self.repo, tag))
            raise self.error(message)
        self.warnings.extend(result['warnings'])
        path = relpath(tag, item['name'])
        if result['changed']:
            self.written.append(path)
            if result['previous_sha256'] is not None:
                self.warnings.append(replaced_warning(path, result['previous_sha256'], result['sha256'],
                                                      self.check_mode))
        if self.check_mode and result['changed']:
            size = item['size']
        else:
            size = file_size(result['path'], item['size'])
        return {'name': item['name'], 'sha256': result['sha256'], 'component': item['component'],
                'platform': item['platform'], 'size': size}

    # ------------------------------------------------------------ one release

    def release(self, tag, resolved, components, platforms):
        """Mirror one resolved release; returns its manifest entry (what this run verified)."""
        plan = plan_artifacts(resolved, self.repo, components, platforms)
        offered = [p for p in platforms if p in plan]
        missing = [p for p in platforms if p not in plan]
        if not offered:
            raise self.error('%s of %s has no build for any of %s; it carries %s. Mirror another release'
                             % (tag, self.repo, ', '.join(platforms), resolved['carries'] or 'nothing'))
        if missing:
            self.warnings.append(missing_platforms_warning(self.repo, tag, offered, missing,
                                                           resolved['newest_by_platform']))
        tag_dir = os.path.join(self.dest, tag)
        if not self.check_mode:
            make_dirs(tag_dir)
            remove_stale_temps(tag_dir)

        # Which checksum file verifies which artifact: {asset}.sha256, or one checksums.txt for all.
        items, checksum_of, unpublished = [], {}, {}
        for platform in offered:
            os_name, arch = platform.split('-')
            for item in plan[platform]:
                item = dict(item, platform=platform)
                name = asset_names(item['component'], tag, os_name, arch)[1]
                items.append((item, name))
                if name in resolved['assets']:
                    checksum_of.setdefault(name, item['name'])
                else:
                    unpublished.setdefault(name, []).append(item['name'])
        for name, artifacts in sorted(unpublished.items()):
            self.warnings.append(unpublished_checksum_warning(self.repo, tag, name, artifacts))

        contents, to_write = {}, []
        for name, first_artifact in checksum_of.items():
            contents[name], changed = self.checksum_file(tag_dir, name, resolved['assets'][name], first_artifact)
            if changed:
                to_write.append(name)
        assets = [self.artifact(tag, tag_dir, item, contents.get(name)) for item, name in items]
        # Written once every artifact they cover is verified: a checksum file
        # here never announces an artifact that failed.
        for name in to_write:
            self.write(os.path.join(tag_dir, name), contents[name])
        checksum_files = [{'name': name, 'sha256': hashlib.sha256(content).hexdigest(), 'size': len(content)}
                          for name, content in sorted(contents.items())]
        return {'prerelease': bool(resolved['prerelease']), 'assets': assets, 'checksum_files': checksum_files}

    # ------------------------------------------------------------ the manifest

    def merge(self, before, fresh):
        """Releases mirrored before stay listed while their files are here; this run's rows win."""
        merged = {}
        for tag in set(before) | set(fresh):
            old, new = before.get(tag) or {}, fresh.get(tag)
            entry = {'prerelease': bool((new or old).get('prerelease'))}
            for key in FILE_LISTS:
                rows = dict((row['name'], row) for row in (new or {}).get(key) or [])
                for row in old.get(key) or []:
                    if not isinstance(row, dict) or row.get('name') in rows:
                        continue
                    if os.path.isfile(os.path.join(self.dest, tag, str(row.get('name')))):
                        rows[row['name']] = row
                    else:
                        self.warnings.append('%s is listed in %s but no longer here; it is left out of the list'
                                             % (relpath(tag, row.get('name')), MANIFEST))
                entry[key] = list(rows.values())
            if entry['assets']:
                merged[tag] = entry
        return merged


def mirror_releases(dest, repo, versions=('latest',), components=DEFAULT_COMPONENTS, platforms=DEFAULT_PLATFORMS,
                    include_prereleases=False, github_url='https://github.com', api_url=DEFAULT_API_URL, token=None,
                    url_username=None, url_password=None, validate_certs=True, timeout=30,
                    attempts=http.DEFAULT_ATTEMPTS, allow_insecure=False, check_mode=False, fetch=http.fetch,
                    sleep=time.sleep, clock=time.monotonic, rng=random.random):
    """Bring the mirror of ``repo`` in ``dest`` up to date with ``versions``.

    Returns {'changed', 'tags' (version asked -> tag), 'written' (paths inside
    dest, what would be written in check mode), 'releases' (every tag here,
    newest first), 'latest', 'warnings', 'diff'}. Raises MirrorError, or
    ReleaseError / VersionError from resolving a version.
    """
    split_repo(repo)
    repo = repo.strip()
    dest = os.path.abspath(dest)
    versions = list(versions or [])
    components = _unique(components or [])
    platforms = _unique(platforms or [])
    for what, value in (('versions', versions), ('components', components), ('platforms', platforms)):
        if not value:
            raise MirrorError('%s is empty: name at least one' % what)
    unknown = [p for p in platforms if p not in SUPPORTED_PLATFORMS]
    if unknown:
        raise MirrorError('platform %s is not one of %s' % (', '.join(unknown), ', '.join(SUPPORTED_PLATFORMS)))
    try:
        token = http.clean_secret(token, 'the GitHub token')
        url_password = http.clean_secret(url_password, 'url_password')
    except ValueError as exc:
        raise MirrorError('%s' % exc)
    run = _Run(dest, repo, dict(
        check_mode=check_mode, include_prereleases=include_prereleases, github_url=github_url, api_url=api_url,
        token=token, url_username=url_username, url_password=url_password, validate_certs=validate_certs,
        timeout=timeout, attempts=attempts, allow_insecure=allow_insecure, fetch=fetch, sleep=sleep, clock=clock,
        rng=rng))
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise MirrorError('dest %s exists and is not a directory' % dest)
    # Fail on a directory that mirrors another repository before asking GitHub anything.
    read_manifest(dest, repo)

    tags, resolved = {}, {}
    for version in versions:
        answer = run.resolve(version, components, platforms)
        run.warnings.extend(answer['warnings'])
        tags[str(version)] = answer['tag']
        resolved[answer['tag']] = answer

    if check_mode:
        return _bring_up_to_date(run, tags, resolved, components, platforms)
    make_dirs(dest)
    # One run at a time per mirror: manifest.json is read, merged and written back.
    with artifact_lock(dest, MANIFEST, run.lock_dir):
        remove_stale_temps(dest)
        return _bring_up_to_date(run, tags, resolved, components, platforms)


def _bring_up_to_date(run, tags, resolved, components, platforms):
    before, manifest_before = read_manifest(run.dest, run.repo)
    fresh = {}
    for tag in semver_order(resolved):
        fresh[tag] = run.release(tag, resolved[tag], components, platforms)
    releases = run.merge(before, fresh)
    latest = mirror_latest(releases, run.include_prereleases)

    diff = []
    latest_path = os.path.join(run.dest, LATEST)
    latest_before = read_text(latest_path)
    if latest is not None and latest_before != latest_text(latest):
        run.write(latest_path, latest_text(latest))
        diff.append({'before_header': LATEST, 'after_header': LATEST, 'before': latest_before or '',
                     'after': latest_text(latest)})
    manifest = manifest_text(run.repo, latest, releases)
    if manifest_before != manifest:
        run.write(os.path.join(run.dest, MANIFEST), manifest)
        diff.append({'before_header': MANIFEST, 'after_header': MANIFEST, 'before': manifest_before or '',
                     'after': manifest})
    return {
        'changed': bool(run.written),
        'tags': tags,
        'written': run.written,
        'releases': semver_order(releases),
        'latest': latest,
        'warnings': _unique(run.warnings),
        'diff': diff,
    }
