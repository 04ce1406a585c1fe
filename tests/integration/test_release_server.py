"""The test doubles themselves: stand-in releases, the GitHub-compatible release
server and the stand-in executables, exercised for real on 127.0.0.1 only."""
import hashlib
import json
import os
import platform
import re
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
def server(releases, tmp_path_factory):
    root = releases[0]
    log = tmp_path_factory.mktemp("server-log") / "release_server.log"
    handle = server_ctl.start(str(root), server_ctl.free_port(), server_ctl.free_port(),
                              token=TOKEN, log=str(log))
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
    assert stigmer["latest"] == "v1.1.0"
    tags = {r["tag"]: r for r in stigmer["releases"]}
    assert set(tags) == {"v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v2.0.0"}
    assert tags["v2.0.0"]["draft"] and tags["v2.0.0"]["published_at"] is None
    assert tags["v1.2.0-rc.1"]["prerelease"] and not tags["v1.2.0-rc.1"]["draft"]
    names = {a["name"] for a in tags["v1.0.0"]["assets"]}
    assert "stigmer-v1.0.0-linux-arm64.tar.gz" not in names  # like upstream
    for plat in ("darwin-arm64", "darwin-amd64", "linux-amd64"):
        for name in ("stigmer-v1.0.0-%s.tar.gz" % plat, "agent-runner-v1.0.0-%s" % plat):
            assert name in names and name + ".sha256" in names
    assert len(tags["v1.1.0"]["assets"]) == 16
    for rel in stigmer["releases"]:
        for asset in rel["assets"]:
            data = (root / asset["path"]).read_bytes()
            assert (asset["size"], asset["sha256"]) == (len(data), sha256(data))
    runner = root / REPO / "v1.1.0" / "agent-runner-v1.1.0-linux-amd64"
    assert runner.stat().st_mode & 0o777 == 0o755
    assert runner.read_bytes().startswith(b'#!/usr/bin/env python3\n# >>> stamped by build_releases.py >>>\n'
                                          b'VERSION = "v1.1.0"\nBUILT_FOR = "linux-amd64"\n')
    # per-platform stamping: bytes differ between platforms
    assert runner.read_bytes() != (root / REPO / "v1.1.0" / "agent-runner-v1.1.0-linux-arm64").read_bytes()

    def members(path):
        with tarfile.open(path) as tar:
            return sorted((m.name, m.mode, m.uid, m.mtime, m.isfile()) for m in tar.getmembers())

    old = members(root / REPO / "v1.0.0" / "stigmer-v1.0.0-linux-amd64.tar.gz")
    assert [m[0] for m in old] == ["stigmer", "stigmer-server", "stigmer-workflow-runner"]
    assert all(m[1] == 0o755 and m[2] == 0 and m[4] for m in old)
    with tarfile.open(root / REPO / "v1.0.0" / "stigmer-v1.0.0-linux-amd64.tar.gz") as tar:
        cli = tar.extractfile("stigmer").read()
    assert cli.startswith(b"#!/usr/bin/env python3\n") and b'VERSION_STYLE = "sentence"' in cli
    assert [m[0] for m in members(root / REPO / "v1.1.0" / "stigmer-v1.1.0-linux-arm64.tar.gz")] == ["stigmer"]
    temporal = catalogue["repos"]["temporalio/cli"]
    assert temporal["latest"] == "v1.5.1"
    tnames = {a["name"] for a in temporal["releases"][0]["assets"]}
    assert tnames == {"checksums.txt"} | {"temporal_cli_1.5.1_%s_%s.tar.gz" % (o, a)
                                          for o in ("linux", "darwin") for a in ("amd64", "arm64")}
    tar_members = members(root / "temporalio/cli/v1.5.1/temporal_cli_1.5.1_linux_amd64.tar.gz")
    assert [(m[0], m[1]) for m in tar_members] == [("LICENSE", 0o644), ("temporal", 0o755)]
    with open(root / REPO / "v1.1.0" / "stigmer-v1.1.0-linux-amd64.tar.gz", "rb") as fh:
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
                    if rel["tag"] == "v1.0.0":
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
    assert r.headers["Location"] == srv.base_url + "/stigmer/stigmer/releases/tag/v1.1.0"
    assert s.get(r.headers["Location"]).status_code == 200
    r = s.get(srv.base_url + "/temporalio/cli/releases/latest", allow_redirects=False)
    assert r.headers["Location"].endswith("/temporalio/cli/releases/tag/v1.5.1")
    # Host header decides the redirect host (a container sees the host as 10.0.2.2)
    r = s.get(srv.base_url + "/stigmer/stigmer/releases/latest", allow_redirects=False,
              headers={"Host": "10.0.2.2:%d" % srv.port})
    assert r.headers["Location"] == "http://10.0.2.2:%d/stigmer/stigmer/releases/tag/v1.1.0" % srv.port
    stats = server_ctl.stats(srv.port)
    assert stats["quota_used"] == 0 and stats["api_requests"]["total"] == 0
    assert stats["latest_redirects"] == 3


