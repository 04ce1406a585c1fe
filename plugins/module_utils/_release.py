# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Resolve a stigmer version ('latest' or a pin) to a release tag and its assets.

'latest' is the newest published release (by semantic version; pre-releases
only when asked) that carries the requested components for every platform of
the play. GitHub's own "latest" may carry none of them (upstream ships newer
versions through other channels), so it cannot be taken on trust.

Every step is chosen to spend as little GitHub API quota as possible, because
60 requests an hour per IP is what an unauthenticated fleet shares:

* a pinned tag already in the release cache costs nothing;
* with a mirror, a pinned tag costs nothing and 'latest' is one plain GET;
* 'latest' reads the release list (100 per request, a bounded number of
  pages), each page revalidated with ETag/If-None-Match; with a cache, the web
  UI's /releases/latest redirect (no API quota) answers alone when it names the
  release the last list read found highest and that release, cached, qualifies;
* a pinned release that lacks a platform of the play reads the list only then,
  to name the newest release that has it.

Pure helpers come first; resolve_release() does the I/O through an injectable
``fetch`` so unit tests can replay recorded answers.
"""

import json
import os
import random
import re
import time

from urllib.parse import quote, unquote, urljoin, urlsplit

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import ArtifactError, ensure_private_dir
from ansible_collections.stigmer.runtime.plugins.module_utils._assets import (
    asset_names,
    component_label,
    install_shape,
    is_archive,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils._checksum import (
    ChecksumError,
    normalize_sha256,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._host import atomic_write
from ansible_collections.stigmer.runtime.plugins.module_utils._version import (
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

# The release list is read 100 at a time; past this many pages the oldest
# releases are left unread rather than spending more quota.
PER_PAGE = 100
MAX_RELEASE_PAGES = 10

# Skipped releases named in a warning or error; the return value has them all.
MAX_SKIPPED_SHOWN = 5

DEFAULT_COMPONENTS = ('stigmer', 'agent-runner')

# GitHub owner and repository names: letters, digits, '-', '_' and '.'.
_REPO_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$')
_LATEST_LOCATION_RE = re.compile(r'/releases/tag/(?P<tag>[^/?#]+)/?$')
_LINK_RE = re.compile(r'<(?P<url>[^>]*)>(?P<params>[^,<]*)')
_REL_RE = re.compile(r'(?:^|;)\s*rel\s*=\s*"?(?P<rel>[^";]*)"?', re.IGNORECASE)

_CONNECT_HINT = ('check stigmer_github_url / stigmer_github_api_url, set stigmer_mirror_url to use an internal '
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
        'published_at': release.get('published_at'),
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


def newest_first(releases, include_prereleases=False):
    """Published releases that can be 'latest', newest first.

    Newest by semantic version, then by published_at (equal versions, such as
    tags differing only in build metadata). Drafts, tags that are not semantic
    versions and, unless included, pre-releases are left out.
    """
    keyed = []
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
        keyed.append(((key, release.get('published_at') or ''), release))
    keyed.sort(key=lambda item: item[0], reverse=True)
    return [release for dummy, release in keyed]


def next_page_url(link, page_url):
    """URL of rel="next" in a Link header (RFC 8288), absolute, or None."""
    for match in _LINK_RE.finditer(link or ''):
        rel = _REL_RE.search(match.group('params'))
        if rel and 'next' in rel.group('rel').lower().split():
            return urljoin(page_url, match.group('url').strip())
    return None


def asset_name_set(release):
    """Names of a (trimmed or API) release's assets."""
    return set(a.get('name') for a in release.get('assets') or [] if isinstance(a, dict) and a.get('name'))


def offered_platforms(names, tag, components, platforms=SUPPORTED_PLATFORMS):
    """Platforms for which ``names`` hold the asset of every component, in ``platforms`` order.

    All or nothing: the agent-runner must match the CLI, so a CLI alone is no build.
    """
    offered = []
    for platform in platforms:
        os_name, arch = platform.split('-')
        if all(asset_names(c, tag, os_name, arch)[0] in names for c in components):
            offered.append(platform)
    return offered


def _labels(components, joiner):
    return joiner.join(component_label(c) for c in components)


