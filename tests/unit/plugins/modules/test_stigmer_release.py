# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_release module: argument handling, results, failures, documentation."""

import functools
import io
import json
import os

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils import _release as release
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_release
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

TOKEN = 'fake-token-MODULEtoken0123456789abcdefXYZ'
API = 'https://api.github.com'
LIST = API + '/repos/stigmer/stigmer/releases?per_page=100'


def tag_json(tag, platforms=('linux-amd64',), names=None):
    if names is None:
        names = []
        for platform in platforms:
            names += ['stigmer-%s-%s.tar.gz' % (tag, platform), 'agent-runner-%s-%s' % (tag, platform)]
    return {'tag_name': tag, 'draft': False, 'prerelease': False, 'published_at': '2026-01-01T00:00:00Z',
            'assets': [{
                'name': name, 'size': 10, 'url': API + '/repos/stigmer/stigmer/releases/assets/%d' % number,
                'browser_download_url': 'https://github.com/stigmer/stigmer/releases/download/%s/%s' % (tag, name),
                'digest': 'sha256:' + 'c' * 64} for number, name in enumerate(names)]}


def listing(*releases):
    return (200, {'etag': '"l"'}, json.dumps(list(releases)).encode())


class Fetch(object):
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, url, headers=None, token=None, **kwargs):
        self.calls.append((url, token))
        if url not in self.answers:
            raise http.HttpError(404, {}, url, '{"message": "Not Found"}')
        status, headers_out, body = self.answers[url]
        if status >= 400:
            raise http.HttpError(status, headers_out, url, body.decode())
        return http.Response(io.BytesIO(body), status, headers_out, url)


def run(monkeypatch, capsys, args, fetch):
    resolve = functools.partial(release.resolve_release, fetch=fetch, sleep=lambda seconds: None)
    monkeypatch.setattr(stigmer_release, 'resolve_release', resolve)
    return harness.run_module(stigmer_release, args, capsys)


def test_latest_defaults(monkeypatch, capsys):
    fetch = Fetch({LIST: listing(tag_json('v1.1.0'), tag_json('v1.0.0'))})
    code, out = run(monkeypatch, capsys, {'token': TOKEN}, fetch)
    assert code == 0
    assert out['changed'] is False
    assert out['tag'] == 'v1.1.0' and out['version'] == '1.1.0' and out['source'] == 'api'
    assert out['prerelease'] is False
    assert out['assets']['stigmer-v1.1.0-linux-amd64.tar.gz']['digest'] == 'c' * 64
    assert out['download_base'] == 'https://github.com/stigmer/stigmer/releases/download/v1.1.0/'
    assert out['platforms'] == ['linux-amd64'] and out['carries'] == 'builds for linux-amd64'
    assert [item['name'] for item in out['artifacts']['linux-amd64']] == [
        'stigmer-v1.1.0-linux-amd64.tar.gz', 'agent-runner-v1.1.0-linux-amd64']
    assert out['skipped_releases'] == [] and out['newest_by_platform'] == {}
    assert 'warnings' not in out
    assert fetch.calls == [(LIST, TOKEN)]
    assert TOKEN not in json.dumps(out)


def test_latest_warns_about_the_releases_it_skips(monkeypatch, capsys):
    fetch = Fetch({LIST: listing(tag_json('v3.27.2', names=[]), tag_json('v3.27.1', names=['sbom.spdx.json']),
                                 tag_json('v0.1.0', platforms=('linux-amd64', 'linux-arm64')))})
    code, out = run(monkeypatch, capsys, {'platforms': ['linux-arm64', 'linux-amd64']}, fetch)
    assert code == 0
    assert out['tag'] == 'v0.1.0'
    assert out['skipped_releases'] == [{'tag': 'v3.27.2', 'reason': 'no assets'},
                                       {'tag': 'v3.27.1', 'reason': 'no stigmer CLI or agent-runner assets'}]
    # ansible-core 2.19 returns warnings as structured events: look for the text, not the shape.
    assert len(out['warnings']) == 1
    assert json.dumps('latest: skipped v3.27.2 (no assets), v3.27.1 (no stigmer CLI or agent-runner assets); '
                      'using v0.1.0 of stigmer/stigmer') in json.dumps(out['warnings'])