def test_download_redirects_to_the_asset_host(srv, releases):
    root = releases[0]
    s = session()
    name = "stigmer-v1.1.0-%s.tar.gz" % PLATFORM
    url = "%s/%s/releases/download/v1.1.0/%s" % (srv.base_url, REPO, name)
    r = s.get(url, allow_redirects=False)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith("http://127.0.0.1:%d/signed/" % srv.asset_port)
    assert location.endswith("/%s/v1.1.0/%s" % (REPO, name))
    body = s.get(location)
    assert body.status_code == 200
    assert body.headers["Content-Type"] == "application/octet-stream"
    assert body.content == (root / REPO / "v1.1.0" / name).read_bytes()
    assert int(body.headers["Content-Length"]) == len(body.content)
    head = s.head(url, allow_redirects=True)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(body.content)
    # the redirect host part follows the Host header, the port is the asset port
    r = s.get(url, allow_redirects=False, headers={"Host": "10.0.2.2:%d" % srv.port})
    assert r.headers["Location"].startswith("http://10.0.2.2:%d/signed/" % srv.asset_port)
    # only issued signatures work, and only for the asset they were issued for
    forged = location.replace("/signed/", "/signed/x")
    assert s.get(forged).status_code == 403
    assert s.get(location.replace(name, "agent-runner-v1.1.0-" + PLATFORM)).status_code == 403
    assert s.get("%s/%s/releases/download/v1.1.0/nope.tar.gz" % (srv.base_url, REPO),
                 allow_redirects=False).status_code == 404
    assert s.get("%s/%s/releases/download/v9.9.9/%s" % (srv.base_url, REPO, name),
                 allow_redirects=False).status_code == 404
    stats = server_ctl.stats(srv.port)
    assert stats["downloads"] == {name: 1}
    assert stats["head_requests"] == {name: 1}
    assert stats["asset_denied"] == 2


