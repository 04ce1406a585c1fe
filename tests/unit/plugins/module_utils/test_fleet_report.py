# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report: one state per host and why, the fleet version, the four renderings, the files."""

import json
import os
import re
import stat

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _fleet_report as fleet_report
from ansible_collections.stigmer.runtime.plugins.module_utils._fleet_report import (
    STATE_COLORS,
    STATES,
    ReportWriteError,
    classify,
    fleet_version,
    health_text,
    render_html,
    render_json,
    render_markdown,
    render_table,
    service_status,
    write_reports,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError

STALE = 'started before /opt/stigmer/current changed'
HOSTILE = '<script>alert("x")</script> | a|b & `c` *d* [e](https://evil.example/x.png) \n next line'


def service(active=True, state='active', stale=None):
    return {'active': active, 'state': state, 'stale': stale}


def info(cli='0.1.0', runner=None, temporal='1.5.1', installed=True, problems=None, services=None):
    return {
        'installed': installed,
        'cli_version': cli,
        'agent_runner_version': cli if runner is None else runner,
        'temporal_version': temporal,
        'versions_match': cli == (cli if runner is None else runner),
        'problems': problems or [],
        'services': {'server': service(), 'agent-runner': service()} if services is None else services,
    }


def health(healthy=True, msg='', grpc=True, status='SERVING', polling=('server', 'agent-runner')):
    return {'healthy': healthy, 'msg': msg, 'grpc': grpc, 'status': status, 'components': {}, 'polling': list(polling)}


def host(name='web-1', platform='linux-amd64', unreachable=None, failed=None, **kwargs):
    return {'host': name, 'platform': platform, 'unreachable': unreachable, 'failed': failed,
            'info': kwargs.get('info', info()), 'health': kwargs.get('health', health())}


def only_row(entry, expected_version=None):
    return classify([entry], expected_version)['rows'][0]


# --- states and their reasons ---------------------------------------------------------------------

def test_healthy_host():
    row = only_row(host())
    assert row == {
        'host': 'web-1', 'platform': 'linux-amd64', 'state': 'healthy', 'cli_version': '0.1.0',
        'agent_runner_version': '0.1.0', 'temporal_version': '1.5.1',
        'services': {'agent-runner': 'active', 'server': 'active'}, 'polling': ['server', 'agent-runner'],
        'health': 'SERVING', 'reasons': [],
    }


def test_unreachable_comes_first():
    row = only_row(host(unreachable='Failed to connect to the host via ssh', failed='also failed',
                        info=info(installed=False), health=health(healthy=False, msg='down')))
    assert (row['state'], row['reasons']) == ('unreachable', ['Failed to connect to the host via ssh'])


def test_failed_comes_before_not_installed_and_keeps_what_was_read():
    row = only_row(host(failed='stigmer_health: MODULE FAILURE\nTraceback (most recent call last):\n  boom',
                        info=info(), health=None))
    assert row['state'] == 'failed'
    assert row['reasons'] == ['stigmer_health: MODULE FAILURE Traceback (most recent call last): boom']
    assert row['cli_version'] == '0.1.0' and row['health'] == 'not checked'


def test_a_long_failure_is_cut():
    row = only_row(host(failed='x' * 5000, info=None))
    assert len(row['reasons'][0]) == fleet_report.MAX_REASON and row['reasons'][0].endswith('\u2026')


def test_missing_info_without_a_failure_is_a_failure():
    row = only_row(host(info=None))
    assert (row['state'], row['reasons']) == ('failed', ['no stigmer_info result'])


def test_a_registered_failure_passed_as_a_result_is_a_failure():
    row = only_row(host(info=dict(info(), failed=False), health={'failed': True, 'msg': 'timeout\nwaiting'}))
    assert (row['state'], row['reasons']) == ('failed', ['stigmer_health failed: timeout waiting'])
    row = only_row(host(info={'failed': True}))
    assert (row['state'], row['reasons']) == ('failed', ['stigmer_info failed: no message'])
    row = only_row(host(info={'unreachable': True, 'msg': 'Connection reset'}, health={'failed': True}))
    assert (row['state'], row['reasons']) == ('unreachable', ['stigmer_info unreachable: Connection reset'])


def test_skipped_tasks_are_not_taken_for_answers():
    row = only_row(host(info={'skipped': True, 'changed': False}))
    assert (row['state'], row['reasons']) == ('failed', ['stigmer_info was skipped'])
    row = only_row(host(health={'skipped': True, 'changed': False}))
    assert (row['state'], row['reasons']) == ('unhealthy', ['the health check was skipped'])


def test_not_installed_with_the_records_problems():
    problem = '/opt/stigmer/current: /opt/stigmer/current points at /etc, not at a version directory beside it'
    row = only_row(host(info=info(cli=None, runner=None, installed=False, problems=[problem], services={}),
                        health=health(healthy=False, msg='nothing answers', grpc=False, status=None)))
    assert (row['state'], row['reasons']) == ('not-installed', ['not installed', problem])
    assert row['health'] == 'no answer'


def test_incomplete_install_is_not_installed():
    row = only_row(host(info=info(installed=False, runner=None)))
    assert (row['state'], row['reasons']) == ('not-installed', ['install of v0.1.0 is incomplete'])


def test_unhealthy_from_the_health_check():
    row = only_row(host(health=health(healthy=False, msg='server is not SERVING (NOT_SERVING)', status='NOT_SERVING')))
    assert (row['state'], row['reasons'], row['health']) == \
        ('unhealthy', ['server is not SERVING (NOT_SERVING)'], 'NOT_SERVING')


@pytest.mark.parametrize('entry, status', [
    (service(active=False, state='failed'), 'failed'),
    (service(active=False, state='inactive'), 'inactive'),
    ('garbage', 'unknown'),
])
def test_unhealthy_from_a_service_that_is_not_active(entry, status):
    row = only_row(host(info=info(services={'server': entry, 'agent-runner': service()})))
    assert row['state'] == 'unhealthy'
    assert row['services'] == {'agent-runner': 'active', 'server': status}
    assert row['reasons'] == ['service server is %s' % status]


@pytest.mark.parametrize('result, reason', [
    (None, 'no health result'),
    ({}, 'no health result'),
    ({'grpc': True}, 'the health result has no verdict'),
    ({'healthy': False}, 'the health check failed without a reason'),
])
def test_unhealthy_without_a_health_verdict(result, reason):
    row = only_row(host(health=result))
    assert (row['state'], row['reasons']) == ('unhealthy', [reason])


def test_unhealthy_comes_before_drift_and_says_both():
    row = only_row(host(info=info(runner='0.0.7'), health=health(healthy=False, msg='agent-runner is not ready')))
    assert row['state'] == 'unhealthy'
    assert row['reasons'] == ['agent-runner is not ready', 'CLI v0.1.0 but agent-runner v0.0.7']


def test_drift_stale_service():
    services = {'server': service(stale=STALE), 'agent-runner': service()}
    row = only_row(host(info=info(cli='0.0.7', services=services)))
    assert row['state'] == 'drift'
    assert row['services'] == {'agent-runner': 'active', 'server': 'stale'}
    assert row['reasons'] == ['server: installed v0.0.7, running an older start: %s' % STALE]


def test_drift_cli_and_agent_runner_differ():
    row = only_row(host(info=info(cli='0.1.0', runner='0.0.7')))
    assert (row['state'], row['reasons']) == ('drift', ['CLI v0.1.0 but agent-runner v0.0.7'])


def test_drift_agent_runner_record_not_trusted():
    problem = '/opt/stigmer/current: share/agent-runner.version does not match its recorded sha256'
    entry = host(info=dict(info(), agent_runner_version=None, problems=[problem]))
    row = only_row(entry)
    assert row['state'] == 'drift'
    assert row['reasons'] == ['agent-runner version unknown (its record is missing or not trusted)',
                              'install record: ' + problem]


def test_drift_from_the_fleet_version_lists_every_reason():
    services = {'server': service(stale=STALE), 'agent-runner': service()}
    report = classify([host('a'), host('b'), host('c', info=info(cli='0.0.7', runner='0.0.6', services=services))])
    row = report['rows'][2]
    assert row['state'] == 'drift'
    assert row['reasons'] == ['server: installed v0.0.7, running an older start: %s' % STALE,
                              'CLI v0.0.7 but agent-runner v0.0.6', 'CLI v0.0.7, fleet runs v0.1.0']
    assert report['summary']['problems'] == ['c: drift: ' + '; '.join(row['reasons'])]


def test_drift_from_the_expected_version():
    row = only_row(host(), expected_version='v0.2.0')
    assert (row['state'], row['reasons']) == ('drift', ['asked v0.2.0, found v0.1.0'])


@pytest.mark.parametrize('expected', ['v0.1.0', '0.1.0', 'V0.1.0'])
def test_a_fleet_uniformly_on_another_version_drifts_on_every_host(expected):
    hosts = [host('a', info=info('0.0.7')), host('b', info=info('v0.0.7')), host('c', info=info('0.0.7'))]
    assert classify(hosts)['summary']['ok'] is True  # uniform: healthy when nothing was asked
    report = classify(hosts, expected)
    assert [(r['state'], r['reasons']) for r in report['rows']] == [('drift', ['asked v0.1.0, found v0.0.7'])] * 3
    summary = report['summary']
    assert (summary['ok'], summary['fleet_version'], summary['expected_version']) == (False, '0.1.0', '0.1.0')
    assert summary['counts']['drift'] == 3
    assert summary['problems'][0] == 'a: drift: asked v0.1.0, found v0.0.7'
    assert render_table(report)[-1] == 'NOT OK: expected version v0.1.0, 3 hosts: 3 drift'


def test_the_expected_version_keeps_worse_states_and_is_named_beside_them():
    hosts = [host('ok', info=info('v0.1.0')),
             host('sick', info=info('0.0.7'), health=health(healthy=False, msg='crash loop')),
             host('bare', info=info('0.0.7', installed=False)),
             host('down', unreachable='timeout', info=info('0.0.7')),
             host('mixed', info=info('0.0.7', runner='0.1.0'))]
    rows = classify(hosts, 'v0.1.0')['rows']
    assert [r['state'] for r in rows] == ['healthy', 'unhealthy', 'not-installed', 'unreachable', 'drift']
    assert rows[1]['reasons'] == ['crash loop', 'asked v0.1.0, found v0.0.7']
    assert rows[4]['reasons'] == ['CLI v0.0.7 but agent-runner v0.1.0', 'asked v0.1.0, found v0.0.7']


def test_without_an_expected_version_the_majority_is_the_measure():
    hosts = [host('a'), host('b'), host('c', info=info('0.0.7'))]
    report = classify(hosts, None)
    assert report['summary']['expected_version'] is None and report['summary']['fleet_version'] == '0.1.0'
    assert report['rows'][2]['reasons'] == ['CLI v0.0.7, fleet runs v0.1.0']
    assert render_table(report)[-1].startswith('NOT OK: fleet version v0.1.0')


def test_a_stale_service_that_stopped_is_inactive_not_stale():
    row = only_row(host(info=info(services={'server': service(active=False, state='inactive', stale=STALE)})))
    assert row['services'] == {'server': 'inactive'} and row['state'] == 'unhealthy'


def test_services_from_the_health_components_when_info_has_none():
    components = {'server': {'active': True, 'state': 'active/running'},
                  'agent-runner': {'active': False, 'state': 'activating/auto-restart'}}
    row = only_row(host(info=info(services={}), health=dict(health(), components=components)))
    assert row['services'] == {'server': 'active', 'agent-runner': 'inactive'}
    assert row['reasons'] == ['service agent-runner is inactive']


@pytest.mark.parametrize('entry, status', [
    ({'active': True, 'state': 'active', 'stale': None}, 'active'),
    ({'active': True, 'state': 'active', 'stale': STALE}, 'stale'),
    ({'active': False, 'state': 'failed'}, 'failed'),
    ({'active': False, 'state': 'inactive'}, 'inactive'),
    ({'active': False, 'state': 'deactivating'}, 'inactive'),
    ({'state': 'active'}, 'active'),
    ({'state': 'failed/failed'}, 'failed'),
    ({'state': 'reloading'}, 'unknown'),
    ({}, 'unknown'),
    (None, 'unknown'),
])
def test_service_status(entry, status):
    assert service_status(entry) == status


@pytest.mark.parametrize('result, text', [
    ({'status': 'SERVING', 'grpc': True}, 'SERVING'),
    ({'status': None, 'grpc': True}, 'answers gRPC (no health service)'),
    ({'status': None, 'grpc': False}, 'no answer'),
    ({'healthy': False}, 'unknown'),
    ({}, 'not checked'),
    (None, 'not checked'),
])
def test_health_text(result, text):
    assert health_text(result) == text


@pytest.mark.parametrize('entry', [
    {'host': 'h'},
    {'host': 'h', 'info': {}, 'health': {}},
    {'host': 'h', 'info': {'installed': True}, 'health': {'healthy': True}},
    {'host': 'h', 'info': {'installed': True, 'cli_version': 'v0.1.0', 'services': 'nonsense'}, 'health': []},
    {'host': 'h', 'info': {'installed': True, 'cli_version': '0.1.0', 'problems': None, 'services': None}},
    {'host': 'h', 'info': 'not a dict', 'health': 'not a dict'},
    {},
])
def test_partial_or_missing_inputs_still_give_a_row(entry):
    row = classify([entry])['rows'][0]
    assert row['state'] in STATES and row['state'] != 'healthy'
    assert row['reasons'] and all(isinstance(r, str) for r in row['reasons'])
    for render in (render_table, render_markdown, render_html):
        render(classify([entry]))


def test_versions_are_shown_without_a_leading_v():
    row = only_row(host(info=info(cli='v0.1.0', runner='V0.1.0', temporal='v1.5.1')))
    assert (row['cli_version'], row['agent_runner_version'], row['temporal_version']) == ('0.1.0', '0.1.0', '1.5.1')
    assert row['state'] == 'healthy'


# --- what Temporal sees -------------------------------------------------------------------------

def test_each_host_says_which_components_temporal_lists_polling():
    unhealthy = health(healthy=False, polling=['server'],
                       msg='agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner')
    report = classify([host('web-1'), host('web-2', health=unhealthy), host('web-3', health=health(polling=())),
                       host('web-4', health=dict(health(), polling=None)), host('web-5', health=None)], 'v0.1.0')
    rows = report['rows']
    assert [r['polling'] for r in rows] == [['server', 'agent-runner'], ['server'], [], None, None]
    assert (rows[1]['state'], rows[1]['reasons']) == ('unhealthy', [unhealthy['msg']])
    assert report['summary']['problems'][0] == 'web-2: unhealthy: ' + unhealthy['msg']
    table = render_table(report)
    column = table[0].index('POLLING')
    assert [line[column:].split('  ')[0] for line in table[1:6]] == ['server, agent-runner', 'server', 'none', '-', '-']
    markdown = render_markdown(report)
    assert '| services | polling | health |' in markdown
    assert '| agent-runner=active server=active | server, agent-runner | SERVING |' in markdown
    assert '<td class="polling">server, agent-runner</td>' in render_html(report)
    assert json.loads(render_json(report))['hosts'][1]['polling'] == ['server']


# --- results that cannot be read -----------------------------------------------------------------

@pytest.mark.parametrize('bad, reason', [
    ({'info': dict(info(), problems=5)}, 'the stigmer_info result could not be read: problems is int, not a list'),
    ({'info': dict(info(), problems=['fine', 7])},
     'the stigmer_info result could not be read: problems[1] is int, not a string'),
    ({'info': 'not a dict'}, 'the stigmer_info result could not be read: it is str, not a mapping'),
    ({'info': ['0.1.0']}, 'the stigmer_info result could not be read: it is list, not a mapping'),
    ({'health': 'SERVING'}, 'the stigmer_health result could not be read: it is str, not a mapping'),
    ({'info': dict(info(), installed='yes', cli_version=7)},
     'the stigmer_info result could not be read: cli_version is int, not a string, installed is str, not a boolean'),
    ({'info': dict(info(), services=['server'])},
     'the stigmer_info result could not be read: services is list, not a mapping'),
    ({'health': dict(health(), healthy='true', components=[])},
     'the stigmer_health result could not be read: components is list, not a mapping, healthy is str, not a boolean'),
    ({'health': dict(health(), polling='server')},
     'the stigmer_health result could not be read: polling is str, not a list'),
    ({'health': dict(health(), polling=['server', 3])},
     'the stigmer_health result could not be read: polling[1] is int, not a string'),
    ({'info': dict(info(), services={1: service(), 'server': service()})},
     'the stigmer_info result could not be read: services key 1 is int, not a string'),
    ({'info': dict(info(), services={}), 'health': dict(health(), components={None: service()})},
     'the stigmer_health result could not be read: components key None is NoneType, not a string'),
])
def test_a_result_that_cannot_be_read_fails_only_its_host(bad, reason):
    broken = host('broken')
    broken.update(bad)
    report = classify([host('a'), broken, host('b')], 'v0.1.0')
    assert [r['state'] for r in report['rows']] == ['healthy', 'failed', 'healthy']
    assert report['rows'][1]['reasons'] == [reason]
    assert report['summary']['problems'] == ['broken: failed: ' + reason]
    for render in (render_table, render_markdown, render_html, render_json):
        assert 'broken' in ''.join(render(report))


def test_both_results_unreadable_gives_both_reasons_and_no_wrong_values():
    row = only_row(host(info=dict(info(), cli_version=['0.1.0'], temporal_version='1.5.1'), health=5))
    assert row['state'] == 'failed'
    assert row['reasons'] == ['the stigmer_info result could not be read: cli_version is list, not a string',
                              'the stigmer_health result could not be read: it is int, not a mapping']
    assert (row['cli_version'], row['temporal_version'], row['health']) == (None, '1.5.1', 'not checked')


def test_a_host_entry_that_is_not_a_mapping_is_a_failed_row():
    report = classify([host('a'), 'web-9', host('b')])
    assert [r['state'] for r in report['rows']] == ['healthy', 'failed', 'healthy']
    assert report['rows'][1]['reasons'] == ["the host's result could not be read: it is str, not a mapping"]


def test_a_result_that_cannot_be_read_has_no_vote():
    hosts = [host('a'), host('b', info=dict(info('0.0.7'), problems=5)), host('c', info=dict(info('0.0.7'), problems=5))]
    assert fleet_version(hosts) == '0.1.0'


def test_a_failed_task_result_is_still_a_failure_not_an_unreadable_one():
    row = only_row(host(info={'failed': True, 'msg': 'boom', 'problems': 5}))
    assert row['reasons'] == ['stigmer_info failed: boom']


@pytest.mark.parametrize('bad, error, shown_as', [
    ({'platform': {'os': 'linux'}}, 'platform is dict, not a string', 'broken'),
    ({'unreachable': ['timeout']}, 'unreachable is list, not a string', 'broken'),
    ({'failed': 5}, 'failed is int, not a string', 'broken'),
    ({'supervised': 'maybe'}, 'supervised is str, not a boolean', 'broken'),
    ({'host': None}, 'host is missing or blank', '?'),
    ({'host': '\x1b[2J\u200b'}, 'host is missing or blank', '?'),
    ({'host': 7}, 'host is int, not a string', '7'),
])
def test_a_host_entry_that_cannot_be_read_fails_only_its_host(bad, error, shown_as):
    broken = host('broken')
    broken.update(bad)
    report = classify([host('a'), broken, host('b')], 'v0.1.0')
    assert [(r['host'], r['state']) for r in report['rows']] == [('a', 'healthy'), (shown_as, 'failed'), ('b', 'healthy')]
    assert report['rows'][1]['reasons'] == ["the host's result could not be read: " + error]
    assert report['rows'][1]['platform'] in (None, 'linux-amd64')
    assert report['summary']['ok'] is False
    for render in (render_table, render_markdown, render_html, render_json):
        assert error in ''.join(render(report))


# --- text from the hosts --------------------------------------------------------------------------

ESC = '\x1b'
# Colours, a title change, an OSC 8 hyperlink, an 8-bit CSI, a bell, NUL, DEL and a bidi override.
TERMINAL = ('\x1b[31mred\x1b[0m \x1b]0;owned\x07title \x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\ '
            '\x9b2Jclear \x07bell\x00nul\x7fdel \u202eevil\u202c end')
CLEAN = 'red title link clear bellnuldel evil end'
# And the invisible formatting characters: zero-width, soft hyphen, word joiner, byte order mark,
# interlinear annotations, tag characters.
CONTROL_RE = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069'
                        '\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]')