def shortfall(names, tag, components, platforms=()):
    """Why a release cannot serve ``platforms`` (any one platform when empty); None when it can."""
    offered = offered_platforms(names, tag, components)
    missing = [p for p in platforms if p not in offered]
    if offered and not missing:
        return None
    if not names:
        return 'no assets'
    wanted = set(asset_names(c, tag, *p.split('-'))[0] for c in components for p in SUPPORTED_PLATFORMS)
    if not wanted & set(names):
        return 'no %s assets' % _labels(components, ' or ')
    if missing:
        return 'no build for %s' % ', '.join(missing)
    return 'no complete %s build for any platform' % _labels(components, ' and ')


def carries(names, tag, components):
    """What a release holds for ``components``, worded to follow 'it carries'."""
    offered = offered_platforms(names, tag, components)
    if offered:
        return 'builds for %s' % ', '.join(offered)
    return shortfall(names, tag, components)


def select_latest(candidates, components, platforms=()):
    """(first of ``candidates`` that serves ``platforms``, or None; [{tag, reason}] of those passed over).

    ``candidates`` come newest first (newest_first()).
    """
    skipped = []
    for release in candidates:
        tag = normalize_tag(release.get('tag_name'))
        reason = shortfall(asset_name_set(release), tag, components, platforms)
        if reason is None:
            return release, skipped
        skipped.append({'tag': tag, 'reason': reason})
    return None, skipped


def newest_by_platform(candidates, components, platforms):
    """{platform: tag of the newest of ``candidates`` with a build for it, or None}."""
    newest = dict((p, None) for p in platforms)
    for release in candidates:
        tag = normalize_tag(release.get('tag_name'))
        for platform in offered_platforms(asset_name_set(release), tag, components,
                                          [p for p in platforms if newest[p] is None]):
            newest[platform] = tag
        if all(newest.values()):
            break
    return newest


def _skipped_text(skipped):
    shown = ', '.join('%s (%s)' % (s['tag'], s['reason']) for s in skipped[:MAX_SKIPPED_SHOWN])
    if len(skipped) > MAX_SKIPPED_SHOWN:
        shown += ' and %d more' % (len(skipped) - MAX_SKIPPED_SHOWN)
    return shown


def skipped_warning(repo, skipped, tag):
    """Warning for newer releases 'latest' passed over, or None when it took the newest."""
    if not skipped:
        return None
    return 'latest: skipped %s; using %s of %s' % (_skipped_text(skipped), tag, repo)


def no_release_message(repo, components, platforms, newest, skipped, pin_var, truncated=False):
    """Error for 'latest' when no release serves every platform of the play."""
    if platforms:
        scope = 'for every platform of the play (%s)' % ', '.join(platforms)
    else:
        scope = 'for any platform'
    per_platform = ', '.join('%s %s' % (p, newest.get(p) or 'none') for p in (platforms or SUPPORTED_PLATFORMS))
    message = ('latest: no published release of %s carries %s builds %s. Newest release with a build, per platform: '
               '%s. Pin %s to a release that has a build for your hosts, or leave the hosts of a platform that it '
               'lacks out of this play.' % (repo, _labels(components, ' and '), scope, per_platform, pin_var))
    if skipped:
        message += ' Skipped: %s.' % _skipped_text(skipped)
    if truncated:
        message += (' Only the %d most recently created releases were read.' % (PER_PAGE * MAX_RELEASE_PAGES))
    return message


