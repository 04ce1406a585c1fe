"""Fleet operations on four systemd containers: a rolling upgrade that keeps one version while a
release is published between its batches, a canary that fails and stops the rollout, a report of
every host (healthy, stopped component, older version, unreachable) rendered in headless
Chromium, and an air-gapped mirror built by mirror.yml that a fresh fleet installs from.

The tests run in file order and share the fleet: each starts from the state the previous one left.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_playbooks import IMAGE, ROOT, host_sh, host_state, podman, recap, run_site, site_command, start_hosts  # noqa: E402

sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import build_releases  # noqa: E402
import screenshots  # noqa: E402
import server_ctl  # noqa: E402
# The state colours of the HTML report: one cell of one colour per host row.
from ansible_collections.stigmer.runtime.plugins.module_utils._fleet_report import STATE_COLORS  # noqa: E402

# Published during the rolling upgrade; its workflow-runner exits at once (like upstream's
# v0.0.5), so it is also the release whose canary fails its health gate.
BROKEN = {"tag": "v0.2.0", "published_at": "2026-07-01T12:00:00Z", "platforms": build_releases.ALL_PLATFORMS,
          "shape": "newer", "workflow_runner": "exits-at-once"}
START = 'v0.1.0'   # what 'latest' is when the rollout starts
FAST_GATE = {'stigmer_health_timeout': 40, 'stigmer_health_settle': 3}
# One line per message, whatever the host names' length (the YAML format folds long lines).
ONE_LINE = {'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json'}


@pytest.fixture(scope='module')
def catalogue(tmp_path_factory):
    out = tmp_path_factory.mktemp('fleet-releases')
    build_releases.build(str(out))
    return out


@pytest.fixture(scope='module')
def server(catalogue):
    with server_ctl.serving(catalogue) as handle:
        yield handle


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        pytest.skip('%s is missing: run tests/env/build-images.sh' % IMAGE)
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-fl-%s-%d' % (tag, i) for i in (1, 2, 3, 4)]
    inventory = start_hosts(names, tmp_path_factory.mktemp('fleet-inventory') / 'hosts.yml')
    yield names, inventory
    podman('rm', '-f', *names, check=False)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('fleet-cache')


def current(name):
    return host_sh(name, 'readlink /opt/stigmer/current').stdout.strip()


def test_rolling_upgrade_keeps_the_version_chosen_at_the_start(server, catalogue, fleet, cache):
    names, inventory = fleet
    baseline = run_site(server, inventory, cache, {'stigmer_version': '0.0.7'})
    assert baseline.returncode == 0, baseline.stdout[-3000:]

    # upgrade.yml with serial 1 then 2; after the canary's batch, v0.2.0 is published (the
    # release list now names it as newest) while ansible-playbook is stopped.
    cmd, env, secrets = site_command(server, inventory, cache, dict(FAST_GATE, stigmer_version='latest',
                                                                    stigmer_rollout_canary=1, stigmer_rollout_batch_size=2),
                                     env=ONE_LINE, playbook='upgrade.yml')
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(ROOT), start_new_session=True)
    lines, published_at = [], None
    for line in proc.stdout:
        lines.append(line)
        if published_at is None and '"msg": "v0.0.7: ' in line and START in line:
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                build_releases.build(str(catalogue), extra_releases=[BROKEN])
                server_ctl.reload(server.port)
                published_at = len(lines)
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=600) == 0, ''.join(lines)[-4000:]
    out = ''.join(lines)
    assert published_at, out[-3000:]
    assert secrets['stigmer_anthropic_api_key'] not in out
    # The canary's batch ended with one host on the start version, the others untouched...
    assert '"msg": "v0.0.7: %s; %s: %s"' % (', '.join(names[1:]), START, names[0]) in out
    # ...and the two later batches ran after the publication: their applies come after it.
    later = ''.join(lines[published_at:])
    assert later.count('PLAY [Upgrade in batches, canary first]') == 2
    assert later.count('TASK [stigmer.runtime.stigmer : Apply the plan for stigmer on') == 2, later[-3000:]
    assert out.count('This run installs stigmer/stigmer %s (asked for latest)' % START) == 1
    assert 'To upgrade, in this order: %s' % ', '.join('%s (now v0.0.7)' % n for n in names) in out
    assert '"msg": "%s: %s"' % (START, ', '.join(names)) in out
    assert [current(n) for n in names] == ['versions/%s' % START] * 4
    # The release published meanwhile is really there: the next run's 'latest' is v0.2.0.
    plan = run_site(server, inventory, cache, {'stigmer_version': 'latest'}, limit=names[0], flags=['--check'], env=ONE_LINE)
    assert 'This run installs stigmer/stigmer v0.2.0 (asked for latest)' in plan.stdout, plan.stdout[-3000:]


def test_a_canary_that_fails_its_health_gate_is_rolled_back_and_stops_the_rollout(server, fleet, cache):
    names, inventory = fleet
    before = {n: host_state(n) for n in names[1:]}
    result = run_site(server, inventory, cache, dict(FAST_GATE, stigmer_version='latest', stigmer_rollout_batch_size=2),
                      env=ONE_LINE, playbook='upgrade.yml')
    assert result.returncode != 0
    out = result.stdout
    assert 'Stigmer v0.2.0 on %s is not healthy' % names[0] in out, out[-4000:]
    assert 'workflow-runner' in out and 'crash loop' in out, out[-4000:]
    assert 'Rolled back to stigmer %s, which is running again.' % START in out
    assert 'Hosts of this play now: %s: %s; %s (rolled back): %s' % (START, ', '.join(names[1:]), START, names[0]) in out, \
        out[-4000:]
    assert out.count('PLAY [Upgrade in batches, canary first]') == 1, 'the rollout went past the canary'
    assert recap(out)[names[0]]['failed'] == 1
    assert current(names[0]) == 'versions/%s' % START
    for name in names[1:]:
        assert host_state(name) == before[name], name


def test_verify_reports_every_host_and_fails_unless_the_fleet_is_uniform_and_healthy(server, fleet, cache, tmp_path):
    names, inventory = fleet
    healthy, stopped, older, gone = names
    older_run = run_site(server, inventory, cache, {'stigmer_version': '0.0.7'}, limit=older)
    assert older_run.returncode == 0, older_run.stdout[-3000:]
    host_sh(stopped, 'systemctl stop stigmer-agent-runner')
    podman('stop', '-t', '2', gone)
    try:
        reports = tmp_path / 'reports'
        result = run_site(server, inventory, cache, {'stigmer_report_dir': str(reports)}, playbook='verify.yml')
    finally:
        podman('start', gone)
    assert result.returncode != 0, result.stdout[-3000:]
    rows = {row['host']: row for row in json.loads((reports / 'fleet-report.json').read_text())['hosts']}
    assert [rows[n]['state'] for n in names] == ['healthy', 'unhealthy', 'drift', 'unreachable'], rows
    assert 'agent-runner' in ' '.join(rows[stopped]['reasons'])
    assert any('0.0.7' in r for r in rows[older]['reasons']), rows[older]
    assert rows[older]['cli_version'] == '0.0.7' and rows[healthy]['cli_version'] == START.lstrip('v')
    assert 'The fleet is not uniform and healthy' in result.stdout
    for name in names:
        assert name in result.stdout
    markdown = (reports / 'fleet-report.md').read_text()
    assert all(n in markdown for n in names)

    # The HTML page renders without network or scripts: one coloured state cell per host.
    html = reports / 'fleet-report.html'
    width, height, pixels = screenshots.screenshot(html.as_uri(), tmp_path / 'fleet-report.png', 1280, 1600)
    colours = {tuple(int(STATE_COLORS[s].lstrip('#')[i:i + 2], 16) for i in (0, 2, 4)): s for s in STATE_COLORS}
    bands, last = [], None
    for row in pixels:
        seen = {colours[p] for p in row if p in colours}
        state = seen.pop() if len(seen) == 1 else None
        if state and state != last:
            bands.append(state)
        last = state
    assert bands == ['healthy', 'unhealthy', 'drift', 'unreachable'], bands


def test_a_fleet_installs_from_a_mirror_built_by_mirror_yml_with_nothing_else_reachable(
        server, fleet, cache, tmp_path, tmp_path_factory):
    mirror = tmp_path / 'mirror'
    build = {'stigmer_mirror_dir': str(mirror), 'stigmer_mirror_versions': [START],
             'stigmer_mirror_platforms': ['linux-amd64', 'linux-arm64']}
    localhost = tmp_path / 'localhost.yml'
    localhost.write_text('all:\n  hosts:\n    localhost:\n      ansible_connection: local\n'
                         '      ansible_python_interpreter: %s\n' % sys.executable)
    first = run_site(server, localhost, cache, build, playbook='mirror.yml')
    assert first.returncode == 0, first.stdout[-3000:]
    for asset in ('stigmer-%s-linux-amd64.tar.gz' % START, 'agent-runner-%s-linux-arm64' % START):
        assert (mirror / 'stigmer' / START / asset).is_file()
    assert (mirror / 'stigmer' / 'latest').read_text().split() == [START]
    # The manifest lists what is on disk, with each file's real sha256.
    manifest = json.loads((mirror / 'stigmer' / 'manifest.json').read_text())
    listed = manifest['releases'][START]['assets']
    assert {a['name'] for a in listed} == {p.name for p in (mirror / 'stigmer' / START).iterdir()
                                           if not p.name.endswith('.sha256')}
    for asset in listed:
        data = (mirror / 'stigmer' / START / asset['name']).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (asset['sha256'], asset['size']), asset['name']

    server_ctl.reset(server.port)
    again = run_site(server, localhost, cache, build, playbook='mirror.yml')
    assert recap(again.stdout)['localhost']['changed'] == 0, again.stdout[-3000:]
    assert server_ctl.stats(server.port)['downloads'] == {}, 'the second run downloaded again'

    # Air-gapped: the release server is gone; a plain http.server serves the mirror.
    server_ctl.stop(server)
    port = server_ctl.free_port()
    web = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', '--directory', str(mirror),
                            str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-mi-%s-%d' % (tag, i) for i in (1, 2)]
    try:
        inventory = start_hosts(names, tmp_path / 'hosts.yml')
        offline = {'stigmer_version': 'latest', 'stigmer_github_url': 'http://127.0.0.1:9',
                   'stigmer_github_api_url': 'http://127.0.0.1:9/api/v3',
                   'stigmer_mirror_url': 'http://127.0.0.1:%d/stigmer' % port,
                   'stigmer_temporal_mirror_url': 'http://127.0.0.1:%d/temporal' % port}
        fresh_cache = tmp_path_factory.mktemp('mirror-cache')
        install = run_site(server, inventory, fresh_cache, offline)
        assert install.returncode == 0, install.stdout[-4000:]
        assert [current(n) for n in names] == ['versions/%s' % START] * 2
        assert host_sh(names[0], 'systemctl is-active stigmer-server stigmer-agent-runner').stdout.split() == ['active'] * 2
        second = run_site(server, inventory, fresh_cache, offline)
        assert all(recap(second.stdout)[n]['changed'] == 0 for n in names), second.stdout[-3000:]
    finally:
        web.terminate()
        podman('rm', '-f', *names, check=False)