def test_printable_strips_escape_sequences_and_control_characters():
    assert fleet_report.printable(TERMINAL) == CLEAN
    assert fleet_report.one_line('a\x1b[1m\tb\r\nc\x1bcd') == 'a b cd'
    assert fleet_report.printable('caf\u00e9 \u2026 \u65e5\u672c') == 'caf\u00e9 \u2026 \u65e5\u672c'


def terminal_report():
    return classify([
        host('web-1\x1b[2J', platform='linux\x1b[31m-amd64',
             info=info(cli='0.1.0\x1b[0m', services={'server\x1b[5m': service(stale=TERMINAL)})),
        host('web-2', health=health(healthy=False, msg=TERMINAL, status='NOT\x1b[32m_SERVING')),
        host('web-3', failed=TERMINAL, info=None),
    ])


def test_rows_hold_no_control_characters():
    report = terminal_report()
    rows = report['rows']
    assert rows[0]['host'] == 'web-1' and rows[0]['platform'] == 'linux-amd64'
    assert rows[0]['cli_version'] == '0.1.0' and list(rows[0]['services']) == ['server']
    assert rows[1]['reasons'] == [CLEAN] and rows[1]['health'] == 'NOT_SERVING'
    assert rows[2]['reasons'] == [CLEAN]
    assert not CONTROL_RE.search(json.dumps(report, ensure_ascii=False))


