# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import json
import os
import stat

from ansible_collections.stigmer.runtime.plugins.modules import stigmer_fleet_report
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

NAMES = ['fleet-report.html', 'fleet-report.json', 'fleet-report.md']
STALE = 'started before /opt/stigmer/current changed'


def services(server_stale=None):
    return {'server': {'active': True, 'state': 'active', 'stale': server_stale},
            'agent-runner': {'active': True, 'state': 'active', 'stale': None}}


def info(cli='0.1.0', server_stale=None):
    # As a registered stigmer_info result is passed: with Ansible's own keys.
    return {'changed': False, 'failed': False, 'installed': True, 'cli_version': cli, 'agent_runner_version': cli,
            'temporal_version': '1.5.1', 'versions_match': True, 'problems': [], 'services': services(server_stale)}


HEALTHY = {'changed': False, 'healthy': True, 'msg': '', 'grpc': True, 'status': 'SERVING', 'restarted': [],
           'components': {}, 'logs': {}}


def fleet():
    return [
        {'host': 'web-1', 'platform': 'linux-amd64', 'info': info(), 'health': HEALTHY},
        {'host': 'web-2', 'platform': 'linux-arm64', 'info': info(), 'health': HEALTHY},
        {'host': 'web-3', 'platform': 'linux-amd64', 'info': info('0.0.7', server_stale=STALE), 'health': HEALTHY},
        {'host': 'mac-1', 'unreachable': 'Failed to connect to the host via ssh: Connection timed out'},
    ]


def run(capsys, dest, hosts=None, **args):
    args = dict(args, hosts=fleet() if hosts is None else hosts, dest=str(dest))
    return harness.run_module(stigmer_fleet_report, args, capsys)


def files(dest):
    return dict((name, (dest / name).read_bytes()) for name in sorted(os.listdir(str(dest))))


def test_an_unhealthy_fleet_is_reported_not_failed(tmp_path, capsys):
    dest = tmp_path / 'reports'
    code, result = run(capsys, dest)
    assert code == 0 and not result.get('failed')
    assert result['changed'] is True
    assert result['ok'] is False and result['summary']['ok'] is False
    assert [r['state'] for r in result['rows']] == ['healthy', 'healthy', 'drift', 'unreachable']
    assert result['problems'] == result['summary']['problems'] == [
        'web-3: drift: server: installed v0.0.7, running an older start: %s; CLI v0.0.7, fleet runs v0.1.0' % STALE,
        'mac-1: unreachable: Failed to connect to the host via ssh: Connection timed out',
    ]
    assert result['summary']['fleet_version'] == '0.1.0'
    assert result['summary']['counts']['healthy'] == 2 and result['summary']['total'] == 4
    assert result['table'][0].startswith('HOST ') and len(result['table']) == 6
    assert result['table'][-1].startswith('NOT OK: fleet version v0.1.0, 4 hosts')
    assert result['files'] == [str(dest / n) for n in ('fleet-report.json', 'fleet-report.md', 'fleet-report.html')]
    assert sorted(files(dest)) == NAMES
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o755
    document = json.loads((dest / 'fleet-report.json').read_text())
    assert document['hosts'] == result['rows'] and document['generated'].endswith('Z')


def test_second_run_is_unchanged(tmp_path, capsys):
    run(capsys, tmp_path)
    before = files(tmp_path)
    code, result = run(capsys, tmp_path)
    assert code == 0 and result['changed'] is False
    assert files(tmp_path) == before


def test_healthy_fleet_on_the_expected_version(tmp_path, capsys):
    hosts = fleet()[:2]
    code, result = run(capsys, tmp_path, hosts, expected_version='v0.1.0', formats=['json'])
    assert code == 0 and result['ok'] is True and result['problems'] == []
    assert result['summary']['expected_version'] == '0.1.0'
    assert result['files'] == [str(tmp_path / 'fleet-report.json')]
    assert os.listdir(str(tmp_path)) == ['fleet-report.json']
    code, result = run(capsys, tmp_path, hosts, expected_version='0.2.0', formats=['json'])
    assert result['ok'] is False and result['changed'] is True
    assert result['problems'][0] == 'web-1: drift: CLI v0.1.0, expected v0.2.0'


