# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Download one release artifact into a directory, verified, at most once.

Rules this file exists to keep:

* Nothing unverified is ever installed, and nothing on disk is trusted
  because of a record: the bytes must match a checksum obtained for this run
  (a pin, the API digest, or the release's checksum file). A pin or digest
  proves a cached copy without any request; otherwise the small checksum
  file is fetched. The ``<name>.sha256`` record written next to the artifact
  is for people and other tools, never read back as proof.
* Every request is retried on transient failures, and the whole download has
  a deadline and a byte ceiling (the size the API states, else a cap).
* Concurrent callers (Ansible forks on the controller) serialise on a file
  lock, so each artifact is downloaded once and the others find it verified;
  under the lock, .part files a killed run left behind are removed.
* Bytes land in a temp file in the destination directory and only replace
  the artifact, atomically, once their hash matches; any failure removes
  the temp file.
* A private cache (the controller's) is 0700, owned by the running user, and
  keyed by the source the bytes come from, so switching mirrors never reuses
  another source's bytes.
"""

import errno
import glob
import hashlib
import os
import random
import re
import stat
import tempfile
import time

from urllib.parse import urlsplit

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils._checksum import (
    ChecksumError,
    normalize_sha256,
    parse_checksum_file,
    sha256_file,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._host import Lock, atomic_write

CHUNK_SIZE = 256 * 1024
MAX_CHECKSUM_BYTES = 1024 * 1024
LOCK_DIR = '.locks'

# The agent-runner is about 60 MB; a body past this without a known size is
# a misconfigured URL or an endless stream.
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = 1800
DEFAULT_API_URL = 'https://api.github.com'

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


def source_key(url):
    """Short, stable name of where an artifact comes from (its directory, no credentials)."""
    return hashlib.sha256(release_dir_of(url).encode('utf-8')).hexdigest()[:12]


def _result(path, sha256, changed, downloaded, verified_against, msg, previous_sha256=None, url=None,
            attempts=0, warnings=()):
    return {
        'path': path,
        'sha256': sha256,
        'changed': changed,
        'downloaded': downloaded,
        'verified_against': list(verified_against),
        'msg': msg,
        'previous_sha256': previous_sha256,
        'url': url,
        'attempts': attempts,
        'warnings': list(warnings),
    }


# ---------------------------------------------------------------- local state


def hash_if_present(path):
    try:
        return sha256_file(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return None
        raise


def check_secure_ancestors(path, uid):
    """Refuse a path that another user could swap: every ancestor owned by us or root, not writable by others.

    Sticky directories such as /tmp are fine: others cannot rename what is ours there.
    """
    parent = os.path.dirname(path)
    while parent and parent != path:
        st = os.stat(parent)
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX
        if st.st_uid not in (uid, 0) or writable:
            raise ArtifactError('%s is not a private cache: its parent %s can be changed by another user '
                                '(owner uid %d, mode %04o)' % (path, parent, st.st_uid, stat.S_IMODE(st.st_mode)))
        path, parent = parent, os.path.dirname(parent)


def ensure_private_dir(path, uid=None):
    """Create ``path`` (and missing parents) 0700, or accept an existing one only if it is ours.

    An existing directory of ours that others may only read (older versions
    created 0755) is tightened; one that others may write, or that belongs to
    someone else, is refused: what it holds may have been planted.
    """
    uid = os.getuid() if uid is None else uid
    path = os.path.abspath(path)
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    st = os.stat(path)
    if st.st_uid != uid:
        raise ArtifactError('cache directory %s is owned by uid %d, not by the user running this (uid %d); '
                            'refusing to trust it' % (path, st.st_uid, uid))
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ArtifactError('cache directory %s is writable by other users (mode %04o); refusing to trust it: '
                            'remove it and run again' % (path, stat.S_IMODE(st.st_mode)))
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    check_secure_ancestors(path, uid)
    return path


def remove_stale_parts(dest_dir, name):
    """Remove the temp files of earlier, killed downloads of ``name`` (call under its lock)."""
    for path in glob.glob(os.path.join(glob.escape(dest_dir), '.%s.*.part' % glob.escape(name))):
        try:
            os.unlink(path)
        except OSError:
            pass


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


def artifact_lock(dest_dir, name, lock_dir=None):
    """The host layer's lock on <lock_dir>/<name>.lock, lock_dir being dest_dir/.locks unless given.

    It blocks until it is ours: forks downloading one artifact wait for each other, however long
    the download takes. The lock directory is created 0700 on entry.
    """
    return Lock(os.path.join(lock_dir or os.path.join(dest_dir, LOCK_DIR), '%s.lock' % name), parent_mode=0o700)


# ---------------------------------------------------------------- network


class _Job(object):
    """One artifact's sources, secrets and limits; every request goes through request()."""

    def __init__(self, name, url, dest_dir, options):
        self.name = name
        self.url = url
        self.dest_dir = dest_dir
        # No dest_dir: a job that only fetches the checksum file (fetch_checksum_file()).
        self.path = os.path.join(dest_dir, name) if dest_dir else None
        self.record_path = self.path + '.sha256' if dest_dir else None
        self.__dict__.update(options)
        self.checksum_name = self.checksum_name or name
        self.deadline = None
        self.basic = http.basic_auth_headers(self.url_username, self.url_password)
        self.attempts_made = 0

    def start_clock(self):
        """Start the download deadline: only once the lock is ours, since waiting for it is no transfer."""
        self.deadline = self.clock() + self.download_timeout

    def error(self, message):
        return ArtifactError(http.scrub(message, self.token, self.url_password))

    def retry(self):
        return http.Retry(self.attempts, deadline=self.deadline, sleep=self.sleep, clock=self.clock, rng=self.rng)

    def request(self, plain_url, asset_api_url, max_bytes, accept=None):
        """Open plain_url (with the mirror's credentials, if any), or the API asset URL with the token.

        The API path is how private repositories serve bytes; http.fetch keeps
        the token on the API host and drops it on the redirect to the asset
        host. Tokens never go to plain download URLs or mirrors.
        """
        common = dict(validate_certs=self.validate_certs, timeout=self.timeout, allow_insecure=self.allow_insecure,
                      deadline=self.deadline, max_bytes=max_bytes, clock=self.clock)
        if asset_api_url and self.token:
            headers = {'Accept': 'application/octet-stream',
                       'X-GitHub-Api-Version': http.GITHUB_API_HEADERS['X-GitHub-Api-Version']}
            return asset_api_url, self.fetch(asset_api_url, headers=headers, token=self.token, **common)
        headers = dict(self.basic)
        if accept:
            headers['Accept'] = accept
        return plain_url, self.fetch(plain_url, headers=headers, token=None, **common)

    def failure(self, exc, url, what):
        shown = http.redact_url(url)
        tried = ' (%s)' % http.attempts_text(exc)
        if isinstance(exc, http.HttpError):
            limited = http.rate_limit_message(exc.status, exc.headers, _site_of(url),
                                              authenticated=bool(self.token))
            if limited:
                return self.error(limited + tried)
            if exc.status == 404:
                return self.error('%s not found at %s (HTTP 404)%s' % (what, shown, tried))
            if exc.status in (401, 403):
                return self.error('access denied (HTTP %s) to %s at %s%s; for a private repository set '
                                  'stigmer_github_token' % (exc.status, what, shown, tried))
            return self.error('HTTP %s from %s while fetching %s%s' % (exc.status, shown, what, tried))
        if isinstance(exc, http.ConnectError):
            return self.error('cannot reach %s to fetch %s: %s%s; %s' % (shown, what, exc.reason, tried,
                                                                         _CONNECT_HINT))
        if isinstance(exc, http.ShortReadError):
            return self.error('the download of %s from %s is incomplete: %s%s; nothing was installed'
                              % (what, shown, _short_detail(exc), tried))
        if isinstance(exc, http.DeadlineExceeded):
            return self.error('the download of %s from %s did not finish within %g s%s; nothing was installed '
                              '(raise the download timeout for slow links)'
                              % (what, shown, self.download_timeout, tried))
        if isinstance(exc, http.ResponseTooLarge):
            return self.error('%s from %s is larger than %d bytes%s; nothing was installed'
                              % (what, shown, exc.limit, tried))
        return self.error('%s%s' % (exc, tried))

    def fetch_checksum(self):
        """(bytes as published, URL they came from) of the checksum file at checksum_url / checksum_api_url."""
        what = 'the checksum file for %s' % self.name
        shown_url = self.checksum_url or self.checksum_api_url

        def once():
            used_url, response = self.request(self.checksum_url, self.checksum_api_url, MAX_CHECKSUM_BYTES)
            try:
                return used_url, response.read()
            finally:
                response.close()
        try:
            used_url, content = self.retry().call(once)
        except http.HttpError as exc:
            if exc.status == 404:
                raise self.error('%s not found at %s (HTTP 404); the release does not publish it: pin the '
                                 'checksum in stigmer_checksums' % (what, http.redact_url(exc.url or shown_url)))
            raise self.failure(exc, exc.url or shown_url, what)
        except http.FetchError as exc:
            raise self.failure(exc, exc.url or shown_url, what)
        return content, used_url

    def expected_checksum(self):
        """(sha256, source description, verified_against tags) for this run."""
        if self.pinned is not None:
            # A pin is the operator's word: the published file is not consulted.
            return self.pinned, 'the pinned checksum in stigmer_checksums', ['pinned']
        if self.checksum_content is not None:
            text, shown_url = self.checksum_content, self.checksum_url or self.checksum_api_url
        elif not self.checksum_url and not (self.checksum_api_url and self.token):
            if self.digest is not None:
                return self.digest, 'the GitHub API digest', ['digest']
            raise self.error('no checksum for %s: the release publishes none at %s; pin one in stigmer_checksums'
                             % (self.name, release_dir_of(self.url)))
        else:
            text, shown_url = self.fetch_checksum()
        try:
            expected = parse_checksum_file(text, self.checksum_name)
        except ChecksumError as exc:
            raise self.error('%s (from %s)' % (exc, http.redact_url(shown_url)))
        self.check_digest(expected, http.redact_url(shown_url))
        return expected, http.redact_url(shown_url), ['checksum_file'] + (['digest'] if self.digest else [])

    def check_digest(self, expected, source):
        """The API's digest must agree with the checksum before any byte is fetched."""
        if self.digest is not None and self.digest != expected:
            raise self.error('the GitHub API digest of %s (sha256:%s) does not match its checksum %s (from %s); '
                             'the release was altered or the checksum is wrong \u2014 nothing was downloaded'
                             % (self.name, self.digest, expected, source))

    def ceiling(self):
        return self.size if self.size is not None else self.max_bytes

    def _stream(self, out):
        """One attempt: (url used, bytes received, sha256 hex) into ``out`` from its start."""
        self.attempts_made += 1
        out.seek(0)
        out.truncate()
        # A fresh hash per attempt: a reset mid-body must not leave its bytes in the digest.
        hasher = hashlib.sha256()
        received = 0
        used_url, response = self.request(self.url, self.api_url, self.ceiling())
        try:
            announced = http.content_length(response.headers)
            if self.size is not None and announced is not None and announced != self.size:
                raise self.error('%s at %s announces %d bytes but the release states %d; nothing was downloaded '
                                 '(%s)' % (self.name, http.redact_url(used_url), announced, self.size,
                                           http.attempts_text(self.attempts_made)))
            for chunk in response.iter_chunks(CHUNK_SIZE):
                hasher.update(chunk)
                out.write(chunk)
                received += len(chunk)
            final_url = response.url
        finally:
            response.close()
        # Checked here as well as in http: a short body must never be
        # mistaken for a corrupt release, and fetch is injectable.
        expected_len = announced if announced is not None else self.size
        if expected_len is not None and received != expected_len:
            raise http.ShortReadError(final_url, expected_len, received)
        return final_url, received, hasher.hexdigest()

    def download(self, expected, source):
        """Fetch into a temp file, verify, then atomically replace the artifact."""
        fd, tmp = tempfile.mkstemp(dir=self.dest_dir, prefix='.%s.' % self.name, suffix='.part')
        retry = self.retry()
        try:
            with os.fdopen(fd, 'w+b') as out:
                try:
                    used_url, received, got = retry.call(lambda: self._stream(out))
                except http.FetchError as exc:
                    raise self.failure(exc, exc.url or self.url, self.name)
                out.flush()
                os.fsync(out.fileno())
            if got != expected:
                raise self.error('checksum mismatch for %s: expected %s (from %s), got %s from %s; the download is '
                                 'corrupt or the release was altered \u2014 nothing was installed'
                                 % (self.name, expected, source, got, http.redact_url(used_url)))
            if self.file_mode is not None:
                os.chmod(tmp, self.file_mode)
            elif is_archive(self.name):
                os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
            fsync_dir(self.dest_dir)
            return got, received, http.redact_url(used_url)
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


def _check_urls(name, url, checksum_url, api_url, checksum_api_url, token, github_api_url, allow_insecure):
    """Refuse credentials in URLs, plain http, and a token bound for another origin; return warnings."""
    warnings = []
    for what, value in (('url', url), ('checksum_url', checksum_url), ('api_url', api_url),
                        ('checksum_api_url', checksum_api_url)):
        if not value:
            continue
        if http.split_credentials(value)[1:] != (None, None):
            raise ArtifactError('%s for %s carries user:password@, which would be shown in logs; pass the '
                                'credentials as url_username / url_password' % (what, name))
        if token and what.endswith('api_url') and not http.same_origin(value, github_api_url):
            raise ArtifactError('%s for %s (%s) is not on the GitHub API at %s; the token is sent there only'
                                % (what, name, http.redact_url(value), http.redact_url(github_api_url)))
        try:
            warning = http.check_transport(value, allow_insecure, '%s for %s' % (what, name))
        except http.InsecureTransportError as exc:
            raise ArtifactError('%s (allow_insecure)' % exc)
        if warning and warning not in warnings:
            warnings.append(warning)
    return warnings


def _new_job(name, url, dest_dir, options):
    """A _Job with its secrets cleaned and its URLs checked: (job, warnings)."""
    try:
        options['token'] = http.clean_secret(options['token'], 'the GitHub token')
        options['url_password'] = http.clean_secret(options['url_password'], 'url_password')
    except ValueError as exc:
        raise ArtifactError('%s' % exc)
    warnings = _check_urls(name, url, options['checksum_url'], options['api_url'], options['checksum_api_url'],
                           options['token'], options.pop('github_api_url'), options['allow_insecure'])
    return _Job(name, url, dest_dir, options), warnings


def fetch_checksum_file(name, checksum_url=None, checksum_api_url=None, token=None, validate_certs=True, timeout=60,
                        fetch=http.fetch, attempts=http.DEFAULT_ATTEMPTS, download_timeout=DEFAULT_DOWNLOAD_TIMEOUT,
                        allow_insecure=False, github_api_url=DEFAULT_API_URL, url_username=None, url_password=None,
                        sleep=time.sleep, clock=time.monotonic, rng=random.random):
    """The checksum file published for artifact ``name``, fetched as ensure_artifact fetches it.

    Returns (its bytes as published, the URL they came from, warnings), for a
    caller that keeps the file itself (a mirror) and hands the bytes back to
    ensure_artifact as ``checksum_content``. Raises ArtifactError.
    """
    validate_name(name)
    if not checksum_url and not (checksum_api_url and token):
        raise ArtifactError('no checksum file URL for %s' % name)
    job, warnings = _new_job(name, checksum_url or checksum_api_url, None, dict(
        checksum_url=checksum_url, checksum_name=None, checksum_api_url=checksum_api_url, checksum_content=None,
        pinned=None, digest=None, token=token, api_url=None, validate_certs=validate_certs, timeout=timeout,
        fetch=fetch, size=None, max_bytes=MAX_CHECKSUM_BYTES, attempts=attempts, download_timeout=download_timeout,
        allow_insecure=allow_insecure, github_api_url=github_api_url, url_username=url_username,
        url_password=url_password, file_mode=None, sleep=sleep, clock=clock, rng=rng))
    job.start_clock()
    content, used_url = job.fetch_checksum()
    return content, http.redact_url(used_url), warnings


def ensure_artifact(name, url, dest_dir, checksum_url=None, checksum_name=None, pinned=None, digest=None,
                    token=None, api_url=None, validate_certs=True, timeout=60, check_mode=False,
                    fetch=http.fetch, checksum_api_url=None, size=None, max_bytes=DEFAULT_MAX_BYTES,
                    attempts=http.DEFAULT_ATTEMPTS, download_timeout=DEFAULT_DOWNLOAD_TIMEOUT,
                    allow_insecure=False, github_api_url=DEFAULT_API_URL, url_username=None, url_password=None,
                    private=False, sleep=time.sleep, clock=time.monotonic, rng=random.random,
                    checksum_content=None, record=True, lock_dir=None, file_mode=None):
    """Make dest_dir/name (dest_dir/<source key>/name when ``private``) a verified copy of the artifact at url.

    ``checksum_content`` is the checksum file at checksum_url when the caller
    already holds it (fetch_checksum_file()): it is not fetched again, and,
    costing nothing, it is checked even when a digest alone would prove a
    copy. ``record`` false writes no ``<name>.sha256`` record (a mirror keeps
    the published one there); ``lock_dir`` holds the lock files instead of
    dest_dir/.locks; ``file_mode`` is the mode the artifact gets (by default
    archives 0644, raw executables 0600 for the installer to set).

    Returns {'path', 'sha256', 'changed', 'downloaded', 'verified_against',
    'msg', 'previous_sha256', 'url', 'attempts', 'warnings'}; raises
    ArtifactError when the artifact cannot be provided verified (and then
    nothing was installed).
    """
    validate_name(name)
    if not url:
        raise ArtifactError('no download URL for %s' % name)
    pinned = _normalize(pinned, 'pinned checksum for %s' % name)
    digest = _normalize(digest, 'API digest for %s' % name)
    if size is not None and (size < 0 or size > max_bytes):
        raise ArtifactError('%s is stated to be %d bytes, over the ceiling of %d bytes' % (name, size, max_bytes))
    if private:
        dest_dir = os.path.join(dest_dir, source_key(url))
    job, warnings = _new_job(name, url, dest_dir, dict(
        checksum_url=checksum_url, checksum_name=checksum_name, checksum_api_url=checksum_api_url,
        checksum_content=checksum_content, pinned=pinned, digest=digest, token=token, api_url=api_url,
        validate_certs=validate_certs, timeout=timeout, fetch=fetch, size=size, max_bytes=max_bytes,
        attempts=attempts, download_timeout=download_timeout, allow_insecure=allow_insecure,
        github_api_url=github_api_url, url_username=url_username, url_password=url_password, file_mode=file_mode,
        sleep=sleep, clock=clock, rng=rng))

    if check_mode:
        job.start_clock()
        return _plan(job, warnings)

    try:
        if private:
            ensure_private_dir(dest_dir)
        else:
            os.makedirs(dest_dir, exist_ok=True)
        lock = artifact_lock(dest_dir, name, lock_dir)
    except OSError as exc:
        raise ArtifactError('cannot create %s: %s' % (dest_dir, exc.strerror or exc))
    with lock:
        job.start_clock()
        remove_stale_parts(dest_dir, name)
        # Checked under the lock: a fork that waited finds what the first one
        # downloaded. A pin or digest proves the bytes without any request.
        previous = hash_if_present(job.path)
        quick = _quick_proof(job, previous)
        if quick is not None:
            return _result(job.path, previous, False, False, quick,
                           '%s is already downloaded and matches %s' % (name, ' and '.join(quick)), previous,
                           warnings=warnings)

        expected, source, verified_against = job.expected_checksum()
        if previous == expected:
            # The right bytes are already there: keep them, refresh the record.
            if record:
                job.write_record(expected)
            return _result(job.path, expected, False, False, verified_against,
                           '%s was already present and matches %s' % (name, source), previous, warnings=warnings)

        got, size, used_url = job.download(expected, source)
        if record:
            job.write_record(got)
        return _result(job.path, got, True, True, verified_against,
                       'downloaded %s (%d bytes) from %s and verified it against %s' % (name, size, used_url, source),
                       previous, url=used_url, attempts=job.attempts_made, warnings=warnings)


def _quick_proof(job, current):
    """verified_against tags when a pin or digest proves ``current`` (a hash or None), else None.

    A checksum file in hand costs no request, so it is always consulted then.
    """
    if current is None or (job.pinned is None and job.digest is None):
        return None
    if job.pinned is None and job.checksum_content is not None:
        return None
    if job.pinned is not None and job.pinned != current:
        return None
    if job.digest is not None and job.digest != current:
        return None
    return [tag for tag, value in (('pinned', job.pinned), ('digest', job.digest)) if value is not None]


def _plan(job, warnings):
    """Check mode: say what a real run would do; read-only, disk untouched."""
    current = hash_if_present(job.path)
    quick = _quick_proof(job, current)
    if quick is not None:
        return _result(job.path, current, False, False, quick,
                       '%s is already downloaded and matches %s' % (job.name, ' and '.join(quick)), current,
                       warnings=warnings)
    # Fetching the small checksum file is read-only and surfaces a missing or
    # contradicting checksum in --check rather than in the real run.
    expected, source, verified_against = job.expected_checksum()
    if current == expected:
        return _result(job.path, expected, False, False, verified_against,
                       '%s is present and matches %s' % (job.name, source), current, warnings=warnings)
    return _result(job.path, expected, True, False, verified_against,
                   'would download %s from %s and verify it against %s'
                   % (job.name, http.redact_url(job.url), source), current, warnings=warnings)
