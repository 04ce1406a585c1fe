# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""HTTP access for release resolution and artifact downloads.

Runs on the controller and on managed hosts (host download mode), so it uses
only the standard library and ``ansible.module_utils.urls``.

Redirects are followed here rather than by urllib: a GitHub download answers
302 to a signed URL on another host, and the ``Authorization`` header must not
travel there (the asset host rejects it, and a token must never leave the
origin it was meant for). So every hop recomputes its auth headers against the
origin of the URL the caller asked for, and a hop from https to http is refused.

Every request can carry an absolute deadline and a byte ceiling, and Retry
repeats the transient failures (with bounded, jittered backoff) of whole
requests, so one 502 or a slow drip cannot fail or stall a play.
"""

import base64
import datetime
import http.client
import ipaddress
import os
import random
import re
import socket
import ssl
import time
import urllib.error

from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ansible.module_utils.urls import open_url
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError

GITHUB_API_HEADERS = {
    'Accept': 'application/vnd.github+json',
    'X-GitHub-Api-Version': '2022-11-28',
}

# GitHub's API rejects requests without a User-Agent; name ourselves so that
# server operators (mirrors, GHE) can tell who is calling.
USER_AGENT = 'stigmer.runtime-ansible-collection'

REDIRECT_STATUSES = (301, 302, 303, 307, 308)

# Error bodies are for messages only: keep a bounded prefix.
ERROR_BODY_LIMIT = 2048

DEFAULT_CHUNK_SIZE = 64 * 1024

_DEFAULT_PORTS = {'http': 80, 'https': 443}

# Retried: the server or the path may recover within seconds.
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_ATTEMPTS = 4

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# A Retry-After longer than this is a quota reset, not a hiccup: fail with advice.
MAX_RETRY_AFTER = 60

_USERINFO_RE = re.compile(r'(?<=//)[^/@\s]*@')


class FetchError(Exception):
    """Base class of every failure raised by fetch(); ``url`` is where it happened.

    ``attempts`` is how many times Retry sent the request (1 without Retry).
    """

    def __init__(self, message, url=None):
        super(FetchError, self).__init__(message)
        self.url = url
        self.attempts = 1


class HttpError(FetchError):
    """The server answered with an error status (>= 400, or an unusable 3xx)."""

    def __init__(self, status, headers, url, body=''):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body or ''
        super(HttpError, self).__init__(
            'HTTP %s from %s' % (status, redact_url(url)), url=url)


class ConnectError(FetchError):
    """No HTTP answer at all: DNS, TCP, TLS, proxy or timeout failure."""

    def __init__(self, url, reason):
        self.reason = reason
        super(ConnectError, self).__init__(
            'cannot reach %s: %s' % (redact_url(url), reason), url=url)


class ShortReadError(FetchError):
    """The body ended before the announced Content-Length (or the stream broke)."""

    def __init__(self, url, expected, received, reason=None):
        self.expected = expected
        self.received = received
        self.reason = reason
        if expected is not None:
            detail = 'got %d of %d bytes' % (received, expected)
        else:
            detail = 'got %d bytes' % received
        if reason:
            detail = '%s (%s)' % (detail, reason)
        super(ShortReadError, self).__init__(
            'incomplete download from %s: %s' % (redact_url(url), detail), url=url)


class TooManyRedirects(FetchError):
    def __init__(self, url, max_redirects):
        self.max_redirects = max_redirects
        super(TooManyRedirects, self).__init__(
            'more than %d redirects starting at %s' % (max_redirects, redact_url(url)), url=url)


class ResponseTooLarge(FetchError):
    def __init__(self, url, limit):
        self.limit = limit
        super(ResponseTooLarge, self).__init__(
            'answer from %s is larger than %d bytes' % (redact_url(url), limit), url=url)


class InsecureTransportError(FetchError):
    """Plain http where a secret or unverified bytes could travel in clear."""


class DeadlineExceeded(FetchError):
    def __init__(self, url, received):
        self.received = received
        super(DeadlineExceeded, self).__init__(
            'the deadline passed while reading from %s (after %d bytes)' % (redact_url(url), received), url=url)


def redact_url(url):
    """URL fit for messages: no user:password and no query string.

    Mirror URLs may carry credentials in userinfo or a query token, and signed
    asset URLs carry long signatures; none of that belongs in a log.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return '<invalid url>'
    netloc = parts.netloc.rpartition('@')[2]
    return urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def scrub(text, *secrets):
    """Text fit for a message: no secret (as is or escaped) and no user:password@ in URLs."""
    text = _USERINFO_RE.sub('', '%s' % (text,))
    for secret in secrets:
        if not secret:
            continue
        # http.client and repr() show control characters escaped.
        for form in set((secret, repr(secret)[1:-1], secret.encode('unicode_escape').decode('ascii'))):
            text = text.replace(form, '********')
    return text