def test_check_mode_writes_nothing(tmp_path, capsys):
    dest = tmp_path / 'reports'
    code, result = run(capsys, dest, _ansible_check_mode=True)
    assert code == 0 and result['changed'] is True
    assert len(result['files']) == 3 and result['rows']
    assert not dest.exists()
    run(capsys, dest)
    before = files(dest)
    code, result = run(capsys, dest, _ansible_check_mode=True)
    assert result['changed'] is False
    code, result = run(capsys, dest, fleet()[:2], _ansible_check_mode=True)
    assert result['changed'] is True
    assert files(dest) == before


def test_hosts_that_failed_or_gave_partial_results(tmp_path, capsys):
    hosts = [
        {'host': 'a', 'platform': 'linux-amd64', 'failed': 'stigmer_health: MODULE FAILURE', 'info': info()},
        {'host': 'b', 'info': {'installed': False, 'cli_version': None, 'problems': []}},
        {'host': 'c', 'info': {'installed': True, 'cli_version': '0.1.0'}, 'health': {'healthy': True}},
    ]
    code, result = run(capsys, tmp_path, hosts)
    assert code == 0
    assert [(r['state'], r['reasons'][0]) for r in result['rows']] == [
        ('failed', 'stigmer_health: MODULE FAILURE'), ('not-installed', 'not installed'),
        ('drift', 'agent-runner version unknown (its record is missing or not trusted)')]


def test_bad_input_fails(tmp_path, capsys):
    code, result = run(capsys, tmp_path, [])
    assert code == 1 and 'hosts is empty' in result['msg']
    code, result = run(capsys, tmp_path, [fleet()[0], fleet()[0]])
    assert code == 1 and result['msg'] == 'hosts[1]: web-1 is listed more than once'
    code, result = run(capsys, tmp_path, [{'platform': 'linux-amd64'}])
    assert code == 1 and 'host' in result['msg']
    code, result = run(capsys, tmp_path, [dict(fleet()[0], colour='red')])
    assert code == 1 and 'colour' in result['msg']
    code, result = run(capsys, tmp_path, expected_version='latest')
    assert code == 1 and result['msg'].startswith('expected_version: ') and 'resolve it' in result['msg']
    code, result = run(capsys, tmp_path, formats=['pdf'])
    assert code == 1 and 'pdf' in result['msg']
    assert os.listdir(str(tmp_path)) == []


def test_unwritable_destination_fails_naming_the_path_and_the_fix(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    dest = tmp_path / 'file' / 'reports'
    code, result = run(capsys, dest)
    assert code == 1 and result['path'] == str(dest)
    assert result['msg'] == ('cannot write the fleet report %s: Not a directory; set dest (stigmer_report_dir) to a '
                             'directory the controller user can write, or fix its permissions' % dest)


def test_documentation_matches_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_fleet_report)
    assert doc['version_added'] == '0.1.0'
    assert set(doc['attributes']) == {'check_mode', 'diff_mode', 'platform'}
    for attribute in doc['attributes'].values():
        assert attribute['description'] and attribute['support']
    hosts = doc['options']['hosts']
    assert hosts['elements'] == spec['hosts']['elements'] == 'dict'
    for name, option in hosts['suboptions'].items():
        assert option['type'] == spec['hosts']['options'][name]['type'], name
        assert bool(option.get('required')) == bool(spec['hosts']['options'][name].get('required')), name
    assert doc['options']['formats']['elements'] == spec['formats']['elements'] == 'str'
    assert set(returned) == {'ok', 'problems', 'table', 'files', 'summary', 'rows'}
    assert set(returned['rows']['contains']) == {'host', 'platform', 'state', 'cli_version', 'agent_runner_version',
                                                 'temporal_version', 'services', 'health', 'reasons'}
    assert set(returned['summary']['contains']) == {'fleet_version', 'expected_version', 'counts', 'total', 'ok',
                                                    'problems'}