def pin_variable(components):
    """The role variable that pins the release of ``components``, for advice in messages."""
    return 'stigmer_temporal_version' if 'temporal' in components else 'stigmer_version'


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
    def __init__(self, repo, api_url, github_url, token, validate_certs, timeout, fetch, cache_dir,
                 components, include_prereleases, network):
        self.repo = repo
        self.api_url = base_url(api_url)
        self.github_url = base_url(github_url)
        self.token = token
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.fetch = fetch
        self.cache_dir = cache_dir
        self.components = components
        self.include_prereleases = include_prereleases
        self.pin_var = pin_variable(components)
        # attempts, allow_insecure, url_username, url_password, sleep, clock, rng
        self.__dict__.update(network)

    def error(self, message):
        return ReleaseError(http.scrub(message, self.token, self.url_password))

    def get(self, url, headers=None, token=None, max_bytes=MAX_API_BYTES, follow_redirects=True, attempts=None):
        """(status, lowercase headers, body or None) of one request, retried on transient failures.

        Each attempt, body included, must finish within ``timeout`` seconds;
        the body is read only for 2xx answers. Raises http.FetchError (with
        ``attempts``) when every attempt failed.
        """
        def once():
            response = self.fetch(url, headers=dict(headers or {}), token=token, validate_certs=self.validate_certs,
                                  timeout=self.timeout, follow_redirects=follow_redirects,
                                  allow_insecure=self.allow_insecure, deadline=self.clock() + self.timeout,
                                  max_bytes=max_bytes, clock=self.clock)
            try:
                body = response.read() if 200 <= response.status < 300 else None
                return response.status, response.headers, body
            finally:
                response.close()
        return http.Retry(attempts or self.attempts, sleep=self.sleep, clock=self.clock, rng=self.rng).call(once)

    def private_hint(self):
        return '' if self.token else ', and set stigmer_github_token if the repository is private'


def _api_failure(ctx, exc, url, not_found):
    """Turn a fetch failure on an API URL into a ReleaseError with advice (and the attempts made)."""
    error = _api_failure_text(ctx, exc, url, not_found)
    return ctx.error('%s (%s)' % (error, http.attempts_text(exc)))


def _api_failure_text(ctx, exc, url, not_found):
    shown = http.redact_url(url)
    if isinstance(exc, http.HttpError):
        limited = http.rate_limit_message(exc.status, exc.headers, ctx.api_url, authenticated=bool(ctx.token))
        if limited:
            return limited
        detail = github_error_message(exc.body)
        if exc.status == 401:
            if ctx.token:
                return ('GitHub rejected the token (401 %s) at %s; check stigmer_github_token '
                        '(or GITHUB_TOKEN on the controller): it may be mistyped, expired or revoked'
                        % (detail or 'Bad credentials', ctx.api_url))
            return 'the GitHub API at %s requires authentication (401); set stigmer_github_token' % ctx.api_url
        if exc.status == 404:
            return not_found
        if exc.status == 403:
            return ('GitHub refused access (403) to %s: %s; the token needs read access to %s'
                    % (shown, detail, ctx.repo))
        return 'the GitHub API answered HTTP %s for %s: %s' % (exc.status, shown, detail)
    if isinstance(exc, http.ConnectError):
        return ('cannot reach the GitHub API at %s: %s; %s' % (shown, exc.reason, _CONNECT_HINT))
    return ('%s' % exc)


def _api_get(ctx, url, not_found, cached=None):
    """GET a JSON document from the API; returns (data, response headers).

    With a ``cached`` entry the request is conditional: when GitHub answers 304
    (free of quota for an authenticated client) data is None and the caller
    keeps its copy.
    """
    headers = dict(http.GITHUB_API_HEADERS)
    if cached and cached.get('etag'):
        headers['If-None-Match'] = cached['etag']
    try:
        status, response_headers, body = ctx.get(url, headers=headers, token=ctx.token)
    except http.FetchError as exc:
        raise _api_failure(ctx, exc, url, not_found)
    if status == 304:
        if cached:
            return None, response_headers
        raise ctx.error('the GitHub API answered 304 Not Modified for %s without a cached copy'
                        % http.redact_url(url))
    try:
        data = json.loads((body or b'').decode('utf-8'))
    except ValueError:
        raise ctx.error('unexpected answer from %s: not JSON; is stigmer_github_api_url (%s) a GitHub API?'
                        % (http.redact_url(url), ctx.api_url))
    return data, response_headers


