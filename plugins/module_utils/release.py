# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Resolve a stigmer version ('latest' or a pin) to a release tag and its assets.

Every step is chosen to spend as little GitHub API quota as possible, because
60 requests an hour per IP is what an unauthenticated fleet shares:

* a pinned tag already in the release cache costs nothing;
* with a mirror, a pinned tag costs nothing and 'latest' is one plain GET;
* 'latest' first asks the web UI's /releases/latest redirect (no API quota),
  then reads the tag's asset list from the cache or the API;
* API answers are cached per tag, and list answers are revalidated with
  ETag/If-None-Match (a 304 costs no quota).

Pure helpers come first; resolve_release() does the I/O through an injectable
``fetch`` so unit tests can replay recorded answers.
"""

import json
import os
import re

from urllib.parse import quote, unquote, urljoin, urlsplit

from ansible_collections.stigmer.runtime.plugins.module_utils import http
from ansible_collections.stigmer.runtime.plugins.module_utils.assets import asset_names, is_archive
from ansible_collections.stigmer.runtime.plugins.module_utils.platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils.checksum import (
    ChecksumError,
    normalize_sha256,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.fileio import atomic_write
from ansible_collections.stigmer.runtime.plugins.module_utils.version import (
    VersionError,
    is_prerelease,
    normalize_tag,
    parse_semver,
    tag_to_version,
)

CACHE_SCHEMA = 1

# API answers are JSON documents of a few hundred KiB at most; refuse more so a
# misconfigured URL that serves a large file cannot exhaust memory.
MAX_API_BYTES = 16 * 1024 * 1024
MAX_MIRROR_LATEST_BYTES = 64 * 1024

# GitHub owner and repository names: letters, digits, '-', '_' and '.'.
_REPO_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$')
_LATEST_LOCATION_RE = re.compile(r'/releases/tag/(?P<tag>[^/?#]+)/?$')

_CONNECT_HINT = ('check stigmer_github_url / stigmer_api_url, set stigmer_mirror_url to use an internal '
                 'mirror, or configure a proxy (https_proxy) for the host that downloads')


class ReleaseError(Exception):
    """The requested release cannot be resolved; the message says why and what to change."""


# ---------------------------------------------------------------- pure helpers


def split_repo(repo):
    """'owner/name' -> ('owner', 'name'); both become cache path components."""
    if not isinstance(repo, str) or not _REPO_RE.match(repo.strip()):
        raise ReleaseError("repository %r is not of the form 'owner/name'" % (repo,))
    owner, name = repo.strip().split('/')
    if name in ('.', '..'):
        raise ReleaseError("repository %r is not of the form 'owner/name'" % (repo,))
    return owner, name


def base_url(url):
    return (url or '').rstrip('/')


def asset_entry(asset):
    """One API asset -> (name, {'download_url', 'api_url', 'digest', 'size'})."""
    digest = asset.get('digest')
    if digest:
        try:
            digest = normalize_sha256(digest)
        except ChecksumError:
            # GitHub may add other algorithms; an unknown digest is no digest.
            digest = None
    else:
        digest = None
    size = asset.get('size')
    return asset.get('name'), {
        'download_url': asset.get('browser_download_url'),
        'api_url': asset.get('url'),
        'digest': digest,
        'size': size if isinstance(size, int) else None,
    }


def assets_from_release(release):
    result = {}
    for asset in release.get('assets') or []:
        if not isinstance(asset, dict):
            continue
        name, entry = asset_entry(asset)
        if name:
            result[name] = entry
    return result


def trim_release(release):
    """Keep only what resolution needs, so cache files stay small."""
    keep = ('name', 'url', 'browser_download_url', 'digest', 'size')
    return {
        'tag_name': release.get('tag_name'),
        'draft': bool(release.get('draft')),
        'prerelease': bool(release.get('prerelease')),
        'assets': [dict((k, a.get(k)) for k in keep)
                   for a in (release.get('assets') or []) if isinstance(a, dict)],
    }


def tag_from_latest_location(location):
    """Tag named by the /releases/latest redirect, or None.

    GitHub redirects to .../releases/tag/<tag>; a repository without releases
    redirects to .../releases instead, which names no tag.
    """
    if not location:
        return None
    match = _LATEST_LOCATION_RE.search(urlsplit(location).path)
    if not match:
        return None
    return unquote(match.group('tag'))


def parse_mirror_latest(text):
    """First non-empty line of a mirror's 'latest' file, as a normalized tag."""
    for line in (text or '').splitlines():
        line = line.strip().lstrip('\ufeff')
        if line:
            return normalize_tag(line.split()[0])
    raise VersionError('the file is empty')