@pytest.mark.parametrize('render', [render_table, render_markdown, render_html, render_json])
def test_no_rendering_carries_control_characters(render):
    text = ''.join(render(terminal_report()))
    assert not CONTROL_RE.search(text)
    assert 'u001b' not in text and 'u009b' not in text and 'u202e' not in text.lower()
    assert 'red title link clear' in text


def test_html_strips_control_characters_from_any_report():
    report = classify([host()])
    report['rows'][0]['reasons'] = ['\x1b[31mred\x00']
    assert '<li>red</li>' in render_html(report) and ESC not in render_html(report)


@pytest.mark.parametrize('render', [render_table, render_markdown, render_html, render_json])
def test_every_rendering_strips_control_characters_from_any_report(render):
    # Rows are built printable, but no renderer counts on it.
    report = classify([host()])
    report['rows'][0]['reasons'] = ['\x1b[31mred\u202e\x00 \u200bflag']
    report['rows'][0]['services'] = {'server\u200b': 'inactive'}
    text = ''.join(render(report))
    assert 'red flag' in text and 'server' in text
    assert not CONTROL_RE.search(text) and 'u001b' not in text and 'u200b' not in text


def test_printable_strips_invisible_formatting_characters():
    # Each would let web\u200b-1 pass for web-1, or hide text from the reader.
    assert fleet_report.printable('web\u200b-\u200d1\u00ad\u2060\ufeff') == 'web-1'
    assert fleet_report.printable('ok\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065') == 'ok'
    assert fleet_report.printable('\ufff9a\ufffab\ufffb \u061cc') == 'ab c'
    row = only_row(host('web\u200b-1', info=info(services={'ser\u2060ver': service()})))
    assert (row['host'], list(row['services'])) == ('web-1', ['server'])


