# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""resolve_release with recorded GitHub answers (fake fetch) and once against a real local server."""

import io
import json
import os

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import http
from ansible_collections.stigmer.runtime.plugins.module_utils import release
from ansible_collections.stigmer.runtime.plugins.module_utils.release import (
    ReleaseError,
    pick_highest_release,
    resolve_release,
    tag_from_latest_location,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.version import VersionError
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.local_http import LocalServer

TOKEN = 'fake-token-SECRETtoken0123456789abcdefXYZ'
GH = 'https://github.com'
API = 'https://api.github.com'
REPO = 'stigmer/stigmer'
HEX_A = 'a' * 64
HEX_B = 'b' * 64


def release_json(tag, draft=False, prerelease=False, platforms=('linux-amd64', 'darwin-arm64')):
    assets = []
    for number, platform in enumerate(platforms):
        for name, digest in (('stigmer-%s-%s.tar.gz' % (tag, platform), 'sha256:' + HEX_A),
                             ('stigmer-%s-%s.tar.gz.sha256' % (tag, platform), None)):
            asset = {
                'name': name,
                'size': 1234,
                'url': '%s/repos/%s/releases/assets/%d' % (API, REPO, 100 + number),
                'browser_download_url': '%s/%s/releases/download/%s/%s' % (GH, REPO, tag, name),
                'content_type': 'application/octet-stream',
                'uploader': {'login': 'bot'},
            }
            if digest:
                asset['digest'] = digest
            assets.append(asset)
    return {'tag_name': tag, 'name': tag, 'draft': draft, 'prerelease': prerelease, 'assets': assets,
            'body': 'notes'}


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
                 follow_redirects=True, max_redirects=5):
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


REDIRECT_URL = '%s/%s/releases/latest' % (GH, REPO)
API_LATEST = '%s/repos/%s/releases/latest' % (API, REPO)
API_LIST = '%s/repos/%s/releases?per_page=100' % (API, REPO)


def api_tag(tag):
    return '%s/repos/%s/releases/tags/%s' % (API, REPO, tag)


# ---------------------------------------------------------------- pure helpers


def test_tag_from_latest_location():
    assert tag_from_latest_location('https://github.com/o/r/releases/tag/v1.2.3') == 'v1.2.3'
    assert tag_from_latest_location('/o/r/releases/tag/v1.2.3-rc.1') == 'v1.2.3-rc.1'
    assert tag_from_latest_location('https://github.com/o/r/releases') is None
    assert tag_from_latest_location(None) is None


def test_pick_highest_release_orders_by_semver_and_skips_drafts():
    releases = [{'tag_name': t, 'draft': d, 'prerelease': p} for t, d, p in (
        ('v1.9.0', False, False), ('v1.10.0-rc.1', False, True), ('v2.0.0', True, False),
        ('v1.10.0-rc.2', False, True), ('nightly', False, True))]
    assert pick_highest_release(releases)['tag_name'] == 'v1.10.0-rc.2'
    assert pick_highest_release(releases, include_prereleases=False)['tag_name'] == 'v1.9.0'
    assert pick_highest_release([]) is None


# ---------------------------------------------------------------- latest


def test_latest_uses_the_redirect_then_the_tag_api():
    fetch = FakeFetch({REDIRECT_URL: latest_redirect('v1.1.0'),
                       api_tag('v1.1.0'): Answer(200, release_json('v1.1.0'), {'ETag': '"e1"'})})
    result = resolve_release(REPO, 'latest', token=TOKEN, fetch=fetch)

    assert fetch.urls == [REDIRECT_URL, api_tag('v1.1.0')]
    redirect, api = fetch.calls
    assert redirect['token'] is None and redirect['follow_redirects'] is False
    assert api['token'] == TOKEN
    assert api['headers']['Accept'] == 'application/vnd.github+json'
    assert api['headers']['X-GitHub-Api-Version'] == '2022-11-28'

    assert result['tag'] == 'v1.1.0'
    assert result['version'] == '1.1.0'
    assert result['prerelease'] is False
    assert result['source'] == 'api'
    assert result['download_base'] == 'https://github.com/stigmer/stigmer/releases/download/v1.1.0/'
    asset = result['assets']['stigmer-v1.1.0-linux-amd64.tar.gz']
    assert asset == {
        'download_url': 'https://github.com/stigmer/stigmer/releases/download/v1.1.0/stigmer-v1.1.0-linux-amd64.tar.gz',
        'api_url': 'https://api.github.com/repos/stigmer/stigmer/releases/assets/100',
        'digest': HEX_A,
        'size': 1234,
    }
    assert result['assets']['stigmer-v1.1.0-linux-amd64.tar.gz.sha256']['digest'] is None


@pytest.mark.parametrize('redirect', [
    None,  # 404: not answered
    Answer(302, headers={'Location': '%s/%s/releases' % (GH, REPO)}),  # no release yet: no tag in it
    Answer(200, b'<html>'),  # a proxy that followed it for us
    http.ConnectError(REDIRECT_URL, 'Connection refused'),
])
def test_latest_falls_back_to_the_api(redirect):
    answers = {API_LATEST: Answer(200, release_json('v1.4.2'))}
    if redirect is not None:
        answers[REDIRECT_URL] = redirect
    fetch = FakeFetch(answers)
    result = resolve_release(REPO, 'latest', fetch=fetch)
    assert fetch.urls == [REDIRECT_URL, API_LATEST]
    assert result['tag'] == 'v1.4.2'
    assert result['source'] == 'api'
    assert 'stigmer-v1.4.2-darwin-arm64.tar.gz' in result['assets']


