"""The converge of the ansible-core matrix: site.yml on one real systemd host with the ansible-core of
the interpreter that runs this test, then a re-run that must change nothing on the host.

tests/env/compat.sh (make compat) runs it once per ansible-core from 2.16 to 2.21, with the pytest of
that version's build/venv-core-X.Y, and says which version it means in STIGMER_COMPAT_CORE=X.Y; it
is skipped otherwise (make integration proves the default ansible-core in test_playbooks.py).
With STIGMER_COMPAT_LOG_DIR, the output of both runs is kept there (X.Y-site-1.txt, X.Y-site-2.txt).
The host, the release server and the playbook run are those of test_playbooks.py.
"""
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_playbooks import COLLECTIONS, IMAGE, host_sh, podman, recap, run_site, start_hosts  # noqa: E402
import build_releases  # noqa: E402  (test_playbooks put tests/fixtures on sys.path)
import server_ctl  # noqa: E402

CORE = os.environ.get('STIGMER_COMPAT_CORE')
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not CORE, reason='run by make compat (tests/env/compat.sh) once per ansible-core')


def controller_env():
    """This interpreter's ansible-core first on PATH; the checkout first among the collections, then
    the rest of ANSIBLE_COLLECTIONS_PATH (compat.sh adds the ansible bundle's, for containers.podman)."""
    paths = [str(COLLECTIONS)] + [p for p in os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(os.pathsep)
                                  if p and Path(p).resolve() != COLLECTIONS.resolve()]
    # A path names a folder holding ansible_collections, or that folder itself.
    roots = [Path(p) if Path(p).name == 'ansible_collections' else Path(p) / 'ansible_collections' for p in paths]
    if not any((root / 'containers' / 'podman').is_dir() for root in roots):
        pytest.fail('containers.podman is on none of %s: put the ansible bundle\'s ansible_collections '
                    'folder on ANSIBLE_COLLECTIONS_PATH (tests/env/compat.sh does)' % os.pathsep.join(paths))
    return {'PATH': str(BIN) + os.pathsep + os.environ.get('PATH', ''),
            'ANSIBLE_COLLECTIONS_PATH': os.pathsep.join(paths)}


@pytest.fixture(scope='module')
def controller():
    env = controller_env()
    proc = subprocess.run(['ansible-playbook', '--version'], capture_output=True, text=True, check=False,
                          env=dict(os.environ, **env))
    found = re.search(r'\[core (\d+\.\d+)\.', proc.stdout)
    assert found and found.group(1) == CORE, 'ansible-playbook from %s is not ansible-core %s: %s' % (
        BIN, CORE, (proc.stdout + proc.stderr)[:500])
    return env


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    releases = tmp_path_factory.mktemp('releases')
    build_releases.build(str(releases))
    with server_ctl.serving(releases) as handle:
        yield handle


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.fail('%s is missing: run make images' % IMAGE)
    name = 'stigmer-compat-%s-%s' % (CORE.replace('.', ''), uuid.uuid4().hex[:6])
    try:
        inventory = start_hosts([name], tmp_path_factory.mktemp('inventory') / 'hosts.yml')
        yield name, inventory
    finally:
        podman('rm', '-f', name, check=False)


def changed_tasks(output, name):
    """Names of the tasks that reported a change on host ``name``, in order."""
    tasks, task = [], None
    for line in output.splitlines():
        heading = re.match(r'(TASK|RUNNING HANDLER) \[(.*)\]', line)
        if heading:
            task = heading.group(2)
        elif re.match(r'changed: \[%s[\]\s-]' % re.escape(name), line) and task not in tasks:
            tasks.append(task)
    return tasks


def keep(run, result):
    """Keep a run's output for the matrix's summary (its warnings) and for reading."""
    if os.environ.get('STIGMER_COMPAT_LOG_DIR'):
        out = Path(os.environ['STIGMER_COMPAT_LOG_DIR'])
        out.mkdir(parents=True, exist_ok=True)
        (out / ('%s-site-%d.txt' % (CORE, run))).write_text(result.stdout + result.stderr)
    return result


def test_site_converges_and_a_second_run_changes_nothing(controller, server, host, tmp_path):
    name, inventory = host
    extra = {'stigmer_version': 'latest'}
    first = keep(1, run_site(server, inventory, tmp_path / 'cache', extra, env=controller))
    assert first.returncode == 0, 'site.yml failed with ansible-core %s:\n%s' % (CORE, first.stdout[-6000:])
    counts = recap(first.stdout)[name]
    assert counts['failed'] == counts['unreachable'] == 0, counts
    assert counts['changed'] > 0, 'the first run installed nothing: %s' % counts
    active = host_sh(name, 'systemctl is-active stigmer-server stigmer-agent-runner').stdout.split()
    assert active == ['active', 'active'], active

    second = keep(2, run_site(server, inventory, tmp_path / 'cache', extra, env=controller))
    assert second.returncode == 0, 're-run failed with ansible-core %s:\n%s' % (CORE, second.stdout[-6000:])
    counts = recap(second.stdout)[name]
    assert counts['changed'] == 0, 'the re-run changed %s with ansible-core %s: %s' % (
        counts, CORE, changed_tasks(second.stdout, name))
