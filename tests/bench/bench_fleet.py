"""Benchmark: what site.yml costs a fleet of systemd containers, against a floor play.

    make bench-fleet                        # BENCH_HOSTS=5 BENCH_PAD_MIB=20 by default
    make bench-fleet BENCH_HOSTS=3 BENCH_PAD_MIB=50

Builds the stand-in releases into a temporary directory plus one private release, v0.9.0,
whose linux-amd64 agent-runner is padded by about BENCH_PAD_MIB MiB (it behaves as v0.0.7's;
`latest` is unchanged), serves them on loopback, starts BENCH_HOSTS containers as the
integration tests do and runs, with one fork per host:

  cold   site.yml with stigmer_version 0.9.0 and an empty controller cache,
  warm   the same command again,
  floor  gather_facts and one ansible.builtin.stat: the least a play costs on this fleet.

For each run it prints the wall time, the requests the release server answered and the bytes
of the assets it served (API and web answers are small and not counted), the changed count
of each host from the PLAY RECAP and the modules that really ran on each host, read from the
host's own journal (tests/fixtures/roundtrips.py), as min-max over the hosts; then the
warm/floor ratios and a Markdown table for the README. It prints figures and asserts nothing
about time: it exits non-zero only when a play fails (or the fleet cannot be set up). The
containers (label owner=stigmer-bench) and the server are removed at the end, also on Ctrl-C.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / 'build' / 'collections'
sys.path.insert(0, str(ROOT / 'tests' / 'fixtures'))

import build_releases  # noqa: E402
import roundtrips  # noqa: E402
import server_ctl  # noqa: E402

HOSTS = int(os.environ.get('BENCH_HOSTS', '5'))
PAD_MIB = int(os.environ.get('BENCH_PAD_MIB', '20'))
IMAGE = 'localhost/stigmer-test-debian:bookworm-amd64'
# Published after every stand-in; `latest` is pinned by the catalogue, so it stays v3.27.2.
BENCH_RELEASE = {'tag': 'v0.9.0', 'published_at': '2026-06-15T12:00:00Z', 'platforms': ('linux-amd64',),
                 'shape': 'v0.0.x', 'workflow_runner': 'works', 'runner_padding': PAD_MIB * 1024 * 1024}
FLOOR_PLAY = """- hosts: all
  gather_facts: true
  tasks:
    - ansible.builtin.stat:
        path: /etc/hostname