def _latest_tag_from_redirect(ctx):
    """Ask the web UI's /releases/latest redirect; None when it does not name a tag.

    No token: the page is public, costs no API quota, and a token must not
    travel to the web host for nothing.
    """
    url = '%s/%s/releases/latest' % (ctx.github_url, ctx.repo)
    try:
        # One try: on any failure the release list answers instead.
        status, headers, dummy = ctx.get(url, follow_redirects=False, max_bytes=MAX_MIRROR_LATEST_BYTES,
                                         attempts=1)
    except http.FetchError:
        return None
    if status not in http.REDIRECT_STATUSES:
        return None
    location = headers.get('location')
    tag = tag_from_latest_location(urljoin(url, location or ''))
    if tag is None:
        return None
    try:
        return normalize_tag(tag)
    except VersionError:
        return None


def _cached_release(ctx, tag):
    if not ctx.cache_dir:
        return None
    cached = read_cache(release_cache_path(ctx.cache_dir, ctx.repo, tag), ctx.api_url)
    if cached and isinstance(cached['data'], dict):
        return cached['data']
    return None


def _release_for_tag(ctx, tag):
    """(trimmed release, source) for a tag: cache first, then the API."""
    cached = _cached_release(ctx, tag)
    if cached is not None:
        return cached, 'cache'
    url = '%s/repos/%s/releases/tags/%s' % (ctx.api_url, ctx.repo, quote(tag, safe='+'))
    not_found = 'release %s not found in %s (%s); check %s%s' % (
        tag, ctx.repo, ctx.api_url, ctx.pin_var, ctx.private_hint())
    data, headers = _api_get(ctx, url, not_found)
    if not isinstance(data, dict):
        raise ctx.error('unexpected answer from %s: not a release' % http.redact_url(url))
    if data.get('draft'):
        raise ctx.error('release %s of %s is a draft; drafts cannot be installed, publish it first'
                        % (tag, ctx.repo))
    release = trim_release(data)
    if ctx.cache_dir:
        write_cache(release_cache_path(ctx.cache_dir, ctx.repo, tag), ctx.api_url, release, headers.get('etag'))
    return release, 'api'


def _store_tag(ctx, release):
    """Cache a release found through the list under its own tag, so a pin of it costs nothing."""
    if ctx.cache_dir:
        write_cache(release_cache_path(ctx.cache_dir, ctx.repo, normalize_tag(release['tag_name'])),
                    ctx.api_url, release)


def _list_page_cache(ctx, number, url):
    """(path, cached entry or None) of one page of the release list."""
    if not ctx.cache_dir:
        return None, None
    path = api_cache_path(ctx.cache_dir, ctx.repo, 'releases' if number == 1 else 'releases-%d' % number)
    cached = read_cache(path, ctx.api_url)
    page = cached and cached['data']
    # Only a page of the same URL in this layout revalidates (older caches held a bare list).
    if not (isinstance(page, dict) and page.get('url') == url and isinstance(page.get('releases'), list)):
        cached = None
    return path, cached


def _read_release_list(ctx):
    """Every listed release, trimmed: (releases, all pages from the cache, pages left unread).

    Follows Link rel="next" for at most MAX_RELEASE_PAGES pages; each page is
    cached with its ETag, so an unchanged page is answered 304.
    """
    url = '%s/repos/%s/releases?per_page=%d' % (ctx.api_url, ctx.repo, PER_PAGE)
    not_found = 'repository %s not found at %s; check its name%s' % (ctx.repo, ctx.api_url, ctx.private_hint())
    releases = []
    from_cache = True
    for number in range(1, MAX_RELEASE_PAGES + 1):
        path, cached = _list_page_cache(ctx, number, url)
        data, headers = _api_get(ctx, url, not_found, cached)
        if data is None:
            page = cached['data']
        else:
            if not isinstance(data, list):
                raise ctx.error('unexpected answer from %s: not a list of releases' % http.redact_url(url))
            page = {'url': url, 'next': next_page_url(headers.get('link'), url),
                    'releases': [trim_release(r) for r in data if isinstance(r, dict)]}
            write_cache(path, ctx.api_url, page, headers.get('etag'))
            from_cache = False
        releases.extend(r for r in page['releases'] if isinstance(r, dict))
        url = page.get('next')
        if not url:
            return releases, from_cache, False
        if not http.same_origin(url, ctx.api_url):
            # The token goes to the origin of the URL asked for: never to another host.
            raise ctx.error('the GitHub API at %s points the next page of the release list to another host (%s); '
                            'check stigmer_github_api_url' % (ctx.api_url, http.redact_url(url)))
    return releases, from_cache, True


