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
           'components': {}, 'polling': ['server', 'agent-runner'], 'logs': {}}


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
    assert 'POLLING' in result['table'][0] and '  server, agent-runner' in result['table'][1]
    assert result['rows'][0]['polling'] == ['server', 'agent-runner'] and result['rows'][3]['polling'] is None
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
    assert result['problems'][0] == 'web-1: drift: asked v0.2.0, found v0.1.0'


def test_a_fleet_uniformly_on_the_wrong_version_is_not_ok(tmp_path, capsys):
    hosts = [dict(entry, info=info('0.0.7')) for entry in fleet()[:3]]
    code, result = run(capsys, tmp_path, hosts)
    assert code == 0 and result['ok'] is True  # nothing asked: uniform is healthy
    code, result = run(capsys, tmp_path, hosts, expected_version='v0.1.0')
    assert code == 0 and result['ok'] is False and result['summary']['ok'] is False
    assert [r['state'] for r in result['rows']] == ['drift'] * 3
    assert result['summary']['fleet_version'] == result['summary']['expected_version'] == '0.1.0'
    assert result['problems'] == ['%s: drift: asked v0.1.0, found v0.0.7' % name for name in ('web-1', 'web-2', 'web-3')]
    assert result['table'][-1] == 'NOT OK: expected version v0.1.0, 3 hosts: 3 drift'
    document = json.loads((tmp_path / 'fleet-report.json').read_text())
    assert document['expected_version'] == '0.1.0' and document['ok'] is False


def test_one_unreadable_host_result_fails_only_that_host(tmp_path, capsys):
    good = fleet()[0]
    hosts = [
        good,
        dict(good, host='bad-problems', info=dict(info(), problems=5)),
        dict(good, host='bad-info', info='stigmer is installed'),
        dict(good, host='bad-health', health='SERVING'),
        dict(good, host='bad-types', info=dict(info(), installed='yes'), health=dict(HEALTHY, healthy=1)),
        dict(good, host='json-info', info=json.dumps(info())),
        dict(good, host='empty-health', health=''),
    ]
    code, result = run(capsys, tmp_path, hosts, expected_version='v0.1.0')
    assert code == 0 and not result.get('failed'), result.get('msg')
    assert [(r['host'], r['state']) for r in result['rows']] == [
        ('web-1', 'healthy'), ('bad-problems', 'failed'), ('bad-info', 'failed'), ('bad-health', 'failed'),
        ('bad-types', 'failed'), ('json-info', 'healthy'), ('empty-health', 'unhealthy')]
    reasons = dict((r['host'], r['reasons']) for r in result['rows'])
    assert reasons['bad-problems'] == ['the stigmer_info result could not be read: problems is int, not a list']
    assert reasons['bad-info'] == ['the stigmer_info result could not be read: it is str, not a mapping']
    assert reasons['bad-health'] == ['the stigmer_health result could not be read: it is str, not a mapping']
    assert reasons['bad-types'] == ['the stigmer_info result could not be read: installed is str, not a boolean',
                                    'the stigmer_health result could not be read: healthy is int, not a boolean']
    assert reasons['empty-health'] == ['no health result']
    assert result['summary']['counts']['failed'] == 4 and sorted(files(tmp_path)) == NAMES


def test_host_text_reaches_no_output_with_terminal_escapes(tmp_path, capsys):
    hostile = '\x1b[31mdown\x1b[0m \x1b]8;;https://evil.example/\x07click\x1b]8;;\x07 \x9b2J\x00'
    hosts = [dict(fleet()[0], host='web-1\x1b[2J', health=dict(HEALTHY, healthy=False, msg=hostile))]
    code, result = run(capsys, tmp_path, hosts)
    assert code == 0
    assert result['rows'][0]['host'] == 'web-1' and result['rows'][0]['reasons'] == ['down click']
    for text in ['\n'.join(result['table'])] + [data.decode('utf-8') for data in files(tmp_path).values()]:
        assert not any(c in text for c in '\x1b\x9b\x07\x00') and 'u001b' not in text
    code, result = run(capsys, tmp_path, [hosts[0], hosts[0]])
    assert code == 1 and result['msg'] == 'hosts[1]: web-1 is listed more than once'


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
    assert doc['options']['expected_version']['version_added'] == '0.1.0'
    assert doc['options']['expected_version']['type'] == spec['expected_version']['type'] == 'str'
    assert 'asked v0.1.0, found v0.0.7' in ' '.join(doc['options']['expected_version']['description'])
    # A result that is not a mapping is that host's failure, not a failed argument check of the whole report.
    assert spec['hosts']['options']['info']['type'] == spec['hosts']['options']['health']['type'] == 'raw'
    assert set(returned) == {'ok', 'problems', 'table', 'files', 'summary', 'rows'}
    assert set(returned['rows']['contains']) == {'host', 'platform', 'state', 'cli_version', 'agent_runner_version',
                                                 'temporal_version', 'services', 'polling', 'health', 'reasons'}
    assert set(returned['summary']['contains']) == {'fleet_version', 'expected_version', 'counts', 'total', 'ok',
                                                    'problems'}


def test_supervised_given_as_text_is_read_as_a_boolean_and_anything_else_fails_only_its_host(tmp_path, capsys):
    good = fleet()[0]
    hosts = [dict(good, host='text-true', supervised='true'), dict(good, host='list', supervised=['maybe'])]
    code, result = run(capsys, tmp_path, hosts, expected_version='v0.1.0')
    assert code == 0 and not result.get('failed'), result.get('msg')
    assert [(r['host'], r['state']) for r in result['rows']] == [('text-true', 'healthy'), ('list', 'failed')]
    assert 'supervised' in ' '.join(result['rows'][1]['reasons'])