def test_bytes_that_were_not_utf8_are_shown_not_fatal(tmp_path):
    # Ansible keeps a byte that was not UTF-8 as a lone surrogate, which no UTF-8 file can hold.
    report = classify([host('a'), host('latin-1', health=health(healthy=False, msg='caf\udce9 down'))])
    assert report['rows'][1]['reasons'] == ['caf\ufffd down']
    paths, _changed = write_reports(str(tmp_path), report, generated='t')
    for path in paths:
        with open(path, encoding='utf-8') as handle:
            assert 'caf\ufffd down' in handle.read()


def test_markdown_links_no_address_not_even_a_bare_domain():
    msg = 'see evil.example/x, //evil.example or www.evil.example (mail root@evil.example); now v0.1.0'
    text = render_markdown(classify([host('web-1.evil.example', health=health(healthy=False, msg=msg))]))
    assert '| `web-1.evil.example` |' in text
    assert ('see `evil.example/x`, `//evil.example` or `www.evil.example` (mail `root@evil.example`); now v0.1.0'
            in text)
    # Outside the code spans no word a renderer could link is left; versions stay text.
    outside = re.sub(r'`[^`]*`', '', text)
    assert not re.search(r'(?i)://|www\.|@|\.[^\W\d_]{2}', outside)
    assert '| 0.1.0 | 0.1.0 | 1.5.1 |' in text