def test_authorization_on_the_asset_host_is_rejected(srv):
    s = session()
    url = "%s/%s/releases/download/v1.1.0/agent-runner-v1.1.0-%s" % (srv.base_url, REPO, PLATFORM)
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
    assert stats["downloads"] == {"agent-runner-v1.1.0-%s" % PLATFORM: 1}


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
    rel = r.json()
    assert (rel["tag_name"], rel["draft"], rel["prerelease"]) == ("v1.1.0", False, False)
    assert rel["html_url"] == srv.base_url + "/stigmer/stigmer/releases/tag/v1.1.0"
    wanted = {"stigmer-v1.1.0-%s.tar.gz" % PLATFORM, "stigmer-v1.1.0-%s.tar.gz.sha256" % PLATFORM,
              "agent-runner-v1.1.0-%s" % PLATFORM, "agent-runner-v1.1.0-%s.sha256" % PLATFORM}
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
    checksum = s.get(assets["agent-runner-v1.1.0-%s.sha256" % PLATFORM]["browser_download_url"]).text
    assert "sha256:" + parse_checksum(checksum, "agent-runner-v1.1.0-" + PLATFORM)[0] == \
        assets["agent-runner-v1.1.0-%s" % PLATFORM]["digest"]
    old = s.get(api + "/repos/stigmer/stigmer/releases/tags/v1.0.0").json()
    assert old["tag_name"] == "v1.0.0"
    assert not any("linux-arm64" in a["name"] for a in old["assets"])
    assert s.get(api + "/repos/stigmer/stigmer/releases/tags/v9.9.9").status_code == 404
    assert s.get(api + "/repos/nobody/nothing/releases/latest").status_code == 404
    assert s.get(api + "/repos/temporalio/cli/releases/latest").json()["tag_name"] == "v1.5.1"
    assert s.get(api + "/repos/stigmer/stigmer/releases/latest",
                 headers={"X-GitHub-Api-Version": "1999-01-01"}).status_code == 400
    stats = server_ctl.stats(srv.port)
    assert stats["accept_headers"]["application/vnd.github+json"] >= 5
    assert stats["api_version_headers"]["2022-11-28"] >= 5
    assert stats["api_requests"]["by_path"][prefix + "/repos/stigmer/stigmer/releases/latest"] == 2


def test_etag_304_does_not_consume_quota(srv):
    s = session()
    url = srv.api_url + "/repos/stigmer/stigmer/releases/tags/v1.1.0"
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
    anon = [r["tag_name"] for r in s.get(api + "/releases?per_page=100").json()]
    assert anon == ["v1.2.0-rc.1", "v1.1.0", "v1.0.0"]
    authed = [r["tag_name"] for r in s.get(api + "/releases?per_page=100", headers=auth).json()]
    assert authed == ["v2.0.0", "v1.2.0-rc.1", "v1.1.0", "v1.0.0"]
    assert s.get(api + "/releases/tags/v2.0.0").status_code == 404
    draft = s.get(api + "/releases/tags/v2.0.0", headers=auth).json()
    assert draft["draft"] is True and draft["published_at"] is None
    assert s.get(api + "/releases/latest", headers=auth).json()["tag_name"] == "v1.1.0"
    draft_asset = "%s/%s/releases/download/v2.0.0/stigmer-v2.0.0-%s.tar.gz" % (srv.base_url, REPO, PLATFORM)
    assert s.get(draft_asset, allow_redirects=False).status_code == 404
    assert s.get("%s/mirror/%s/v2.0.0/stigmer-v2.0.0-%s.tar.gz"
                 % (srv.asset_url, REPO, PLATFORM)).status_code == 404
    page1 = s.get(api + "/releases?per_page=2&page=1")
    assert [r["tag_name"] for r in page1.json()] == ["v1.2.0-rc.1", "v1.1.0"]
    assert 'rel="next"' in page1.headers["Link"] and "page=2" in page1.headers["Link"]
    page2 = s.get(api + "/releases?per_page=2&page=2")
    assert [r["tag_name"] for r in page2.json()] == ["v1.0.0"]
    assert 'rel="next"' not in page2.headers.get("Link", "")


