"""The tarball `ansible-galaxy collection build` makes holds what users need and nothing else.

STIGMER_GALAXY_TARBALL names the tarball to check (make galaxy-check passes the one it built);
without it the checkout is built into a temporary directory.
"""
import fnmatch
import os
import pathlib
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]

# Never shipped: build output, caches, demo reports, secrets, CI and editor files.
FORBIDDEN = (
    'build/*', 'reports/*', 'tests/output/*', '*.tar.gz', '*.log', '*.retry', 'importer_result.json',
    '*__pycache__*', '*.pyc', '*.pytest_cache*', '*.benchmarks*', '*.mypy_cache*', '*.ruff_cache*',
    '.cache/*', '.ansible/*', '.venv/*', 'venv/*', '.tox/*',
    '.env', '*.env', '*.pem', '*.key', '*.p12', '*vault_pass*', '*.token',
    '.ci/*', '.github/*', '.git/*', '.vscode/*', '.idea/*',
)
# What the content reveals no matter the file's name.
SECRET_CONTENT = re.compile(
    rb'-----BEGIN [A-Z ]*PRIVATE KEY-----|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{60,}|'
    rb'\bsk-ant-[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b')
# Shipped files that users, Galaxy, ansible-doc and the docs site read; the roles' and plugins' files are
# checked one by one below.
REQUIRED = ('MANIFEST.json', 'FILES.json', 'README.md', 'COPYING', 'meta/runtime.yml',
            'changelogs/changelog.yaml', 'changelogs/config.yaml', 'docs/docsite/links.yml')
# Whole trees that must ship as they are in the checkout.
SHIPPED_TREES = ('plugins/', 'roles/', 'playbooks/', 'meta/', 'docs/', 'changelogs/')


def git_files():
    """Files of the checkout that are tracked or would be (untracked, not ignored)."""
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=str(TOP), check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return sorted(name for name in out.split('\0') if name and (TOP / name).is_file())


def build(source, dest):
    subprocess.run(['ansible-galaxy', 'collection', 'build', '--output-path', str(dest), str(source)],
                   check=True, stdout=subprocess.PIPE)
    return next(dest.glob('*.tar.gz'))


def members(tarball):
    with tarfile.open(str(tarball)) as archive:
        return {member.name: member for member in archive.getmembers()}


def forbidden(names):
    return sorted(name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in FORBIDDEN))


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    given = os.environ.get('STIGMER_GALAXY_TARBALL')
    if given:
        return pathlib.Path(given)
    return build(TOP, tmp_path_factory.mktemp('galaxy'))


@pytest.fixture(scope='module')
def files(tarball):
    return {name: member for name, member in members(tarball).items() if member.isfile()}


def test_tarball_is_this_collection_version(tarball):
    galaxy = yaml.safe_load((TOP / 'galaxy.yml').read_text())
    assert tarball.name == '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version'])


def test_nothing_forbidden_is_shipped(files):
    assert forbidden(files) == []


def test_no_file_holds_a_secret(tarball, files):
    with tarfile.open(str(tarball)) as archive:
        leaking = [name for name in files if SECRET_CONTENT.search(archive.extractfile(name).read())]
    assert leaking == []


def test_required_files_are_shipped(files):
    assert [name for name in REQUIRED if name not in files] == []


def test_every_role_ships_what_galaxy_and_ansible_doc_read(files):
    roles = sorted({name.split('/')[1] for name in files if name.startswith('roles/')})
    assert roles
    for role in roles:
        for needed in ('README.md', 'meta/main.yml', 'meta/argument_specs.yml', 'tasks/main.yml'):
            assert 'roles/%s/%s' % (role, needed) in files


def test_every_collection_file_of_the_checkout_is_shipped(files):
    expected = [name for name in git_files() if name.startswith(SHIPPED_TREES)]
    assert expected
    assert [name for name in expected if name not in files] == []


def test_build_ignore_keeps_out_what_a_working_checkout_collects(tmp_path):
    # A copy of the checkout with the debris a day of work leaves behind, built the same way.
    source = tmp_path / 'src'
    for name in git_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(TOP / name), str(source / name))
    debris = ['build/venv-docs/bin/python', 'build/docs/html/index.html', 'stigmer-runtime-0.0.1.tar.gz',
              'reports/fleet-report.md', 'tests/output/junit.xml', 'playbooks/site.retry', 'make.log',
              '.pytest_cache/v/cache/lastfailed', 'tests/unit/.pytest_cache/README.md', '.benchmarks/run.json',
              'plugins/modules/__pycache__/stigmer_info.cpython-311.pyc', '.cache/x', '.ansible/roles/x.yml',
              '.env', 'tests/demo.env', 'roles/stigmer/files/host.key', 'controller.pem', '.vault_pass.txt',
              'github.token', '.venv/bin/python', '.ci/run']
    for name in debris:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text('debris\n')
    names = members(build(source, tmp_path / 'out'))
    assert [name for name in debris if name in names] == []
    # The patterns above see the same debris.
    assert forbidden(debris) == sorted(debris)