def test_markdown_writes_addresses_as_code_not_links():
    text = render_markdown(classify([host(health=health(
        healthy=False, msg='see https://evil.example/a_b?x=1&y=2, www.evil.example/x, '
                           'mailto:root@evil.example and <http://evil.example/>'))]))
    for code in ('`https://evil.example/a_b?x=1&y=2`,', '`www.evil.example/x`,', '`mailto:root@evil.example`',
                 '`http://evil.example/`'):
        assert text.count(code) == 2, code  # in the table and in the problems
    # Outside code spans nothing is left that an autolinker would take.
    outside = re.sub(r'`[^`]*`', '', text)
    assert 'http' not in outside and 'www.' not in outside and '@' not in outside
    assert '<http' not in text and '&lt;`http://evil.example/`&gt;' in text


def test_markdown_code_spans_do_not_break_the_table():
    text = render_markdown(classify([host(health=health(healthy=False, msg='https://a.example/|x `y` https://b.example/'))]))
    row = [line for line in text.splitlines() if line.startswith('| web-1 ')][0]
    assert len(re.findall(r'(?<!\\)\|', row)) == 11
    assert '`https://a.example/`\\|x \\`y\\` `https://b.example/`' in row


# --- the fleet version ----------------------------------------------------------------------------

def test_fleet_version_is_the_majority():
    hosts = [host('a', info=info('0.0.7')), host('b'), host('c'), host('d', info=info('0.2.0'))]
    assert fleet_version(hosts) == '0.1.0'
    assert [r['state'] for r in classify(hosts)['rows']] == ['drift', 'healthy', 'healthy', 'drift']