def clean_secret(value, what):
    """A token or password without surrounding white space; None when empty.

    ``echo TOKEN | ansible-vault encrypt_string`` leaves a trailing newline;
    http.client would refuse it and print the header, secret included.
    """
    if value is None:
        return None
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError('%s contains control characters; remove them (the value is not shown)' % what)
    return value or None


def split_credentials(url):
    """(url without user:password@, username or None, password or None)."""
    parts = urlsplit(url)
    if '@' not in parts.netloc:
        return url, None, None
    userinfo, dummy, hostport = parts.netloc.rpartition('@')
    user, dummy, password = userinfo.partition(':')
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) or None


def basic_auth_headers(username, password):
    if not username and not password:
        return {}
    pair = ('%s:%s' % (username or '', password or '')).encode('utf-8')
    return {'Authorization': 'Basic %s' % base64.b64encode(pair).decode('ascii')}


def is_loopback(url):
    try:
        host = (urlsplit(url).hostname or '').lower()
    except ValueError:
        return False
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url, allow_insecure=False, what='URL'):
    """Refuse a plain http ``url`` that leaves this machine unless allowed.

    Returns a warning when it is allowed, else None; raises
    InsecureTransportError otherwise.
    """
    try:
        scheme = (urlsplit(url).scheme or '').lower()
    except ValueError:
        scheme = ''
    if scheme == 'https' or (scheme == 'http' and is_loopback(url)):
        return None
    if scheme != 'http':
        raise InsecureTransportError('%s %s is not an http(s) URL' % (what, redact_url(url)), url=url)
    if not allow_insecure:
        raise InsecureTransportError(
            '%s %s uses plain http to another machine: tokens, credentials and artifacts would travel '
            'unprotected; use https, or allow insecure transport explicitly' % (what, redact_url(url)), url=url)
    return '%s %s uses plain http (insecure transport is allowed)' % (what, redact_url(url))


def origin_of(url):
    """(scheme, host, port) with default ports filled in, or None if unparsable."""
    try:
        parts = urlsplit(url)
        scheme = (parts.scheme or '').lower()
        host = (parts.hostname or '').lower()
        port = parts.port
    except ValueError:
        return None
    if not scheme or not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return (scheme, host, port)


def same_origin(url, other_url):
    a = origin_of(url)
    return a is not None and a == origin_of(other_url)


def auth_headers_for(url, origin_url, token):
    """Authorization header for ``url`` when it shares the origin of ``origin_url``.

    Scheme, host and port must all match: an https->http downgrade or a hop to
    the signed-asset host gets nothing.
    """
    if token and same_origin(url, origin_url):
        return {'Authorization': 'Bearer %s' % token}
    return {}


def lower_headers(headers):
    """HTTP headers as a plain dict with lowercase names (repeats joined by ', ')."""
    result = {}
    if headers is None:
        return result
    items = headers.items() if hasattr(headers, 'items') else headers
    for name, value in items:
        key = str(name).lower()
        if key in result:
            result[key] = '%s, %s' % (result[key], value)
        else:
            result[key] = value
    return result


def content_length(headers):
    # A gzip-encoded body is decoded by urllib and no longer matches the
    # announced length; only check plain bodies.
    if headers.get('content-encoding', 'identity').lower() not in ('', 'identity'):
        return None
    value = headers.get('content-length')
    if value is None:
        return None
    try:
        length = int(str(value).split(',', maxsplit=1)[0].strip())
    except ValueError:
        return None
    return length if length >= 0 else None