def test_latest_fails_when_no_release_serves_the_play(monkeypatch, capsys):
    fetch = Fetch({LIST: listing(tag_json('v3.27.2', names=[]), tag_json('v0.0.7'))})
    code, out = run(monkeypatch, capsys, {'platforms': ['linux-amd64', 'linux-arm64']}, fetch)
    assert code == 1 and out['failed'] is True
    assert out['msg'].startswith('latest: no published release of stigmer/stigmer carries stigmer CLI and '
                                 'agent-runner builds for every platform of the play (linux-amd64, linux-arm64). '
                                 'Newest release with a build, per platform: linux-amd64 v0.0.7, linux-arm64 none.')


def test_pinned_release_lacking_a_platform_does_not_fail(monkeypatch, capsys):
    empty = tag_json('v3.27.2', names=[])
    fetch = Fetch({API + '/repos/stigmer/stigmer/releases/tags/v3.27.2': (200, {}, json.dumps(empty).encode()),
                   LIST: listing(empty, tag_json('v0.1.0'))})
    code, out = run(monkeypatch, capsys, {'version': '3.27.2', 'platforms': ['linux-amd64', 'linux-arm64']}, fetch)
    assert code == 0
    assert out['platforms'] == [] and out['artifacts'] == {}
    assert out['carries'] == 'no assets'
    assert out['newest_by_platform'] == {'linux-amd64': 'v0.1.0', 'linux-arm64': None}


def test_unknown_platform_is_refused_by_the_argument_spec(monkeypatch, capsys):
    code, out = run(monkeypatch, capsys, {'platforms': ['windows-amd64']}, Fetch({}))
    assert code == 1 and 'windows-amd64' in out['msg']


def test_check_mode_is_read_only_and_identical(monkeypatch, capsys, tmp_path):
    fetch = Fetch({API + '/repos/stigmer/stigmer/releases/tags/v1.1.0': (200, {}, json.dumps(tag_json('v1.1.0')).encode())})
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', '_ansible_check_mode': True}, fetch)
    assert code == 0 and out['changed'] is False and out['tag'] == 'v1.1.0'


def test_mirror(monkeypatch, capsys):
    code, out = run(monkeypatch, capsys, {'version': 'v2.0.0', 'mirror_url': 'https://m.example/s'}, Fetch({}))
    assert code == 0
    assert out['assets'] is None and out['source'] == 'mirror'
    assert out['download_base'] == 'https://m.example/s/v2.0.0/'


def test_release_error_fails_without_the_token(monkeypatch, capsys):
    fetch = Fetch({API + '/repos/stigmer/stigmer/releases/tags/v1.1.0': (401, {}, b'{"message": "Bad credentials"}')})
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'token': TOKEN}, fetch)
    assert code == 1 and out['failed'] is True
    assert out['msg'].startswith('GitHub rejected the token (401 Bad credentials)')
    assert TOKEN not in json.dumps(out)


def test_version_error_fails(monkeypatch, capsys):
    code, out = run(monkeypatch, capsys, {'version': 'one'}, Fetch({}))
    assert code == 1 and 'not a semantic version' in out['msg']


def test_documentation_matches_the_argument_spec():
    spec, returned = harness.check_documentation(stigmer_release)[1:]
    assert spec['token']['no_log'] is True and spec['url_password']['no_log'] is True
    assert set(returned) == {'tag', 'version', 'prerelease', 'source', 'assets', 'download_base', 'platforms', 'artifacts',
                             'carries', 'skipped_releases', 'newest_by_platform'}


