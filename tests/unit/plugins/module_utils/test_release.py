# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""resolve_release with recorded GitHub answers (fake fetch) and once against a real local server."""

import functools
import io
import json
import os

from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils import _release as release
from ansible_collections.stigmer.runtime.plugins.module_utils._release import (
    ReleaseError,
    carries,
    newest_by_platform,
    newest_first,
    next_page_url,
    resolve_release,
    select_latest,
    shortfall,
    skipped_warning,
    tag_from_latest_location,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.local_http import LocalServer

TOKEN = 'fake-token-SECRETtoken0123456789abcdefXYZ'
GH = 'https://github.com'
API = 'https://api.github.com'
REPO = 'stigmer/stigmer'
HEX_A = 'a' * 64
HEX_B = 'b' * 64
ALL4 = ('darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64')
UPSTREAM = ('darwin-amd64', 'darwin-arm64', 'linux-amd64')
CLI = ('stigmer', 'agent-runner')


def build_names(tag, platforms):
    names = []
    for platform in platforms:
        names += ['stigmer-%s-%s.tar.gz' % (tag, platform), 'stigmer-%s-%s.tar.gz.sha256' % (tag, platform),
                  'agent-runner-%s-%s' % (tag, platform), 'agent-runner-%s-%s.sha256' % (tag, platform)]
    return names


def release_json(tag, draft=False, prerelease=False, platforms=('linux-amd64', 'darwin-arm64'), names=None,
                 published_at='2026-01-01T00:00:00Z'):
    """A release as the API returns it; ``names`` replaces the CLI and agent-runner builds of ``platforms``."""
    assets = []
    for number, name in enumerate(build_names(tag, platforms) if names is None else names):
        asset = {
            'name': name,
            'size': 1234,
            'url': '%s/repos/%s/releases/assets/%d' % (API, REPO, 100 + number),
            'browser_download_url': '%s/%s/releases/download/%s/%s' % (GH, REPO, tag, name),
            'content_type': 'application/octet-stream',
            'uploader': {'login': 'bot'},
        }
        if not name.endswith('.sha256'):
            asset['digest'] = 'sha256:' + HEX_A
        assets.append(asset)
    return {'tag_name': tag, 'name': tag, 'draft': draft, 'prerelease': prerelease, 'assets': assets,
            'published_at': None if draft else published_at, 'body': 'notes'}


def catalogue():
    """What upstream looks like, newest created first, as /releases lists it (and as the stand-in serves it)."""
    return [
        release_json('v3.27.2', names=[], published_at='2026-03-02T00:00:00Z'),
        release_json('v3.27.1', names=['sbom.spdx.json'], published_at='2026-03-01T00:00:00Z'),
        release_json('v1.0.0', draft=True, platforms=ALL4),
        release_json('v0.2.0-rc.1', prerelease=True, platforms=ALL4, published_at='2026-02-10T00:00:00Z'),
        release_json('v0.1.0', platforms=ALL4, published_at='2026-02-01T00:00:00Z'),
        release_json('v0.0.7', platforms=ALL4, published_at='2026-01-07T00:00:00Z'),
        release_json('v0.0.6', platforms=UPSTREAM, published_at='2026-01-06T00:00:00Z'),
        release_json('v0.0.5', platforms=UPSTREAM, published_at='2026-01-05T00:00:00Z'),
    ]


def trimmed(releases):
    return [release.trim_release(r) for r in releases]


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """Every resolve_release of this module records its backoff instead of waiting."""
    slept = []
    monkeypatch.setitem(globals(), 'resolve_release', functools.partial(release.resolve_release, sleep=slept.append))
    return slept


class Answer(object):
    def __init__(self, status=200, body=b'', headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = dict((k.lower(), v) for k, v in (headers or {}).items())


class FakeFetch(object):
    """Replays recorded answers by URL and records every call, like http.fetch would see it."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.calls = []

    def __call__(self, url, headers=None, token=None, validate_certs=True, timeout=30, method='GET',
                 follow_redirects=True, max_redirects=5, **limits):
        self.calls.append({'url': url, 'headers': dict(headers or {}), 'token': token,
                           'follow_redirects': follow_redirects})
        answer = self.answers.get(url)
        if answer is None:
            raise http.HttpError(404, {}, url, '{"message": "Not Found"}')
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            answer = answer(headers or {})
        if answer.status >= 400:
            raise http.HttpError(answer.status, answer.headers, url, answer.body.decode())
        if answer.status in http.REDIRECT_STATUSES and follow_redirects:
            raise AssertionError('the fake does not follow redirects')
        return http.Response(io.BytesIO(answer.body), answer.status, answer.headers, url)

    @property
    def urls(self):
        return [c['url'] for c in self.calls]


def latest_redirect(tag):
    return Answer(302, headers={'Location': '%s/%s/releases/tag/%s' % (GH, REPO, tag)})


def revalidated(etag, body, headers=None):
    """An API answer that honours If-None-Match like GitHub: 304 when the ETag matches."""
    def answer(request_headers):
        if request_headers.get('If-None-Match') == etag:
            return Answer(304, b'', {'ETag': etag})
        return Answer(200, body, dict(headers or {}, ETag=etag))
    return answer


REDIRECT_URL = '%s/%s/releases/latest' % (GH, REPO)
API_LIST = '%s/repos/%s/releases?per_page=100' % (API, REPO)
# GitHub's Link header names the repository by id.
API_PAGE2 = '%s/repositories/4242/releases?per_page=100&page=2' % API


def api_tag(tag):
    return '%s/repos/%s/releases/tags/%s' % (API, REPO, tag)


def link_next(url):
    return {'Link': '<%s>; rel="next", <%s>; rel="last"' % (url, url)}


# ---------------------------------------------------------------- pure helpers


def test_tag_from_latest_location():
    assert tag_from_latest_location('https://github.com/o/r/releases/tag/v1.2.3') == 'v1.2.3'
    assert tag_from_latest_location('/o/r/releases/tag/v1.2.3-rc.1') == 'v1.2.3-rc.1'
    assert tag_from_latest_location('https://github.com/o/r/releases') is None
    assert tag_from_latest_location(None) is None


def test_newest_first_orders_by_semver_then_publication_and_leaves_out_drafts():
    releases = [{'tag_name': t, 'draft': d, 'prerelease': p, 'published_at': at} for t, d, p, at in (
        ('v1.9.0', False, False, '2026-01-01T00:00:00Z'),
        ('v1.10.0-rc.1', False, True, '2026-01-02T00:00:00Z'),
        ('v2.0.0', True, False, None),
        ('v1.10.0-rc.2', False, False, '2026-01-03T00:00:00Z'),  # pre-release by its tag alone
        ('nightly', False, True, '2026-01-04T00:00:00Z'),
        ('v1.9.0+build.2', False, False, '2026-01-05T00:00:00Z'),  # same precedence, published later
    )]
    assert [r['tag_name'] for r in newest_first(releases, include_prereleases=True)] == [
        'v1.10.0-rc.2', 'v1.10.0-rc.1', 'v1.9.0+build.2', 'v1.9.0']
    assert [r['tag_name'] for r in newest_first(releases)] == ['v1.9.0+build.2', 'v1.9.0']
    assert newest_first([]) == []


@pytest.mark.parametrize('header, expected', [
    ('<https://api.github.com/repositories/1/releases?per_page=100&page=2>; rel="next", '
     '<https://api.github.com/repositories/1/releases?per_page=100&page=5>; rel="last"',
     'https://api.github.com/repositories/1/releases?per_page=100&page=2'),
    ('<https://a.example/r?page=1>; rel="prev", <https://a.example/r?page=3>; rel=next',
     'https://a.example/r?page=3'),
    ('</repos/o/r/releases?page=2>; rel="next last"', 'https://api.github.com/repos/o/r/releases?page=2'),
    ('<https://a.example/r?page=4>; rel="last"', None),
    ('', None),
    (None, None),
])
def test_next_page_url(header, expected):
    assert next_page_url(header, API_LIST) == expected


@pytest.mark.parametrize('names, platforms, reason', [
    ([], ('linux-amd64',), 'no assets'),
    (['sbom.spdx.json', 'stigmer-v1.0.0-linux-amd64.tar.gz.sha256'], (), 'no stigmer CLI or agent-runner assets'),
    (build_names('v1.0.0', UPSTREAM), ('linux-amd64', 'linux-arm64'), 'no build for linux-arm64'),
    (build_names('v1.0.0', ('darwin-arm64',)), ('linux-amd64', 'linux-arm64'), 'no build for linux-amd64, linux-arm64'),
    # A CLI without its agent-runner is no build.
    (['stigmer-v1.0.0-linux-amd64.tar.gz'], (), 'no complete stigmer CLI and agent-runner build for any platform'),
    (['stigmer-v1.0.0-linux-amd64.tar.gz'], ('linux-amd64',), 'no build for linux-amd64'),
    (build_names('v1.0.0', ('darwin-arm64',)), (), None),
    (build_names('v1.0.0', UPSTREAM), ('darwin-arm64', 'linux-amd64'), None),
])
def test_shortfall(names, platforms, reason):
    assert shortfall(set(names), 'v1.0.0', CLI, platforms) == reason


def test_shortfall_and_carries_for_temporal():
    names = {'temporal_cli_1.5.1_linux_amd64.tar.gz', 'temporal_cli_1.5.1_darwin_arm64.tar.gz', 'checksums.txt'}
    assert shortfall(names, 'v1.5.1', ['temporal'], ['linux-amd64']) is None
    assert shortfall(names, 'v1.5.1', ['temporal'], ['linux-arm64']) == 'no build for linux-arm64'
    assert shortfall({'checksums.txt'}, 'v1.5.1', ['temporal'], ['linux-arm64']) == 'no temporal CLI assets'
    assert carries(names, 'v1.5.1', ['temporal']) == 'builds for darwin-arm64, linux-amd64'


def test_carries_is_worded_for_a_message_even_when_nothing_is_there():
    assert carries(set(build_names('v1.0.0', UPSTREAM)), 'v1.0.0', CLI) == \
        'builds for darwin-amd64, darwin-arm64, linux-amd64'
    assert carries(set(), 'v3.27.2', CLI) == 'no assets'
    assert carries({'sbom.spdx.json'}, 'v3.27.1', CLI) == 'no stigmer CLI or agent-runner assets'


def test_select_latest_reports_every_release_it_passes_over():
    candidates = newest_first(trimmed(catalogue()))
    chosen, skipped = select_latest(candidates, CLI, ['linux-amd64'])
    assert chosen['tag_name'] == 'v0.1.0'
    assert skipped == [{'tag': 'v3.27.2', 'reason': 'no assets'},
                       {'tag': 'v3.27.1', 'reason': 'no stigmer CLI or agent-runner assets'}]
    assert select_latest([], CLI, ['linux-amd64']) == (None, [])


def test_newest_by_platform():
    candidates = newest_first(trimmed(catalogue()))
    assert newest_by_platform(candidates, CLI, ['linux-arm64', 'darwin-amd64']) == {
        'linux-arm64': 'v0.1.0', 'darwin-amd64': 'v0.1.0'}
    old = newest_first(trimmed(catalogue()[6:]))
    assert newest_by_platform(old, CLI, ['linux-arm64', 'linux-amd64']) == {'linux-arm64': None, 'linux-amd64': 'v0.0.6'}
    assert newest_by_platform(candidates, CLI, []) == {}


def test_skipped_warning():
    skipped = [{'tag': 'v3.27.2', 'reason': 'no assets'},
               {'tag': 'v3.27.1', 'reason': 'no stigmer CLI or agent-runner assets'}]
    assert skipped_warning(REPO, skipped, 'v0.1.0') == (
        'latest: skipped v3.27.2 (no assets), v3.27.1 (no stigmer CLI or agent-runner assets); '
        'using v0.1.0 of stigmer/stigmer')
    many = [{'tag': 'v9.0.%d' % n, 'reason': 'no assets'} for n in range(8, 0, -1)]
    assert skipped_warning(REPO, many, 'v1.0.0') == (
        'latest: skipped v9.0.8 (no assets), v9.0.7 (no assets), v9.0.6 (no assets), v9.0.5 (no assets), '
        'v9.0.4 (no assets) and 3 more; using v1.0.0 of stigmer/stigmer')
    assert skipped_warning(REPO, [], 'v1.0.0') is None


# ---------------------------------------------------------------- latest


def test_latest_skips_releases_without_the_cli_and_says_so():
    fetch = FakeFetch({API_LIST: Answer(200, catalogue(), {'ETag': '"l1"'})})
    result = resolve_release(REPO, 'latest', token=TOKEN, platforms=['linux-amd64'], fetch=fetch)

    # No cache: the redirect could not settle anything, so only the list is asked.
    assert fetch.urls == [API_LIST]
    call = fetch.calls[0]
    assert call['token'] == TOKEN
    assert call['headers']['Accept'] == 'application/vnd.github+json'
    assert call['headers']['X-GitHub-Api-Version'] == '2022-11-28'

    assert result['tag'] == 'v0.1.0' and result['version'] == '0.1.0'
    assert result['prerelease'] is False and result['source'] == 'api'
    assert result['skipped_releases'] == [{'tag': 'v3.27.2', 'reason': 'no assets'},
                                          {'tag': 'v3.27.1', 'reason': 'no stigmer CLI or agent-runner assets'}]
    assert result['warnings'] == ['latest: skipped v3.27.2 (no assets), v3.27.1 (no stigmer CLI or agent-runner '
                                  'assets); using v0.1.0 of stigmer/stigmer']
    assert result['newest_by_platform'] == {}
    assert result['carries'] == 'builds for darwin-amd64, darwin-arm64, linux-amd64, linux-arm64'
    assert result['download_base'] == 'https://github.com/stigmer/stigmer/releases/download/v0.1.0/'
    asset = result['assets']['stigmer-v0.1.0-linux-amd64.tar.gz']
    assert asset == {
        'download_url': 'https://github.com/stigmer/stigmer/releases/download/v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz',
        'api_url': 'https://api.github.com/repos/stigmer/stigmer/releases/assets/108',
        'digest': HEX_A,
        'size': 1234,
    }
    assert result['assets']['stigmer-v0.1.0-linux-amd64.tar.gz.sha256']['digest'] is None


def test_latest_that_qualifies_at_once_skips_nothing():
    fetch = FakeFetch({API_LIST: Answer(200, catalogue()[4:])})
    result = resolve_release(REPO, 'latest', platforms=['linux-arm64'], fetch=fetch)
    assert result['tag'] == 'v0.1.0'
    assert result['skipped_releases'] == [] and result['warnings'] == []


def test_latest_for_a_mixed_play_takes_an_older_release_that_has_every_platform():
    releases = [release_json('v0.3.0', platforms=UPSTREAM, published_at='2026-02-03T00:00:00Z'),
                release_json('v0.2.1', platforms=ALL4, published_at='2026-02-02T00:00:00Z'),
                release_json('v0.2.0', platforms=ALL4, published_at='2026-02-01T00:00:00Z')]
    fetch = FakeFetch({API_LIST: Answer(200, releases)})
    result = resolve_release(REPO, 'latest', platforms=['linux-arm64', 'linux-amd64', 'linux-amd64'], fetch=fetch)
    assert result['tag'] == 'v0.2.1'
    assert result['skipped_releases'] == [{'tag': 'v0.3.0', 'reason': 'no build for linux-arm64'}]

    # Without linux-arm64 hosts the newest one serves.
    fetch = FakeFetch({API_LIST: Answer(200, releases)})
    assert resolve_release(REPO, 'latest', platforms=['linux-amd64'], fetch=fetch)['tag'] == 'v0.3.0'


def test_latest_without_platforms_takes_a_release_with_a_build_for_any_platform():
    releases = [release_json('v2.0.0', names=['stigmer-v2.0.0-linux-amd64.tar.gz']),
                release_json('v1.0.0', platforms=('darwin-arm64',))]
    result = resolve_release(REPO, 'latest', fetch=FakeFetch({API_LIST: Answer(200, releases)}))
    assert result['tag'] == 'v1.0.0'
    assert result['skipped_releases'] == [{'tag': 'v2.0.0',
                                           'reason': 'no complete stigmer CLI and agent-runner build for any platform'}]


def test_latest_never_takes_a_draft_and_takes_pre_releases_only_when_included():
    answers = {API_LIST: Answer(200, catalogue())}
    result = resolve_release(REPO, 'latest', include_prereleases=True, platforms=['linux-arm64'],
                             fetch=FakeFetch(answers))
    assert result['tag'] == 'v0.2.0-rc.1' and result['prerelease'] is True
    assert [s['tag'] for s in result['skipped_releases']] == ['v3.27.2', 'v3.27.1']  # the draft is not a candidate at all

    result = resolve_release(REPO, 'latest', platforms=['linux-arm64'], fetch=FakeFetch(answers))
    assert result['tag'] == 'v0.1.0'


def test_latest_when_no_release_qualifies_names_the_newest_per_platform():
    releases = [release_json('v3.27.2', names=[]), release_json('v3.27.1', names=['sbom.spdx.json']),
                release_json('v0.0.6', platforms=UPSTREAM), release_json('v0.0.5', platforms=UPSTREAM)]
    fetch = FakeFetch({API_LIST: Answer(200, releases)})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', platforms=['linux-amd64', 'linux-arm64'], token=TOKEN, fetch=fetch)
    assert str(info.value) == (
        'latest: no published release of stigmer/stigmer carries stigmer CLI and agent-runner builds for every '
        'platform of the play (linux-amd64, linux-arm64). Newest release with a build, per platform: '
        'linux-amd64 v0.0.6, linux-arm64 none. Pin stigmer_version to a release that has a build for your hosts, '
        'or leave the hosts of a platform that it lacks out of this play. Skipped: v3.27.2 (no assets), '
        'v3.27.1 (no stigmer CLI or agent-runner assets), v0.0.6 (no build for linux-arm64), '
        'v0.0.5 (no build for linux-arm64).')


def test_latest_when_no_release_carries_anything():
    releases = [release_json('v3.27.2', names=[]), release_json('v3.27.1', names=['sbom.spdx.json'])]
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', fetch=FakeFetch({API_LIST: Answer(200, releases)}))
    message = str(info.value)
    assert 'carries stigmer CLI and agent-runner builds for any platform.' in message
    assert ('per platform: darwin-amd64 none, darwin-arm64 none, linux-amd64 none, linux-arm64 none.'
            in message)


def test_latest_of_temporal_names_its_own_pin_variable():
    releases = [{'tag_name': 'v1.5.1', 'draft': False, 'prerelease': False,
                 'assets': [{'name': 'checksums.txt'}]}]
    with pytest.raises(ReleaseError) as info:
        resolve_release('temporalio/cli', 'latest', components=['temporal'], platforms=['linux-amd64'],
                        fetch=FakeFetch({'%s/repos/temporalio/cli/releases?per_page=100' % API: Answer(200, releases)}))
    assert 'carries temporal CLI builds' in str(info.value)
    assert 'Pin stigmer_temporal_version' in str(info.value)
    assert 'v1.5.1 (no temporal CLI assets)' in str(info.value)


def test_no_release_at_all():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', fetch=FakeFetch({API_LIST: Answer(200, [release_json('v1.0.0', draft=True)])}))
    assert 'stigmer/stigmer has no published release at https://api.github.com' in str(info.value)


def test_unknown_platform_is_refused():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', platforms=['windows-amd64'], fetch=FakeFetch())
    assert "'windows-amd64'" in str(info.value)


# ---------------------------------------------------------------- the release list: pages and cache


def test_the_list_follows_link_next_across_pages():
    page1 = catalogue()[:2]
    page2 = catalogue()[2:]
    fetch = FakeFetch({API_LIST: Answer(200, page1, link_next(API_PAGE2)),
                       API_PAGE2: Answer(200, page2)})
    result = resolve_release(REPO, 'latest', token=TOKEN, platforms=['linux-amd64'], fetch=fetch)
    assert fetch.urls == [API_LIST, API_PAGE2]
    assert [c['token'] for c in fetch.calls] == [TOKEN, TOKEN]
    assert result['tag'] == 'v0.1.0'
    assert [s['tag'] for s in result['skipped_releases']] == ['v3.27.2', 'v3.27.1']


def test_the_list_reads_a_bounded_number_of_pages(monkeypatch):
    monkeypatch.setattr(release, 'MAX_RELEASE_PAGES', 2)
    page3 = '%s/repositories/4242/releases?per_page=100&page=3' % API
    fetch = FakeFetch({API_LIST: Answer(200, [release_json('v3.0.0', names=[])], link_next(API_PAGE2)),
                       API_PAGE2: Answer(200, [release_json('v2.0.0', names=[])], link_next(page3)),
                       page3: Answer(200, catalogue())})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', platforms=['linux-amd64'], fetch=fetch)
    assert fetch.urls == [API_LIST, API_PAGE2]
    assert 'Only the 200 most recently created releases were read.' in str(info.value)


def test_the_list_never_follows_a_next_page_on_another_host():
    evil = 'https://evil.example/repos/stigmer/stigmer/releases?page=2'
    fetch = FakeFetch({API_LIST: Answer(200, [release_json('v3.0.0', names=[])], link_next(evil))})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', token=TOKEN, fetch=fetch)
    assert fetch.urls == [API_LIST]
    assert 'evil.example' in str(info.value) and TOKEN not in str(info.value)


def test_list_pages_are_revalidated_with_their_etags(tmp_path):
    answers = {API_LIST: revalidated('W/"p1"', catalogue()[:2], link_next(API_PAGE2)),
               API_PAGE2: revalidated('W/"p2"', catalogue()[2:])}
    first = FakeFetch(answers)
    result = resolve_release(REPO, 'latest', platforms=['linux-amd64'], cache_dir=str(tmp_path), fetch=first)
    assert result['source'] == 'api' and result['tag'] == 'v0.1.0'
    assert ['If-None-Match' in c['headers'] for c in first.calls] == [False, False]

    second = FakeFetch(answers)
    again = resolve_release(REPO, 'latest', platforms=['linux-amd64'], cache_dir=str(tmp_path), fetch=second)
    # The highest release (v3.27.2) was never cached, so the redirect could not settle it and is not asked.
    assert second.urls == [API_LIST, API_PAGE2]
    assert [c['headers'].get('If-None-Match') for c in second.calls] == ['W/"p1"', 'W/"p2"']
    assert again['source'] == 'cache'
    assert again['tag'] == 'v0.1.0' and again['skipped_releases'] == result['skipped_releases']
    assert again['assets'] == result['assets']

    # The chosen release is cached under its tag: pinning it costs nothing.
    pinned = FakeFetch()
    assert resolve_release(REPO, '0.1.0', cache_dir=str(tmp_path), fetch=pinned)['source'] == 'cache'
    assert pinned.calls == []


def test_a_list_cached_in_the_old_layout_is_not_revalidated(tmp_path):
    path = tmp_path / 'stigmer' / 'stigmer' / '_api' / 'releases.json'
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({'schema': 1, 'api_url': API, 'etag': 'W/"old"', 'data': trimmed(catalogue())}))
    fetch = FakeFetch({API_LIST: revalidated('W/"old"', catalogue())})
    result = resolve_release(REPO, 'latest', cache_dir=str(tmp_path), fetch=fetch)
    assert 'If-None-Match' not in fetch.calls[-1]['headers']
    assert result['tag'] == 'v0.1.0' and result['source'] == 'api'


# ---------------------------------------------------------------- the redirect fast path


def warm_cache(tmp_path, releases):
    fetch = FakeFetch({API_LIST: Answer(200, releases)})
    return resolve_release(REPO, 'latest', platforms=['linux-amd64'], cache_dir=str(tmp_path), fetch=fetch)


def test_redirect_to_the_recorded_highest_release_answers_without_the_api(tmp_path):
    releases = [release_json('v1.1.0', platforms=UPSTREAM), release_json('v1.0.0', platforms=UPSTREAM)]
    assert warm_cache(tmp_path, releases)['tag'] == 'v1.1.0'

    fetch = FakeFetch({REDIRECT_URL: latest_redirect('v1.1.0')})
    result = resolve_release(REPO, 'latest', token=TOKEN, platforms=['darwin-arm64', 'linux-amd64'],
                             cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [REDIRECT_URL]
    assert fetch.calls[0]['token'] is None and fetch.calls[0]['follow_redirects'] is False
    assert result['tag'] == 'v1.1.0' and result['source'] == 'cache' and result['skipped_releases'] == []
    assert result['assets']['stigmer-v1.1.0-linux-amd64.tar.gz']['digest'] == HEX_A


@pytest.mark.parametrize('redirect', [
    latest_redirect('v1.2.0'),  # a newer release: only the list knows whether it qualifies
    None,  # 404: not answered
    Answer(302, headers={'Location': '%s/%s/releases' % (GH, REPO)}),  # names no tag
    Answer(200, b'<html>'),  # a proxy that followed it for us
    http.ConnectError(REDIRECT_URL, 'Connection refused'),
])
def test_anything_but_the_recorded_highest_release_goes_to_the_list(tmp_path, redirect):
    releases = [release_json('v1.1.0', platforms=UPSTREAM)]
    warm_cache(tmp_path, releases)
    newer = [release_json('v1.2.0', platforms=UPSTREAM)] + releases
    answers = {API_LIST: Answer(200, newer)}
    if redirect is not None:
        answers[REDIRECT_URL] = redirect
    fetch = FakeFetch(answers)
    result = resolve_release(REPO, 'latest', platforms=['linux-amd64'], cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [REDIRECT_URL, API_LIST]
    assert result['tag'] == 'v1.2.0'


def test_redirect_to_a_cached_release_the_play_cannot_use_goes_to_the_list(tmp_path):
    releases = [release_json('v1.1.0', platforms=UPSTREAM)]
    warm_cache(tmp_path, releases)
    fetch = FakeFetch({REDIRECT_URL: latest_redirect('v1.1.0'), API_LIST: Answer(200, releases)})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', platforms=['linux-arm64'], cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [API_LIST]  # the redirect could not have settled it: not asked
    assert 'linux-arm64 none' in str(info.value)


def test_redirect_to_a_lower_release_cached_by_a_pin_is_not_trusted(tmp_path):
    # GitHub marks a backport v1.0.1 latest; v1.1.0 is higher and qualifies.
    releases = [release_json('v1.0.1', platforms=UPSTREAM, published_at='2026-02-02T00:00:00Z'),
                release_json('v1.1.0', platforms=UPSTREAM, published_at='2026-02-01T00:00:00Z')]
    assert warm_cache(tmp_path, releases)['tag'] == 'v1.1.0'
    resolve_release(REPO, 'v1.0.1', cache_dir=str(tmp_path),
                    fetch=FakeFetch({api_tag('v1.0.1'): Answer(200, releases[0])}))
    fetch = FakeFetch({REDIRECT_URL: latest_redirect('v1.0.1'), API_LIST: Answer(200, releases)})
    result = resolve_release(REPO, 'latest', platforms=['linux-amd64'], cache_dir=str(tmp_path), fetch=fetch)
    assert result['tag'] == 'v1.1.0'
    assert fetch.urls == [REDIRECT_URL, API_LIST]


def test_include_prereleases_never_asks_the_redirect(tmp_path):
    warm_cache(tmp_path, catalogue())
    fetch = FakeFetch({API_LIST: Answer(200, catalogue())})
    result = resolve_release(REPO, 'latest', include_prereleases=True, cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [API_LIST]  # the redirect never names a pre-release
    assert result['tag'] == 'v0.2.0-rc.1'


# ---------------------------------------------------------------- pinned: a platform it lacks


def test_pinned_release_lacking_a_platform_names_the_newest_that_has_it(tmp_path):
    fetch = FakeFetch({api_tag('v0.0.6'): Answer(200, catalogue()[6]), API_LIST: Answer(200, catalogue())})
    result = resolve_release(REPO, 'v0.0.6', platforms=['linux-amd64', 'linux-arm64'], cache_dir=str(tmp_path),
                             fetch=fetch)
    assert fetch.urls == [api_tag('v0.0.6'), API_LIST]
    assert result['tag'] == 'v0.0.6'
    assert result['newest_by_platform'] == {'linux-arm64': 'v0.1.0'}
    assert result['carries'] == 'builds for darwin-amd64, darwin-arm64, linux-amd64'
    assert result['skipped_releases'] == [] and result['warnings'] == []

    with_rc = resolve_release(REPO, 'v0.0.6', platforms=['linux-arm64'], include_prereleases=True,
                              cache_dir=str(tmp_path), fetch=FakeFetch({API_LIST: Answer(200, catalogue())}))
    assert with_rc['newest_by_platform'] == {'linux-arm64': 'v0.2.0-rc.1'}


def test_pinned_release_that_serves_the_play_reads_no_list(tmp_path):
    fetch = FakeFetch({api_tag('v0.0.6'): Answer(200, catalogue()[6])})
    result = resolve_release(REPO, 'v0.0.6', platforms=['linux-amd64', 'darwin-arm64'], cache_dir=str(tmp_path),
                             fetch=fetch)
    assert fetch.urls == [api_tag('v0.0.6')]
    assert result['newest_by_platform'] == {}


def test_pinned_release_without_assets_says_what_it_carries():
    fetch = FakeFetch({api_tag('v3.27.2'): Answer(200, catalogue()[0]), API_LIST: Answer(200, catalogue())})
    result = resolve_release(REPO, '3.27.2', platforms=['linux-amd64', 'linux-arm64'], fetch=fetch)
    assert result['assets'] == {} and result['carries'] == 'no assets'
    assert result['newest_by_platform'] == {'linux-amd64': 'v0.1.0', 'linux-arm64': 'v0.1.0'}


def test_pinned_release_lacking_a_platform_when_no_release_has_it():
    fetch = FakeFetch({api_tag('v0.0.6'): Answer(200, catalogue()[6]), API_LIST: Answer(200, catalogue()[6:])})
    result = resolve_release(REPO, 'v0.0.6', platforms=['linux-arm64'], fetch=fetch)
    assert result['newest_by_platform'] == {'linux-arm64': None}


def test_pinned_release_lacking_a_platform_survives_a_list_that_cannot_be_read():
    headers = {'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '4102444800'}
    fetch = FakeFetch({api_tag('v0.0.6'): Answer(200, catalogue()[6]),
                       API_LIST: Answer(403, {'message': 'API rate limit exceeded'}, headers)})
    result = resolve_release(REPO, 'v0.0.6', platforms=['linux-arm64'], fetch=fetch)
    assert result['tag'] == 'v0.0.6'
    assert result['newest_by_platform'] == {}
    (warning,) = result['warnings']
    assert warning.startswith('cannot name the newest release with a build for linux-arm64: '
                              'GitHub API rate limit exceeded')


# ---------------------------------------------------------------- pinned and cache


@pytest.mark.parametrize('version', ['1.1.0', 'v1.1.0', ' v1.1.0 '])
def test_pinned_version_reads_the_tag_and_fills_the_cache(tmp_path, version):
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(200, release_json('v1.1.0'), {'ETag': '"t1"'})})
    result = resolve_release(REPO, version, cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [api_tag('v1.1.0')]
    assert result['tag'] == 'v1.1.0' and result['source'] == 'api'

    path = tmp_path / 'stigmer' / 'stigmer' / 'v1.1.0' / 'release.json'
    entry = json.loads(path.read_text())
    assert entry['etag'] == '"t1"'
    assert entry['api_url'] == API
    assert entry['data']['tag_name'] == 'v1.1.0'
    assert 'body' not in entry['data']  # trimmed
    # Atomic write: no temp file left beside it.
    assert sorted(os.listdir(str(path.parent))) == ['release.json']

    again = FakeFetch()
    cached = resolve_release(REPO, version, cache_dir=str(tmp_path), fetch=again)
    assert again.calls == []
    assert cached['source'] == 'cache'
    assert cached['assets'] == result['assets']
    assert cached['download_base'] == result['download_base']


def test_cache_from_another_api_server_is_not_used(tmp_path):
    resolve_release(REPO, 'v1.1.0', cache_dir=str(tmp_path),
                    fetch=FakeFetch({api_tag('v1.1.0'): Answer(200, release_json('v1.1.0'))}))
    ghe_api = 'https://ghe.example/api/v3'
    ghe_url = '%s/repos/%s/releases/tags/v1.1.0' % (ghe_api, REPO)
    fetch = FakeFetch({ghe_url: Answer(200, release_json('v1.1.0'))})
    result = resolve_release(REPO, 'v1.1.0', api_url=ghe_api, github_url='https://ghe.example',
                             cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [ghe_url]
    assert result['download_base'] == 'https://ghe.example/stigmer/stigmer/releases/download/v1.1.0/'


def test_corrupt_cache_is_ignored(tmp_path):
    path = tmp_path / 'stigmer' / 'stigmer' / 'v1.1.0' / 'release.json'
    path.parent.mkdir(parents=True)
    path.write_text('{not json')
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(200, release_json('v1.1.0'))})
    assert resolve_release(REPO, 'v1.1.0', cache_dir=str(tmp_path), fetch=fetch)['source'] == 'api'
    assert json.loads(path.read_text())['data']['tag_name'] == 'v1.1.0'


def test_pinned_not_found():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '9.9.9', token=TOKEN, fetch=FakeFetch())
    assert str(info.value) == ('release v9.9.9 not found in stigmer/stigmer (https://api.github.com); '
                               'check stigmer_version (1 attempt)')


def test_pinned_not_found_without_token_mentions_private_repositories():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '9.9.9', fetch=FakeFetch())
    assert 'private' in str(info.value)


def test_pinned_draft_is_refused():
    fetch = FakeFetch({api_tag('v1.3.0'): Answer(200, release_json('v1.3.0', draft=True))})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.3.0', token=TOKEN, fetch=fetch)
    assert 'draft' in str(info.value)


def test_pinned_prerelease_is_allowed():
    fetch = FakeFetch({api_tag('v1.3.0-rc.1'): Answer(200, release_json('v1.3.0-rc.1', prerelease=True))})
    result = resolve_release(REPO, '1.3.0-rc.1', fetch=fetch)
    assert result['prerelease'] is True and result['version'] == '1.3.0-rc.1'


def test_bad_version_and_repo():
    with pytest.raises(VersionError):
        resolve_release(REPO, 'one-point-two', fetch=FakeFetch())
    with pytest.raises(ReleaseError):
        resolve_release('../etc', 'v1.0.0', fetch=FakeFetch())
    with pytest.raises(ReleaseError):
        resolve_release('stigmer/..', 'v1.0.0', fetch=FakeFetch())


# ---------------------------------------------------------------- mirror


def test_mirror_pinned_makes_no_request(tmp_path):
    fetch = FakeFetch()
    result = resolve_release(REPO, '1.2.3', mirror_url='https://mirror.example/stigmer/', token=TOKEN,
                             cache_dir=str(tmp_path), platforms=['linux-arm64'], fetch=fetch)
    assert fetch.calls == []
    assert result == {'tag': 'v1.2.3', 'version': '1.2.3', 'prerelease': False, 'source': 'mirror',
                      'assets': None, 'download_base': 'https://mirror.example/stigmer/v1.2.3/',
                      'carries': None, 'skipped_releases': [], 'newest_by_platform': {}, 'warnings': []}


def test_mirror_latest_reads_the_latest_file_without_the_token():
    fetch = FakeFetch({'https://mirror.example/stigmer/latest': Answer(200, b'v1.5.0-rc.2\nold: v1.4.0\n')})
    result = resolve_release(REPO, 'latest', mirror_url='https://mirror.example/stigmer', token=TOKEN, fetch=fetch)
    assert fetch.urls == ['https://mirror.example/stigmer/latest']
    assert fetch.calls[0]['token'] is None
    assert result['tag'] == 'v1.5.0-rc.2' and result['prerelease'] is True
    assert result['source'] == 'mirror' and result['assets'] is None
    assert result['download_base'] == 'https://mirror.example/stigmer/v1.5.0-rc.2/'


def test_mirror_without_latest_file():
    fetch = FakeFetch()
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', mirror_url='https://mirror.example/s', url_username='u',
                        url_password='pw-SECRET', fetch=fetch)
    message = str(info.value)
    assert "no 'latest' file at https://mirror.example/s/latest" in message
    assert fetch.calls[0]['headers'] == {'Authorization': 'Basic dTpwdy1TRUNSRVQ='}


def test_mirror_credentials_in_the_url_are_refused_without_showing_them():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', mirror_url='https://u:pw-SECRET@mirror.example/s', fetch=FakeFetch())
    assert 'pw-SECRET' not in str(info.value) and 'url_password' in str(info.value)


def test_mirror_latest_file_with_garbage():
    fetch = FakeFetch({'https://mirror.example/latest': Answer(200, b'<html>index</html>')})
    with pytest.raises(ReleaseError):
        resolve_release(REPO, 'latest', mirror_url='https://mirror.example', fetch=fetch)


# ---------------------------------------------------------------- API failures never show the token


def test_401_names_the_token_problem_without_the_token():
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(401, {'message': 'Bad credentials'})})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.1.0', token=TOKEN, fetch=fetch)
    message = str(info.value)
    assert message.startswith('GitHub rejected the token (401 Bad credentials)')
    assert TOKEN not in message


def test_rate_limit_403_message():
    headers = {'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '4102444800'}
    fetch = FakeFetch({API_LIST: Answer(403, {'message': 'API rate limit exceeded for 1.2.3.4'}, headers)})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', fetch=fetch)
    message = str(info.value)
    assert message.startswith('GitHub API rate limit exceeded at https://api.github.com (limit 60 requests/hour); '
                              'it resets at 2100-01-01 00:00:00 UTC')
    assert 'stigmer_github_token' in message


def test_rate_limit_429_with_token_does_not_leak_it():
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(429, {'message': 'slow down ' + TOKEN}, {'Retry-After': '60'})})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.1.0', token=TOKEN, fetch=fetch)
    assert 'rate limit' in str(info.value)
    assert TOKEN not in str(info.value)


def test_other_403_is_scrubbed():
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(403, {'message': 'token %s lacks scope' % TOKEN})})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.1.0', token=TOKEN, fetch=fetch)
    assert '403' in str(info.value)
    assert TOKEN not in str(info.value)


def test_connection_error_names_the_url_and_suggests_alternatives():
    url = api_tag('v1.1.0')
    fetch = FakeFetch({url: http.ConnectError(url, 'Name or service not known')})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.1.0', token=TOKEN, fetch=fetch)
    message = str(info.value)
    assert url in message
    assert 'stigmer_github_url' in message and 'stigmer_mirror_url' in message and 'proxy' in message
    assert TOKEN not in message


def test_not_json():
    fetch = FakeFetch({api_tag('v1.1.0'): Answer(200, b'<html>login</html>')})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'v1.1.0', fetch=fetch)
    assert 'not JSON' in str(info.value)


# ---------------------------------------------------------------- end to end over real HTTP


class GitHubDouble(LocalServer):
    """Web + API on one 127.0.0.1 port, counting requests and recording Authorization headers."""

    def __init__(self, latest_tag, releases):
        self.requests = []
        self.latest_tag = latest_tag
        self.releases = releases
        super(GitHubDouble, self).__init__()

    def answer(self, handler):
        path = handler.path
        self.requests.append((path, handler.headers.get('Authorization')))
        status, headers, body = 404, {}, b'{"message": "Not Found"}'
        listing = '/api/v3/repos/%s/releases' % REPO
        if path == '/%s/releases/latest' % REPO and self.latest_tag:
            status, headers, body = 302, {'Location': '%s/%s/releases/tag/%s' % (self.base, REPO, self.latest_tag)}, b''
        elif path.startswith(listing + '?'):
            # Two per page whatever is asked, so the Link header is exercised over real HTTP.
            page = int(parse_qs(urlsplit(path).query).get('page', ['1'])[0])
            chunk = self.releases[(page - 1) * 2:page * 2]
            body = json.dumps(chunk).encode()
            etag = '"%d-%d"' % (page, len(body))
            headers = {'Content-Type': 'application/json', 'ETag': etag}
            if page * 2 < len(self.releases):
                headers['Link'] = '<%s%s?per_page=100&page=%d>; rel="next"' % (self.base, listing, page + 1)
            status = 200
            if handler.headers.get('If-None-Match') == etag:
                status, body = 304, b''
        return status, headers, body


def test_end_to_end_over_http(tmp_path):
    double = GitHubDouble('v3.27.2', catalogue())
    try:
        kwargs = dict(github_url=double.base, api_url=double.base + '/api/v3', token=TOKEN, cache_dir=str(tmp_path),
                      platforms=['linux-amd64'])
        result = resolve_release(REPO, 'latest', **kwargs)
        assert result['tag'] == 'v0.1.0' and result['source'] == 'api'
        assert [s['tag'] for s in result['skipped_releases']] == ['v3.27.2', 'v3.27.1']
        listing = '/api/v3/repos/%s/releases' % REPO
        assert double.requests == [(listing + '?per_page=100', 'Bearer ' + TOKEN)] + [
            (listing + '?per_page=100&page=%d' % n, 'Bearer ' + TOKEN) for n in (2, 3, 4)]
        del double.requests[:]

        # GitHub's latest (v3.27.2) was never cached, so the redirect cannot settle it: every page is
        # revalidated instead, and answers 304.
        again = resolve_release(REPO, 'latest', **kwargs)
        assert again['source'] == 'cache' and again['tag'] == 'v0.1.0'
        assert [path for path, auth in double.requests] == [listing + '?per_page=100'] + [
            listing + '?per_page=100&page=%d' % n for n in (2, 3, 4)]
        del double.requests[:]

        double.releases = catalogue()[4:]  # upstream deletes the releases without a CLI
        double.latest_tag = 'v0.1.0'
        assert resolve_release(REPO, 'latest', **kwargs)['tag'] == 'v0.1.0'
        del double.requests[:]
        fast = resolve_release(REPO, 'latest', **kwargs)
        assert fast['tag'] == 'v0.1.0' and fast['source'] == 'cache'
        assert double.requests == [('/%s/releases/latest' % REPO, None)]
        del double.requests[:]

        resolve_release(REPO, '0.1.0', **kwargs)
        assert double.requests == []
    finally:
        double.close()


def _api_resolved(names, tag='v1.0.0'):
    assets = {name: {'download_url': 'https://dl/%s' % name, 'api_url': 'https://api/assets/%d' % i,
                     'digest': '%064x' % i, 'size': 1} for i, name in enumerate(names)}
    return {'tag': tag, 'assets': assets, 'download_base': 'https://dl/'}


def test_plan_offers_only_platforms_that_have_every_component():
    names = []
    for plat in ('linux-amd64', 'darwin-arm64'):
        names += ['stigmer-v1.0.0-%s.tar.gz' % plat, 'stigmer-v1.0.0-%s.tar.gz.sha256' % plat,
                  'agent-runner-v1.0.0-%s' % plat, 'agent-runner-v1.0.0-%s.sha256' % plat]
    # A CLI without its agent-runner does not make a platform.
    names.append('stigmer-v1.0.0-linux-arm64.tar.gz')
    plan = release.plan_artifacts(_api_resolved(names), 'stigmer/stigmer', ['stigmer', 'agent-runner'])
    assert sorted(plan) == ['darwin-arm64', 'linux-amd64']
    cli, runner = plan['linux-amd64']
    assert cli['name'] == 'stigmer-v1.0.0-linux-amd64.tar.gz' and cli['archive'] is True
    assert cli['checksum_url'] == 'https://dl/stigmer-v1.0.0-linux-amd64.tar.gz.sha256'
    assert runner['component'] == 'agent-runner' and runner['archive'] is False
    assert runner['digest'] and runner['api_url'].startswith('https://api/assets/')
    assert (runner['repo'], runner['release']) == ('stigmer/stigmer', 'v1.0.0')


def test_plan_without_a_published_checksum_leaves_it_empty_for_the_downloader_to_refuse():
    names = ['stigmer-v1.0.0-linux-amd64.tar.gz', 'agent-runner-v1.0.0-linux-amd64']
    plan = release.plan_artifacts(_api_resolved(names), 'stigmer/stigmer', ['stigmer', 'agent-runner'])
    assert [item['checksum_url'] for item in plan['linux-amd64']] == [None, None]


def test_plan_for_a_mirror_covers_every_supported_platform_with_mirror_urls():
    resolved = {'tag': 'v1.5.1', 'assets': None, 'download_base': 'https://mirror/temporal/v1.5.1/'}
    plan = release.plan_artifacts(resolved, 'temporalio/cli', ['temporal'])
    assert sorted(plan) == ['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64']
    (item,) = plan['linux-arm64']
    assert item['url'] == 'https://mirror/temporal/v1.5.1/temporal_cli_1.5.1_linux_arm64.tar.gz'
    assert item['checksum_url'] == 'https://mirror/temporal/v1.5.1/checksums.txt'
    assert item['digest'] is None and item['api_url'] is None


# ---------------------------------------------------------------- retries, transport, secrets, pins, cache


def test_transient_api_failures_are_retried_with_backoff(sleeps):
    answers = [Answer(502, b'bad gateway'), http.ConnectError(api_tag('v0.0.7'), 'Connection reset by peer'),
               Answer(200, release_json('v0.0.7'))]

    def flaky(headers):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    fetch = FakeFetch({api_tag('v0.0.7'): flaky})
    result = release.resolve_release(REPO, '0.0.7', fetch=fetch, sleep=sleeps.append, rng=lambda: 1.0)
    assert result['tag'] == 'v0.0.7'
    assert fetch.urls == [api_tag('v0.0.7')] * 3
    assert sleeps == [1.0, 2.0]


def test_retries_end_after_the_attempts_and_the_message_counts_them(sleeps):
    fetch = FakeFetch({api_tag('v0.0.7'): Answer(503, b'unavailable')})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', attempts=3, fetch=fetch)
    assert 'HTTP 503' in str(info.value) and '(3 attempts)' in str(info.value)
    assert len(fetch.calls) == 3 and len(sleeps) == 2


def test_a_rate_limit_that_resets_later_is_not_retried(sleeps):
    limited = Answer(403, {'message': 'API rate limit exceeded'},
                     {'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '4102444800'})
    fetch = FakeFetch({api_tag('v0.0.7'): limited})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', fetch=fetch)
    assert 'rate limit' in str(info.value) and '(1 attempt)' in str(info.value)
    assert len(fetch.calls) == 1 and sleeps == []


def test_each_api_request_gets_a_deadline_and_a_ceiling():
    seen = []

    def fetch(url, **kwargs):
        seen.append(kwargs)
        return http.Response(io.BytesIO(json.dumps(release_json('v0.0.7')).encode()), 200, {}, url)
    resolve_release(REPO, '0.0.7', timeout=7, fetch=fetch, clock=lambda: 100.0)
    assert seen[0]['deadline'] == 107.0 and seen[0]['max_bytes'] == release.MAX_API_BYTES
    assert seen[0]['allow_insecure'] is False


def test_plain_http_api_is_refused_unless_loopback_or_allowed():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', api_url='http://10.0.2.2:8080/api/v3', fetch=FakeFetch())
    assert 'plain http' in str(info.value) and 'allow_insecure' in str(info.value)
    api = 'http://10.0.2.2:8080/api/v3'
    fetch = FakeFetch({api + '/repos/stigmer/stigmer/releases/tags/v0.0.7': Answer(200, release_json('v0.0.7'))})
    result = resolve_release(REPO, '0.0.7', api_url=api, github_url='http://10.0.2.2:8080', allow_insecure=True,
                             fetch=fetch)
    assert len(result['warnings']) == 2 and all('plain http' in w for w in result['warnings'])
    with pytest.raises(ReleaseError):
        resolve_release(REPO, 'latest', mirror_url='http://mirror.example/s', fetch=FakeFetch())


def test_a_token_with_a_trailing_newline_is_stripped_and_control_characters_refused():
    fetch = FakeFetch({api_tag('v0.0.7'): Answer(200, release_json('v0.0.7'))})
    resolve_release(REPO, '0.0.7', token=TOKEN + '\n', fetch=fetch)
    assert fetch.calls[0]['token'] == TOKEN
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', token=TOKEN + '\x00x', fetch=FakeFetch())
    assert TOKEN not in str(info.value) and 'control characters' in str(info.value)


def test_a_pin_for_an_asset_the_release_lacks_names_what_it_has():
    fetch = FakeFetch({api_tag('v0.0.7'): Answer(200, release_json('v0.0.7', platforms=UPSTREAM))})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', fetch=fetch, checksums={'stigmer-v0.0.6-linux-amd64.tar.gz': HEX_A})
    message = str(info.value)
    assert 'stigmer_checksums pins stigmer-v0.0.6-linux-amd64.tar.gz' in message
    assert 'agent-runner-v0.0.7-linux-amd64' in message
    # A pin of the temporal release is left to that release; a right pin passes.
    ok = {'stigmer-v0.0.7-linux-amd64.tar.gz': HEX_A, 'temporal_cli_1.5.1_linux_amd64.tar.gz': HEX_A}
    assert resolve_release(REPO, '0.0.7', fetch=fetch, checksums=ok)['tag'] == 'v0.0.7'
    with pytest.raises(ReleaseError):
        resolve_release(REPO, '0.0.7', mirror_url='https://m.example/s', fetch=FakeFetch(),
                        checksums={'agent-runner-v0.0.7-linux-amd6': HEX_A})


def test_the_release_cache_is_private(tmp_path):
    cache = tmp_path / 'cache'
    fetch = FakeFetch({api_tag('v0.0.7'): Answer(200, release_json('v0.0.7'))})
    resolve_release(REPO, '0.0.7', cache_dir=str(cache), fetch=fetch)
    assert oct(os.stat(str(cache)).st_mode & 0o777) == '0o700'
    os.chmod(str(cache), 0o777)
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, '0.0.7', cache_dir=str(cache), fetch=FakeFetch())
    assert 'writable by other users' in str(info.value)