def _highest_record_path(ctx):
    return api_cache_path(ctx.cache_dir, ctx.repo, 'highest')


def _remember_highest(ctx, releases):
    """Record the highest published release of this list read, for the redirect fast path."""
    if not ctx.cache_dir:
        return
    published = newest_first(releases, include_prereleases=False)
    if published:
        write_cache(_highest_record_path(ctx), ctx.api_url, {'tag': normalize_tag(published[0]['tag_name'])})


def _latest_from_redirect(ctx, platforms):
    """The cached release that answers 'latest' without the API, or None.

    Only when the redirect names the release the last list read found highest
    (so no higher one can be passed over) and that release, cached, qualifies.
    A cached release is trusted only for qualifying: one seen without assets
    may still be uploading them.
    """
    if not ctx.cache_dir or ctx.include_prereleases:
        return None
    record = read_cache(_highest_record_path(ctx), ctx.api_url)
    try:
        highest = normalize_tag(record['data'].get('tag'))
    except (TypeError, AttributeError, VersionError):
        return None
    release = _cached_release(ctx, highest)
    if release is None or shortfall(asset_name_set(release), highest, ctx.components, platforms) is not None:
        return None
    # Asked last: only now could its answer settle it.
    if _latest_tag_from_redirect(ctx) != highest:
        return None
    return release


def _latest_from_list(ctx, platforms):
    """(tag, release, source, skipped) of the newest release that serves ``platforms``."""
    releases, from_cache, truncated = _read_release_list(ctx)
    _remember_highest(ctx, releases)
    candidates = newest_first(releases, ctx.include_prereleases)
    if not candidates:
        raise ctx.error('%s has no published release at %s (drafts never count, pre-releases only when included); '
                        'pin %s%s' % (ctx.repo, ctx.api_url, ctx.pin_var, ctx.private_hint()))
    chosen, skipped = select_latest(candidates, ctx.components, platforms)
    if chosen is None:
        newest = newest_by_platform(candidates, ctx.components, platforms or SUPPORTED_PLATFORMS)
        raise ctx.error(no_release_message(ctx.repo, ctx.components, platforms, newest, skipped, ctx.pin_var,
                                           truncated))
    _store_tag(ctx, chosen)
    return normalize_tag(chosen['tag_name']), chosen, ('cache' if from_cache else 'api'), skipped


def _newest_for_missing(ctx, tag, release, platforms):
    """({platform: newest tag with a build, or None} for ``platforms`` the release lacks, warnings).

    The list is read only when a platform is missing. A failure there only
    costs the hint, not the run: the hosts the release serves can proceed.
    """
    offered = offered_platforms(asset_name_set(release), tag, ctx.components)
    missing = [p for p in platforms if p not in offered]
    if not missing:
        return {}, []
    try:
        releases = _read_release_list(ctx)[0]
    except ReleaseError as exc:
        return {}, ['cannot name the newest release with a build for %s: %s' % (', '.join(missing), exc)]
    return newest_by_platform(newest_first(releases, ctx.include_prereleases), ctx.components, missing), []


def _mirror_latest(ctx, mirror_url):
    url = '%s/latest' % base_url(mirror_url)
    shown = http.redact_url(url)
    try:
        status, dummy, body = ctx.get(url, headers=http.basic_auth_headers(ctx.url_username, ctx.url_password),
                                      max_bytes=MAX_MIRROR_LATEST_BYTES)
        text = (body or b'').decode('utf-8', 'replace')
    except http.HttpError as exc:
        if exc.status == 404:
            raise ctx.error("the mirror has no 'latest' file at %s; publish one whose first line is the tag "
                            "(for example v1.2.3), or pin %s" % (shown, ctx.pin_var))
        raise ctx.error('the mirror answered HTTP %s for %s (%s)' % (exc.status, shown, http.attempts_text(exc)))
    except http.ConnectError as exc:
        raise ctx.error('cannot reach the mirror at %s: %s (%s); check stigmer_mirror_url or configure a proxy'
                        % (shown, exc.reason, http.attempts_text(exc)))
    except http.FetchError as exc:
        raise ctx.error('%s (%s)' % (exc, http.attempts_text(exc)))
    try:
        return parse_mirror_latest(text)
    except VersionError as exc:
        raise ctx.error("the mirror's 'latest' file at %s does not start with a release tag: %s" % (shown, exc))