class Response(object):
    """What fetch() returns: status, lowercase headers, final url, and the body.

    Read the body with read() (small answers) or iter_chunks() (downloads); both
    raise ShortReadError when fewer bytes arrive than Content-Length announced.
    """

    def __init__(self, raw, status, headers, url, has_body=True, deadline=None, max_bytes=None,
                 clock=time.monotonic):
        self._raw = raw
        self.status = status
        self.headers = headers
        self.url = url
        # HEAD, 204 and 304 answers announce a length but carry no body.
        self.content_length = content_length(headers) if has_body else None
        self.bytes_read = 0
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._clock = clock

    def _read_some(self, chunk_size):
        # read1 returns what has arrived; read(n) would wait for all n bytes
        # of a slow drip and never let the deadline be checked.
        reader = getattr(self._raw, 'read1', None) or self._raw.read
        return reader(chunk_size)

    def iter_chunks(self, chunk_size=DEFAULT_CHUNK_SIZE):
        if self._raw is None:
            return
        if self.max_bytes is not None and (self.content_length or 0) > self.max_bytes:
            raise ResponseTooLarge(self.url, self.max_bytes)
        while True:
            if self.deadline is not None and self._clock() > self.deadline:
                raise DeadlineExceeded(self.url, self.bytes_read)
            try:
                chunk = self._read_some(chunk_size)
            except http.client.IncompleteRead as exc:
                self.bytes_read += len(exc.partial or b'')
                raise ShortReadError(self.url, self.content_length, self.bytes_read, 'connection closed early')
            except (socket.timeout, OSError, http.client.HTTPException) as exc:
                raise ShortReadError(self.url, self.content_length, self.bytes_read, _reason(exc))
            if not chunk:
                break
            self.bytes_read += len(chunk)
            if self.max_bytes is not None and self.bytes_read > self.max_bytes:
                raise ResponseTooLarge(self.url, self.max_bytes)
            yield chunk
        # http.client returns b'' rather than raising when a chunked read(n)
        # hits a closed connection, so the length check has to be ours.
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise ShortReadError(self.url, self.content_length, self.bytes_read)

    def read(self, max_bytes=None):
        """Whole body as bytes; ResponseTooLarge past ``max_bytes``."""
        parts = []
        total = 0
        for chunk in self.iter_chunks():
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise ResponseTooLarge(self.url, max_bytes)
            parts.append(chunk)
        return b''.join(parts)

    def text(self, max_bytes=None, encoding='utf-8'):
        return self.read(max_bytes=max_bytes).decode(encoding, 'replace')

    def close(self):
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except Exception:  # closing must never mask the real outcome
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def _reason(exc):
    """Short description of a low-level failure (urllib nests the real one)."""
    inner = getattr(exc, 'reason', None)
    if inner is not None and not isinstance(inner, str):
        exc = inner
    elif isinstance(inner, str) and inner:
        return inner
    if isinstance(exc, socket.timeout):
        return 'timed out'
    text = str(exc) or exc.__class__.__name__
    return text


def _read_error_body(fp):
    if fp is None:
        return ''
    try:
        data = fp.read(ERROR_BODY_LIMIT)
    except Exception:  # a broken error body is not worth a second error
        data = b''
    finally:
        try:
            fp.close()
        except Exception:
            pass
    if isinstance(data, bytes):
        return data.decode('utf-8', 'replace')
    return str(data or '')


def fetch(url, headers=None, token=None, validate_certs=True, timeout=30, method='GET',
          follow_redirects=True, max_redirects=5, allow_insecure=False, deadline=None, max_bytes=None,
          clock=time.monotonic):
    """Send one request, following redirects ourselves.

    Returns a Response for 2xx and 304 answers (and for 3xx when
    ``follow_redirects`` is false). Raises HttpError for >= 400, ConnectError
    when no answer came, TooManyRedirects past ``max_redirects`` hops,
    InsecureTransportError for plain http off this machine (unless
    ``allow_insecure``) and for any hop from https to http.
    The token is only ever sent to the origin of ``url``. ``deadline`` (on
    ``clock``) bounds the whole request, body included; the body may not
    exceed ``max_bytes``.
    """
    origin_url = url
    current = url
    verb = (method or 'GET').upper()
    for dummy in range(max_redirects + 1):
        check_transport(current, allow_insecure)
        hop_timeout = timeout
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise DeadlineExceeded(current, 0)
            hop_timeout = min(timeout, remaining)
        hop_headers = {}
        for name, value in (headers or {}).items():
            # A caller-supplied Authorization is as sensitive as the token:
            # it stays on the origin, like the token does.
            if name.lower() == 'authorization' and not same_origin(current, origin_url):
                continue
            hop_headers[name] = value
        hop_headers.update(auth_headers_for(current, origin_url, token))
        has_auth = any(name.lower() == 'authorization' for name in hop_headers)
        try:
            raw = open_url(
                current, method=verb, headers=hop_headers, validate_certs=validate_certs,
                timeout=hop_timeout, follow_redirects='none', http_agent=USER_AGENT,
                # ~/.netrc would overwrite an explicit Authorization header.
                use_netrc=not has_auth,
                # Downloads are hashed byte for byte; never let urllib rewrite them.
                decompress=False)
        except urllib.error.HTTPError as exc:
            status = exc.code
            resp_headers = lower_headers(exc.headers)
            if status in REDIRECT_STATUSES:
                location = resp_headers.get('location')
                if not follow_redirects:
                    return Response(exc, status, resp_headers, current, has_body=verb != 'HEAD')
                if not location:
                    raise HttpError(status, resp_headers, current, _read_error_body(exc))
                _read_error_body(exc)
                target = urljoin(current, location)
                if urlsplit(target).scheme.lower() not in ('http', 'https'):
                    raise HttpError(status, resp_headers, current, 'refusing redirect to %s' % redact_url(target))
                if urlsplit(current).scheme.lower() == 'https' and urlsplit(target).scheme.lower() != 'https':
                    raise InsecureTransportError('%s redirects from https to plain http (%s); refusing the downgrade'
                                                 % (redact_url(current), redact_url(target)), url=current)
                if status == 303 or (status in (301, 302) and verb not in ('GET', 'HEAD')):
                    verb = 'GET'
                current = target
                continue
            if status == 304:
                return Response(exc, status, resp_headers, current, has_body=False)
            raise HttpError(status, resp_headers, current, _read_error_body(exc))
        except (urllib.error.URLError, UrlsConnectionError, socket.timeout, ssl.SSLError,
                http.client.HTTPException, OSError, ValueError) as exc:
            raise ConnectError(current, _reason(exc))
        status = getattr(raw, 'status', None) or raw.getcode()
        return Response(raw, status, lower_headers(raw.headers), current,
                        has_body=verb != 'HEAD' and status not in (204, 304), deadline=deadline,
                        max_bytes=max_bytes, clock=clock)
    raise TooManyRedirects(origin_url, max_redirects)


