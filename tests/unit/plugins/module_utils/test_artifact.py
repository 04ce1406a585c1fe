# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ensure_artifact against real HTTP servers on 127.0.0.1 that count every hit."""

import hashlib
import multiprocessing
import os
import stat
import threading
import time

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import (
    ArtifactError,
    ensure_artifact,
    ensure_private_dir,
    source_key,
)
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.local_http import LocalServer
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.fake_clock import FakeClock

TOKEN = 'fake-token-ARTIFACTtoken0123456789abcdefXY'
NAME = 'stigmer-v1.2.3-linux-amd64.tar.gz'
RUNNER = 'agent-runner-v1.2.3-linux-amd64'
PAYLOAD = b'\x1f\x8b' + os.urandom(300 * 1024)
GOOD = hashlib.sha256(PAYLOAD).hexdigest()
OTHER = hashlib.sha256(b'something else').hexdigest()


class Host(LocalServer):
    """One HTTP host. routes: path -> (status, headers, body) or callable(handler) -> same."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        super(Host, self).__init__()

    def answer(self, handler):
        path = handler.path.split('?')[0]
        with self.lock:
            self.requests.append((path, dict((k.lower(), v) for k, v in handler.headers.items())))
        route = self.routes.get(path, (404, {}, b'Not Found'))
        return route(handler) if callable(route) else route

    def hits(self, path):
        with self.lock:
            return len([p for p, dummy in self.requests if p == path])

    def headers_of(self, path):
        with self.lock:
            return [h for p, h in self.requests if p == path]


DL = '/stigmer/stigmer/releases/download/v1.2.3/'


@pytest.fixture
def gh():
    host = Host()
    host.routes[DL + NAME] = (200, {}, PAYLOAD)
    host.routes[DL + NAME + '.sha256'] = (200, {}, ('%s  %s\n' % (GOOD, NAME)).encode())
    yield host
    host.close()


@pytest.fixture
def dest(tmp_path):
    return str(tmp_path / 'cache' / 'v1.2.3')


def urls(host, name=NAME):
    return dict(url=host.base + DL + name, checksum_url=host.base + DL + name + '.sha256')


def no_network(*args, **kwargs):
    raise AssertionError('no request expected, got %r' % (args,))


def leftovers(directory):
    """Everything in dest_dir apart from the lock directory."""
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory) if n != '.locks')


# ---------------------------------------------------------------- download, then warm cache


def test_download_verify_and_record(gh, dest):
    result = ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    path = os.path.join(dest, NAME)
    assert result['changed'] is True and result['downloaded'] is True
    assert result['path'] == path and result['sha256'] == GOOD
    assert result['verified_against'] == ['checksum_file']
    assert 'downloaded %s' % NAME in result['msg']
    with open(path, 'rb') as handle:
        assert handle.read() == PAYLOAD
    with open(path + '.sha256') as handle:
        assert handle.read() == '%s  %s\n' % (GOOD, NAME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # archives are world-readable
    assert leftovers(dest) == [NAME, NAME + '.sha256']
    assert gh.hits(DL + NAME) == 1 and gh.hits(DL + NAME + '.sha256') == 1


def test_warm_cache_with_a_pin_or_digest_makes_no_request(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    result = ensure_artifact(NAME, dest_dir=dest, pinned='sha256:' + GOOD.upper(), digest='sha256:' + GOOD,
                             fetch=no_network, **urls(gh))
    assert result['changed'] is False and result['downloaded'] is False
    assert result['sha256'] == GOOD
    assert result['verified_against'] == ['pinned', 'digest']
    result = ensure_artifact(NAME, dest_dir=dest, digest=GOOD, fetch=no_network, **urls(gh))
    assert result['verified_against'] == ['digest']


def test_warm_cache_without_pin_or_digest_costs_only_the_checksum_file(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    result = ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert result['changed'] is False and result['downloaded'] is False
    assert result['verified_against'] == ['checksum_file']
    assert gh.hits(DL + NAME) == 1 and gh.hits(DL + NAME + '.sha256') == 2


def test_a_planted_file_with_its_record_is_not_trusted(gh, dest):
    os.makedirs(dest)
    bad = b'planted'
    with open(os.path.join(dest, NAME), 'wb') as handle:
        handle.write(bad)
    with open(os.path.join(dest, NAME + '.sha256'), 'w') as handle:
        handle.write('%s  %s\n' % (hashlib.sha256(bad).hexdigest(), NAME))
    result = ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert result['downloaded'] is True and result['sha256'] == GOOD
    with open(os.path.join(dest, NAME), 'rb') as handle:
        assert handle.read() == PAYLOAD


def test_tampered_cache_is_downloaded_again(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    with open(os.path.join(dest, NAME), 'ab') as handle:
        handle.write(b'tampered')
    result = ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert result['downloaded'] is True and result['changed'] is True
    assert result['previous_sha256'] != GOOD
    assert gh.hits(DL + NAME) == 2


def test_repinned_checksum_invalidates_the_record(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, pinned=OTHER, **urls(gh))
    assert 'checksum mismatch' in str(info.value)
    # The verified copy from before is untouched.
    with open(os.path.join(dest, NAME), 'rb') as handle:
        assert handle.read() == PAYLOAD
    assert leftovers(dest) == [NAME, NAME + '.sha256']


def test_present_file_without_record_is_adopted_without_download(gh, dest):
    os.makedirs(dest)
    with open(os.path.join(dest, NAME), 'wb') as handle:
        handle.write(PAYLOAD)
    result = ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert result['changed'] is False and result['downloaded'] is False
    assert gh.hits(DL + NAME) == 0
    assert os.path.exists(os.path.join(dest, NAME + '.sha256'))


# ---------------------------------------------------------------- verification failures leave nothing


def test_corrupt_download_leaves_nothing(gh, dest):
    gh.routes[DL + NAME] = (200, {}, PAYLOAD[:-1] + b'X')
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    message = str(info.value)
    assert message.startswith('checksum mismatch for %s: expected %s (from %s), got ' % (NAME, GOOD, gh.base + DL + NAME + '.sha256'))
    assert 'nothing was installed' in message
    assert leftovers(dest) == []


def test_short_download_leaves_nothing(gh, dest):
    def truncated(handler):
        handler.send_response(200)
        handler.send_header('Content-Length', str(len(PAYLOAD)))
        handler.end_headers()
        handler.wfile.write(PAYLOAD[:1000])
        handler.close_connection = True

    gh.routes[DL + NAME] = truncated
    slept = []
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, sleep=slept.append, **urls(gh))
    assert 'incomplete' in str(info.value)
    assert 'got 1000 of %d bytes (4 attempts)' % len(PAYLOAD) in str(info.value)
    assert gh.hits(DL + NAME) == 4 and len(slept) == 3
    assert leftovers(dest) == []


def test_a_fetch_that_lies_about_length_is_caught(dest):
    """Even a fetch whose stream does not check Content-Length cannot slip a short body through."""
    import io

    class Lying(http.Response):
        def iter_chunks(self, chunk_size=1024):
            yield self._raw.read()

    def fetch(url, **kwargs):
        if url.endswith('.sha256'):
            return http.Response(io.BytesIO(GOOD.encode()), 200, {}, url)
        return Lying(io.BytesIO(PAYLOAD[:10]), 200, {'content-length': str(len(PAYLOAD))}, url)

    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'https://h/' + NAME, dest, checksum_url='https://h/x.sha256', fetch=fetch, attempts=1)
    assert 'got 10 of' in str(info.value)
    assert leftovers(dest) == []


def test_interrupted_download_removes_the_temp_file(dest):
    import io

    class Broken(http.Response):
        def iter_chunks(self, chunk_size=1024):
            yield b'partial'
            raise KeyboardInterrupt()

    def fetch(url, **kwargs):
        return Broken(io.BytesIO(b''), 200, {}, url)

    with pytest.raises(KeyboardInterrupt):
        ensure_artifact(NAME, 'https://h/' + NAME, dest, pinned=GOOD, fetch=fetch)
    assert leftovers(dest) == []


def test_pinned_wins_and_the_checksum_file_is_not_fetched(gh, dest):
    gh.routes[DL + NAME + '.sha256'] = (200, {}, ('%s  %s\n' % (OTHER, NAME)).encode())
    result = ensure_artifact(NAME, dest_dir=dest, pinned=GOOD, **urls(gh))
    assert result['verified_against'] == ['pinned']
    assert gh.hits(DL + NAME + '.sha256') == 0


def test_digest_mismatch_fails_before_downloading(gh, dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, digest='sha256:' + OTHER, **urls(gh))
    message = str(info.value)
    assert OTHER in message and GOOD in message
    assert gh.hits(DL + NAME) == 0
    assert leftovers(dest) == []


def test_digest_agreeing_is_reported(gh, dest):
    result = ensure_artifact(NAME, dest_dir=dest, digest='sha256:' + GOOD, **urls(gh))
    assert result['verified_against'] == ['checksum_file', 'digest']


def test_missing_checksum_file(gh, dest):
    del gh.routes[DL + NAME + '.sha256']
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert gh.base + DL + NAME + '.sha256' in str(info.value)
    assert '404' in str(info.value)
    assert gh.hits(DL + NAME) == 0


def test_no_checksum_at_all_is_refused(gh, dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, gh.base + DL + NAME, dest)
    assert str(info.value) == ('no checksum for %s: the release publishes none at %s; pin one in stigmer_checksums'
                               % (NAME, gh.base + DL))
    assert gh.hits(DL + NAME) == 0


def test_checksums_txt_with_checksum_name(gh, dest):
    temporal = 'temporal_cli_1.5.1_linux_amd64.tar.gz'
    gh.routes['/t/' + temporal] = (200, {}, PAYLOAD)
    gh.routes['/t/checksums.txt'] = (200, {}, ('%s  temporal_cli_1.5.1_darwin_arm64.tar.gz\n%s  %s\n'
                                               % (OTHER, GOOD, temporal)).encode())
    result = ensure_artifact(temporal, gh.base + '/t/' + temporal, dest, checksum_url=gh.base + '/t/checksums.txt')
    assert result['sha256'] == GOOD


def test_unsafe_names_are_refused(gh, dest):
    for name in ('../evil', '.hidden', 'a/b', ''):
        with pytest.raises(ArtifactError):
            ensure_artifact(name, gh.base + '/x', dest, pinned=GOOD)


def test_raw_executable_mode_is_left_to_the_installer(gh, dest):
    gh.routes[DL + RUNNER] = (200, {}, b'#!/bin/sh\n')
    digest = hashlib.sha256(b'#!/bin/sh\n').hexdigest()
    result = ensure_artifact(RUNNER, gh.base + DL + RUNNER, dest, pinned=digest)
    assert stat.S_IMODE(os.stat(result['path']).st_mode) == 0o600


# ---------------------------------------------------------------- private repositories


def test_private_download_goes_through_the_api_and_drops_the_token_on_redirect(gh, dest):
    assets = Host()
    try:
        assets.routes['/signed/blob'] = (200, {}, PAYLOAD)
        gh.routes['/api/v3/repos/o/r/releases/assets/7'] = (302, {'Location': assets.base + '/signed/blob?sig=1'}, b'')
        gh.routes['/api/v3/repos/o/r/releases/assets/8'] = (200, {}, ('%s  %s\n' % (GOOD, NAME)).encode())
        result = ensure_artifact(NAME, 'https://github.invalid/o/r/' + NAME, dest, token=TOKEN,
                                 github_api_url=gh.base + '/api/v3',
                                 api_url=gh.base + '/api/v3/repos/o/r/releases/assets/7',
                                 checksum_api_url=gh.base + '/api/v3/repos/o/r/releases/assets/8')
        assert result['downloaded'] is True and result['sha256'] == GOOD
        api = gh.headers_of('/api/v3/repos/o/r/releases/assets/7')[0]
        assert api['authorization'] == 'Bearer ' + TOKEN
        assert api['accept'] == 'application/octet-stream'
        signed = assets.headers_of('/signed/blob')[0]
        assert 'authorization' not in signed
    finally:
        assets.close()


def test_without_token_the_plain_url_is_used_and_gets_no_token(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, api_url=gh.base + '/api/never', **urls(gh))
    assert gh.hits('/api/never') == 0
    assert 'authorization' not in gh.headers_of(DL + NAME)[0]


def test_errors_never_show_the_token(gh, dest):
    gh.routes['/api/asset'] = (401, {}, ('{"message": "Bad credentials %s"}' % TOKEN).encode())
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'https://h.invalid/' + NAME, dest, pinned=GOOD, token=TOKEN,
                        api_url=gh.base + '/api/asset', github_api_url=gh.base, attempts=1)
    assert '401' in str(info.value)
    assert TOKEN not in str(info.value)


# ---------------------------------------------------------------- concurrency


def slow_payload(handler):
    time.sleep(0.3)  # keep the first download in flight while the others arrive
    return 200, {}, PAYLOAD


def _worker(args):
    dest, kwargs = args
    return ensure_artifact(NAME, dest_dir=dest, **kwargs)


def test_four_threads_download_once(gh, dest):
    gh.routes[DL + NAME] = slow_payload
    results = []
    errors = []

    def run():
        try:
            results.append(_worker((dest, urls(gh))))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for dummy in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert gh.hits(DL + NAME) == 1
    assert sorted(r['downloaded'] for r in results) == [False, False, False, True]
    assert set(r['sha256'] for r in results) == {GOOD}
    assert leftovers(dest) == [NAME, NAME + '.sha256']


@pytest.mark.skipif('fork' not in multiprocessing.get_all_start_methods(), reason='needs fork')
def test_four_processes_download_once(gh, dest):
    gh.routes[DL + NAME] = slow_payload
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(4) as pool:
        results = pool.map(_worker, [(dest, urls(gh))] * 4, chunksize=1)
    assert gh.hits(DL + NAME) == 1
    assert sorted(r['downloaded'] for r in results) == [False, False, False, True]
    assert leftovers(dest) == [NAME, NAME + '.sha256']


# ---------------------------------------------------------------- check mode


def test_check_mode_on_a_fresh_host_touches_nothing(gh, dest):
    result = ensure_artifact(NAME, dest_dir=dest, check_mode=True, **urls(gh))
    assert result['changed'] is True and result['downloaded'] is False
    assert result['sha256'] == GOOD
    assert result['msg'].startswith('would download %s' % NAME)
    assert not os.path.exists(dest)
    assert gh.hits(DL + NAME) == 0


def test_check_mode_with_a_verified_copy(gh, dest):
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    result = ensure_artifact(NAME, dest_dir=dest, check_mode=True, digest=GOOD, fetch=no_network, **urls(gh))
    assert result['changed'] is False and result['downloaded'] is False


def test_check_mode_reports_a_missing_checksum(gh, dest):
    del gh.routes[DL + NAME + '.sha256']
    with pytest.raises(ArtifactError):
        ensure_artifact(NAME, dest_dir=dest, check_mode=True, **urls(gh))
    assert not os.path.exists(dest)


# ---------------------------------------------------------------- retries, deadline, ceiling


def flaky(status_then_payload):
    """Route answering the given statuses first, then the payload."""
    answers = list(status_then_payload)

    def route(handler):
        if answers:
            return answers.pop(0), {}, b'busy'
        return 200, {}, PAYLOAD
    return route


def test_transient_failures_are_retried_with_backoff(gh, dest):
    gh.routes[DL + NAME] = flaky([502, 503])
    clock = FakeClock(0.0)
    result = ensure_artifact(NAME, dest_dir=dest, sleep=clock.sleep, rng=lambda: 1.0, **urls(gh))
    assert result['downloaded'] is True and result['attempts'] == 3
    assert clock.slept == [1.0, 2.0]
    assert result['url'] == gh.base + DL + NAME and result['url'] in result['msg']


def test_retries_are_bounded_and_counted_in_the_message(gh, dest):
    gh.routes[DL + NAME] = (503, {}, b'busy')
    clock = FakeClock(0.0)
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, attempts=3, sleep=clock.sleep, rng=lambda: 0.0, **urls(gh))
    assert 'HTTP 503' in str(info.value) and '3 attempts' in str(info.value)
    assert gh.hits(DL + NAME) == 3
    assert leftovers(dest) == []


def test_a_404_is_not_retried(gh, dest):
    del gh.routes[DL + NAME]
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, sleep=no_network, **urls(gh))
    assert '1 attempt' in str(info.value)
    assert gh.hits(DL + NAME) == 1


def test_a_checksum_mismatch_is_not_retried(gh, dest):
    with pytest.raises(ArtifactError):
        ensure_artifact(NAME, dest_dir=dest, pinned=OTHER, sleep=no_network, **urls(gh))
    assert gh.hits(DL + NAME) == 1


def dripping(handler):
    handler.send_response(200)
    handler.send_header('Connection', 'close')
    handler.end_headers()
    try:
        for dummy in range(100):
            handler.wfile.write(b'x')
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass
    return None


def endless(handler):
    handler.send_response(200)
    handler.send_header('Connection', 'close')
    handler.end_headers()
    try:
        for dummy in range(4096):
            handler.wfile.write(b'y' * 4096)
    except OSError:
        pass
    return None


def test_a_slow_drip_fails_at_the_download_deadline(gh, dest):
    gh.routes[DL + NAME] = dripping
    started = time.monotonic()
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, timeout=2, download_timeout=0.4, pinned=GOOD, attempts=1,
                        **urls(gh))
    assert time.monotonic() - started < 1.5
    assert 'did not finish within 0.4 s' in str(info.value)
    assert leftovers(dest) == []


def test_a_body_longer_than_the_stated_size_fails_at_once(gh, dest):
    gh.routes[DL + NAME] = endless
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, size=11, pinned=GOOD, attempts=1, **urls(gh))
    assert 'larger than 11 bytes' in str(info.value)
    assert leftovers(dest) == []


def test_without_a_size_the_cap_applies(gh, dest):
    gh.routes[DL + NAME] = endless
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, max_bytes=1000000, pinned=GOOD, **urls(gh))
    assert 'larger than 1000000 bytes' in str(info.value)


def test_an_announced_length_other_than_the_stated_size_is_refused(gh, dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, dest_dir=dest, size=len(PAYLOAD) - 1, pinned=GOOD, **urls(gh))
    assert 'announces %d bytes' % len(PAYLOAD) in str(info.value)


# ---------------------------------------------------------------- transport and secrets


def test_plain_http_to_another_machine_is_refused_unless_allowed(dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'http://10.0.2.2:8000/' + NAME, dest, pinned=GOOD, fetch=no_network)
    assert 'allow_insecure' in str(info.value)

    def fetch(url, **kwargs):
        assert kwargs['allow_insecure'] is True
        raise http.ConnectError(url, 'refused')
    with pytest.raises(ArtifactError):
        ensure_artifact(NAME, 'http://10.0.2.2:8000/' + NAME, dest, pinned=GOOD, allow_insecure=True,
                        attempts=1, fetch=fetch)
    result = ensure_artifact(NAME, 'http://10.0.2.2:8000/' + NAME, dest, pinned=GOOD, allow_insecure=True,
                             check_mode=True, fetch=no_network)
    assert 'plain http' in result['warnings'][0]


def test_credentials_in_a_url_are_refused_without_showing_them(dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'https://bob:s3cret@mirror.invalid/' + NAME, dest, pinned=GOOD, fetch=no_network)
    assert 's3cret' not in str(info.value) and 'url_password' in str(info.value)


def test_mirror_credentials_go_to_the_mirror_only(gh, dest):
    assets = Host()
    try:
        assets.routes['/blob'] = (200, {}, PAYLOAD)
        gh.routes[DL + NAME] = (302, {'Location': assets.base + '/blob'}, b'')
        ensure_artifact(NAME, dest_dir=dest, url_username='bob', url_password='s3cret\n', **urls(gh))
        assert gh.headers_of(DL + NAME)[0]['authorization'] == 'Basic Ym9iOnMzY3JldA=='
        assert 'authorization' not in assets.headers_of('/blob')[0]
    finally:
        assets.close()


def test_a_token_with_a_trailing_newline_is_stripped(gh, dest):
    gh.routes['/api/v3/assets/7'] = (200, {}, PAYLOAD)
    ensure_artifact(NAME, 'https://h.invalid/' + NAME, dest, pinned=GOOD, token=TOKEN + '\n',
                    api_url=gh.base + '/api/v3/assets/7', github_api_url=gh.base + '/api/v3')
    assert gh.headers_of('/api/v3/assets/7')[0]['authorization'] == 'Bearer ' + TOKEN
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'https://h.invalid/' + NAME, dest, pinned=GOOD, token='abc\x07' + TOKEN,
                        fetch=no_network)
    assert TOKEN not in str(info.value) and 'control characters' in str(info.value)


def test_the_token_goes_only_to_the_configured_api(gh, dest):
    with pytest.raises(ArtifactError) as info:
        ensure_artifact(NAME, 'https://h.invalid/' + NAME, dest, pinned=GOOD, token=TOKEN,
                        api_url=gh.base + '/api/v3/assets/7', fetch=no_network)
    assert 'https://api.github.com' in str(info.value) and TOKEN not in str(info.value)


# ---------------------------------------------------------------- the private cache


def test_private_cache_is_0700_and_keyed_by_source(gh, tmp_path):
    root = str(tmp_path / 'cache' / 'stigmer' / 'stigmer' / 'v1.2.3')
    first = ensure_artifact(NAME, dest_dir=root, private=True, **urls(gh))
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(tmp_path / 'cache')).st_mode) == 0o700
    assert os.path.dirname(first['path']) == os.path.join(root, source_key(gh.base + DL + NAME))
    other = Host()
    try:
        other.routes[DL + NAME] = (200, {}, PAYLOAD)
        other.routes[DL + NAME + '.sha256'] = gh.routes[DL + NAME + '.sha256']
        second = ensure_artifact(NAME, dest_dir=root, private=True, digest=GOOD, **urls(other))
        # Another source: its own directory, its own download.
        assert second['downloaded'] is True and second['path'] != first['path']
        assert other.hits(DL + NAME) == 1
    finally:
        other.close()


def test_a_cache_owned_by_someone_else_or_open_to_writes_is_refused(tmp_path):
    mine = str(tmp_path / 'c')
    os.mkdir(mine, 0o755)
    ensure_private_dir(mine)
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o700  # ours and only readable: tightened
    with pytest.raises(ArtifactError) as info:
        ensure_private_dir(mine, uid=os.getuid() + 1)
    assert 'owned by uid' in str(info.value)
    os.chmod(mine, 0o777)
    with pytest.raises(ArtifactError) as info:
        ensure_private_dir(mine)
    assert 'writable by other users' in str(info.value)


def test_stale_part_files_are_removed(gh, dest):
    os.makedirs(dest)
    stale = os.path.join(dest, '.%s.abc123.part' % NAME)
    unrelated = os.path.join(dest, '.%s.abc123.part' % RUNNER)
    for path in (stale, unrelated):
        with open(path, 'wb') as handle:
            handle.write(b'half')
    ensure_artifact(NAME, dest_dir=dest, **urls(gh))
    assert not os.path.exists(stale) and os.path.exists(unrelated)