def _platform_list(platforms):
    wanted = []
    for platform in platforms or ():
        if platform not in SUPPORTED_PLATFORMS:
            raise ReleaseError('platform %r is not one of %s' % (platform, ', '.join(SUPPORTED_PLATFORMS)))
        if platform not in wanted:
            wanted.append(platform)
    return sorted(wanted)


def pin_prefixes(components):
    """Start of every asset name of ``components`` ('stigmer-', 'agent-runner-', 'temporal_cli_')."""
    return tuple(asset_names(c, 'v0.0.0', 'os', 'arch')[0].split('0.0.0')[0].rstrip('v') for c in components)


def unknown_pins(checksums, names, components):
    """Pinned asset names of ``components`` that are not among ``names``, sorted.

    Pins for other components (another release of the same play) are left
    for that release to check.
    """
    prefixes = pin_prefixes(components)
    return sorted(n for n in checksums or {} if n.startswith(prefixes) and n not in names)


def _check_pins(ctx, checksums, tag, names):
    unknown = unknown_pins(checksums, names, ctx.components)
    if unknown:
        have = sorted(n for n in names if n.startswith(pin_prefixes(ctx.components)))
        raise ctx.error('stigmer_checksums pins %s, which release %s of %s does not have; it has: %s'
                        % (', '.join(unknown), tag, ctx.repo, ', '.join(have) or 'no such assets'))


def _check_sources(ctx, urls):
    """Refuse credentials in URLs and plain http; return the warnings for insecure transport allowed."""
    warnings = []
    for what, url in urls:
        if not url:
            continue
        if http.split_credentials(url)[1:] != (None, None):
            raise ctx.error('%s carries user:password@, which would be shown in logs and results; pass the '
                            'credentials as url_username / url_password' % what)
        try:
            warning = http.check_transport(url, ctx.allow_insecure, what)
        except http.InsecureTransportError as exc:
            raise ctx.error('%s (allow_insecure)' % exc)
        if warning:
            warnings.append(warning)
    return warnings


