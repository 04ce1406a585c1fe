# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""mirror_releases against the repository's GitHub stand-in, then the role's own mirror path against the result."""

import hashlib
import importlib.util
import json
import os
import pathlib
import stat

from urllib.parse import unquote

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _http as http
from ansible_collections.stigmer.runtime.plugins.module_utils._mirror import (
    MirrorError,
    manifest_text,
    mirror_latest,
    mirror_releases,
    parse_manifest,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import ensure_artifact
from ansible_collections.stigmer.runtime.plugins.module_utils._release import plan_artifacts, resolve_release
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.local_http import LocalServer

FIXTURES = pathlib.Path(__file__).resolve().parents[4] / 'tests' / 'fixtures'
TOKEN = 'fake-token-MIRRORtoken0123456789abcdefXYZ'
STIGMER = 'stigmer/stigmer'
TEMPORAL = 'temporalio/cli'
CLI = ('stigmer', 'agent-runner')
ALL4 = ('linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64')
NEWER = {'tag': 'v0.3.0', 'published_at': '2026-07-01T12:00:00Z', 'platforms': ('darwin-arm64', 'darwin-amd64',
                                                                                'linux-amd64', 'linux-arm64'),
         'shape': 'newer', 'workflow_runner': 'works'}


def load_fixture(name):
    """tests/fixtures/<name>.py, which is no package."""
    spec = importlib.util.spec_from_file_location('stigmer_fixture_%s' % name, str(FIXTURES / ('%s.py' % name)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_releases = load_fixture('build_releases')
server_ctl = load_fixture('server_ctl')


class Origin(object):
    """tests/fixtures/release_server.py on 127.0.0.1 serving the stand-in releases; publish() adds one."""

    def __init__(self, root):
        self.root = str(root)
        build_releases.build(self.root)
        self.handle = None
        self._start()

    def _start(self):
        self.handle = server_ctl.start(self.root, server_ctl.free_port(), server_ctl.free_port(), token=TOKEN,
                                       quiet=True)

    def publish(self, release):
        """GitHub gains a release: rebuild the catalogue with it and serve it (on new ports)."""
        self.close()
        build_releases.build(self.root, extra_releases=[release])
        self._start()

    def close(self):
        server_ctl.stop(self.handle)

    def urls(self):
        return {'github_url': self.handle.base_url, 'api_url': self.handle.api_url}

    def stats(self):
        return server_ctl.stats(self.handle.port)

    def reset(self):
        server_ctl.reset(self.handle.port)

    def faults(self, **faults):
        server_ctl.faults(self.handle.port, **faults)

    def published(self, repo, tag, name):
        with open(os.path.join(self.root, repo, tag, name), 'rb') as handle:
            return handle.read()


class MirrorHost(LocalServer):
    """A plain web server for a mirror directory, as an operator would run one."""

    def __init__(self, root):
        self.root = str(root)
        self.paths = []
        super(MirrorHost, self).__init__()

    def answer(self, handler):
        path = unquote(handler.path.split('?')[0])
        self.paths.append(path)
        parts = [part for part in path.split('/') if part]
        full = os.path.join(self.root, *parts)
        if '..' in parts or not os.path.isfile(full):
            return 404, {}, b'Not Found'
        with open(full, 'rb') as handle:
            return 200, {}, handle.read()


@pytest.fixture
def origin(shared_origin):
    """The stand-in with its faults and counters reset; tests that publish a release start their own."""
    shared_origin.reset()
    return shared_origin


@pytest.fixture
def dest(tmp_path):
    return str(tmp_path / 'mirror' / 'stigmer')


def mirror(origin, dest, versions=('latest',), repo=STIGMER, components=CLI, platforms=ALL4, **extra):
    return mirror_releases(dest, repo, versions=list(versions), components=list(components), platforms=list(platforms),
                           **dict(origin.urls(), **extra))


def role_downloads(mirror_url, repo, components, platform, cache, version='latest'):
    """What the role does with stigmer_mirror_url: stigmer_release, then stigmer_artifact per planned artifact."""
    resolved = resolve_release(repo, version, mirror_url=mirror_url, components=components, platforms=[platform])
    plan = plan_artifacts(resolved, repo, components, [platform])
    return resolved, [ensure_artifact(item['name'], item['url'], str(cache), checksum_url=item['checksum_url'],
                                      checksum_api_url=item['checksum_api_url'], digest=item['digest'],
                                      size=item['size'], api_url=item['api_url'])
                      for item in plan[platform]]


def tree(directory):
    """Every file under ``directory`` (relative, sorted), the lock directory left out."""
    found = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != '.locks']
        found += [os.path.relpath(os.path.join(top, name), directory) for name in files]
    return sorted(found)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def load_manifest(dest):
    with open(os.path.join(dest, 'manifest.json')) as handle:
        return json.load(handle)


def cli_files(tag, platforms):
    files = []
    for platform in platforms:
        for name in ('stigmer-%s-%s.tar.gz' % (tag, platform), 'agent-runner-%s-%s' % (tag, platform)):
            files += ['%s/%s' % (tag, name), '%s/%s.sha256' % (tag, name)]
    return files


# ---------------------------------------------------------------- pure helpers


def test_latest_is_the_newest_release_and_a_prerelease_only_when_nothing_else_is_there():
    releases = {'v0.1.0': {}, 'v0.0.7': {}, 'v0.2.0-rc.1': {'prerelease': True}, 'v0.10.0-rc.1': {}}
    assert mirror_latest(releases) == 'v0.1.0'
    assert mirror_latest(releases, include_prereleases=True) == 'v0.10.0-rc.1'
    assert mirror_latest({'v0.2.0-rc.1': {'prerelease': True}}) == 'v0.2.0-rc.1'
    assert mirror_latest({}) is None


def test_manifest_text_is_stable_and_sorted():
    rows = [{'name': 'b', 'sha256': 'x', 'size': 1, 'platform': 'linux-amd64', 'component': 'stigmer'},
            {'name': 'a', 'sha256': 'y', 'size': 2, 'platform': 'linux-amd64', 'component': 'agent-runner'}]
    one = manifest_text(STIGMER, 'v1.0.0', {'v1.0.0': {'assets': rows, 'checksum_files': []}})
    two = manifest_text(STIGMER, 'v1.0.0', {'v1.0.0': {'assets': rows[::-1], 'checksum_files': []}})
    assert one == two and one.endswith('}\n')
    document = json.loads(one)
    assert [row['name'] for row in document['releases']['v1.0.0']['assets']] == ['a', 'b']
    assert document['format'] == 1 and document['repo'] == STIGMER and document['latest'] == 'v1.0.0'
    assert parse_manifest(one, STIGMER, 'manifest.json')['v1.0.0']['prerelease'] is False


@pytest.mark.parametrize('text, problem', [
    ('not json', 'is not a mirror manifest'),
    ('{"format": 2, "releases": {}}', 'is not a mirror manifest of format 1'),
    ('{"format": 1, "repo": "temporalio/cli", "releases": {}}', 'holds a mirror of temporalio/cli, not of stigmer'),
    ('{"format": 1, "repo": "stigmer/stigmer", "releases": {"v1.0.0": []}}', 'without its files'),
])
def test_a_foreign_manifest_is_refused(text, problem):
    with pytest.raises(MirrorError) as info:
        parse_manifest(text, STIGMER, '/srv/m/manifest.json')
    assert problem in str(info.value)


def manifest_listing(tag='v0.1.0', name='stigmer-v0.1.0-linux-amd64.tar.gz', key='assets'):
    """manifest.json's text with one release and one row in ``key`` (json.dumps: the row may be anything)."""
    row = {'name': name, 'sha256': '0' * 64, 'size': 1, 'platform': 'linux-amd64', 'component': 'stigmer'}
    entry = {'prerelease': False, 'assets': [], 'checksum_files': []}
    entry[key] = [row]
    return json.dumps({'format': 1, 'repo': STIGMER, 'latest': tag, 'releases': {tag: entry}})


@pytest.mark.parametrize('key', ['assets', 'checksum_files'])
@pytest.mark.parametrize('name', ['../outside', '../../etc/passwd', '/etc/passwd', 'sub/../x', 'sub/x', 'a//b',
                                  '..\\..\\x', 'a\\b', '', '.', '..', None, 7])
def test_a_manifest_row_naming_a_path_outside_its_release_directory_is_refused(name, key):
    with pytest.raises(MirrorError) as info:
        parse_manifest(manifest_listing(name=name, key=key), STIGMER, '/srv/m/manifest.json')
    assert str(info.value) == (
        '/srv/m/manifest.json lists %r among the %s of v0.1.0, which is not a plain file name (no /, \\, .. or '
        'empty name) inside /srv/m/v0.1.0; this module never writes that: remove it from /srv/m/manifest.json, '
        'or move /srv/m/manifest.json away to have it rebuilt' % (name, key))


@pytest.mark.parametrize('tag', ['../v0.1.0', '/v0.1.0', 'v0.1.0/..', 'v0.1.0/', '..', 'v0.1.0\\..', '', ' v0.1.0',
                                 'latest', '.locks'])
def test_a_manifest_release_that_is_no_tag_directory_here_is_refused(tag):
    with pytest.raises(MirrorError) as info:
        parse_manifest(manifest_listing(tag=tag), STIGMER, '/srv/m/manifest.json')
    assert str(info.value).startswith('/srv/m/manifest.json lists release %r, which is not a release tag such as '
                                      'v1.2.3 naming a directory inside /srv/m; this module never writes that: '
                                      'remove it from /srv/m/manifest.json' % tag)


@pytest.mark.parametrize('files', ['x', 5, {'name': 'x'}])
def test_a_manifest_release_whose_file_list_is_no_list_is_refused(files):
    document = json.loads(manifest_listing())
    document['releases']['v0.1.0']['assets'] = files
    with pytest.raises(MirrorError, match="lists release 'v0.1.0' without its files"):
        parse_manifest(json.dumps(document), STIGMER, '/srv/m/manifest.json')


@pytest.mark.parametrize('tag, name', [('v0.1.0', 'stigmer-v0.1.0-linux-amd64.tar.gz'), ('v1.5.1', 'checksums.txt'),
                                       ('v0.2.0-rc.1', '..hidden-but-plain'), ('0.0.7', 'a b')])
def test_a_manifest_of_plain_names_is_read(tag, name):
    releases = parse_manifest(manifest_listing(tag=tag, name=name), STIGMER, '/srv/m/manifest.json')
    assert [row['name'] for row in releases[tag]['assets']] == [name]


def test_a_mirror_of_another_repository_is_refused_before_any_request(tmp_path):
    dest = tmp_path / 'm'
    dest.mkdir()
    (dest / 'manifest.json').write_text(manifest_text(TEMPORAL, None, {}))

    def no_network(*args, **kwargs):
        raise AssertionError('no request expected')
    with pytest.raises(MirrorError) as info:
        mirror_releases(str(dest), STIGMER, fetch=no_network)
    assert 'holds a mirror of temporalio/cli, not of stigmer/stigmer' in str(info.value)


# ---------------------------------------------------------------- against the GitHub stand-in


def test_the_mirror_serves_the_role(origin, dest, tmp_path):
    result = mirror(origin, dest, versions=['latest'])
    assert result['changed'] is True and result['tags'] == {'latest': 'v0.1.0'}
    assert result['releases'] == ['v0.1.0'] and result['latest'] == 'v0.1.0'
    assert result['warnings'] == ['latest: skipped v3.27.2 (no assets), v3.27.1 (no stigmer CLI or agent-runner '
                                  'assets); using v0.1.0 of stigmer/stigmer']
    expected = sorted(cli_files('v0.1.0', ALL4) + ['latest', 'manifest.json'])
    assert tree(dest) == expected and sorted(result['written']) == expected
    with open(os.path.join(dest, 'latest')) as handle:
        assert handle.read() == 'v0.1.0\n'
    # Byte for byte as published, checksum files included; a web server run by anyone may read them.
    for path in cli_files('v0.1.0', ALL4):
        with open(os.path.join(dest, path), 'rb') as handle:
            assert handle.read() == origin.published(STIGMER, *path.split('/')), path
        assert stat.S_IMODE(os.stat(os.path.join(dest, path)).st_mode) == 0o644, path
    for directory in (dest, os.path.join(dest, 'v0.1.0')):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    # The locks live in one place at the top, not beside what is served.
    assert not os.path.exists(os.path.join(dest, 'v0.1.0', '.locks'))
    manifest = load_manifest(dest)
    assert manifest['repo'] == STIGMER and manifest['latest'] == 'v0.1.0' and list(manifest['releases']) == ['v0.1.0']
    entry = manifest['releases']['v0.1.0']
    runner = [row for row in entry['assets'] if row['name'] == 'agent-runner-v0.1.0-linux-arm64'][0]
    published = origin.published(STIGMER, 'v0.1.0', 'agent-runner-v0.1.0-linux-arm64')
    assert runner == {'name': 'agent-runner-v0.1.0-linux-arm64', 'sha256': sha256(published), 'size': len(published),
                      'platform': 'linux-arm64', 'component': 'agent-runner'}
    assert len(entry['assets']) == 8 and len(entry['checksum_files']) == 8 and entry['prerelease'] is False

    host = MirrorHost(dest)
    try:
        for platform in ('linux-amd64', 'darwin-arm64'):
            resolved, results = role_downloads(host.base, STIGMER, CLI, platform, tmp_path / 'cache' / platform)
            assert resolved['tag'] == 'v0.1.0' and resolved['source'] == 'mirror'
            assert [r['verified_against'] for r in results] == [['checksum_file'], ['checksum_file']]
            for r in results:
                name = os.path.basename(r['path'])
                assert r['downloaded'] is True and r['sha256'] == sha256(origin.published(STIGMER, 'v0.1.0', name))
        assert '/latest' in host.paths and '/v0.1.0/agent-runner-v0.1.0-darwin-arm64.sha256' in host.paths
    finally:
        host.close()


def test_the_temporal_mirror_serves_the_role(origin, tmp_path):
    dest = str(tmp_path / 'mirror' / 'temporal')
    result = mirror(origin, dest, versions=['1.5.1'], repo=TEMPORAL, components=['temporal'])
    assert result['tags'] == {'1.5.1': 'v1.5.1'} and result['latest'] == 'v1.5.1' and result['warnings'] == []
    archives = ['v1.5.1/temporal_cli_1.5.1_%s.tar.gz' % p.replace('-', '_') for p in ALL4]
    assert tree(dest) == sorted(archives + ['latest', 'manifest.json', 'v1.5.1/checksums.txt'])
    with open(os.path.join(dest, 'v1.5.1', 'checksums.txt'), 'rb') as handle:
        assert handle.read() == origin.published(TEMPORAL, 'v1.5.1', 'checksums.txt')
    # One checksums.txt for every platform: fetched once.
    assert origin.stats()['downloads']['checksums.txt'] == 1
    assert [row['name'] for row in load_manifest(dest)['releases']['v1.5.1']['checksum_files']] == ['checksums.txt']

    host = MirrorHost(dest)
    try:
        resolved, results = role_downloads(host.base, TEMPORAL, ['temporal'], 'linux-arm64', tmp_path / 'cache')
        assert resolved['tag'] == 'v1.5.1'
        assert results[0]['sha256'] == sha256(origin.published(TEMPORAL, 'v1.5.1', 'temporal_cli_1.5.1_linux_arm64.tar.gz'))
    finally:
        host.close()


def test_a_second_run_changes_nothing_and_downloads_nothing(origin, dest):
    first = mirror(origin, dest, versions=['latest', '0.0.7'])
    assert first['releases'] == ['v0.1.0', 'v0.0.7']
    before = dict((path, os.stat(os.path.join(dest, path)).st_mtime_ns) for path in tree(dest))
    origin.reset()
    second = mirror(origin, dest, versions=['latest', 'v0.0.7'])
    assert second['changed'] is False and second['written'] == [] and second['diff'] == []
    assert second['tags'] == {'latest': 'v0.1.0', 'v0.0.7': 'v0.0.7'} and second['releases'] == ['v0.1.0', 'v0.0.7']
    stats = origin.stats()
    # Only the release lookup: every file here matched the API digests, checksum files included.
    assert stats['downloads'] == {} and stats['download_redirects'] == {}
    assert dict((path, os.stat(os.path.join(dest, path)).st_mtime_ns) for path in tree(dest)) == before


@pytest.fixture
def own_origin(tmp_path):
    server = Origin(tmp_path / 'releases')
    yield server
    server.close()


def test_a_newly_published_release_is_added_and_latest_moves(own_origin, dest):
    origin = own_origin
    mirror(origin, dest, versions=['latest', '0.0.7'])
    origin.publish(NEWER)
    result = mirror(origin, dest, versions=['latest'])
    assert result['tags'] == {'latest': 'v0.3.0'} and result['latest'] == 'v0.3.0'
    assert result['releases'] == ['v0.3.0', 'v0.1.0', 'v0.0.7']
    assert sorted(result['written']) == sorted(cli_files('v0.3.0', ALL4) + ['latest', 'manifest.json'])
    assert all('v0.3.0' in name for name in origin.stats()['downloads'])
    with open(os.path.join(dest, 'latest')) as handle:
        assert handle.read() == 'v0.3.0\n'
    # Releases mirrored before stay listed, and on disk.
    manifest = load_manifest(dest)
    assert sorted(manifest['releases']) == ['v0.0.7', 'v0.1.0', 'v0.3.0'] and manifest['latest'] == 'v0.3.0'
    assert set(cli_files('v0.1.0', ALL4) + cli_files('v0.0.7', ALL4)) <= set(tree(dest))


def test_a_manifest_row_reaching_outside_the_mirror_fails_the_run_before_any_request(origin, tmp_path):
    """Such a row was kept while the file it named existed, outside dest too, and written back on every run."""
    dest = str(tmp_path / 'mirror' / 'stigmer')
    mirror(origin, dest, platforms=['linux-amd64'])
    outside = tmp_path / 'mirror' / 'secret'
    outside.write_bytes(b'not the mirror\'s')
    path = os.path.join(dest, 'manifest.json')
    document = load_manifest(dest)
    document['releases']['v0.1.0']['assets'].append(dict(document['releases']['v0.1.0']['assets'][0],
                                                         name='../../secret'))
    with open(path, 'w') as handle:
        json.dump(document, handle)
    with open(path, 'rb') as handle:
        planted = handle.read()
    before = tree(str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError('no request expected')
    with pytest.raises(MirrorError) as info:
        mirror(origin, dest, platforms=['linux-amd64'], fetch=no_network)
    assert str(info.value) == (
        "%s lists '../../secret' among the assets of v0.1.0, which is not a plain file name (no /, \\, .. or empty "
        "name) inside %s; this module never writes that: remove it from %s, or move %s away to have it rebuilt"
        % (path, os.path.join(dest, 'v0.1.0'), path, path))
    with open(path, 'rb') as handle:
        assert handle.read() == planted
    assert tree(str(tmp_path)) == before and outside.read_bytes() == b'not the mirror\'s'


def test_a_corrupted_file_is_replaced_with_a_warning(origin, dest):
    mirror(origin, dest)
    runner = os.path.join(dest, 'v0.1.0', 'agent-runner-v0.1.0-linux-amd64')
    record = os.path.join(dest, 'v0.1.0', 'stigmer-v0.1.0-darwin-arm64.tar.gz.sha256')
    with open(runner, 'r+b') as handle:
        handle.seek(100)
        handle.write(b'X')
    with open(record, 'w') as handle:
        handle.write('%s  stigmer-v0.1.0-darwin-arm64.tar.gz\n' % ('0' * 64))
    origin.reset()
    result = mirror(origin, dest)
    assert result['changed'] is True
    assert result['written'] == ['v0.1.0/agent-runner-v0.1.0-linux-amd64',
                                 'v0.1.0/stigmer-v0.1.0-darwin-arm64.tar.gz.sha256']
    assert sorted(origin.stats()['downloads']) == ['agent-runner-v0.1.0-linux-amd64',
                                                   'stigmer-v0.1.0-darwin-arm64.tar.gz.sha256']
    replaced = sorted(w for w in result['warnings'] if w.startswith('replaced '))
    assert len(replaced) == 2
    assert replaced[0].startswith('replaced v0.1.0/agent-runner-v0.1.0-linux-amd64: its sha256 ')
    assert replaced[1].startswith('replaced v0.1.0/stigmer-v0.1.0-darwin-arm64.tar.gz.sha256: its sha256 ')
    for path in (runner, record):
        with open(path, 'rb') as handle:
            assert handle.read() == origin.published(STIGMER, 'v0.1.0', os.path.basename(path))


def test_a_checksum_mismatch_at_the_origin_fails_and_leaves_nothing(origin, dest):
    name = 'agent-runner-v0.1.0-linux-arm64'
    good = origin.published(STIGMER, 'v0.1.0', name)
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0x01  # what the server's corrupt fault serves
    origin.faults(corrupt=[name])
    with pytest.raises(MirrorError) as info:
        mirror(origin, dest, attempts=1)
    message = str(info.value)
    assert message.startswith('mirroring v0.1.0 of stigmer/stigmer: checksum mismatch for %s' % name)
    assert sha256(good) in message and sha256(bytes(corrupt)) in message
    assert 'Run again' in message and 'do not mirror v0.1.0' in message
    files = tree(dest)
    assert 'v0.1.0/' + name not in files
    assert not [f for f in files if '.part' in f or '.tmp-' in f]
    # Nothing announces the release: no latest, no manifest, no checksum file of the failed artifact.
    assert 'latest' not in files and 'manifest.json' not in files and 'v0.1.0/%s.sha256' % name not in files


def test_a_checksum_file_that_contradicts_the_api_digest_is_refused_though_the_files_here_match(origin, dest):
    mirror(origin, dest, platforms=['linux-amd64'])
    origin.faults(bad_checksum=['stigmer-v0.1.0-linux-amd64.tar.gz'])
    with pytest.raises(MirrorError) as info:
        mirror(origin, dest, platforms=['linux-amd64'])
    message = str(info.value)
    assert 'the GitHub API digest of stigmer-v0.1.0-linux-amd64.tar.gz' in message
    assert 'do not mirror v0.1.0' in message
    # The mirror keeps what it had: the published checksum file it verified before.
    with open(os.path.join(dest, 'v0.1.0', 'stigmer-v0.1.0-linux-amd64.tar.gz.sha256'), 'rb') as handle:
        assert handle.read() == origin.published(STIGMER, 'v0.1.0', 'stigmer-v0.1.0-linux-amd64.tar.gz.sha256')


def test_check_mode_writes_nothing(origin, dest):
    result = mirror(origin, dest, check_mode=True)
    assert result['changed'] is True and not os.path.exists(dest)
    assert sorted(result['written']) == sorted(cli_files('v0.1.0', ALL4) + ['latest', 'manifest.json'])
    # Only the small checksum files were read.
    assert all(name.endswith('.sha256') for name in origin.stats()['downloads'])
    assert [d['after_header'] for d in result['diff']] == ['latest', 'manifest.json']

    mirror(origin, dest)
    os.unlink(os.path.join(dest, 'v0.1.0', 'stigmer-v0.1.0-linux-amd64.tar.gz'))
    before = tree(dest)
    result = mirror(origin, dest, check_mode=True)
    assert result['written'] == ['v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz'] and tree(dest) == before


def test_a_pinned_release_is_mirrored_for_the_platforms_it_has(origin, dest):
    result = mirror(origin, dest, versions=['0.0.6'])
    assert result['tags'] == {'0.0.6': 'v0.0.6'}
    assert result['warnings'] == ['v0.0.6 of stigmer/stigmer has no build for linux-arm64, so only linux-amd64, '
                                  'darwin-amd64, darwin-arm64 was mirrored. Newest release with a build, per '
                                  'platform: linux-arm64: v0.1.0']
    assert tree(dest) == sorted(cli_files('v0.0.6', ['linux-amd64', 'darwin-amd64', 'darwin-arm64'])
                                + ['latest', 'manifest.json'])


def test_a_release_without_a_checksum_file_is_verified_by_its_digest_with_a_warning(origin, dest):
    origin.faults(missing=['agent-runner-v0.1.0-linux-amd64.sha256'])
    result = mirror(origin, dest, platforms=['linux-amd64'])
    assert tree(dest) == ['latest', 'manifest.json', 'v0.1.0/agent-runner-v0.1.0-linux-amd64',
                          'v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz', 'v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz.sha256']
    assert ('v0.1.0 of stigmer/stigmer publishes no agent-runner-v0.1.0-linux-amd64.sha256, which hosts installing '
            'from this mirror fetch; they fail unless stigmer_checksums pins agent-runner-v0.1.0-linux-amd64'
            in result['warnings'][-1])


def test_with_a_token_everything_comes_through_the_api_and_no_secret_shows(origin, dest):
    result = mirror(origin, dest, platforms=['linux-amd64'], token=TOKEN + '\n', url_username='bob',
                    url_password='pw-SECRET')
    assert result['latest'] == 'v0.1.0' and TOKEN not in repr(result) and 'pw-SECRET' not in repr(result)
    assert origin.stats()['api_by_auth']['anonymous'] == 0
    origin.faults(corrupt=['stigmer-v0.1.0-linux-arm64.tar.gz'])
    with pytest.raises(MirrorError) as info:
        mirror(origin, dest, platforms=['linux-arm64'], token=TOKEN, url_password='pw-SECRET', attempts=1)
    assert 'checksum mismatch' in str(info.value)
    assert TOKEN not in str(info.value) and 'pw-SECRET' not in str(info.value)


def test_the_role_fails_naming_the_url_of_a_platform_the_mirror_lacks(origin, dest, tmp_path):
    mirror(origin, dest, platforms=['linux-amd64'])
    host = MirrorHost(dest)
    try:
        with pytest.raises(Exception) as info:
            role_downloads(host.base, STIGMER, CLI, 'darwin-arm64', tmp_path / 'cache')
        assert '/v0.1.0/stigmer-v0.1.0-darwin-arm64.tar.gz.sha256' in str(info.value)
        assert http.redact_url(host.base) in str(info.value)
    finally:
        host.close()