@pytest.mark.parametrize('versions, winner', [
    (['0.9.0', '0.10.0'], '0.10.0'),
    (['0.10.0', '0.9.0'], '0.10.0'),
    (['1.0.0-rc.1', '1.0.0'], '1.0.0'),
    (['1.0.0-rc.2', '1.0.0-rc.10'], '1.0.0-rc.10'),
    (['0.1.0', '0.2.0', '0.2.0', '0.1.0', '0.0.9'], '0.2.0'),
])
def test_fleet_version_tie_goes_to_the_highest(versions, winner):
    hosts = [host('h%d' % i, info=info(v)) for i, v in enumerate(versions)]
    assert fleet_version(hosts) == winner


def test_only_installed_reachable_hosts_vote():
    hosts = [host('a'),
             host('b', unreachable='timeout', info=info('0.0.7')),
             host('c', info=info('0.0.7', installed=False)),
             host('d', info=info('0.0.7', installed=False))]
    assert fleet_version(hosts) == '0.1.0'


def test_expected_version_wins_and_is_normalized():
    hosts = [host('a'), host('b')]
    for spelling in ('v0.2.0', '0.2.0', ' V0.2.0 '):
        report = classify(hosts, spelling)
        assert report['summary']['fleet_version'] == '0.2.0'
        assert report['summary']['expected_version'] == '0.2.0'
        assert [r['state'] for r in report['rows']] == ['drift', 'drift']
    assert classify(hosts, 'v0.1.0')['summary']['ok'] is True
    assert classify(hosts, '')['summary']['expected_version'] is None


def test_a_bad_expected_version_is_an_error():
    with pytest.raises(VersionError):
        classify([host()], 'latest')


def test_no_installed_host_means_no_fleet_version():
    report = classify([host('a', info=info(None, installed=False)), host('b', unreachable='timeout')])
    assert report['summary']['fleet_version'] is None
    assert [r['state'] for r in report['rows']] == ['not-installed', 'unreachable']
    assert 'unknown' in render_table(report)[-1]


# --- the summary ------------------------------------------------------------------------------------

def test_summary_of_a_mixed_fleet():
    hosts = [host('ok-1'), host('down', unreachable='timeout'), host('ok-2'),
             host('old', info=info('0.0.7')), host('sick', health=health(healthy=False, msg='crash loop'))]
    summary = classify(hosts)['summary']
    assert summary['counts'] == {'unreachable': 1, 'failed': 0, 'not-installed': 0, 'unhealthy': 1, 'drift': 1,
                                 'healthy': 2}
    assert summary['total'] == 5 and summary['ok'] is False
    assert summary['problems'] == ['down: unreachable: timeout', 'old: drift: CLI v0.0.7, fleet runs v0.1.0',
                                   'sick: unhealthy: crash loop']


def test_ok_only_when_every_host_is_healthy():
    assert classify([host('a'), host('b')])['summary']['ok'] is True
    assert classify([host('a'), host('b', info=info('0.2.0'))])['summary']['ok'] is False
    assert classify([host('a'), host('b', info=info(runner='0.0.9'))])['summary']['ok'] is False
    assert classify([host('a'), host('b', health=health(healthy=False, msg='x'))])['summary']['ok'] is False
    assert classify([])['summary']['ok'] is False


def test_rows_keep_the_inventory_order():
    names = ['zeta', 'alpha', 'mid', 'beta']
    assert [r['host'] for r in classify([host(n) for n in names])['rows']] == names


# --- renderings -----------------------------------------------------------------------------------

def mixed_report():
    return classify([
        host('web-1'),
        host('web-2', info=info('0.0.7', services={'server': service(stale=STALE), 'agent-runner': service()})),
        host('web-3', health=health(healthy=False, msg=HOSTILE, grpc=False, status=None)),
        host('mac-1', platform=None, unreachable='Failed to connect', info=None, health=None),
        host('mac-2', platform='darwin-arm64', failed='stigmer_info: boom', info=None, health=None),
        host('web-4', info=info(None, installed=False, services={}), health=None),
    ])


def test_table_columns_line_up():
    lines = render_table(mixed_report())
    assert lines[0].split() == ['HOST', 'PLATFORM', 'STATE', 'CLI', 'AGENT-RUNNER', 'TEMPORAL', 'SERVICES', 'POLLING',
                                'REASON']
    starts = [lines[0].index(title) for title in ('PLATFORM', 'STATE', 'CLI', 'AGENT-RUNNER', 'SERVICES', 'POLLING',
                                                  'REASON')]
    for line in lines[1:-1]:
        for start in starts[:-1]:
            assert line[start - 2:start] == '  ' and line[start] != ' ', line
        # REASON is last and not padded: empty for a healthy host.
        assert len(line) <= starts[-1] - 2 or line[starts[-1] - 2:starts[-1]] == '  ', line
    assert lines[1].split()[:8] == ['web-1', 'linux-amd64', 'healthy', '0.1.0', '0.1.0', '1.5.1', '2', 'active']
    assert lines[4].split()[:3] == ['mac-1', '-', 'unreachable']
    assert len(lines) == 6 + 2
    assert lines[-1] == ('NOT OK: fleet version v0.1.0, 6 hosts: 1 unreachable, 1 failed, 1 not-installed, '
                         '1 unhealthy, 1 drift, 1 healthy')