# ------------------------------------------------------------------- faults
def test_faults(srv, releases):
    root = releases[0]
    s = session()
    web = srv.base_url + "/" + REPO
    runner = "agent-runner-v1.1.0-" + PLATFORM
    cli = "stigmer-v1.1.0-%s.tar.gz" % PLATFORM
    temporal_tar = "temporal_cli_1.5.1_%s_%s.tar.gz" % (OS_NAME, ARCH)
    original = (root / REPO / "v1.1.0" / runner).read_bytes()
    server_ctl.faults(srv.port, corrupt=[runner])
    merged = server_ctl.faults(srv.port, {"bad_checksum": [cli, temporal_tar]})
    assert merged["corrupt"] == [runner] and merged["bad_checksum"] == sorted([cli, temporal_tar])

    # corrupt: same size, one byte differs, checksum file and API digest untouched
    served = s.get("%s/releases/download/v1.1.0/%s" % (web, runner)).content
    assert len(served) == len(original) and served != original
    assert sum(a != b for a, b in zip(served, original)) == 1
    text = s.get("%s/releases/download/v1.1.0/%s.sha256" % (web, runner)).text
    assert parse_checksum(text, runner)[0] == sha256(original)
    assert s.get("%s/mirror/%s/v1.1.0/%s" % (srv.asset_url, REPO, runner)).content == served

    # bad_checksum: the checksum file names a wrong hash, the artifact is intact
    artifact = s.get("%s/releases/download/v1.1.0/%s" % (web, cli)).content
    sum_text = s.get("%s/releases/download/v1.1.0/%s.sha256" % (web, cli)).text
    assert parse_checksum(sum_text, cli)[0] != sha256(artifact)
    rel = s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest").json()
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
    rel = s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest").json()
    assert cli not in {a["name"] for a in rel["assets"]} and cli + ".sha256" in {a["name"] for a in rel["assets"]}
    assert s.get("%s/releases/download/v1.1.0/%s" % (web, cli), allow_redirects=False).status_code == 404
    assert s.get("%s/mirror/%s/v1.1.0/%s" % (srv.asset_url, REPO, cli)).status_code == 404

    # latest_redirect false: the web redirect 404s, the API still answers
    server_ctl.faults(srv.port, latest_redirect=False)
    assert s.get(web + "/releases/latest", allow_redirects=False).status_code == 404
    assert s.get(srv.api_url + "/repos/stigmer/stigmer/releases/latest").json()["tag_name"] == "v1.1.0"

    with pytest.raises(RuntimeError, match="unknown fault"):
        server_ctl.faults(srv.port, explode=True)
    assert server_ctl.reset(srv.port)["ok"] is True
    assert s.get(web + "/releases/latest", allow_redirects=False).status_code == 302
    assert s.get("%s/releases/download/v1.1.0/%s" % (web, runner)).content == original
    cleared = {"corrupt": [], "bad_checksum": [], "missing": [], "rate_limited": False,
               "latest_redirect": True}
    assert server_ctl.stats(srv.port)["faults"] == cleared