"""


def podman(*args, check=True):
    return subprocess.run(['podman'] + list(args), check=check, capture_output=True, text=True)


def start_fleet(names):
    for name in names:
        podman('run', '-d', '--name', name, '--hostname', name, '--systemd=always', '--network',
               'slirp4netns:allow_host_loopback=true', '--label', 'owner=stigmer-bench', IMAGE, '/sbin/init')
    for name in names:
        for _attempt in range(60):
            state = podman('exec', name, 'systemctl', 'is-system-running', check=False).stdout.strip()
            if state in ('running', 'degraded'):
                break
            time.sleep(1)


def run_play(playbook, inventory, names, server, asset_sizes, extra_vars):
    """One ansible-playbook run: its figures, or SystemExit when the play fails."""
    cmd = ['ansible-playbook', '-i', str(inventory), '-f', str(len(names)), str(playbook),
           '-e', json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_CONFIG=str(ROOT / 'tests' / 'ansible.cfg'))
    env.pop('GITHUB_TOKEN', None)  # as in the integration tests: anonymous API calls only
    cursors = {name: roundtrips.journal_cursor(name) for name in names}
    server_ctl.reset(server.port)
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), check=False)
    wall = time.monotonic() - started
    stats = server_ctl.stats(server.port)
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-6000:] + result.stderr[-2000:])
        raise SystemExit('%s failed with exit code %d' % (playbook.name, result.returncode))
    downloads = stats['downloads']
    return {
        'wall': wall,
        'requests': (stats['api_requests']['total'] + stats['web_requests']['total'] + stats['downloads_total']
                     + sum(stats['head_requests'].values()) + stats['asset_denied']),
        'bytes': sum(count * asset_sizes[name] for name, count in downloads.items()),
        'changed': [counts['changed'] for counts in roundtrips.recap(result.stdout).values()],
        'modules': [len(roundtrips.module_runs(name, cursors[name])) for name in names],
    }


def spread(values):
    low, high = min(values), max(values)
    return str(low) if low == high else '%d-%d' % (low, high)


def mib(count):
    return '%.1f MiB' % (count / 1048576.0)


def ratio(warm, floor):
    return '%.1fx' % (warm / floor) if floor else 'n/a'


def report(runs):
    for label, run in runs:
        print('%-5s  wall %6.1f s  origin %d requests, %d bytes (%s)  changed per host %s  '
              'module round trips per host %s' % (label, run['wall'], run['requests'], run['bytes'], mib(run['bytes']),
                                                  spread(run['changed']), spread(run['modules'])))
    warm, floor = dict(runs)['warm'], dict(runs)['floor']
    print('warm/floor: wall %s, module round trips per host %s (max over max)'
          % (ratio(warm['wall'], floor['wall']), ratio(max(warm['modules']), max(floor['modules']))))
    print('\n| run | wall | origin requests | origin bytes | changed per host | module round trips per host |')
    print('|---|---:|---:|---:|---:|---:|')
    for label, run in runs:
        print('| %s | %.1f s | %d | %s | %s | %s |' % (
            label, run['wall'], run['requests'], mib(run['bytes']), spread(run['changed']), spread(run['modules'])))


def main():
    if (COLLECTIONS / 'ansible_collections' / 'stigmer' / 'runtime').resolve() != ROOT:
        return '%s does not expose this checkout as stigmer.runtime: run make collection-link' % COLLECTIONS
    if podman('image', 'exists', IMAGE, check=False).returncode != 0:
        return '%s is missing: run tests/env/build-images.sh' % IMAGE
    # make's Ctrl-C is SIGINT (KeyboardInterrupt); a kill is SIGTERM: both reach the finally below.
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))
    tag = uuid.uuid4().hex[:6]
    names = ['stigmer-bench-%s-%d' % (tag, i) for i in range(1, HOSTS + 1)]
    server = None
    with tempfile.TemporaryDirectory(prefix='stigmer-bench-') as tmp:
        tmp = Path(tmp)
        try:
            catalogue = build_releases.build(str(tmp / 'releases'), extra_releases=[BENCH_RELEASE])
            asset_sizes = {asset['name']: asset['size'] for repo in catalogue['repos'].values()
                           for rel in repo['releases'] for asset in rel['assets']}
            server = server_ctl.start(str(tmp / 'releases'), server_ctl.free_port(), server_ctl.free_port())
            print('fleet: %d hosts; v0.9.0 agent-runner: %s' % (
                HOSTS, mib(asset_sizes['agent-runner-v0.9.0-linux-amd64'])), flush=True)
            start_fleet(names)
            inventory = tmp / 'hosts.yml'
            inventory.write_text(json.dumps({'all': {
                # systemd without CAP_SYS_ADMIN here: see HOST_VARS in tests/integration/test_playbooks.py.
                'vars': {'ansible_connection': 'containers.podman.podman', 'ansible_become': False,
                         'ansible_python_interpreter': '/usr/bin/python3',
                         'stigmer_server_accept_unfiltered_network': True},
                'hosts': {name: {} for name in names}}}))
            (tmp / 'floor.yml').write_text(FLOOR_PLAY)
            site_vars = {'stigmer_github_url': server.base_url, 'stigmer_github_api_url': server.api_url,
                         'stigmer_cache_dir': str(tmp / 'cache'), 'stigmer_version': '0.9.0',
                         'stigmer_llm_provider': 'anthropic', 'stigmer_anthropic_api_key': 'bench-key-not-a-secret'}
            runs = []
            for label, playbook, extra in (('cold', ROOT / 'playbooks' / 'site.yml', site_vars),
                                           ('warm', ROOT / 'playbooks' / 'site.yml', site_vars),
                                           ('floor', tmp / 'floor.yml', {})):
                runs.append((label, run_play(playbook, inventory, names, server, asset_sizes, extra)))
                print('%s done in %.1f s' % (label, runs[-1][1]['wall']), flush=True)
            report(runs)
        finally:
            podman('rm', '-f', *names, check=False)
            if server is not None:
                server_ctl.stop(server)
    return 0


if __name__ == '__main__':
    sys.exit(main())