def test_table_verdict_of_a_healthy_fleet():
    assert render_table(classify([host()], 'v0.1.0'))[-1] == 'OK: expected version v0.1.0, 1 host: 1 healthy'


def test_markdown_escapes_hostile_text():
    text = render_markdown(mixed_report())
    assert text.endswith('\n') and text.startswith('# Stigmer fleet report\n')
    table = [line for line in text.splitlines() if line.startswith('| ')]
    assert len(table) == 2 + 6
    # Every row has exactly the header's cells: no unescaped pipe splits one.
    for line in table:
        assert len(re.findall(r'(?<!\\)\|', line)) == 11, line
    assert '<script' not in text and '&lt;script&gt;' in text
    assert 'a\\|b' in text and '\\`c\\`' in text and '\\*d\\*' in text and '\\[e\\]' in text
    hostile_row = [line for line in table if line.startswith('| web-3 ')][0]
    assert 'next line' in hostile_row


def test_json_document():
    report = mixed_report()
    text = render_json(report, '2026-01-06T10:00:00Z')
    assert text.endswith('}\n')
    document = json.loads(text)
    assert document['generated'] == '2026-01-06T10:00:00Z'
    assert document['fleet_version'] == '0.1.0' and document['ok'] is False
    assert document['counts'] == report['summary']['counts']
    assert document['hosts'] == report['rows']
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + '\n'


def html_rows(page):
    return re.findall(r'<tr class="host state-([a-z-]+)">(.*?)</tr>', page, re.S)


def test_html_is_one_self_contained_page():
    page = render_html(mixed_report())
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert page.rstrip().endswith('</html>')
    lowered = page.lower()
    for forbidden in ('<script', '<link', '<img', '<iframe', '<object', '<embed', 'src=', 'href=', 'url(',
                      '@import', '@font-face', 'style='):
        assert forbidden not in lowered, forbidden
    # The only address is inside escaped text.
    assert lowered.count('https://') == 1 and 'https://evil.example/x.png' in page
    assert 'http://' not in lowered
    benign = render_html(classify([host('a'), host('b', unreachable='timeout')]))
    assert 'http://' not in benign and 'https://' not in benign


def test_html_escapes_hostile_text():
    page = render_html(classify([host('<b>evil</b>', platform='"><i>', health=health(healthy=False, msg=HOSTILE))]))
    assert '<script' not in page and '<b>evil' not in page and '"><i>' not in page
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in page
    assert '&lt;b&gt;evil&lt;/b&gt;' in page


def test_html_has_one_state_row_per_host_in_order():
    report = mixed_report()
    page = render_html(report)
    rows = html_rows(page)
    assert [state for state, _cells in rows] == [r['state'] for r in report['rows']]
    assert len(re.findall(r'class="[^"]*state-', page)) == len(report['rows'])
    for (state, cells), row in zip(rows, report['rows']):
        assert '<td class="state">%s</td>' % state in cells
        assert row['host'] in cells
    assert '<h1>Stigmer fleet report: v0.1.0 NOT OK</h1>' in page


def _colour_spellings(hex_colour):
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return [hex_colour.lower(), 'rgb(%d,%d,%d)' % (red, green, blue), 'rgb(%d, %d, %d)' % (red, green, blue)]


def test_state_colours_paint_only_the_state_cells():
    assert sorted(STATE_COLORS) == sorted(STATES)
    assert len(set(c.lower() for c in STATE_COLORS.values())) == len(STATES)
    page = render_html(mixed_report())
    style = re.search(r'<style>(.*?)</style>', page, re.S).group(1)
    body = page[page.index('</style>'):].lower()
    for state, colour in STATE_COLORS.items():
        assert re.match(r'^#[0-9a-f]{6}$', colour)
        for spelling in _colour_spellings(colour):
            assert spelling not in body, (state, spelling)
        assert sum(style.lower().count(s.lower()) for s in _colour_spellings(colour)) == 1, state
        # The one place: the background of that state's state cell.
        assert 'tr.state-%s td.state{background:%s}' % (state, colour) in style
    for rule in re.findall(r'([^{}]+)\{([^}]*)\}', style):
        if any(c in rule[1] for c in STATE_COLORS.values()):
            assert re.match(r'^\s*tr\.state-[a-z-]+ td\.state$', rule[0]), rule


