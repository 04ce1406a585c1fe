# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""http.fetch against real HTTP servers on 127.0.0.1 (ephemeral ports), plus its pure helpers."""

import calendar
import socket
import time
import urllib.error

from unittest import mock

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.local_http import LocalServer
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.fake_clock import FakeClock

TOKEN = 'fake-token-TESTTOKEN0123456789abcdefABCDEF'


class Server(LocalServer):
    """A tiny scriptable HTTP server: routes map a path to a function(handler) -> (status, headers, body)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        super(Server, self).__init__()

    def answer(self, handler):
        self.requests.append({'method': handler.command, 'path': handler.path,
                              'headers': dict((k.lower(), v) for k, v in handler.headers.items())})
        route = self.routes.get(handler.path.split('?')[0])
        if route is None:
            return 404, {}, b'{"message": "Not Found"}'
        status, headers, body = route(handler)
        if status is None:  # the route wrote its own answer
            return None
        return status, headers, body

    def hits(self, path):
        return [r for r in self.requests if r['path'].split('?')[0] == path]


@pytest.fixture
def origin():
    server = Server()
    yield server
    server.close()


@pytest.fixture
def asset_host():
    server = Server()
    yield server
    server.close()


def fixed(status, body=b'', headers=None):
    return lambda handler: (status, headers or {}, body)


# ---------------------------------------------------------------- auth_headers_for / origins


def test_auth_headers_only_for_the_same_origin():
    origin = 'https://api.github.com/repos/a/b/releases/assets/1'
    assert http.auth_headers_for('https://api.github.com/other', origin, TOKEN) == {'Authorization': 'Bearer ' + TOKEN}
    assert http.auth_headers_for('https://API.GITHUB.COM:443/x', origin, TOKEN) == {'Authorization': 'Bearer ' + TOKEN}
    assert http.auth_headers_for('https://objects.githubusercontent.com/x', origin, TOKEN) == {}
    assert http.auth_headers_for('http://api.github.com/x', origin, TOKEN) == {}
    assert http.auth_headers_for('https://api.github.com:8443/x', origin, TOKEN) == {}
    assert http.auth_headers_for(origin, origin, None) == {}
    assert http.auth_headers_for(origin, origin, '') == {}


def test_redact_url_drops_credentials_and_query():
    assert http.redact_url('https://user:secret@mirror.example/a/b?token=x#f') == 'https://mirror.example/a/b'
    assert http.redact_url('https://h/p') == 'https://h/p'


# ---------------------------------------------------------------- redirects and the token


def test_redirect_to_another_host_drops_the_token(origin, asset_host):
    asset_host.routes['/signed/asset'] = fixed(200, b'payload')
    origin.routes['/download'] = fixed(302, headers={'Location': asset_host.base + '/signed/asset?sig=abc'})

    with http.fetch(origin.base + '/download', token=TOKEN, headers={'Accept': 'application/octet-stream'}) as resp:
        assert resp.status == 200
        assert resp.url == asset_host.base + '/signed/asset?sig=abc'
        assert resp.read() == b'payload'

    first = origin.hits('/download')[0]['headers']
    assert first['authorization'] == 'Bearer ' + TOKEN
    second = asset_host.hits('/signed/asset')[0]['headers']
    assert 'authorization' not in second
    # Other headers do follow (the asset host needs Accept).
    assert second['accept'] == 'application/octet-stream'


def test_redirect_within_the_origin_keeps_the_token(origin):
    origin.routes['/a'] = fixed(301, headers={'Location': '/b'})
    origin.routes['/b'] = fixed(200, b'ok')
    with http.fetch(origin.base + '/a', token=TOKEN) as resp:
        assert resp.read() == b'ok'
    assert origin.hits('/a')[0]['headers']['authorization'] == 'Bearer ' + TOKEN
    assert origin.hits('/b')[0]['headers']['authorization'] == 'Bearer ' + TOKEN


def test_caller_authorization_header_never_crosses_origins(origin, asset_host):
    asset_host.routes['/x'] = fixed(200, b'ok')
    origin.routes['/a'] = fixed(307, headers={'Location': asset_host.base + '/x'})
    with http.fetch(origin.base + '/a', headers={'Authorization': 'Basic c2VjcmV0'}) as resp:
        resp.read()
    assert origin.hits('/a')[0]['headers']['authorization'] == 'Basic c2VjcmV0'
    assert 'authorization' not in asset_host.hits('/x')[0]['headers']


def test_redirect_back_to_the_origin_gets_the_token_again(origin, asset_host):
    origin.routes['/start'] = fixed(302, headers={'Location': asset_host.base + '/hop'})
    asset_host.routes['/hop'] = fixed(302, headers={'Location': origin.base + '/end'})
    origin.routes['/end'] = fixed(200, b'done')
    with http.fetch(origin.base + '/start', token=TOKEN) as resp:
        assert resp.read() == b'done'
    assert 'authorization' not in asset_host.hits('/hop')[0]['headers']
    assert origin.hits('/end')[0]['headers']['authorization'] == 'Bearer ' + TOKEN


def test_without_following_redirects_the_3xx_is_returned(origin):
    origin.routes['/stigmer/stigmer/releases/latest'] = fixed(
        302, headers={'Location': origin.base + '/stigmer/stigmer/releases/tag/v1.1.0'})
    resp = http.fetch(origin.base + '/stigmer/stigmer/releases/latest', follow_redirects=False)
    try:
        assert resp.status == 302
        assert resp.headers['location'].endswith('/releases/tag/v1.1.0')
    finally:
        resp.close()
    assert len(origin.requests) == 1


def test_redirect_loop_is_bounded(origin):
    origin.routes['/loop'] = fixed(302, headers={'Location': '/loop'})
    with pytest.raises(http.TooManyRedirects):
        http.fetch(origin.base + '/loop', max_redirects=3)
    assert len(origin.hits('/loop')) == 4


def test_redirect_to_a_non_http_scheme_is_refused(origin):
    origin.routes['/a'] = fixed(302, headers={'Location': 'file:///etc/passwd'})
    with pytest.raises(http.HttpError) as info:
        http.fetch(origin.base + '/a')
    assert info.value.status == 302


def test_303_after_post_becomes_get(origin):
    origin.routes['/form'] = fixed(303, headers={'Location': '/result'})
    origin.routes['/result'] = fixed(200, b'r')
    with http.fetch(origin.base + '/form', method='POST') as resp:
        assert resp.read() == b'r'
    assert origin.hits('/result')[0]['method'] == 'GET'


# ---------------------------------------------------------------- errors


def test_http_error_carries_status_lowercase_headers_and_short_body(origin):
    origin.routes['/missing'] = fixed(404, b'x' * 5000, headers={'X-GitHub-Request-Id': 'abc'})
    with pytest.raises(http.HttpError) as info:
        http.fetch(origin.base + '/missing', token=TOKEN)
    exc = info.value
    assert exc.status == 404
    assert exc.headers['x-github-request-id'] == 'abc'
    assert exc.url == origin.base + '/missing'
    assert len(exc.body) == 2048
    assert TOKEN not in str(exc)


def test_304_is_returned_to_the_caller(origin):
    origin.routes['/etag'] = fixed(304, headers={'ETag': '"abc"'})
    with http.fetch(origin.base + '/etag', headers={'If-None-Match': '"abc"'}) as resp:
        assert resp.status == 304
        assert resp.headers['etag'] == '"abc"'
    assert origin.hits('/etag')[0]['headers']['if-none-match'] == '"abc"'


def test_connection_refused_names_the_url():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = 'http://127.0.0.1:%d/repos/x/y' % port
    with pytest.raises(http.ConnectError) as info:
        http.fetch(url, token=TOKEN, timeout=5)
    assert url in str(info.value)
    assert TOKEN not in str(info.value)


def _truncated(handler):
    handler.send_response(200)
    handler.send_header('Content-Length', '1000')
    handler.end_headers()
    handler.wfile.write(b'a' * 100)
    handler.wfile.flush()
    handler.close_connection = True
    return None, None, None


def test_short_read_is_detected_while_streaming(origin):
    origin.routes['/short'] = _truncated
    resp = http.fetch(origin.base + '/short')
    received = 0
    with pytest.raises(http.ShortReadError) as info:
        for chunk in resp.iter_chunks(16):
            received += len(chunk)
    resp.close()
    assert received == 100
    assert info.value.expected == 1000
    assert info.value.received == 100
    assert 'got 100 of 1000 bytes' in str(info.value)


def test_short_read_is_detected_by_read(origin):
    origin.routes['/short'] = _truncated
    with pytest.raises(http.ShortReadError):
        with http.fetch(origin.base + '/short') as resp:
            resp.read()


def test_head_has_no_body_despite_content_length(origin):
    origin.routes['/file'] = fixed(200, b'z' * 100)
    with http.fetch(origin.base + '/file', method='HEAD') as resp:
        assert resp.status == 200
        assert resp.headers['content-length'] == '100'
        assert resp.read() == b''


def test_read_limit(origin):
    origin.routes['/big'] = fixed(200, b'y' * 4096)
    with pytest.raises(http.ResponseTooLarge):
        with http.fetch(origin.base + '/big') as resp:
            resp.read(max_bytes=1024)


# ---------------------------------------------------------------- rate limits

NOW = calendar.timegm((2026, 11, 21, 5, 35, 0))
RESET = calendar.timegm((2026, 11, 21, 6, 12, 0))


def test_rate_limit_message_for_403():
    headers = {'X-RateLimit-Limit': '60', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': str(RESET)}
    assert http.rate_limit_message(403, headers, 'https://api.github.com', now=NOW) == (
        'GitHub API rate limit exceeded at https://api.github.com (limit 60 requests/hour); '
        'it resets at 2026-11-21 06:12:00 UTC (in 37 min). '
        'Set stigmer_github_token (or export GITHUB_TOKEN on the controller) to raise the limit.')


def test_rate_limit_message_for_429_with_retry_after():
    message = http.rate_limit_message(429, {'retry-after': '90'}, 'https://ghe.example/api/v3', now=NOW)
    assert message.startswith('GitHub API rate limit exceeded at https://ghe.example/api/v3; it resets at '
                              '2026-11-21 05:36:30 UTC (in 2 min).')


def test_rate_limit_message_with_a_token_does_not_ask_for_one():
    headers = {'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': str(NOW + 7300)}
    message = http.rate_limit_message(403, headers, 'https://api.github.com', now=NOW, authenticated=True)
    assert '(limit 5000 requests/hour)' in message
    assert '(in 2 h 2 min)' in message
    assert 'Set stigmer_github_token' not in message


def test_not_a_rate_limit():
    assert http.rate_limit_message(403, {'x-ratelimit-remaining': '12'}, 'https://api.github.com', now=NOW) is None
    assert http.rate_limit_message(404, {'x-ratelimit-remaining': '0'}, 'https://api.github.com', now=NOW) is None
    assert http.rate_limit_message(429, {}, 'https://api.github.com', now=NOW) is None


def test_rate_limit_reset_in_the_past_or_soon():
    headers = {'x-ratelimit-remaining': '0', 'x-ratelimit-reset': str(NOW - 10)}
    assert '(in under a minute)' in http.rate_limit_message(403, headers, 'https://api.github.com', now=NOW)


# ---------------------------------------------------------------- retries


def failing(errors, result='ok'):
    calls = []

    def func():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result
    return func, calls


def http_error(status, **headers):
    return http.HttpError(status, headers, 'https://example.invalid/x')


def test_backoff_is_exponential_capped_and_jittered():
    assert [http.backoff_delay(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 30.0]
    assert http.backoff_delay(3, rng=lambda: 0.5) == 2.0
    assert http.backoff_delay(3, rng=lambda: 0.0) == 0.0


def test_retry_repeats_transient_failures_with_backoff():
    clock = FakeClock()
    func, calls = failing([http_error(502), http.ConnectError('https://x.invalid/', 'connection reset'),
                           http_error(503)])
    retry = http.Retry(4, sleep=clock.sleep, clock=clock, rng=lambda: 1.0)
    assert retry.call(func) == 'ok'
    assert len(calls) == 4
    assert clock.slept == [1.0, 2.0, 4.0]


@pytest.mark.parametrize('error', [http_error(404), http_error(401), http_error(403),
                                   http_error(429, **{'x-ratelimit-remaining': '0'}),
                                   http_error(429, **{'retry-after': '3600'}),
                                   http.InsecureTransportError('downgrade'),
                                   http.ResponseTooLarge('https://x.invalid/', 10)])
def test_permanent_failures_are_not_retried(error):
    clock = FakeClock()
    func, calls = failing([error])
    with pytest.raises(http.FetchError) as info:
        http.Retry(5, sleep=clock.sleep, clock=clock).call(func)
    assert info.value is error and info.value.attempts == 1
    assert len(calls) == 1 and clock.slept == []


def test_retry_after_is_honoured_for_429():
    clock = FakeClock()
    func, calls = failing([http_error(429, **{'retry-after': '7'})])
    assert http.Retry(3, sleep=clock.sleep, clock=clock, rng=lambda: 1.0).call(func) == 'ok'
    assert clock.slept == [7]


def test_retry_gives_up_after_its_attempts_and_says_how_many():
    clock = FakeClock()
    func, calls = failing([http_error(503)] * 5)
    with pytest.raises(http.HttpError) as info:
        http.Retry(3, sleep=clock.sleep, clock=clock, rng=lambda: 1.0).call(func)
    assert info.value.attempts == 3 and len(calls) == 3
    assert http.attempts_text(info.value) == '3 attempts'


def test_retry_never_sleeps_past_the_deadline():
    clock = FakeClock()
    func, calls = failing([http_error(503)] * 5)
    with pytest.raises(http.HttpError) as info:
        http.Retry(10, deadline=clock.now + 2.5, sleep=clock.sleep, clock=clock, rng=lambda: 1.0).call(func)
    assert clock.slept == [1.0]  # the next wait (2 s) would cross the deadline
    assert info.value.attempts == 2


# ---------------------------------------------------------------- deadline, ceiling, downgrade


def drip(handler):
    """A body with no Content-Length that sends one byte every 50 ms for ever."""
    handler.send_response(200)
    handler.send_header('Connection', 'close')
    handler.end_headers()
    try:
        for dummy in range(200):
            handler.wfile.write(b'x')
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass
    return None, None, None


def endless(handler):
    handler.send_response(200)
    handler.send_header('Connection', 'close')
    handler.end_headers()
    try:
        for dummy in range(4096):
            handler.wfile.write(b'y' * 4096)
    except OSError:
        pass
    return None, None, None


def test_a_slow_drip_is_cut_at_the_deadline(origin):
    origin.routes['/drip'] = drip
    started = time.monotonic()
    with pytest.raises(http.DeadlineExceeded) as info:
        with http.fetch(origin.base + '/drip', timeout=2, deadline=time.monotonic() + 0.4) as response:
            response.read()
    assert time.monotonic() - started < 1.5
    assert 0 < info.value.received < 40


def test_an_endless_body_stops_at_the_ceiling(origin):
    origin.routes['/endless'] = endless
    with pytest.raises(http.ResponseTooLarge):
        with http.fetch(origin.base + '/endless', max_bytes=100000) as response:
            for dummy in response.iter_chunks():
                pass
    origin.routes['/big'] = fixed(200, b'z' * 5000)
    with pytest.raises(http.ResponseTooLarge):
        # The announced length alone is enough to refuse.
        http.fetch(origin.base + '/big', max_bytes=11).read()


def test_a_redirect_from_https_to_http_is_refused():
    def fake_open_url(url, **kwargs):
        raise urllib.error.HTTPError(url, 302, 'Found', {'Location': 'http://mirror.invalid/a'}, None)
    with mock.patch.object(http, 'open_url', fake_open_url):
        with pytest.raises(http.InsecureTransportError) as info:
            http.fetch('https://github.invalid/a', token=TOKEN)
    assert 'downgrade' in str(info.value) and 'https://github.invalid/a' in str(info.value)


def test_plain_http_off_this_machine_is_refused_unless_allowed(origin):
    with pytest.raises(http.InsecureTransportError):
        http.fetch('http://10.0.2.2:9/x')
    with pytest.raises(http.InsecureTransportError):
        http.check_transport('http://mirror.example.com/x')
    assert http.check_transport('http://127.0.0.5:8/x') is None
    assert http.check_transport('http://[::1]:8/x') is None
    assert http.check_transport('http://localhost/x') is None
    assert http.check_transport('https://mirror.example.com/x') is None
    assert 'plain http' in http.check_transport('http://10.0.2.2:8/x', allow_insecure=True)
    with pytest.raises(http.InsecureTransportError):
        http.check_transport('ftp://mirror.example.com/x', allow_insecure=True)


# ---------------------------------------------------------------- secrets


def test_clean_secret_strips_white_space_and_refuses_control_characters():
    assert http.clean_secret(TOKEN + '\n', 'token') == TOKEN
    assert http.clean_secret('  \n', 'token') is None
    with pytest.raises(ValueError) as info:
        http.clean_secret('abc\ndef', 'the token')
    assert 'abc' not in str(info.value) and 'control characters' in str(info.value)


def test_scrub_masks_escaped_secrets_and_url_credentials():
    text = "Invalid header value b'Bearer %s\\n' for https://bob:s3cret@mirror.invalid/x" % 'tok\nen'
    shown = http.scrub(text, 'tok\nen')
    assert 'tok' not in shown and 's3cret' not in shown and 'bob' not in shown
    assert 'https://mirror.invalid/x' in shown


def test_split_credentials_and_basic_auth():
    url, user, password = http.split_credentials('https://bob:p%40ss@mirror.invalid/stigmer')
    assert (url, user, password) == ('https://mirror.invalid/stigmer', 'bob', 'p@ss')
    assert http.split_credentials('https://mirror.invalid/x') == ('https://mirror.invalid/x', None, None)
    assert http.basic_auth_headers('bob', 'p@ss') == {'Authorization': 'Basic Ym9iOnBAc3M='}
    assert http.basic_auth_headers(None, None) == {}
