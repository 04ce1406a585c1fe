# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_artifact module: results, check and diff mode, failures, documentation."""

import functools
import hashlib
import io
import os

from ansible_collections.stigmer.runtime.plugins.module_utils import artifact
from ansible_collections.stigmer.runtime.plugins.module_utils import http
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
    assert fetch.calls == []


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
    assert spec['token']['no_log'] is True
    assert set(returned) == {'path', 'sha256', 'downloaded', 'verified_against', 'msg'}