def _int_header(headers, name):
    value = (headers or {}).get(name)
    if value is None:
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def _format_wait(seconds):
    if seconds < 60:
        return 'in under a minute'
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return 'in %d min' % minutes
    return 'in %d h %d min' % (minutes // 60, minutes % 60)


def is_rate_limited(status, headers):
    headers = headers or {}
    if status not in (403, 429):
        return False
    if str(headers.get('x-ratelimit-remaining', '')).strip() == '0':
        return True
    # Secondary rate limits come as 403 or 429 with Retry-After.
    return headers.get('retry-after') is not None


def rate_limit_message(status, headers, api_url, now=None, authenticated=False):
    """Human message for a GitHub rate-limit answer, or None if it is not one.

    Pure: ``now`` (epoch seconds) is injectable for tests.
    """
    headers = lower_headers(headers)
    if not is_rate_limited(status, headers):
        return None
    if now is None:
        now = datetime.datetime.now(tz=datetime.timezone.utc).timestamp()
    now = int(now)
    limit = _int_header(headers, 'x-ratelimit-limit')
    reset = _int_header(headers, 'x-ratelimit-reset')
    retry_after = _int_header(headers, 'retry-after')
    if reset is None and retry_after is not None:
        reset = now + retry_after

    parts = ['GitHub API rate limit exceeded at %s' % redact_url(api_url)]
    if limit is not None:
        parts.append(' (limit %d requests/hour)' % limit)
    if reset is not None:
        when = datetime.datetime.fromtimestamp(reset, tz=datetime.timezone.utc)
        parts.append('; it resets at %s UTC (%s)' % (
            when.strftime('%Y-%m-%d %H:%M:%S'), _format_wait(max(reset - now, 0))))
    if authenticated:
        parts.append('. The token\'s quota is used up; wait for the reset, or pin stigmer_version '
                     'and use stigmer_mirror_url to avoid API calls.')
    else:
        parts.append('. Set stigmer_github_token (or export GITHUB_TOKEN on the controller) to raise the limit.')
    return ''.join(parts)


# ---------------------------------------------------------------- retries


def backoff_delay(retry_number, rng=random.random, base=BACKOFF_BASE, cap=BACKOFF_CAP):
    """Seconds to wait before retry ``retry_number`` (1 for the first retry).

    Exponential with full jitter: spread between 0 and min(cap, base * 2**(n-1)),
    so a fleet that failed together does not retry together.
    """
    return rng() * min(cap, base * (2 ** (retry_number - 1)))


def retry_after(exc):
    """Seconds that a 429/503 answer asks us to wait, or None."""
    if not isinstance(exc, HttpError):
        return None
    value = _int_header(exc.headers, 'retry-after')
    return None if value is None else max(value, 0)


def is_transient(exc):
    """Whether sending the same request again may succeed.

    A rate limit that says when it resets (x-ratelimit-remaining: 0, or a
    Retry-After beyond MAX_RETRY_AFTER) will not clear in time: permanent.
    """
    if isinstance(exc, HttpError):
        if exc.status not in TRANSIENT_STATUSES:
            return False
        if str(exc.headers.get('x-ratelimit-remaining', '')).strip() == '0':
            return False
        wait = retry_after(exc)
        return wait is None or wait <= MAX_RETRY_AFTER
    return isinstance(exc, (ConnectError, ShortReadError, DeadlineExceeded))


def attempts_text(exc_or_count):
    """'1 attempt' / 'N attempts' for a failure (its ``attempts``) or a count."""
    count = exc_or_count if isinstance(exc_or_count, int) else getattr(exc_or_count, 'attempts', 1)
    return '1 attempt' if count == 1 else '%d attempts' % count


class Retry(object):
    """Runs a request again after transient failures, within attempts and a deadline.

    ``deadline`` is an absolute time on ``clock`` (None: no overall limit).
    sleep, clock and rng are injectable so tests wait for nothing.
    """

    def __init__(self, attempts=DEFAULT_ATTEMPTS, deadline=None, sleep=time.sleep, clock=time.monotonic,
                 rng=random.random):
        self.attempts = max(1, int(attempts))
        self.deadline = deadline
        self.sleep = sleep
        self.clock = clock
        self.rng = rng

    def call(self, func):
        """func() until it returns; re-raises the last FetchError with ``attempts`` set."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return func()
            except FetchError as exc:
                exc.attempts = attempt
                if attempt >= self.attempts or not is_transient(exc):
                    raise
                wait = retry_after(exc)
                if wait is None:
                    wait = backoff_delay(attempt, self.rng)
                if self.deadline is not None and self.clock() + wait >= self.deadline:
                    raise
                self.sleep(wait)


def use_url_credentials(module, url_keys, token_only_keys):
    """Take user:password@ out of a module's URL options before anything can echo them.

    Credentials in ``url_keys`` become url_username / url_password (explicit
    options win); those in ``token_only_keys`` fail the module, which uses the
    token there. Either password is masked in everything the module returns,
    its arguments included.
    """
    params = module.params
    username, password = take_url_credentials(params, url_keys)
    refused = take_url_credentials(params, token_only_keys)
    module.no_log_values.update(secret for secret in (password, refused[1]) if secret)
    if refused != (None, None):
        module.fail_json(msg='%s must not carry user:password@; use the token' % ' and '.join(token_only_keys))
    params['url_username'] = params['url_username'] or username
    params['url_password'] = params['url_password'] or password


def take_url_credentials(params, keys):
    """Move user:password@ out of the URL options ``keys`` of ``params`` (in place).

    Returns (username, password) of the first URL that carried them, or
    (None, None). Modules call this before anything can echo their arguments
    (results carry them as ``invocation``) and add the password to their
    no_log values, so credentials in a URL work without ever being shown.
    """
    found = (None, None)
    for key in keys:
        if not params.get(key):
            continue
        clean, username, password = split_credentials(params[key])
        if username is not None or password is not None:
            params[key] = clean
            if found == (None, None):
                found = (username, password)
    return found


_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def apply_download_environment(module):
    """Set the ``download_environment`` option's variables (proxies, CA bundles) in this process.

    They come as a module option rather than through the task's ``environment`` keyword, which
    puts them on the command line Ansible runs on the host (``ps``, ``-vvv``): a proxy URL's
    password travels in the module's arguments instead and is masked in everything it returns.
    """
    environment = module.params.get('download_environment') or {}
    for name in sorted(environment):
        value = environment[name]
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            module.fail_json(msg='download_environment: %r is not an environment variable name (letters, digits '
                                 'and _, not starting with a digit)' % (name,))
        value = '' if value is None else str(value)
        if '\0' in value:
            module.fail_json(msg='download_environment: the value of %s holds a NUL byte' % name)
        if '://' in value:
            dummy, dummy2, password = split_credentials(value)
            if password:
                raw = urlsplit(value).netloc.rpartition('@')[0].partition(':')[2]
                module.no_log_values.update(set([password, raw]))
        os.environ[name] = value


def github_argument_spec():
    """The argument spec of the options documented by the stigmer.runtime.github doc fragment."""
    return dict(
        github_url=dict(type='str', default='https://github.com'),
        api_url=dict(type='str', default='https://api.github.com'),
        token=dict(type='str', no_log=True),
    )


def transport_argument_spec():
    """The argument spec of the options documented by the stigmer.runtime.transport doc fragment."""
    return dict(
        attempts=dict(type='int', default=DEFAULT_ATTEMPTS),
        url_password=dict(type='str', no_log=True),
        validate_certs=dict(type='bool', default=True),
        download_environment=dict(type='dict', default={}),
    )