def test_state_colours_have_readable_white_text():
    def luminance(colour):
        channels = [int(colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for state, colour in STATE_COLORS.items():
        assert 1.05 / (luminance(colour) + 0.05) >= 4.5, state


# --- files ------------------------------------------------------------------------------------------

NAMES = ['fleet-report.html', 'fleet-report.json', 'fleet-report.md']


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_writes_the_three_files(tmp_path):
    dest = tmp_path / 'reports' / 'fleet'
    report = mixed_report()
    paths, changed = write_reports(str(dest), report, generated='2026-01-06T10:00:00Z')
    assert paths == [str(dest / n) for n in ('fleet-report.json', 'fleet-report.md', 'fleet-report.html')]
    assert changed == paths
    assert sorted(os.listdir(str(dest))) == NAMES
    assert mode(dest) == 0o755
    for name in NAMES:
        assert mode(dest / name) == 0o644
    assert (dest / 'fleet-report.md').read_text(encoding='utf-8') == render_markdown(report)
    assert (dest / 'fleet-report.html').read_text(encoding='utf-8') == render_html(report)
    assert (dest / 'fleet-report.json').read_text(encoding='utf-8') == render_json(report, '2026-01-06T10:00:00Z')


def test_unchanged_fleet_changes_nothing_not_even_the_timestamp(tmp_path):
    report = mixed_report()
    write_reports(str(tmp_path), report, generated='2026-01-06T10:00:00Z')
    before = dict((n, (tmp_path / n).read_bytes()) for n in NAMES)
    paths, changed = write_reports(str(tmp_path), mixed_report(), generated='2026-01-07T11:00:00Z')
    assert changed == [] and len(paths) == 3
    assert dict((n, (tmp_path / n).read_bytes()) for n in NAMES) == before


def test_a_changed_fleet_rewrites_with_the_new_timestamp(tmp_path):
    write_reports(str(tmp_path), classify([host()]), generated='2026-01-06T10:00:00Z')
    paths, changed = write_reports(str(tmp_path), classify([host(), host('web-2')]), generated='2026-01-07T11:00:00Z')
    assert changed == paths
    assert json.loads((tmp_path / 'fleet-report.json').read_text())['generated'] == '2026-01-07T11:00:00Z'


def test_a_wrong_mode_or_foreign_content_is_rewritten(tmp_path):
    report = classify([host()])
    write_reports(str(tmp_path), report, generated='t')
    os.chmod(str(tmp_path / 'fleet-report.md'), 0o600)
    (tmp_path / 'fleet-report.json').write_text('[]\n')
    os.chmod(str(tmp_path / 'fleet-report.json'), 0o644)
    _paths, changed = write_reports(str(tmp_path), report, generated='t')
    assert changed == [str(tmp_path / 'fleet-report.json'), str(tmp_path / 'fleet-report.md')]
    assert mode(tmp_path / 'fleet-report.md') == 0o644


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / 'reports'
    paths, changed = write_reports(str(dest), classify([host()]), generated='t', check_mode=True)
    assert changed == paths and len(paths) == 3
    assert not dest.exists()
    write_reports(str(dest), classify([host()]), generated='t')
    before = dict((n, (dest / n).read_bytes()) for n in NAMES)
    _paths, changed = write_reports(str(dest), classify([host('other')]), generated='u', check_mode=True)
    assert changed == paths
    assert dict((n, (dest / n).read_bytes()) for n in NAMES) == before


def test_formats_subset(tmp_path):
    paths, _changed = write_reports(str(tmp_path), classify([host()]), formats=['html'], generated='t')
    assert paths == [str(tmp_path / 'fleet-report.html')]
    assert os.listdir(str(tmp_path)) == ['fleet-report.html']
    with pytest.raises(ValueError):
        write_reports(str(tmp_path), classify([host()]), formats=['pdf'])


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    write_reports(str(tmp_path), classify([host()]), generated='t')
    before = dict((n, (tmp_path / n).read_bytes()) for n in NAMES)

    def refuse(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', refuse)
    with pytest.raises(ReportWriteError) as info:
        write_reports(str(tmp_path), classify([host('other')]), generated='u')
    assert info.value.path == str(tmp_path / 'fleet-report.json')
    assert info.value.error.strerror == 'No space left on device'
    assert sorted(os.listdir(str(tmp_path))) == NAMES
    assert dict((n, (tmp_path / n).read_bytes()) for n in NAMES) == before


def test_a_directory_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / 'file').write_text('x')
    dest = str(tmp_path / 'file' / 'reports')
    with pytest.raises(ReportWriteError) as info:
        write_reports(dest, classify([host()]), generated='t')
    assert info.value.path == dest


def test_a_directory_where_a_report_belongs_is_named(tmp_path):
    (tmp_path / 'fleet-report.md').mkdir()
    with pytest.raises(ReportWriteError) as info:
        write_reports(str(tmp_path), classify([host()]), generated='t')
    assert info.value.path == str(tmp_path / 'fleet-report.md')
    assert [n for n in os.listdir(str(tmp_path)) if '.tmp-' in n] == []


def test_the_screen_table_names_only_services_that_are_not_active():
    assert fleet_report.services_brief({'server': 'active', 'agent-runner': 'inactive', 'temporal': 'active'}) \
        == 'agent-runner=inactive 2 active'
    assert fleet_report.services_brief({'server': 'active'}) == '1 active'
    assert fleet_report.services_brief({'server': 'stale'}) == 'server=stale'
    assert fleet_report.services_brief({}) == fleet_report.NO_VALUE


def test_a_binaries_only_host_needs_no_health_result():
    entry = host()
    entry.update(health=None, supervised=False)
    row = classify([entry], 'v0.1.0')['rows'][0]
    assert (row['state'], row['reasons'], row['health']) == ('healthy', [], 'not checked')
    entry['supervised'] = True
    assert classify([entry], 'v0.1.0')['rows'][0]['state'] == 'unhealthy'
