# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Download one release artifact into a directory, verified, at most once.

Rules this file exists to keep:

* Nothing unverified is ever installed: the expected SHA256 comes from a pin
  or the release's checksum file; without either the call fails.
* A verified copy is recognised without any network request (our own record
  ``<name>.sha256`` next to it, re-checked against the file's bytes).
* Concurrent callers (Ansible forks on the controller) serialise on a file
  lock, so each artifact is downloaded once and the others find it verified.
* Bytes land in a temp file in the destination directory and only replace
  the artifact, atomically, once their hash matches; any failure removes
  the temp file.
"""

import errno
import fcntl
import hashlib
import os
import re
import tempfile

from urllib.parse import urlsplit

from ansible_collections.stigmer.runtime.plugins.module_utils import http
from ansible_collections.stigmer.runtime.plugins.module_utils.checksum import (
    ChecksumError,
    normalize_sha256,
    parse_checksum_file,
    sha256_file,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.fileio import atomic_write

CHUNK_SIZE = 256 * 1024
MAX_CHECKSUM_BYTES = 1024 * 1024
LOCK_DIR = '.locks'

# Archives are data that the installer unpacks: world-readable is right.
# Raw executables keep mkstemp's 0600 here; the installer sets their mode.
_ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar', '.tar.xz', '.tar.bz2', '.zip', '.gz')

# Artifact names become file names: one plain path component, no dot files.
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]*$')

_CONNECT_HINT = ('check stigmer_github_url / stigmer_mirror_url, or configure a proxy (https_proxy) '
                 'for the host that downloads')


class ArtifactError(Exception):
    """The artifact cannot be provided verified; nothing was installed."""


# ---------------------------------------------------------------- pure helpers


def validate_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name) or '..' in name:
        raise ArtifactError('artifact name %r is not a plain file name' % (name,))
    return name


def is_archive(name):
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def record_line(sha256, name):
    """Our verification record, in GNU sha256sum format."""
    return '%s  %s\n' % (sha256, name)


def release_dir_of(url):
    """Where the release's files live, for messages: the URL minus its last component."""
    shown = http.redact_url(url) or ''
    return shown.rsplit('/', 1)[0] + '/' if '/' in shown else shown


def _result(path, sha256, changed, downloaded, verified_against, msg, previous_sha256=None):
    return {
        'path': path,
        'sha256': sha256,
        'changed': changed,
        'downloaded': downloaded,
        'verified_against': list(verified_against),
        'msg': msg,
        'previous_sha256': previous_sha256,
    }


# ---------------------------------------------------------------- local state


def read_record(record_path, name):
    """SHA256 our record states for name, or None if there is no usable record."""
    try:
        with open(record_path, 'rb') as handle:
            text = handle.read(MAX_CHECKSUM_BYTES).decode('utf-8', 'replace')
    except OSError:
        return None
    try:
        return parse_checksum_file(text, name)
    except ChecksumError:
        return None


def hash_if_present(path):
    try:
        return sha256_file(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def verified_copy(path, record_path, name, pinned=None, digest=None):
    """SHA256 of the cached artifact when it is still verified, else None.

    The record alone proves nothing about the bytes, so they are re-hashed;
    a pin or an API digest that disagrees with the record (re-pinned, or the
    release was replaced) makes the copy stale.
    """
    recorded = read_record(record_path, name)
    if recorded is None:
        return None
    if pinned is not None and recorded != pinned:
        return None
    if digest is not None and recorded != digest:
        return None
    if hash_if_present(path) != recorded:
        return None
    return recorded


def fsync_dir(directory):
    # Makes the rename durable; not every filesystem allows it, which is fine.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Lock(object):
    """Exclusive flock on dest_dir/.locks/<name>.lock (blocks until it is ours).

    flock locks belong to the open file, so separate opens conflict across
    processes and threads alike. Lock files are never deleted: removing one
    while another process waits on it would let a third take a fresh lock.
    """

    def __init__(self, dest_dir, name):
        self.path = os.path.join(dest_dir, LOCK_DIR, '%s.lock' % name)
        self._handle = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._handle = open(self.path, 'a')
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()
        return False


# ---------------------------------------------------------------- network


class _Job(object):
    def __init__(self, name, url, dest_dir, checksum_url, checksum_name, checksum_api_url, pinned, digest,
                 token, api_url, validate_certs, timeout, fetch):
        self.name = name
        self.url = url
        self.dest_dir = dest_dir
        self.path = os.path.join(dest_dir, name)
        self.record_path = self.path + '.sha256'
        self.checksum_url = checksum_url
        self.checksum_name = checksum_name or name
        self.checksum_api_url = checksum_api_url
        self.pinned = pinned
        self.digest = digest
        self.token = token
        self.api_url = api_url
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.fetch = fetch

    def error(self, message):
        return ArtifactError(http.scrub(message, self.token))

    def request(self, plain_url, asset_api_url, accept=None):
        """Open plain_url anonymously, or the API asset URL with the token.

        The API path is how private repositories serve bytes; http.fetch keeps
        the token on the API host and drops it on the redirect to the asset
        host. Tokens never go to plain download URLs or mirrors.
        """
        if asset_api_url and self.token:
            headers = {'Accept': 'application/octet-stream',
                       'X-GitHub-Api-Version': http.GITHUB_API_HEADERS['X-GitHub-Api-Version']}
            return asset_api_url, self.fetch(asset_api_url, headers=headers, token=self.token,
                                             validate_certs=self.validate_certs, timeout=self.timeout)
        headers = {'Accept': accept} if accept else {}
        return plain_url, self.fetch(plain_url, headers=headers, token=None,
                                     validate_certs=self.validate_certs, timeout=self.timeout)

    def failure(self, exc, url, what):
        shown = http.redact_url(url)
        if isinstance(exc, http.HttpError):
            limited = http.rate_limit_message(exc.status, exc.headers, _site_of(url),
                                              authenticated=bool(self.token))
            if limited:
                return self.error(limited)
            if exc.status == 404:
                return self.error('%s not found at %s (HTTP 404)' % (what, shown))
            if exc.status in (401, 403):
                return self.error('access denied (HTTP %s) to %s at %s; for a private repository set '
                                  'stigmer_github_token' % (exc.status, what, shown))
            return self.error('HTTP %s from %s while fetching %s' % (exc.status, shown, what))
        if isinstance(exc, http.ConnectError):
            return self.error('cannot reach %s to fetch %s: %s; %s' % (shown, what, exc.reason, _CONNECT_HINT))
        if isinstance(exc, http.ShortReadError):
            return self.error('the download of %s from %s is incomplete: %s; nothing was installed'
                              % (what, shown, _short_detail(exc)))
        return self.error('%s' % exc)

    def expected_checksum(self):
        """(sha256, source description, verified_against tag)."""
        if self.pinned is not None:
            # A pin is the operator's word: the published file is not consulted.
            return self.pinned, 'the pinned checksum in stigmer_checksums', 'pinned'
        if not self.checksum_url and not (self.checksum_api_url and self.token):
            raise self.error('no checksum for %s: the release publishes none at %s; pin one in stigmer_checksums'
                             % (self.name, release_dir_of(self.url)))
        what = 'the checksum file for %s' % self.name
        shown_url = self.checksum_url or self.checksum_api_url
        try:
            used_url, response = self.request(self.checksum_url, self.checksum_api_url)
            shown_url = used_url
            try:
                text = response.text(max_bytes=MAX_CHECKSUM_BYTES)
            finally:
                response.close()
        except http.HttpError as exc:
            if exc.status == 404:
                raise self.error('%s not found at %s (HTTP 404); the release does not publish it: pin the '
                                 'checksum in stigmer_checksums' % (what, http.redact_url(exc.url or shown_url)))
            raise self.failure(exc, exc.url or shown_url, what)
        except http.FetchError as exc:
            raise self.failure(exc, exc.url or shown_url, what)
        try:
            expected = parse_checksum_file(text, self.checksum_name)
        except ChecksumError as exc:
            raise self.error('%s (from %s)' % (exc, http.redact_url(shown_url)))
        return expected, http.redact_url(self.checksum_url or shown_url), 'checksum_file'

    def check_digest(self, expected, source):
        """The API's digest must agree with the checksum before any byte is fetched."""
        if self.digest is not None and self.digest != expected:
            raise self.error('the GitHub API digest of %s (sha256:%s) does not match its checksum %s (from %s); '
                             'the release was altered or the checksum is wrong \u2014 nothing was downloaded'
                             % (self.name, self.digest, expected, source))

    def download(self, expected, source):
        """Fetch into a temp file, verify, then atomically replace the artifact."""
        fd, tmp = tempfile.mkstemp(dir=self.dest_dir, prefix='.%s.' % self.name, suffix='.part')
        try:
            hasher = hashlib.sha256()
            received = 0
            announced = None
            shown_url = self.url
            with os.fdopen(fd, 'wb') as out:
                try:
                    shown_url, response = self.request(self.url, self.api_url)
                    try:
                        announced = http.content_length(response.headers)
                        for chunk in response.iter_chunks(CHUNK_SIZE):
                            hasher.update(chunk)
                            out.write(chunk)
                            received += len(chunk)
                    finally:
                        response.close()
                except http.FetchError as exc:
                    raise self.failure(exc, exc.url or shown_url, self.name)
                # Checked here as well as in http: a short body must never be
                # mistaken for a corrupt release, and fetch is injectable.
                if announced is not None and received != announced:
                    raise self.error('the download of %s from %s is incomplete: got %d of %d bytes; '
                                     'nothing was installed' % (self.name, http.redact_url(shown_url),
                                                                received, announced))
                out.flush()
                os.fsync(out.fileno())
            got = hasher.hexdigest()
            if got != expected:
                raise self.error('checksum mismatch for %s: expected %s (from %s), got %s; the download is corrupt '
                                 'or the release was altered \u2014 nothing was installed'
                                 % (self.name, expected, source, got))
            if is_archive(self.name):
                os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
            fsync_dir(self.dest_dir)
            return got, received
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_record(self, sha256):
        atomic_write(self.record_path, record_line(sha256, self.name))


def _site_of(url):
    parts = urlsplit(http.redact_url(url) or '')
    return '%s://%s' % (parts.scheme, parts.netloc) if parts.netloc else (url or '')


def _short_detail(exc):
    if exc.expected is not None:
        return 'got %d of %d bytes' % (exc.received, exc.expected)
    return 'the connection broke after %d bytes (%s)' % (exc.received, exc.reason or 'unknown reason')


def _normalize(value, what):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return normalize_sha256(value)
    except ChecksumError as exc:
        raise ArtifactError('%s: %s' % (what, exc))


def ensure_artifact(name, url, dest_dir, checksum_url=None, checksum_name=None, pinned=None, digest=None,
                    token=None, api_url=None, validate_certs=True, timeout=60, check_mode=False,
                    fetch=http.fetch, checksum_api_url=None):
    """Make dest_dir/name a verified copy of the artifact at url.

    Returns {'path', 'sha256', 'changed', 'downloaded', 'verified_against',
    'msg', 'previous_sha256'}; raises ArtifactError when the artifact cannot be
    provided verified (and then nothing was installed).
    """
    validate_name(name)
    if not url:
        raise ArtifactError('no download URL for %s' % name)
    pinned = _normalize(pinned, 'pinned checksum for %s' % name)
    digest = _normalize(digest, 'API digest for %s' % name)
    job = _Job(name, url, dest_dir, checksum_url, checksum_name, checksum_api_url, pinned, digest,
               token, api_url, validate_certs, timeout, fetch)

    if check_mode:
        return _plan(job)

    try:
        os.makedirs(dest_dir, exist_ok=True)
        lock = _Lock(dest_dir, name)
    except OSError as exc:
        raise ArtifactError('cannot create %s: %s' % (dest_dir, exc.strerror or exc))
    with lock:
        # Checked under the lock: a fork that waited finds what the first one
        # downloaded and makes no request at all.
        current = verified_copy(job.path, job.record_path, name, pinned, digest)
        if current is not None:
            return _result(job.path, current, False, False, _cached_against(pinned, digest),
                           '%s is already downloaded and verified' % name, current)

        expected, source, against = job.expected_checksum()
        job.check_digest(expected, source)
        verified_against = [against] + (['digest'] if digest is not None else [])

        previous = hash_if_present(job.path)
        if previous == expected:
            # The right bytes are already there (seeded by hand, or our record
            # was lost): keep them and only write the record.
            job.write_record(expected)
            return _result(job.path, expected, False, False, verified_against,
                           '%s was already present and matches %s' % (name, source), previous)

        got, size = job.download(expected, source)
        job.write_record(got)
        return _result(job.path, got, True, True, verified_against,
                       'downloaded %s (%d bytes) and verified it against %s' % (name, size, source), previous)


def _cached_against(pinned, digest):
    against = ['record']
    if pinned is not None:
        against.append('pinned')
    if digest is not None:
        against.append('digest')
    return against


def _plan(job):
    """Check mode: say what a real run would do; read-only, disk untouched."""
    current = verified_copy(job.path, job.record_path, job.name, job.pinned, job.digest)
    if current is not None:
        return _result(job.path, current, False, False, _cached_against(job.pinned, job.digest),
                       '%s is already downloaded and verified' % job.name, current)
    # Fetching the small checksum file is read-only and surfaces a missing or
    # contradicting checksum in --check rather than in the real run.
    expected, source, against = job.expected_checksum()
    job.check_digest(expected, source)
    verified_against = [against] + (['digest'] if job.digest is not None else [])
    previous = hash_if_present(job.path)
    if previous == expected:
        return _result(job.path, expected, False, False, verified_against,
                       '%s is present and matches %s; would record it' % (job.name, source), previous)
    return _result(job.path, expected, True, False, verified_against,
                   'would download %s from %s and verify it against %s'
                   % (job.name, http.redact_url(job.url), source), previous)