def test_no_secret_in_any_output(monkeypatch, capsys):
    answer = (200, {}, json.dumps(tag_json('v1.1.0')).encode())
    fetch = Fetch({API + '/repos/stigmer/stigmer/releases/tags/v1.1.0': answer,
                   'https://m.example/s/latest': (503, {}, b'busy')})
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'token': TOKEN + '\n'}, fetch)
    assert code == 0 and fetch.calls[0] == (API + '/repos/stigmer/stigmer/releases/tags/v1.1.0', TOKEN)
    assert TOKEN not in json.dumps(out)
    code, out = run(monkeypatch, capsys, {'mirror_url': 'https://m.example/s', 'url_username': 'bob',
                                          'url_password': 'pw-SECRET-1', 'attempts': 2}, fetch)
    assert code == 1 and 'HTTP 503' in out['msg'] and '2 attempts' in out['msg']
    assert 'pw-SECRET-1' not in json.dumps(out)
    # Credentials in the URL are used for the mirror only, and masked everywhere, arguments included.
    fetch = Fetch({'https://m.example/s/latest': (200, {}, b'v2.0.0\n')})
    code, out = run(monkeypatch, capsys, {'mirror_url': 'https://bob:pw-SECRET-2@m.example/s'}, fetch)
    assert code == 0 and out['download_base'] == 'https://m.example/s/v2.0.0/'
    assert 'pw-SECRET-2' not in json.dumps(out)
    code, out = run(monkeypatch, capsys, {'api_url': 'https://bob:pw-SECRET-3@ghe.example/api/v3'}, fetch)
    assert code == 1 and 'must not carry' in out['msg'] and 'pw-SECRET-3' not in json.dumps(out)


def test_a_pin_for_a_missing_asset_fails(monkeypatch, capsys):
    answer = (200, {}, json.dumps(tag_json('v1.1.0')).encode())
    fetch = Fetch({API + '/repos/stigmer/stigmer/releases/tags/v1.1.0': answer})
    pins = {'agent-runner-v1.1.0-linux-arm64': 'c' * 64}
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'checksums': pins}, fetch)
    assert code == 1 and 'agent-runner-v1.1.0-linux-arm64' in out['msg']
    assert 'it has: agent-runner-v1.1.0-linux-amd64, stigmer-v1.1.0-linux-amd64.tar.gz' in out['msg']
    pins = {'agent-runner-v1.1.0-linux-amd64': 'c' * 64}
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'checksums': pins}, fetch)
    assert code == 0 and out['artifacts']['linux-amd64'][0]['size'] == 10


def test_download_environment_reaches_the_requests_and_its_proxy_password_no_output(monkeypatch, capsys):
    seen = {}

    def fetch(url, headers=None, token=None, **kwargs):
        seen.update(proxy=os.environ.get('https_proxy'), no_proxy=os.environ.get('NO_PROXY'))
        raise http.HttpError(503, {}, url, 'busy via %s' % os.environ.get('https_proxy'))

    for name in ('https_proxy', 'NO_PROXY'):
        monkeypatch.setenv(name, 'before')  # so monkeypatch restores what the module sets
        monkeypatch.delenv(name)
    proxy = 'http://deployer:pr%40xy-SECRET-4@proxy.example:3128'
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'attempts': 1, 'download_environment': {
        'https_proxy': proxy, 'NO_PROXY': 'localhost,.internal'}}, fetch)
    assert seen == {'proxy': proxy, 'no_proxy': 'localhost,.internal'}
    assert code == 1 and 'HTTP 503' in out['msg']
    text = json.dumps(out)
    assert 'pr%40xy-SECRET-4' not in text and 'pr@xy-SECRET-4' not in text


def test_download_environment_refuses_a_name_that_is_not_a_variable(monkeypatch, capsys):
    code, out = run(monkeypatch, capsys, {'version': '1.1.0', 'download_environment': {'HTTPS PROXY': 'x'}},
                    Fetch({}))
    assert code == 1 and "'HTTPS PROXY' is not an environment variable name" in out['msg']
