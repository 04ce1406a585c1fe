# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_artifact module: results, check and diff mode, failures, documentation."""

import functools
import hashlib
import io
import json
import os

import pytest

from ansible.module_utils.common.warnings import _global_warnings

from ansible_collections.stigmer.runtime.plugins.module_utils import _artifact as artifact
from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_artifact
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

TOKEN = 'fake-token-MODULEartifact0123456789abcdefX'
NAME = 'stigmer-v1.2.3-darwin-arm64.tar.gz'
BASE = 'https://github.com/stigmer/stigmer/releases/download/v1.2.3/'
PAYLOAD = b'archive bytes' * 1000
GOOD = hashlib.sha256(PAYLOAD).hexdigest()


class Fetch(object):
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, url, headers=None, token=None, **kwargs):
        self.calls.append(url)
        if url not in self.answers:
            raise http.HttpError(404, {}, url, 'Not Found')
        body = self.answers[url]
        return http.Response(io.BytesIO(body), 200, {'content-length': str(len(body))}, url)


def release_fetch():
    return Fetch({BASE + NAME: PAYLOAD, BASE + NAME + '.sha256': ('%s  %s\n' % (GOOD, NAME)).encode()})


def run(monkeypatch, capsys, args, fetch):
    monkeypatch.setattr(stigmer_artifact, 'ensure_artifact', functools.partial(artifact.ensure_artifact, fetch=fetch))
    return harness.run_module(stigmer_artifact, args, capsys)


def args_for(dest, **extra):
    args = {'name': NAME, 'url': BASE + NAME, 'checksum_url': BASE + NAME + '.sha256', 'dest': dest}
    args.update(extra)
    return args


def test_download_then_idempotent(monkeypatch, capsys, tmp_path):
    dest = str(tmp_path / 'artifacts')
    code, out = run(monkeypatch, capsys, args_for(dest, _ansible_diff=True), release_fetch())
    assert code == 0
    assert out['changed'] is True and out['downloaded'] is True
    assert out['path'] == os.path.join(dest, NAME) and out['sha256'] == GOOD
    assert out['verified_against'] == ['checksum_file']
    assert out['diff'] == {'before': '<absent>', 'after': GOOD}
    assert 'previous_sha256' not in out

    fetch = release_fetch()
    code, out = run(monkeypatch, capsys, args_for(dest, _ansible_diff=True), fetch)
    assert code == 0 and out['changed'] is False and out['downloaded'] is False
    assert 'diff' not in out
    # The record is no proof: the checksum file is asked again, the artifact is not.
    assert fetch.calls == [BASE + NAME + '.sha256']
    fetch = release_fetch()
    code, out = run(monkeypatch, capsys, args_for(dest, digest=GOOD), fetch)
    assert code == 0 and out['changed'] is False and fetch.calls == []


def test_check_mode_with_diff(monkeypatch, capsys, tmp_path):
    dest = str(tmp_path / 'artifacts')
    code, out = run(monkeypatch, capsys, args_for(dest, _ansible_check_mode=True, _ansible_diff=True), release_fetch())
    assert code == 0 and out['changed'] is True and out['downloaded'] is False
    assert out['diff'] == {'before': '<absent>', 'after': GOOD}
    assert not os.path.exists(dest)


def test_pinned_checksum_option(monkeypatch, capsys, tmp_path):
    fetch = release_fetch()
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), checksum='sha256:' + GOOD), fetch)
    assert code == 0 and out['verified_against'] == ['pinned']
    assert fetch.calls == [BASE + NAME]


def test_mismatch_fails(monkeypatch, capsys, tmp_path):
    fetch = Fetch({BASE + NAME: PAYLOAD + b'!', BASE + NAME + '.sha256': GOOD.encode()})
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), token=TOKEN), fetch)
    assert code == 1 and out['failed'] is True
    assert out['msg'].startswith('checksum mismatch for %s' % NAME)
    assert os.listdir(str(tmp_path)) == ['.locks']


def test_bad_pin_fails(monkeypatch, capsys, tmp_path):
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), checksum='abc'), release_fetch())
    assert code == 1 and 'pinned checksum' in out['msg']


def test_documentation_matches_the_argument_spec():
    spec, returned = harness.check_documentation(stigmer_artifact)[1:]
    assert spec['token']['no_log'] is True and spec['url_password']['no_log'] is True
    assert set(returned) == {'path', 'sha256', 'downloaded', 'verified_against', 'url', 'attempts', 'msg'}


def test_no_secret_in_any_output(monkeypatch, capsys, tmp_path):
    fetch = Fetch({})
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), token=TOKEN + '\n', url_username='bob',
                                                  url_password='s3cret-PASSWORD', attempts=1), fetch)
    text = repr(out)
    assert code == 1 and '404' in out['msg']
    assert TOKEN not in text and 's3cret-PASSWORD' not in text


@pytest.fixture
def warnings_cleared():
    """Module warnings are process-global in ansible-core: do not leak ours into later tests."""
    yield
    _global_warnings.clear()


def test_insecure_transport_option_warns(monkeypatch, capsys, tmp_path, warnings_cleared):
    url = 'http://10.0.2.2:8000/v1.2.3/'
    fetch = Fetch({url + NAME: PAYLOAD})
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), url=url + NAME, checksum_url=None,
                                                  checksum=GOOD), fetch)
    assert code == 1 and 'allow_insecure' in out['msg'] and fetch.calls == []
    code, out = run(monkeypatch, capsys, args_for(str(tmp_path), url=url + NAME, checksum_url=None,
                                                  checksum=GOOD, allow_insecure=True), fetch)
    assert code == 0 and out['downloaded'] is True and out['url'] == url + NAME
    # ansible-core 2.19 returns warnings as structured events: look for the text, not the shape.
    assert 'plain http' in json.dumps(out['warnings'])


def test_credentials_in_the_url_reach_the_mirror_and_no_output(monkeypatch, capsys, tmp_path):
    seen = []

    def fetch(url, headers=None, **kwargs):
        seen.append((url, dict(headers or {})))
        body = PAYLOAD if url.endswith(NAME) else ('%s  %s\n' % (GOOD, NAME)).encode()
        return http.Response(io.BytesIO(body), 200, {}, url)
    args = args_for(str(tmp_path), url='https://bob:pw-SECRET@m.example/v1.2.3/' + NAME,
                    checksum_url='https://bob:pw-SECRET@m.example/v1.2.3/' + NAME + '.sha256')
    code, out = run(monkeypatch, capsys, args, fetch)
    assert code == 0 and out['url'] == 'https://m.example/v1.2.3/' + NAME
    base = 'https://m.example/v1.2.3/'
    assert [u for u, h in seen] == [base + NAME + '.sha256', base + NAME]
    assert all(h['Authorization'] == 'Basic Ym9iOnB3LVNFQ1JFVA==' for u, h in seen)
    assert 'pw-SECRET' not in json.dumps(out)