def test_latest_with_the_tag_cached_makes_only_the_redirect_request(tmp_path):
    warm = FakeFetch({api_tag('v1.1.0'): Answer(200, release_json('v1.1.0'))})
    resolve_release(REPO, 'v1.1.0', cache_dir=str(tmp_path), fetch=warm)

    fetch = FakeFetch({REDIRECT_URL: latest_redirect('v1.1.0')})
    result = resolve_release(REPO, 'latest', cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.urls == [REDIRECT_URL]
    assert result['source'] == 'cache'
    assert result['tag'] == 'v1.1.0'
    assert result['assets']['stigmer-v1.1.0-linux-amd64.tar.gz']['digest'] == HEX_A


def test_include_prereleases_picks_the_highest_non_draft():
    releases = [release_json('v2.0.0', draft=True), release_json('v1.2.0-rc.1', prerelease=True),
                release_json('v1.1.0'), release_json('v1.2.0-rc.2', prerelease=True),
                release_json('v1.10.0-beta.1', prerelease=True)]
    fetch = FakeFetch({API_LIST: Answer(200, releases)})
    result = resolve_release(REPO, 'latest', include_prereleases=True, fetch=fetch)
    assert fetch.urls == [API_LIST]  # the redirect never names a pre-release: not asked
    assert result['tag'] == 'v1.10.0-beta.1'
    assert result['prerelease'] is True
    assert 'stigmer-v1.10.0-beta.1-linux-amd64.tar.gz' in result['assets']


def test_include_prereleases_revalidates_with_etag(tmp_path):
    releases = [release_json('v1.1.0'), release_json('v1.2.0-rc.1', prerelease=True)]
    first = FakeFetch({API_LIST: Answer(200, releases, {'ETag': 'W/"list1"'})})
    resolve_release(REPO, 'latest', include_prereleases=True, cache_dir=str(tmp_path), fetch=first)
    assert 'If-None-Match' not in first.calls[0]['headers']

    def not_modified(headers):
        assert headers.get('If-None-Match') == 'W/"list1"'
        return Answer(304, b'', {'ETag': 'W/"list1"'})

    second = FakeFetch({API_LIST: not_modified})
    result = resolve_release(REPO, 'latest', include_prereleases=True, cache_dir=str(tmp_path), fetch=second)
    assert second.urls == [API_LIST]
    assert result['tag'] == 'v1.2.0-rc.1'
    assert result['source'] == 'cache'


def test_no_release_at_all():
    fetch = FakeFetch({REDIRECT_URL: Answer(302, headers={'Location': '%s/%s/releases' % (GH, REPO)})})
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', fetch=fetch)
    assert 'stigmer/stigmer has no published release at https://api.github.com' in str(info.value)


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
                               'check stigmer_version')


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
                             cache_dir=str(tmp_path), fetch=fetch)
    assert fetch.calls == []
    assert result == {'tag': 'v1.2.3', 'version': '1.2.3', 'prerelease': False, 'source': 'mirror',
                      'assets': None, 'download_base': 'https://mirror.example/stigmer/v1.2.3/'}


def test_mirror_latest_reads_the_latest_file_without_the_token():
    fetch = FakeFetch({'https://mirror.example/stigmer/latest': Answer(200, b'v1.5.0-rc.2\nold: v1.4.0\n')})
    result = resolve_release(REPO, 'latest', mirror_url='https://mirror.example/stigmer', token=TOKEN, fetch=fetch)
    assert fetch.urls == ['https://mirror.example/stigmer/latest']
    assert fetch.calls[0]['token'] is None
    assert result['tag'] == 'v1.5.0-rc.2' and result['prerelease'] is True
    assert result['source'] == 'mirror' and result['assets'] is None
    assert result['download_base'] == 'https://mirror.example/stigmer/v1.5.0-rc.2/'


def test_mirror_without_latest_file():
    with pytest.raises(ReleaseError) as info:
        resolve_release(REPO, 'latest', mirror_url='https://u:pw@mirror.example/s', fetch=FakeFetch())
    message = str(info.value)
    assert "no 'latest' file at https://mirror.example/s/latest" in message
    assert 'pw' not in message


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
    fetch = FakeFetch({API_LATEST: Answer(403, {'message': 'API rate limit exceeded for 1.2.3.4'}, headers)})
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
        if path == '/%s/releases/latest' % REPO and self.latest_tag:
            status, headers, body = 302, {'Location': '%s/%s/releases/tag/%s' % (self.base, REPO, self.latest_tag)}, b''
        prefix = '/api/v3/repos/%s/releases/tags/' % REPO
        if path.startswith(prefix) and path[len(prefix):] in self.releases:
            status, body = 200, json.dumps(self.releases[path[len(prefix):]]).encode()
            headers = {'Content-Type': 'application/json', 'ETag': '"x"'}
        return status, headers, body


def test_end_to_end_over_http(tmp_path):
    double = GitHubDouble('v1.1.0', {'v1.1.0': release_json('v1.1.0')})
    try:
        kwargs = dict(github_url=double.base, api_url=double.base + '/api/v3', token=TOKEN, cache_dir=str(tmp_path))
        result = resolve_release(REPO, 'latest', **kwargs)
        assert result['tag'] == 'v1.1.0' and result['source'] == 'api'
        assert double.requests == [('/%s/releases/latest' % REPO, None),
                                   ('/api/v3/repos/%s/releases/tags/v1.1.0' % REPO, 'Bearer ' + TOKEN)]
        del double.requests[:]
        again = resolve_release(REPO, 'latest', **kwargs)
        assert again['source'] == 'cache'
        assert double.requests == [('/%s/releases/latest' % REPO, None)]
        del double.requests[:]
        resolve_release(REPO, '1.1.0', **kwargs)
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