def resolve_release(repo, version, github_url='https://github.com', api_url='https://api.github.com',
                    mirror_url=None, token=None, include_prereleases=False, cache_dir=None,
                    validate_certs=True, timeout=30, fetch=http.fetch, components=DEFAULT_COMPONENTS,
                    platforms=(), attempts=http.DEFAULT_ATTEMPTS, allow_insecure=False, url_username=None,
                    url_password=None, checksums=None, sleep=time.sleep, clock=time.monotonic, rng=random.random):
    """Resolve ``version`` ('latest', '1.2.3' or 'v1.2.3') of ``repo`` to a tag and its assets.

    'latest' is the newest release with the assets of every one of
    ``components`` for every one of ``platforms`` (for any one platform when
    empty). Raises ReleaseError (with advice) when it cannot, VersionError for
    a version that is not 'latest' nor a semantic version.

    Besides the release, the result holds ``skipped_releases`` (newer releases 'latest'
    passed over, [{tag, reason}]), ``newest_by_platform`` (for a pinned release,
    the newest tag with a build for each of ``platforms`` it lacks, or None),
    ``carries`` (what the release holds, for messages) and ``warnings``.

    ``checksums`` (pins by asset name) must name assets the release has, for
    the pins of ``components``. Every request is tried up to ``attempts``
    times; plain http off this machine needs ``allow_insecure``.
    """
    split_repo(repo)
    repo = repo.strip()
    components = list(components)
    platforms = _platform_list(platforms)
    try:
        token = http.clean_secret(token, 'the GitHub token')
        url_password = http.clean_secret(url_password, 'url_password')
    except ValueError as exc:
        raise ReleaseError('%s' % exc)
    ctx = _Context(repo, api_url, github_url, token, validate_certs, timeout, fetch, cache_dir, components,
                   include_prereleases, dict(attempts=attempts, allow_insecure=allow_insecure,
                                             url_username=url_username, url_password=url_password,
                                             sleep=sleep, clock=clock, rng=rng))
    wanted = (version or 'latest').strip() if isinstance(version, str) else version
    latest = isinstance(wanted, str) and wanted.lower() == 'latest'

    if mirror_url:
        # A mirror serves {tag}/{asset} and nothing else: no asset list to
        # read, and GitHub is never asked (it may be unreachable). The GitHub
        # release cache is skipped too: its URLs point at GitHub.
        warnings = _check_sources(ctx, [('stigmer_mirror_url', mirror_url)])
        tag = _mirror_latest(ctx, mirror_url) if latest else normalize_tag(wanted)
        names = set(asset_names(c, tag, *p.split('-'))[0] for c in components for p in SUPPORTED_PLATFORMS)
        _check_pins(ctx, checksums, tag, names)
        return _result(tag, is_prerelease(tag), 'mirror', None, '%s/%s/' % (base_url(mirror_url), tag),
                       components, warnings=warnings)

    warnings = _check_sources(ctx, [('stigmer_github_api_url', api_url), ('stigmer_github_url', github_url)])
    if cache_dir:
        try:
            ensure_private_dir(cache_dir)
        except (ArtifactError, OSError) as exc:
            raise ctx.error('%s' % exc)
    skipped, newest = [], {}
    if not latest:
        tag = normalize_tag(wanted)
        release, source = _release_for_tag(ctx, tag)
        newest, missing_warnings = _newest_for_missing(ctx, tag, release, platforms)
        warnings.extend(missing_warnings)
    else:
        release = _latest_from_redirect(ctx, platforms)
        if release is not None:
            tag, source = normalize_tag(release['tag_name']), 'cache'
        else:
            tag, release, source, skipped = _latest_from_list(ctx, platforms)
            if skipped:
                warnings.append(skipped_warning(repo, skipped, tag))

    _check_pins(ctx, checksums, tag, asset_name_set(release))
    return _result(tag, release.get('prerelease') or is_prerelease(tag), source, assets_from_release(release),
                   download_base(github_url, repo, tag), components, skipped, newest, warnings)


def _result(tag, prerelease, source, assets, base, components, skipped=(), newest=None, warnings=()):
    return {
        'tag': tag,
        'version': tag_to_version(tag),
        'prerelease': bool(prerelease),
        'source': source,
        'assets': assets,
        'download_base': base,
        # A mirror lists nothing, so what it carries is unknown.
        'carries': None if assets is None else carries(set(assets), tag, components),
        'skipped_releases': list(skipped),
        'newest_by_platform': dict(newest or {}),
        'warnings': list(warnings),
    }


def plan_artifacts(resolved, repo, components, platforms=SUPPORTED_PLATFORMS):
    """Per platform, what to download for ``components`` of a resolved release.

    A platform is offered only when the release lists every component's asset
    (the agent-runner must match the CLI). A mirror lists nothing, so every
    platform is planned and a missing asset shows up as a 404 naming its URL.
    """
    tag, assets, base = resolved['tag'], resolved['assets'], resolved['download_base']
    if assets is not None:
        platforms = offered_platforms(set(assets), tag, components, platforms)
    plan = {}
    for platform in platforms:
        os_name, arch = platform.split('-')
        items = []
        for component in components:
            name, checksum_file = asset_names(component, tag, os_name, arch)
            if assets is None:
                asset = {'download_url': base + name}
                checksum = {'download_url': base + checksum_file}
            else:
                asset = assets[name]
                checksum = assets.get(checksum_file) or {}
            items.append(dict(install_shape(component), **{
                'component': component,
                'name': name,
                'repo': repo,
                'release': tag,
                'archive': is_archive(component),
                'url': asset['download_url'],
                'api_url': asset.get('api_url'),
                'digest': asset.get('digest'),
                'size': asset.get('size'),
                'checksum_url': checksum.get('download_url'),
                'checksum_api_url': checksum.get('api_url'),
            }))
        plan[platform] = items
    return plan