def pick_highest_release(releases, include_prereleases=True):
    """Highest non-draft release by semantic version (tags that are not semver are skipped)."""
    best = None
    best_key = None
    for release in releases or []:
        if not isinstance(release, dict) or release.get('draft'):
            continue
        tag = release.get('tag_name')
        try:
            key = parse_semver(tag)
            prerelease = bool(release.get('prerelease')) or is_prerelease(tag)
        except VersionError:
            continue
        if prerelease and not include_prereleases:
            continue
        if best_key is None or key > best_key:
            best, best_key = release, key
    return best


def github_error_message(body):
    """GitHub's JSON error bodies carry a 'message'; fall back to the raw text."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict) and data.get('message'):
        return str(data['message'])
    return (body or '').strip()[:200]


def release_cache_path(cache_dir, repo, tag):
    owner, name = split_repo(repo)
    return os.path.join(cache_dir, owner, name, tag, 'release.json')


def api_cache_path(cache_dir, repo, kind):
    # Tags start with 'v', so '_api' never collides with a tag directory.
    owner, name = split_repo(repo)
    return os.path.join(cache_dir, owner, name, '_api', '%s.json' % kind)


def download_base(github_url, repo, tag):
    return '%s/%s/releases/download/%s/' % (base_url(github_url), repo, quote(tag, safe='+'))


# ---------------------------------------------------------------- cache I/O


def read_cache(path, api_url):
    """Cached entry for this API endpoint, or None if absent, unreadable or from another server."""
    if not path:
        return None
    try:
        with open(path, 'r') as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get('schema') != CACHE_SCHEMA:
        return None
    # The same owner/name on GitHub Enterprise is another repository.
    if base_url(entry.get('api_url')) != base_url(api_url):
        return None
    if 'data' not in entry:
        return None
    return entry


def write_cache(path, api_url, data, etag=None):
    if not path:
        return
    entry = {'schema': CACHE_SCHEMA, 'api_url': base_url(api_url), 'etag': etag, 'data': data}
    try:
        atomic_write(path, json.dumps(entry, indent=1, sort_keys=True) + '\n', make_dirs=True)
    except OSError:
        # The cache only saves quota; an unwritable cache must not fail a run.
        pass


# ---------------------------------------------------------------- network


class _Context(object):
    def __init__(self, repo, api_url, github_url, token, validate_certs, timeout, fetch):
        self.repo = repo
        self.api_url = base_url(api_url)
        self.github_url = base_url(github_url)
        self.token = token
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.fetch = fetch

    def error(self, message):
        return ReleaseError(http.scrub(message, self.token))


def _api_failure(ctx, exc, url, not_found):
    """Turn a fetch failure on an API URL into a ReleaseError with advice."""
    shown = http.redact_url(url)
    if isinstance(exc, http.HttpError):
        limited = http.rate_limit_message(exc.status, exc.headers, ctx.api_url, authenticated=bool(ctx.token))
        if limited:
            return ctx.error(limited)
        detail = github_error_message(exc.body)
        if exc.status == 401:
            if ctx.token:
                return ctx.error('GitHub rejected the token (401 %s) at %s; check stigmer_github_token '
                                 '(or GITHUB_TOKEN on the controller): it may be mistyped, expired or revoked'
                                 % (detail or 'Bad credentials', ctx.api_url))
            return ctx.error('the GitHub API at %s requires authentication (401); set stigmer_github_token'
                             % ctx.api_url)
        if exc.status == 404:
            return ctx.error(not_found)
        if exc.status == 403:
            return ctx.error('GitHub refused access (403) to %s: %s; the token needs read access to %s'
                             % (shown, detail, ctx.repo))
        return ctx.error('the GitHub API answered HTTP %s for %s: %s' % (exc.status, shown, detail))
    if isinstance(exc, http.ConnectError):
        return ctx.error('cannot reach the GitHub API at %s: %s; %s' % (shown, exc.reason, _CONNECT_HINT))
    return ctx.error('%s' % exc)


def _api_get(ctx, url, not_found, cache_path=None):
    """GET a JSON document from the API; returns (data, etag, from_cache).

    With a cached copy the request is conditional: GitHub answers 304 without
    charging quota, and the cached data is reused.
    """
    cached = read_cache(cache_path, ctx.api_url) if cache_path else None
    headers = dict(http.GITHUB_API_HEADERS)
    if cached and cached.get('etag'):
        headers['If-None-Match'] = cached['etag']
    try:
        response = ctx.fetch(url, headers=headers, token=ctx.token, validate_certs=ctx.validate_certs,
                             timeout=ctx.timeout)
    except http.FetchError as exc:
        raise _api_failure(ctx, exc, url, not_found)
    try:
        if response.status == 304 and cached:
            return cached['data'], cached.get('etag'), True
        if response.status == 304:
            raise ctx.error('the GitHub API answered 304 Not Modified for %s without a cached copy'
                            % http.redact_url(url))
        try:
            body = response.read(max_bytes=MAX_API_BYTES)
        except http.FetchError as exc:
            raise _api_failure(ctx, exc, url, not_found)
        etag = response.headers.get('etag')
    finally:
        response.close()
    try:
        data = json.loads(body.decode('utf-8'))
    except ValueError:
        raise ctx.error('unexpected answer from %s: not JSON; is stigmer_api_url (%s) a GitHub API?'
                        % (http.redact_url(url), ctx.api_url))
    return data, etag, False


def _latest_tag_from_redirect(ctx):
    """Ask the web UI's /releases/latest redirect; None when it does not name a tag.

    No token: the page is public, costs no API quota, and a token must not
    travel to the web host for nothing.
    """
    url = '%s/%s/releases/latest' % (ctx.github_url, ctx.repo)
    try:
        response = ctx.fetch(url, headers={}, token=None, validate_certs=ctx.validate_certs,
                             timeout=ctx.timeout, follow_redirects=False)
    except http.FetchError:
        return None
    try:
        if response.status not in http.REDIRECT_STATUSES:
            return None
        location = response.headers.get('location')
    finally:
        response.close()
    tag = tag_from_latest_location(urljoin(url, location or ''))
    if tag is None:
        return None
    try:
        return normalize_tag(tag)
    except VersionError:
        return None


def _release_for_tag(ctx, tag, cache_dir):
    """(trimmed release, source) for a tag: cache first, then the API."""
    path = release_cache_path(cache_dir, ctx.repo, tag) if cache_dir else None
    cached = read_cache(path, ctx.api_url) if path else None
    if cached and isinstance(cached.get('data'), dict):
        return cached['data'], 'cache'
    url = '%s/repos/%s/releases/tags/%s' % (ctx.api_url, ctx.repo, quote(tag, safe='+'))
    not_found = ('release %s not found in %s (%s); check stigmer_version%s'
                 % (tag, ctx.repo, ctx.api_url,
                    '' if ctx.token else ', and set stigmer_github_token if the repository is private'))
    data, etag, dummy = _api_get(ctx, url, not_found)
    if not isinstance(data, dict):
        raise ctx.error('unexpected answer from %s: not a release' % http.redact_url(url))
    if data.get('draft'):
        raise ctx.error('release %s of %s is a draft; drafts cannot be installed, publish it first'
                        % (tag, ctx.repo))
    release = trim_release(data)
    if path:
        write_cache(path, ctx.api_url, release, etag)
    return release, 'api'


def _store_tag(ctx, cache_dir, release):
    """Cache a release found through a list/latest answer under its own tag."""
    if not cache_dir or release.get('draft'):
        return
    try:
        tag = normalize_tag(release.get('tag_name'))
    except VersionError:
        return
    write_cache(release_cache_path(cache_dir, ctx.repo, tag), ctx.api_url, trim_release(release))


def _latest_from_api(ctx, cache_dir, include_prereleases):
    if include_prereleases:
        url = '%s/repos/%s/releases?per_page=100' % (ctx.api_url, ctx.repo)
        cache_path = api_cache_path(cache_dir, ctx.repo, 'releases') if cache_dir else None
        not_found = ('repository %s not found at %s; check stigmer_repo%s'
                     % (ctx.repo, ctx.api_url, '' if ctx.token else ', and set stigmer_github_token if it is private'))
        data, etag, from_cache = _api_get(ctx, url, not_found, cache_path)
        if not isinstance(data, list):
            raise ctx.error('unexpected answer from %s: not a list of releases' % http.redact_url(url))
        releases = [trim_release(r) for r in data if isinstance(r, dict)]
        chosen = pick_highest_release(releases, include_prereleases=True)
        if chosen is None:
            raise ctx.error('%s has no published release with a semantic version tag at %s'
                            % (ctx.repo, ctx.api_url))
    else:
        url = '%s/repos/%s/releases/latest' % (ctx.api_url, ctx.repo)
        cache_path = api_cache_path(cache_dir, ctx.repo, 'latest') if cache_dir else None
        not_found = ('%s has no published release at %s (drafts and pre-releases are never latest); '
                     'pin stigmer_version or enable pre-releases%s'
                     % (ctx.repo, ctx.api_url, '' if ctx.token else ', and set stigmer_github_token if it is private'))
        data, etag, from_cache = _api_get(ctx, url, not_found, cache_path)
        if not isinstance(data, dict):
            raise ctx.error('unexpected answer from %s: not a release' % http.redact_url(url))
        chosen = trim_release(data)
        if chosen.get('draft'):
            raise ctx.error('the latest release of %s at %s is a draft' % (ctx.repo, ctx.api_url))
    if cache_path and not from_cache:
        stored = [trim_release(r) for r in data if isinstance(r, dict)] if isinstance(data, list) else chosen
        write_cache(cache_path, ctx.api_url, stored, etag)
    try:
        tag = normalize_tag(chosen.get('tag_name'))
    except VersionError:
        raise ctx.error('the latest release of %s is tagged %r, which is not a semantic version; pin stigmer_version'
                        % (ctx.repo, chosen.get('tag_name')))
    _store_tag(ctx, cache_dir, chosen)
    return tag, chosen, ('cache' if from_cache else 'api')


def _mirror_latest(ctx, mirror_url):
    url = '%s/latest' % base_url(mirror_url)
    shown = http.redact_url(url)
    try:
        response = ctx.fetch(url, headers={}, token=None, validate_certs=ctx.validate_certs, timeout=ctx.timeout)
        try:
            text = response.text(max_bytes=MAX_MIRROR_LATEST_BYTES)
        finally:
            response.close()
    except http.HttpError as exc:
        if exc.status == 404:
            raise ctx.error("the mirror has no 'latest' file at %s; publish one whose first line is the tag "
                            "(for example v1.2.3), or pin stigmer_version" % shown)
        raise ctx.error('the mirror answered HTTP %s for %s' % (exc.status, shown))
    except http.ConnectError as exc:
        raise ctx.error('cannot reach the mirror at %s: %s; check stigmer_mirror_url or configure a proxy'
                        % (shown, exc.reason))
    except http.FetchError as exc:
        raise ctx.error('%s' % exc)
    try:
        return parse_mirror_latest(text)
    except VersionError as exc:
        raise ctx.error("the mirror's 'latest' file at %s does not start with a release tag: %s" % (shown, exc))


def _result(tag, prerelease, source, assets, base):
    return {
        'tag': tag,
        'version': tag_to_version(tag),
        'prerelease': bool(prerelease),
        'source': source,
        'assets': assets,
        'download_base': base,
    }


def resolve_release(repo, version, github_url='https://github.com', api_url='https://api.github.com',
                    mirror_url=None, token=None, include_prereleases=False, cache_dir=None,
                    validate_certs=True, timeout=30, fetch=http.fetch):
    """Resolve ``version`` ('latest', '1.2.3' or 'v1.2.3') of ``repo`` to a tag and its assets.

    Raises ReleaseError (with advice) when it cannot, VersionError for a
    version that is not 'latest' nor a semantic version.
    """
    split_repo(repo)
    repo = repo.strip()
    ctx = _Context(repo, api_url, github_url, token, validate_certs, timeout, fetch)
    wanted = (version or 'latest').strip() if isinstance(version, str) else version
    latest = isinstance(wanted, str) and wanted.lower() == 'latest'

    if mirror_url:
        # A mirror serves {tag}/{asset} and nothing else: no asset list to
        # read, and GitHub is never asked (it may be unreachable). The GitHub
        # release cache is skipped too: its URLs point at GitHub.
        tag = _mirror_latest(ctx, mirror_url) if latest else normalize_tag(wanted)
        return _result(tag, is_prerelease(tag), 'mirror', None, '%s/%s/' % (base_url(mirror_url), tag))

    if not latest:
        tag = normalize_tag(wanted)
        release, source = _release_for_tag(ctx, tag, cache_dir)
    else:
        tag = None
        if not include_prereleases:
            tag = _latest_tag_from_redirect(ctx)
        if tag is not None:
            release, source = _release_for_tag(ctx, tag, cache_dir)
        else:
            tag, release, source = _latest_from_api(ctx, cache_dir, include_prereleases)

    return _result(tag, release.get('prerelease') or is_prerelease(tag), source,
                   assets_from_release(release), download_base(github_url, repo, tag))


def plan_artifacts(resolved, repo, components, platforms=SUPPORTED_PLATFORMS):
    """Per platform, what to download for ``components`` of a resolved release.

    A platform is offered only when the release lists every component's asset
    (the agent-runner must match the CLI). A mirror lists nothing, so every
    platform is planned and a missing asset shows up as a 404 naming its URL.
    """
    tag, assets, base = resolved['tag'], resolved['assets'], resolved['download_base']
    plan = {}
    for platform in platforms:
        os_name, arch = platform.split('-')
        items = []
        for component in components:
            name, checksum_file = asset_names(component, tag, os_name, arch)
            if assets is None:
                asset = {'download_url': base + name}
                checksum = {'download_url': base + checksum_file}
            elif name in assets:
                asset = assets[name]
                checksum = assets.get(checksum_file) or {}
            else:
                items = None
                break
            items.append({
                'component': component,
                'name': name,
                'repo': repo,
                'release': tag,
                'archive': is_archive(component),
                'url': asset['download_url'],
                'api_url': asset.get('api_url'),
                'digest': asset.get('digest'),
                'checksum_url': checksum.get('download_url'),
                'checksum_api_url': checksum.get('api_url'),
            })
        if items:
            plan[platform] = items
    return plan
