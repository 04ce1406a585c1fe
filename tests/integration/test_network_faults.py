"""The collection's download modules against real network faults, on the controller.

No containers: `ansible localhost -m stigmer.runtime.stigmer_artifact` (and stigmer_release)
run against the local release server (tests/fixtures/README.md, "Network faults") over real
HTTP and HTTPS on 127.0.0.1. Transient faults (503, 429 with Retry-After, a reset) must be
retried and end in a verified artifact, with the server counting exactly the requests the
retries explain; the others (404, a drip past the deadline, a body past its size, an https to
http downgrade) must fail fast with a message naming the URL used and the number of attempts,
and leave no `.part` file. Secrets never appear in any output, even at -vvv.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "build" / "collections"
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import build_releases  # noqa: E402
import server_ctl  # noqa: E402

TOKEN = "fake-token-network-faults-0123456789abcdef"
REPO = "stigmer/stigmer"
TAG = "v0.0.7"
RUNNER = "agent-runner-%s-linux-amd64" % TAG
# Generous for a slow CI machine: a 2 s download deadline must end well before this.
FAST_FAIL = 15.0


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    out = tmp_path_factory.mktemp("releases")
    build_releases.build(str(out))
    return out


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return server_ctl.make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def server(releases, tls, tmp_path_factory):
    log = tmp_path_factory.mktemp("server-log") / "release_server.log"
    handle = server_ctl.start(str(releases), server_ctl.free_port(), server_ctl.free_port(), token=TOKEN,
                              log=str(log), tls=tls, tls_port=server_ctl.free_port(),
                              tls_asset_port=server_ctl.free_port())
    yield handle
    assert server_ctl.stop(handle) == 0
    assert TOKEN not in log.read_text()


@pytest.fixture
def srv(server):
    server_ctl.reset(server.port)
    yield server
    server_ctl.reset(server.port)


def ansible(module, args, verbosity=0, env=None):
    """Run one module on localhost: (parsed result, all of stdout + stderr, seconds)."""
    if (COLLECTIONS / "ansible_collections" / "stigmer" / "runtime").resolve() != ROOT:
        pytest.fail("%s does not expose this checkout as stigmer.runtime: run make collection-link" % COLLECTIONS)
    cmd = ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", "stigmer.runtime." + module,
           "-a", json.dumps(args), "-e", "ansible_python_interpreter=%s" % sys.executable]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc_env = dict(os.environ)
    for name in ("GITHUB_TOKEN", "SSL_CERT_FILE", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        proc_env.pop(name, None)
    proc_env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CONFIG=str(ROOT / "tests" / "ansible.cfg"),
                    PYTHONPATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", NO_PROXY="*",
                    ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=proc_env, cwd=str(ROOT), timeout=300,
                          check=False)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    # The minimal (ad-hoc) callback prints "localhost | SUCCESS|CHANGED|FAILED! => {json}" and
    # keeps the outcome out of the JSON.
    marker = output.find("localhost | ")
    assert marker >= 0, output
    status = output[marker + len("localhost | "):].split(" ", 1)[0]
    assert status in ("SUCCESS", "CHANGED", "FAILED!"), output
    result = json.JSONDecoder().raw_decode(output[output.index("{", marker):])[0]
    result["failed"] = status == "FAILED!"
    return result, output, elapsed


def download_url(srv, name=RUNNER, https=False):
    base = srv.https_base_url if https else srv.base_url
    return "%s/%s/releases/download/%s/%s" % (base, REPO, TAG, name)


def artifact_args(srv, dest, name=RUNNER, https=False, **extra):
    args = {"name": name, "url": download_url(srv, name, https),
            "checksum_url": download_url(srv, name + ".sha256", https), "dest": str(dest),
            "attempts": 3, "timeout": 5}
    args.update(extra)
    return args


def expected_sha(releases, name=RUNNER):
    return hashlib.sha256((releases / REPO / TAG / name).read_bytes()).hexdigest()


def stated_size(releases, name=RUNNER):
    return (releases / REPO / TAG / name).stat().st_size


def parts(dest):
    return sorted(str(p) for p in Path(dest).rglob("*.part"))


def assert_succeeded(result, output, releases, dest):
    assert result["failed"] is False, output
    assert result["changed"] is True and result["sha256"] == expected_sha(releases)
    assert Path(result["path"]).read_bytes() == (releases / REPO / TAG / RUNNER).read_bytes()
    assert parts(dest) == []


def used_urls(srv):
    """What a message may name as the URL used for a download over plain http: the download
    URL asked for, or the signed asset URL its redirect led to."""
    return (download_url(srv), "http://127.0.0.1:%d/signed/" % srv.asset_port)


def assert_failed_fast(result, output, elapsed, urls, attempts, dest):
    assert result["failed"] is True, output
    assert elapsed < FAST_FAIL, (elapsed, result["msg"])
    msg = result["msg"]
    assert any(url in msg for url in urls), msg  # the URL actually used
    # "1 attempt", "3 attempts"; None: any count (a deadline may cut retries short).
    assert ("%d attempt" % attempts if attempts else " attempt") in msg, msg
    assert parts(dest) == []
    assert not (Path(dest) / RUNNER).exists()


# ------------------------------------------------------------ retried faults
def test_503_twice_then_ok_is_retried(srv, releases, tmp_path):
    server_ctl.faults(srv.port, status_then_ok={RUNNER: [503, 503]})
    result, output, _elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path))
    assert_succeeded(result, output, releases, tmp_path)
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["status_then_ok"] == {RUNNER: 2}
    assert stats["downloads"] == {RUNNER + ".sha256": 1, RUNNER: 1}
    assert stats["download_redirects"][RUNNER] == 3  # one request per attempt, no more
    assert result["attempts"] == 3


def test_429_retry_after_is_honoured(srv, releases, tmp_path):
    # Longer than the first backoff (at most 1 s) plus Ansible's own start-up.
    server_ctl.faults(srv.port, retry_after={RUNNER: [5]})
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path))
    assert_succeeded(result, output, releases, tmp_path)
    assert elapsed >= 5  # it waited as asked, not on its own (shorter) backoff
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["retry_after"] == {RUNNER: 1}
    assert stats["downloads"][RUNNER] == 1 and stats["download_redirects"][RUNNER] == 2


def test_a_reset_mid_body_is_retried(srv, releases, tmp_path):
    server_ctl.faults(srv.port, reset={RUNNER: 1})
    result, output, _elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path))
    assert_succeeded(result, output, releases, tmp_path)
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["reset"] == {RUNNER: 1}
    assert stats["downloads"][RUNNER] == 1 and stats["download_redirects"][RUNNER] == 2


def test_release_lookup_retries_api_errors(srv):
    path = "*/repos/%s/releases/tags/%s" % (REPO, TAG)
    # two server errors, then a secondary rate limit (429, Retry-After: 1), then the answer
    server_ctl.faults(srv.port, status_then_ok={path: [502, 503]}, retry_after={path: [1]})
    result, output, _elapsed = ansible("stigmer_release", {
        "version": TAG, "github_url": srv.base_url, "api_url": srv.api_url, "platforms": ["linux-amd64"],
        "attempts": 4})
    assert result["failed"] is False, output
    assert result["tag"] == TAG and RUNNER in result["assets"]
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["status_then_ok"] == {path: 2} and stats["fault_hits"]["retry_after"] == {path: 1}
    # answers from a fault are counted in fault_hits only: one request reached the API itself
    assert stats["api_requests"]["by_path"]["/api/v3/repos/%s/releases/tags/%s" % (REPO, TAG)] == 1


# -------------------------------------------------------- faults that fail fast
def test_resets_on_every_attempt_fail_after_the_attempts(srv, tmp_path):
    server_ctl.faults(srv.port, reset=[RUNNER])
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path))
    assert_failed_fast(result, output, elapsed, used_urls(srv), 3, tmp_path)
    assert server_ctl.stats(srv.port)["fault_hits"]["reset"] == {RUNNER: 3}


def test_404_is_not_retried(srv, tmp_path):
    server_ctl.faults(srv.port, missing=[RUNNER])
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path))
    assert_failed_fast(result, output, elapsed, (download_url(srv),), 1, tmp_path)
    assert "404" in result["msg"]
    assert server_ctl.stats(srv.port)["web_requests"]["by_path"].get(
        "/%s/releases/download/%s/%s" % (REPO, TAG, RUNNER)) == 1


def test_a_drip_ends_at_the_download_deadline(srv, tmp_path):
    server_ctl.faults(srv.port, drip={RUNNER: 0.5})
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path, download_timeout=2))
    assert_failed_fast(result, output, elapsed, used_urls(srv), None, tmp_path)
    assert "2 s" in result["msg"]  # the deadline it enforced
    assert server_ctl.stats(srv.port)["fault_hits"]["drip"] == {RUNNER: 1}


@pytest.mark.parametrize("limit", ["size", "max_bytes"])
def test_an_endless_body_stops_at_its_ceiling(srv, releases, tmp_path, limit):
    server_ctl.faults(srv.port, endless=[RUNNER])
    # The size the API states, or without one the configured cap.
    extra = {"size": stated_size(releases)} if limit == "size" else {"max_bytes": 1024 * 1024}
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, tmp_path, **extra))
    assert_failed_fast(result, output, elapsed, used_urls(srv), 1, tmp_path)
    assert str(extra[limit]) in result["msg"]  # the ceiling it enforced
    assert server_ctl.stats(srv.port)["fault_hits"]["endless"] == {RUNNER: 1}


def test_a_body_longer_than_the_stated_size_fails_at_once(srv, releases, tmp_path):
    server_ctl.faults(srv.port, oversize=[RUNNER])
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(
        srv, tmp_path, size=stated_size(releases)))
    assert_failed_fast(result, output, elapsed, used_urls(srv), 1, tmp_path)
    assert server_ctl.stats(srv.port)["fault_hits"]["oversize"] == {RUNNER: 1}


def test_https_works_and_a_downgrade_to_http_is_refused(srv, releases, tls, tmp_path):
    trust = {"SSL_CERT_FILE": tls.ca}
    good = tmp_path / "good"
    result, output, _elapsed = ansible("stigmer_artifact", artifact_args(srv, good, https=True), env=trust)
    assert_succeeded(result, output, releases, good)
    server_ctl.reset(srv.port)
    server_ctl.faults(srv.port, downgrade=[RUNNER])
    bad = tmp_path / "bad"
    result, output, elapsed = ansible("stigmer_artifact", artifact_args(srv, bad, https=True), env=trust)
    assert_failed_fast(result, output, elapsed, (download_url(srv, https=True),), 1, bad)
    assert "http://127.0.0.1:%d/mirror/" % srv.asset_port in result["msg"]  # where it was sent
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["downgrade"] == {RUNNER: 1}
    assert RUNNER not in stats["downloads"]  # the plain-http URL was never requested


# ------------------------------------------------------------------ secrets
def test_no_secret_in_any_output_at_vvv(srv, tmp_path):
    password = "mirrorPassw0rd-7f3a"
    mirror = "http://deployer:%s@127.0.0.1:%d/mirror" % (password, srv.asset_port)
    secrets = [TOKEN, password, base64.b64encode(("deployer:" + password).encode()).decode()]
    runs = [
        ("stigmer_release", {"version": TAG, "github_url": srv.base_url, "api_url": srv.api_url,
                             "mirror_url": mirror, "token": TOKEN + "\n", "platforms": ["linux-amd64"]}),
        ("stigmer_release", {"version": TAG, "github_url": srv.base_url, "api_url": srv.api_url,
                             "token": TOKEN + "\n", "platforms": ["linux-amd64"]}),
        ("stigmer_artifact", {"name": RUNNER, "url": "%s/%s/%s/%s" % (mirror, REPO, TAG, RUNNER),
                              "checksum_url": "%s/%s/%s/%s.sha256" % (mirror, REPO, TAG, RUNNER),
                              "dest": str(tmp_path / "mirror"), "token": TOKEN + "\n", "attempts": 1}),
        # the documented way: credentials in their own (no_log) options, next to a clean URL
        ("stigmer_artifact", {"name": RUNNER, "url": download_url(srv),
                              "checksum_url": download_url(srv, RUNNER + ".sha256"),
                              "dest": str(tmp_path / "options"), "url_username": "deployer",
                              "url_password": password + "\n", "attempts": 1}),
    ]
    seen, leaks = [], []
    for index, (module, args) in enumerate(runs):
        result, output, _elapsed = ansible(module, args, verbosity=3)
        text = output + json.dumps(result)
        # Every run is checked before failing, so the report lists all the leaks at once.
        leaks += [(index, module, secret[:4], text.count(secret)) for secret in secrets if secret in text]
        seen.append(result)
    # Not vacuous: the token (stripped of its newline) was accepted by the API, and bytes
    # were served.
    stats = server_ctl.stats(srv.port)
    assert stats["api_by_auth"]["authenticated"] >= 1 and stats["api_bad_credentials"] == 0
    assert stats["downloads_total"] + stats["requests_with_auth_on_asset_host"] >= 1
    assert seen[1]["failed"] is False, seen[1]
    # url_username/url_password went to the download URL's origin only, never to the asset host
    assert seen[3]["failed"] is False, seen[3]
    assert {"listener": "github", "method": "GET", "path": "/%s/releases/download/%s/%s" % (REPO, TAG, RUNNER)} \
        in stats["auth_paths"]
    # Mirror credentials went to the mirror's paths only; nothing with credentials reached a signed URL.
    assert all(p["listener"] == "github" or p["path"].startswith("/mirror/") for p in stats["auth_paths"]), \
        stats["auth_paths"]
    assert leaks == []