def test_mirror_layout_and_download_counters(srv, releases):
    root = releases[0]
    s = session()
    assert s.get(srv.asset_url + "/mirror/stigmer/stigmer/latest").text == "v1.1.0\n"
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
    out = subprocess.run(ctl + ["start", "--root", str(root), "--port", str(port), "--asset-port",
                                str(asset_port), "--state-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=20, check=True)
    info = json.loads(out.stdout)
    pidfile = tmp_path / "release_server.pid"
    try:
        assert info["port"] == port and info["token_set"] is True
        assert int(pidfile.read_text()) == info["pid"]
        subprocess.run(ctl + ["faults", '{"missing": ["checksums.txt"]}', "--port", str(port)],
                       check=True, capture_output=True, timeout=10)
        stats = json.loads(subprocess.run(ctl + ["stats", "--port", str(port)], check=True,
                                          capture_output=True, timeout=10).stdout)
        assert stats["faults"]["missing"] == ["checksums.txt"]
        subprocess.run(ctl + ["reset", "--port", str(port)], check=True, capture_output=True, timeout=10)
        assert server_ctl.stats(port)["faults"]["missing"] == []
        r = session().get("http://127.0.0.1:%d/repos/stigmer/stigmer/releases/tags/v2.0.0" % port,
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


def base_env(home, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env=None, timeout=30, stdin=subprocess.DEVNULL):
    return subprocess.run([str(c) for c in cmd], env=env, stdin=stdin, capture_output=True, check=False,
                          text=True, timeout=timeout)


def test_standin_versions(releases, tmp_path):
    root = releases[0]
    bin_dir, temporal = install_release(root, "v1.1.0", PLATFORM, tmp_path / "new")
    for args in (["--version"], ["version"]):
        r = run([bin_dir / "stigmer"] + args)
        assert (r.returncode, r.stdout) == (0, "v1.1.0\n")
    r = run([bin_dir / "agent-runner", "--version"])
    assert (r.returncode, r.stdout) == (0, "agent-runner v1.1.0\n")
    r = run([temporal, "--version"])
    assert (r.returncode, r.stdout) == (0, "temporal version 1.5.1 (Server 1.29.1, UI 2.41.0)\n")
    r = run([bin_dir / "stigmer", "frobnicate"])
    assert r.returncode == 2 and "usage" in r.stderr
    assert run([bin_dir / "stigmer"]).returncode == 2
    assert run([bin_dir / "agent-runner", "--bogus"]).returncode == 2
    if PLATFORM not in ("darwin-arm64", "darwin-amd64", "linux-amd64"):
        pytest.skip("v1.0.0 has no build for %s" % PLATFORM)
    old_bin = install_release(root, "v1.0.0", PLATFORM, tmp_path / "old")[0]
    sentence = "stigmer version v1.0.0 (commit 3f2a9c1, built 2026-01-15)\n"
    for exe in ("stigmer", "stigmer-server", "stigmer-workflow-runner"):
        r = run([old_bin / exe, "--version"])
        assert (r.returncode, r.stdout) == (0, sentence)
    assert run([old_bin / "agent-runner", "--version"]).stdout == "agent-runner v1.0.0\n"


def test_wrong_architecture_fails_like_a_real_binary(releases, tmp_path):
    root = releases[0]
    bin_dir, temporal = install_release(root, "v1.1.0", OTHER_PLATFORM, tmp_path)
    for cmd in ([bin_dir / "stigmer", "--version"], [bin_dir / "agent-runner", "--version"],
                [bin_dir / "stigmer", "internal-server"], [temporal, "--version"]):
        r = run(cmd)
        assert r.returncode == 126, cmd
        assert "cannot execute binary file: Exec format error" in r.stderr
        assert r.stdout == ""


def make_home(home, bin_dir, temporal, marker="v1.1.0\n"):
    data_bin = home / ".stigmer" / "data" / "bin"
    data_bin.mkdir(parents=True)
    (data_bin / "agent-runner").symlink_to(bin_dir / "agent-runner")
    share = bin_dir.parent / "share"
    share.mkdir(exist_ok=True)
    (share / "agent-runner.version").write_text(marker)
    (data_bin / ".version").symlink_to(share / "agent-runner.version")
    (home / ".stigmer" / "bin").mkdir()
    (home / ".stigmer" / "bin" / "temporal").symlink_to(temporal)
    (home / ".stigmer" / "temporal-data").mkdir()
    return data_bin


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}

    def start(self, name, cmd, env):
        out = open(self.tmp / ("%s.out" % name), "w")
        err = open(self.tmp / ("%s.err" % name), "w")
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        out.close()
        err.close()
        self.procs[name] = proc
        return proc

    def output(self, name):
        return (self.tmp / ("%s.out" % name)).read_text() + (self.tmp / ("%s.err" % name)).read_text()

    def stop(self, name, timeout=10):
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def grpc_health(port, service=""):
    """The serving status a real gRPC client (grpcio) gets; None while nothing listens."""
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return None
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def server_status(bin_dir, env):
    """The stand-in server's own view (stigmer server status, over gRPC): (exit code, JSON or None)."""
    r = run([bin_dir / "stigmer", "server", "status"], env=env)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


def test_runtime_components_talk_to_each_other(releases, tmp_path):
    root = releases[0]
    bin_dir, temporal = install_release(root, "v1.1.0", PLATFORM, tmp_path / "opt")
    home = tmp_path / "home"
    data_bin = make_home(home, bin_dir, temporal)
    t_port, ui_port, s_port = server_ctl.free_port(), server_ctl.free_port(), server_ctl.free_port()
    env = base_env(home, TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % t_port,
                   STIGMER_SERVER_ADDRESS="127.0.0.1:%d" % s_port,
                   STIGMER_BACKEND_ENDPOINT="127.0.0.1:%d" % s_port,
                   STIGMER_LLM_PROVIDER="anthropic", ANTHROPIC_API_KEY="sk-test",
                   STIGMER_STANDIN_GRACE=2)
    procs = Procs(tmp_path)
    try:
        # the server waits for Temporal, which comes up a moment later
        server = procs.start("server", [bin_dir / "stigmer", "internal-server"], env)
        time.sleep(0.7)
        assert server.poll() is None and grpc_health(s_port) is None
        db = home / ".stigmer" / "temporal-data" / "temporal.db"
        procs.start("temporal", [home / ".stigmer/bin/temporal", "server", "start-dev", "--port", t_port,
                                 "--ui-port", ui_port, "--db-filename", db, "--ip", "127.0.0.1"], env)
        # Temporal up but no agent-runner yet: the server answers, NOT_SERVING
        assert wait_for(lambda: grpc_health(s_port), 15, "stigmer-server gRPC health") == "NOT_SERVING"
        code, body = server_status(bin_dir, env)
        assert code == 1 and body["version"] == "v1.1.0" and body["temporal"] == "reachable"
        assert body["agent_runners"] == []
        assert db.is_file()
        ui = session().get("http://127.0.0.1:%d/" % ui_port)
        assert ui.status_code == 200 and "Temporal UI stand-in" in ui.text
        # gRPC only: an HTTP/1.1 request gets nothing served, unknown health services are NOT_FOUND
        plain = session().get("http://127.0.0.1:%d/health" % s_port, timeout=2)
        assert plain.status_code == 505
        assert grpc_health(s_port, "stigmer.NoSuchService") == "NOT_FOUND"

        agent = procs.start("agent", [data_bin / "agent-runner"], env)
        workflow = procs.start("workflow", [bin_dir / "stigmer", "internal-workflow-runner"], env)

        def connected():
            code, body = server_status(bin_dir, env)
            return body if body["agent_runners"] and body["workflow_runners"] else None

        body = wait_for(connected, 15, "runners to register")
        assert body["status"] == "SERVING" and grpc_health(s_port) == "SERVING"
        assert body["agent_runners"][0]["version"] == "v1.1.0"
        assert body["agent_runners"][0]["pid"] == agent.pid
        assert body["workflow_runners"][0]["pid"] == workflow.pid
        assert body["workflow_runners"][0]["last_seen"] <= time.time() + 1

        # Temporal goes away: the server says so
        assert procs.stop("temporal") == 0
        assert grpc_health(s_port) == "NOT_SERVING"
        code, body = server_status(bin_dir, env)
        assert code == 1 and body["status"] == "NOT_SERVING" and body["temporal"] == "unreachable"

        # the server goes away: runners give up after the (shortened) grace period
        assert procs.stop("server") == 0
        assert agent.wait(10) == 1 and workflow.wait(10) == 1
        assert "no heartbeat accepted" in procs.output("agent")
        log = procs.output("server")
        assert "registered agent-runner v1.1.0 pid %d" % agent.pid in log
        assert "registered workflow-runner v1.1.0 pid %d" % workflow.pid in log
        assert (data_bin / "agent-runner").is_symlink()  # a matching marker leaves data/bin alone
        r = run([bin_dir / "stigmer", "server", "status"], env=env)
        assert r.returncode == 1 and "not running" in r.stderr
    finally:
        procs.close()


def test_marker_mismatch_wipes_data_bin(releases, tmp_path):
    root = releases[0]
    bin_dir, temporal = install_release(root, "v1.1.0", PLATFORM, tmp_path / "opt")
    home = tmp_path / "home"
    data_bin = make_home(home, bin_dir, temporal, marker="v1.0.0\n")
    env = base_env(home, TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % server_ctl.free_port(),
                   STIGMER_SERVER_ADDRESS="127.0.0.1:%d" % server_ctl.free_port())
    r = run([bin_dir / "stigmer", "internal-server"], env=env)
    assert r.returncode == 1
    assert "agent-runner marker mismatch (found v1.0.0, want v1.1.0): replacing data/bin" in r.stdout
    assert "cannot download agent-runner v1.1.0: downloads are disabled in the stand-in" in r.stderr
    assert not data_bin.exists()
    assert (bin_dir / "agent-runner").is_file()  # only the links went, not the install

    # agent-runner missing (a dangling link) counts the same
    home2 = tmp_path / "home2"
    data_bin2 = make_home(home2, bin_dir, temporal)
    (data_bin2 / "agent-runner").unlink()
    (data_bin2 / "agent-runner").symlink_to(tmp_path / "nowhere")
    r = run([bin_dir / "stigmer", "internal-server"], env=base_env(home2))
    assert r.returncode == 1 and "agent-runner missing" in r.stdout
    assert "(found v1.1.0, want v1.1.0)" in r.stdout and not data_bin2.exists()

    # data/bin that cannot be removed: the error is logged, the exit is still 1
    home3 = tmp_path / "home3"
    (home3 / ".stigmer" / "data").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home3 / ".stigmer" / "data" / "bin").symlink_to(elsewhere)
    r = run([bin_dir / "stigmer", "internal-server"], env=base_env(home3))
    assert r.returncode == 1 and "found none" in r.stdout and "cannot remove" in r.stdout
    assert elsewhere.is_dir()


def test_unattended_start_without_api_key_fails(releases, tmp_path):
    root = releases[0]
    bin_dir, temporal = install_release(root, "v1.1.0", PLATFORM, tmp_path / "opt")
    home = tmp_path / "home"
    make_home(home, bin_dir, temporal)
    env = base_env(home, STIGMER_LLM_PROVIDER="anthropic", STIGMER_STANDIN_WAIT=0.5,
                   TEMPORAL_SERVICE_ADDRESS="127.0.0.1:%d" % server_ctl.free_port())
    r = run([bin_dir / "stigmer", "internal-server"], env=env)
    assert r.returncode == 1
    assert "Enter your Anthropic API key: " in r.stdout and "ANTHROPIC_API_KEY" in r.stderr
    r = run([bin_dir / "agent-runner"], env=dict(env, STIGMER_LLM_PROVIDER="openai"))
    assert r.returncode == 1 and "OPENAI_API_KEY" in r.stderr
    # a key typed on the "terminal" is accepted; then Temporal is what is missing
    r = subprocess.run([str(bin_dir / "stigmer"), "internal-server"], env=env, input="sk-typed\n", check=False,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "cannot reach Temporal" in r.stderr
    r = run([bin_dir / "stigmer", "internal-workflow-runner"], env=env)
    assert r.returncode == 1 and "cannot reach Temporal" in r.stderr
    r = run([bin_dir / "agent-runner"], env=dict(env, ANTHROPIC_API_KEY="sk"))
    assert r.returncode == 1 and "cannot reach Temporal" in r.stderr


def test_temporal_start_dev_flags(releases, tmp_path):
    root = releases[0]
    temporal = install_release(root, "v1.1.0", PLATFORM, tmp_path / "opt")[1]
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
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, 10, "temporal to listen")
        held = socket.create_connection(("127.0.0.1", port), timeout=2)  # held open, no answer
        held.close()
        r = run([temporal, "operator", "cluster", "health", "--address", "127.0.0.1:%d" % port])
        assert (r.returncode, r.stdout) == (0, "SERVING\n")
        # the port is taken: a second dev server fails instead of pretending
        r = run([temporal, "server", "start-dev", "--port", port, "--headless"])
        assert r.returncode == 1 and "failed to listen" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stdout.close()
        proc.stderr.close()
    assert (tmp_path / "t.db").read_bytes().startswith(b"SQLite format 3\0")
