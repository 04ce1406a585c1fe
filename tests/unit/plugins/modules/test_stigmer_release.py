# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_release module: argument handling, results, failures, documentation."""

import functools
import io
import json

from ansible_collections.stigmer.runtime.plugins.module_utils import http
from ansible_collections.stigmer.runtime.plugins.module_utils import release
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_release
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

TOKEN = 'fake-token-MODULEtoken0123456789abcdefXYZ'
API = 'https://api.github.com'


def tag_json(tag):
    name = 'stigmer-%s-linux-amd64.tar.gz' % tag
    return {'tag_name': tag, 'draft': False, 'prerelease': False, 'assets': [{
        'name': name, 'size': 10, 'url': API + '/repos/stigmer/stigmer/releases/assets/1',
        'browser_download_url': 'https://github.com/stigmer/stigmer/releases/download/%s/%s' % (tag, name),
        'digest': 'sha256:' + 'c' * 64}]}


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
    monkeypatch.setattr(stigmer_release, 'resolve_release', functools.partial(release.resolve_release, fetch=fetch))
    return harness.run_module(stigmer_release, args, capsys)


def test_latest_defaults(monkeypatch, capsys):
    fetch = Fetch({
        'https://github.com/stigmer/stigmer/releases/latest':
            (302, {'location': 'https://github.com/stigmer/stigmer/releases/tag/v1.1.0'}, b''),
        API + '/repos/stigmer/stigmer/releases/tags/v1.1.0': (200, {}, json.dumps(tag_json('v1.1.0')).encode()),
    })
    code, out = run(monkeypatch, capsys, {'token': TOKEN}, fetch)
    assert code == 0
    assert out['changed'] is False
    assert out['tag'] == 'v1.1.0' and out['version'] == '1.1.0' and out['source'] == 'api'
    assert out['prerelease'] is False
    assert out['assets']['stigmer-v1.1.0-linux-amd64.tar.gz']['digest'] == 'c' * 64
    assert out['download_base'] == 'https://github.com/stigmer/stigmer/releases/download/v1.1.0/'
    assert fetch.calls[0][1] is None and fetch.calls[1][1] == TOKEN
    assert TOKEN not in json.dumps(out)


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
    assert spec['token']['no_log'] is True
    assert set(returned) == {'tag', 'version', 'prerelease', 'source', 'assets', 'download_base', 'platforms', 'artifacts'}
