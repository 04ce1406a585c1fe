# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_plan: the host plan built from the role's defaults (and variations) for systemd on Linux, launchd
on macOS and a user-scope install; the units read back the way systemd reads them, the environment
files the way systemd and /bin/sh read them, and the secrets kept out of everything public.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils._launchd import build_plist, parse_plist, serialize_plist
from ansible_collections.stigmer.runtime.plugins.plugin_utils import _plan
from ansible_collections.stigmer.runtime.plugins.plugin_utils._plan import (
    COMPONENTS, LAUNCHD_WRAPPER, WAIT_FOR_PORT, Release, systemd_word, systemd_words)
from ansible_collections.stigmer.runtime.plugins.plugin_utils._settings import SettingsError
from ansible_collections.stigmer.runtime.tests.unit.plugins.plugin_utils.conftest import (
    ALICE, FakeTemplar, build_plan, os_data, platform_fact, release_results, settings, task_vars)

NAMES = ['temporal', 'server', 'workflow-runner', 'agent-runner']
HOME = '/var/lib/stigmer'
DOT = HOME + '/.stigmer'
LEAVES = [DOT + '/stigmer.db', DOT + '/data/logs', DOT + '/temporal-data', DOT + '/workspace']
ANTHROPIC = 'anthropic-test-value-SECRET-0815'
OPENAI = 'openai-test-value-SECRET-42'
TOKEN = 'github-test-token-SECRET-4711'
MIRROR_PASSWORD = 'hunter2-SECRETmirror'
API_KEY = 'stigmer-SECRET-apikey'


# ---------------------------------------------------------------------------
# Reading units back as systemd does (systemd.syntax(7), systemd.service(5) "Command lines")
# ---------------------------------------------------------------------------

class UnitSyntaxError(AssertionError):
    pass


def parse_unit(text):
    """[(section, key, value)] of a unit file as systemd's parser sees it: a line ending in an odd
    number of backslashes continues on the next, blank and comment lines are skipped, keys and
    values are stripped. Anything that is neither a section header nor Key=value fails."""
    entries, section, pending = [], None, None
    for line in text.split('\n'):
        if pending is None and line.strip()[:1] in ('#', ';'):
            continue
        if pending is not None:
            line = pending + line
            pending = None
        trailing = len(line) - len(line.rstrip('\\'))
        if trailing % 2:
            pending = line[:-1] + ' '
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith('['):
            if not re.fullmatch(r'\[[A-Za-z]+\]', stripped):
                raise UnitSyntaxError('bad section header %r' % stripped)
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition('=')
        if not sep or not re.fullmatch(r'[A-Z][A-Za-z]+', key.strip()):
            raise UnitSyntaxError('not a setting: %r' % stripped)
        entries.append((section, key.strip(), value.strip()))
    if pending is not None:
        raise UnitSyntaxError('file ends in a continuation')
    return entries


def settings_of(text, section='Service'):
    """{key: [values]} of one section."""
    out = {}
    for sec, key, value in parse_unit(text):
        if sec == section:
            out.setdefault(key, []).append(value)
    return out


def one(text, key, section='Service'):
    values = settings_of(text, section).get(key, [])
    assert len(values) == 1, '%s= appears %d times' % (key, len(values))
    return values[0]


_ESCAPES = {'\\': '\\', '"': '"', "'": "'", 'n': '\n', 't': '\t', 's': ' ', ' ': ' '}


def split_words(value):
    """Words of a setting as extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) gives them:
    blanks separate, "..." and '...' quote, backslash escapes (inside and outside quotes)."""
    words, i, n = [], 0, len(value)
    while True:
        while i < n and value[i] in ' \t':
            i += 1
        if i >= n:
            return words
        word, quote = [], None
        while i < n:
            c = value[i]
            if c == '\\':
                if i + 1 >= n or value[i + 1] not in _ESCAPES:
                    raise UnitSyntaxError('unknown escape in %r' % value)
                word.append(_ESCAPES[value[i + 1]])
                i += 2
                continue
            if quote:
                if c == quote:
                    quote = None
                else:
                    word.append(c)
                i += 1
                continue
            if c in ' \t':
                break
            if c in '"\'':
                quote = c
            else:
                word.append(c)
            i += 1
        if quote:
            raise UnitSyntaxError('unterminated quote in %r' % value)
        words.append(''.join(word))


def unspecify(word):
    """'%%' -> '%'; any other specifier would be expanded by systemd, so it is an error here."""
    out, i = [], 0
    while i < len(word):
        if word[i] == '%':
            if word[i + 1:i + 2] != '%':
                raise UnitSyntaxError('unescaped specifier in %r' % word)
            out.append('%')
            i += 2
        else:
            out.append(word[i])
            i += 1
    return ''.join(out)


def unexpand(word):
    """'$$' -> '$' on Exec lines; $NAME or ${NAME} would be expanded by systemd, so it is an error."""
    out, i = [], 0
    while i < len(word):
        if word[i] == '$':
            nxt = word[i + 1:i + 2]
            if nxt == '$':
                out.append('$')
                i += 2
                continue
            if nxt == '{' or re.match(r'[A-Za-z_]', nxt):
                raise UnitSyntaxError('unescaped variable in %r' % word)
        out.append(word[i])
        i += 1
    return ''.join(out)


def exec_argv(value):
    """The argv systemd runs for an ExecStart=/ExecStartPre= value."""
    return [unexpand(unspecify(w)) for w in split_words(value)]


def path_list(value):
    """The paths of ReadWritePaths= and the like (specifiers, no variables)."""
    return [unspecify(w) for w in split_words(value)]


def parse_env_file(text):
    """NAME='value' lines, as systemd's EnvironmentFile= and /bin/sh both read them (literal inside '...')."""
    env = {}
    for line in text.split('\n'):
        if not line or line.startswith('#'):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)='([^']*)'", line)
        assert match, 'environment file line %r' % line
        env[match.group(1)] = match.group(2)
    return env


def comp(plan, name):
    return [c for c in plan.host()['components'] if c['name'] == name][0]


def component(plan, name):
    return [c for c in plan.components if c.name == name][0]


# ---------------------------------------------------------------------------
# The helpers themselves, and systemd_word()
# ---------------------------------------------------------------------------

def test_parse_unit_sees_a_continued_line_as_one_setting():
    entries = parse_unit('[Service]\nWorkingDirectory=/tmp\\\nExecStart=/bin/true\n')
    assert entries == [('Service', 'WorkingDirectory', '/tmp ExecStart=/bin/true')]


def test_split_words_reads_systemd_quoting():
    assert split_words(r'/bin/a "b c" "d\"e" "f\\g" h') == ['/bin/a', 'b c', 'd"e', 'f\\g', 'h']
    assert exec_argv('a%%b $$HOME') == ['a%b', '$HOME']
    with pytest.raises(UnitSyntaxError):
        exec_argv('echo $HOME')
    with pytest.raises(UnitSyntaxError):
        exec_argv('echo %h')


TRICKY = ['plain', 'with space', 'dq"uote', "sq'uote", 'back\\slash', 'semi;colon', ';', '', 'pct%h', '100%',
          'dollar$HOME', '${HOME}', '$$', 'all %n $x "y" \'z\' \\ ;', 'tab\there', 'end\\']


@pytest.mark.parametrize('value', TRICKY)
def test_systemd_word_round_trips_on_exec_lines(value):
    assert exec_argv(systemd_word(value, exec_line=True)) == [value]


@pytest.mark.parametrize('value', TRICKY)
def test_systemd_word_round_trips_in_path_lists(value):
    word = systemd_word(value)
    assert word.count('$') == value.count('$')   # no variables outside Exec lines: '$' stays single
    assert path_list(word) == [value]


def test_systemd_words_keeps_word_boundaries():
    argv = ['/opt/my dir/bin/x', '--flag', 'a b', '', 'c"d']
    assert exec_argv(systemd_words(argv, exec_line=True)) == argv


def test_systemd_word_leaves_plain_words_unquoted():
    assert systemd_word('/opt/stigmer/current/bin/stigmer') == '/opt/stigmer/current/bin/stigmer'
    assert systemd_word('a%b$c', exec_line=True) == 'a%%b$$c'
    assert systemd_word('a%b$c') == 'a%%b$c'


# ---------------------------------------------------------------------------
# The default systemd plan (linux-amd64)
# ---------------------------------------------------------------------------

def test_default_host_plan_header(linux_plan):
    host = linux_plan.host()
    assert host['platform'] == 'linux-amd64'
    assert host['service_manager'] == 'systemd'
    assert host['system'] is True
    assert (host['owner'], host['group']) == ('root', 'root')
    assert host['keep'] == 2
    assert host['lock_timeout'] == _plan.LOCK_TIMEOUT
    assert host['prefix'] == '/opt/stigmer'
    assert host['record'] == '/opt/stigmer/install-record.json'
    assert host['account'] == {'user': 'stigmer', 'group': 'stigmer', 'home': HOME}


def test_default_directories_links_and_leaves(linux_plan):
    host = linux_plan.host()
    assert host['directories'] == [
        {'path': '/opt/stigmer', 'own': True}, {'path': '/opt/stigmer/versions', 'own': True},
        {'path': '/opt/stigmer/temporal', 'own': True}, {'path': '/opt/stigmer/temporal/versions', 'own': True},
        {'path': '/usr/local/bin', 'own': False}, {'path': '/etc/stigmer', 'own': True},
        {'path': HOME, 'own': True}, {'path': DOT, 'own': True}, {'path': DOT + '/data', 'own': True},
        {'path': DOT + '/data/bin', 'own': True}, {'path': DOT + '/bin', 'own': True}]
    assert host['links'] == [
        {'path': '/usr/local/bin/stigmer', 'target': '/opt/stigmer/current/bin/stigmer', 'shared': True},
        {'path': DOT + '/data/bin/agent-runner', 'target': '/opt/stigmer/current/bin/agent-runner'},
        {'path': DOT + '/data/bin/.version', 'target': '/opt/stigmer/current/share/agent-runner.version'},
        {'path': DOT + '/bin/temporal', 'target': '/opt/stigmer/temporal/current/bin/temporal'}]
    assert host['leaves'] == LEAVES
    # Collection 0.1.0's shared environment file goes; controller mode keeps no per-host artifact copies.
    assert host['remove'] == ['/etc/stigmer/stigmer.env', '/var/cache/stigmer/artifacts']
    assert host['retired'] == []
    assert host['uninstall'] == ['/usr/local/bin/stigmer', DOT + '/data/bin', DOT + '/bin', '/etc/stigmer',
                                 '/var/cache/stigmer/artifacts']


def test_host_download_mode_keeps_the_host_artifact_dir():
    assert '/var/cache/stigmer/artifacts' not in build_plan(stigmer_download_mode='host').host()['remove']


def test_state_dir_moves_home_and_leaves():
    plan = build_plan(stigmer_state_dir='/srv/stigmer/')
    assert plan.host()['account']['home'] == '/srv/stigmer'
    assert plan.host()['leaves'][0] == '/srv/stigmer/.stigmer/stigmer.db'
    assert one(comp(plan, 'server')['content'], 'WorkingDirectory') == '/srv/stigmer'


def test_version_trees_carry_tag_and_version(linux_plan):
    stigmer, temporal = linux_plan.host()['trees']
    assert stigmer['name'] == 'stigmer' and stigmer['version'] == 'v0.1.0'
    assert (stigmer['root'], stigmer['link']) == ('/opt/stigmer/versions', '/opt/stigmer/current')
    assert [s['name'] for s in stigmer['sources']] == ['stigmer-v0.1.0-linux-amd64.tar.gz',
                                                       'agent-runner-v0.1.0-linux-amd64']
    assert stigmer['sources'][1]['dest'] == 'agent-runner' and stigmer['sources'][1]['archive'] is False
    assert stigmer['files'] == {'share/agent-runner.version': 'v0.1.0\n'}
    assert stigmer['checks'] == [{'command': 'stigmer', 'args': ['--help']},
                                 {'command': 'stigmer', 'args': ['--version'], 'expect': 'v0.1.0',
                                  'version_optional': True}]
    assert temporal['name'] == 'temporal' and temporal['version'] == 'v1.5.1'
    assert (temporal['root'], temporal['link']) == ('/opt/stigmer/temporal/versions', '/opt/stigmer/temporal/current')
    assert temporal['sources'] == [{'name': 'temporal_cli_1.5.1_linux_amd64.tar.gz', 'archive': True, 'dest': None,
                                    'members': ['temporal'], 'sha256': None}]
    # The Temporal CLI prints its version without the v.
    assert temporal['checks'] == [{'command': 'temporal', 'expect': '1.5.1'}]
    assert linux_plan.releases['temporal'].version == '1.5.1'


def test_tree_sources_follow_the_platform():
    stigmer, temporal = build_plan('linux-arm64').host()['trees']
    assert stigmer['sources'][0]['name'] == 'stigmer-v0.1.0-linux-arm64.tar.gz'
    assert temporal['sources'][0]['name'] == 'temporal_cli_1.5.1_linux_arm64.tar.gz'


def test_pinned_checksum_wins_over_the_github_digest():
    s, derived = settings(stigmer_checksums={'stigmer-v0.1.0-linux-amd64.tar.gz': 'a' * 64})
    digests = {'stigmer-v0.1.0-linux-amd64.tar.gz': 'b' * 64, 'agent-runner-v0.1.0-linux-amd64': 'c' * 64}
    plan = _plan.build(s, derived, platform_fact(), os_data('linux'), None, release_results(digests))
    sources = plan.host()['trees'][0]['sources']
    assert [x['sha256'] for x in sources] == ['a' * 64, 'c' * 64]
    assert plan.host()['trees'][1]['sources'][0]['sha256'] is None


def test_no_release_results_means_no_trees():
    assert build_plan(releases=False).host()['trees'] == []


def test_unresolved_release_is_refused():
    s, derived = settings()
    with pytest.raises(SettingsError) as info:
        _plan.build(s, derived, platform_fact(), os_data('linux'), None, {'stigmer': {'skipped': True, 'tag': ''}})
    assert 'stigmer/stigmer' in str(info.value)


def test_release_from_result_reads_both_spellings():
    rel = Release.from_result('stigmer/stigmer', release_results()['stigmer'], 'darwin-arm64')
    assert (rel.tag, rel.version) == ('v0.1.0', '0.1.0')
    assert [a['name'] for a in rel.artifacts] == ['stigmer-v0.1.0-darwin-arm64.tar.gz',
                                                  'agent-runner-v0.1.0-darwin-arm64']


def test_default_components_in_start_order(linux_plan):
    comps = linux_plan.host()['components']
    assert [c['name'] for c in comps] == NAMES == [k.name for k in COMPONENTS]
    for c in comps:
        assert c['enabled'] is True and c['launchd'] is None
        assert c['unit'] == 'stigmer-%s.service' % c['name']
        assert c['path'] == '/etc/systemd/system/stigmer-%s.service' % c['name']
        link = '/opt/stigmer/temporal/current' if c['name'] == 'temporal' else '/opt/stigmer/current'
        assert c['watch'] == [c['path'], '/etc/stigmer/%s.env' % c['name'], link]


def test_units_parse_and_hold_the_common_directives(linux_plan):
    for c in linux_plan.host()['components']:
        text = c['content']
        assert text.startswith('# ' + _plan.MANAGED + '\n')
        assert parse_unit(text)[0][0] == 'Unit'
        assert one(text, 'PartOf', 'Unit') == 'stigmer.target'
        assert one(text, 'Type') == 'simple'
        assert one(text, 'User') == 'stigmer' and one(text, 'Group') == 'stigmer'
        assert one(text, 'EnvironmentFile') == '/etc/stigmer/%s.env' % c['name']
        assert one(text, 'WorkingDirectory') == HOME
        assert one(text, 'Restart') == 'always'
        assert one(text, 'UMask') == '0027'
        assert one(text, 'NoNewPrivileges') == 'yes'
        assert one(text, 'ProtectSystem') == 'strict'
        assert one(text, 'PrivateUsers') == 'yes'
        assert path_list(one(text, 'ReadWritePaths')) == LEAVES
        assert settings_of(text)['SystemCallFilter'] == ['@system-service', '~@privileged @resources']
        assert one(text, 'WantedBy', 'Install') == 'stigmer.target'


def test_unit_dependencies_and_waits(linux_plan):
    temporal, server, workflow, agent = [comp(linux_plan, n)['content'] for n in NAMES]
    assert one(temporal, 'After', 'Unit') == 'network-online.target'
    assert 'Requires' not in settings_of(temporal, 'Unit')
    assert 'ExecStartPre' not in settings_of(temporal)
    assert one(server, 'Requires', 'Unit') == 'stigmer-temporal.service'
    assert one(server, 'After', 'Unit') == 'network-online.target stigmer-temporal.service'
    for text in (workflow, agent):
        assert one(text, 'Requires', 'Unit') == 'stigmer-server.service'
    for text in (server, workflow, agent):
        assert exec_argv(one(text, 'ExecStartPre')) == ['/bin/bash', '-c', WAIT_FOR_PORT, 'wait-for-temporal',
                                                        '127.0.0.1', '7233']


def test_unit_exec_start_is_the_component_command(linux_plan):
    argv = dict((n, exec_argv(one(comp(linux_plan, n)['content'], 'ExecStart'))) for n in NAMES)
    assert argv['temporal'] == [DOT + '/bin/temporal', 'server', 'start-dev', '--ip', '127.0.0.1', '--port', '7233',
                                '--ui-port', '8233', '--db-filename', DOT + '/temporal-data/temporal.db']
    assert argv['server'] == ['/opt/stigmer/current/bin/stigmer', 'internal-server']
    assert argv['workflow-runner'] == ['/opt/stigmer/current/bin/stigmer', 'internal-workflow-runner']
    assert argv['agent-runner'] == [DOT + '/data/bin/agent-runner']
    for name in NAMES:
        assert argv[name] == component(linux_plan, name).command


def test_unit_per_component_hardening(linux_plan):
    texts = dict((n, comp(linux_plan, n)['content']) for n in NAMES)
    # The UPX-packed agent-runner needs writable+executable memory; the others may not have it.
    assert 'MemoryDenyWriteExecute' not in settings_of(texts['agent-runner'])
    for name in ('temporal', 'server', 'workflow-runner'):
        assert one(texts[name], 'MemoryDenyWriteExecute') == 'yes'
    assert one(texts['workflow-runner'], 'TimeoutStopSec') == '5'
    assert one(texts['server'], 'TimeoutStopSec') == '30'
    for name in ('temporal', 'server'):
        assert one(texts[name], 'IPAddressDeny') == 'any'
        assert one(texts[name], 'IPAddressAllow') == 'localhost'
    for name in ('workflow-runner', 'agent-runner'):
        assert 'IPAddressDeny' not in settings_of(texts[name])
        assert 'IPAddressAllow' not in settings_of(texts[name])


def test_private_users_can_be_turned_off():
    plan = build_plan(stigmer_systemd_private_users='no')
    assert all(one(c['content'], 'PrivateUsers') == 'no' for c in plan.host()['components'])


def test_target_unit_wants_every_enabled_component(linux_plan):
    target = linux_plan.host()['target']
    assert (target['unit'], target['path']) == ('stigmer.target', '/etc/systemd/system/stigmer.target')
    wants = settings_of(target['content'], 'Unit')['Wants']
    assert wants == [' '.join('stigmer-%s.service' % n for n in NAMES), 'network-online.target']
    assert one(target['content'], 'WantedBy', 'Install') == 'multi-user.target'


def test_units_score_at_most_2_in_systemd_analyze_security(linux_plan, tmp_path):
    """The units' own promise: `systemd-analyze security` 2.0 or lower (offline, when available)."""
    tool = shutil.which('systemd-analyze')
    if not tool:
        pytest.skip('systemd-analyze is not installed')
    for c in linux_plan.host()['components']:
        path = tmp_path / c['unit']
        path.write_text(c['content'])
        proc = subprocess.run([tool, 'security', '--offline=yes', '--threshold=20', '--no-pager', str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode and 'offline' in proc.stderr and 'unrecognized' in proc.stderr:
            pytest.skip('this systemd-analyze has no --offline')
        assert proc.returncode == 0, '%s: %s%s' % (c['unit'], proc.stdout[-400:], proc.stderr[-400:])


# ---------------------------------------------------------------------------
# Health gate and report
# ---------------------------------------------------------------------------

def test_health_and_report_components_on_systemd(linux_plan):
    health = linux_plan.health_components()
    assert [h['name'] for h in health] == NAMES
    by_name = dict((h['name'], h) for h in health)
    # What upstream's workers register: the server's validation worker has workflows only, the
    # workflow runner's execution and validation workers and the agent-runner activities only.
    assert by_name['server']['queues'] == [
        {'name': 'agent_execution_stigmer', 'types': ['workflow', 'activity']},
        {'name': 'workflow_execution_stigmer', 'types': ['workflow', 'activity']},
        {'name': 'workflow_validation_stigmer', 'types': ['workflow']}]
    assert by_name['workflow-runner']['queues'] == [
        {'name': 'workflow_execution_runner', 'types': ['activity']},
        {'name': 'workflow_validation_runner', 'types': ['activity']},
        {'name': 'zigflow_execution', 'types': ['workflow', 'activity']}]
    assert by_name['agent-runner']['queues'] == [{'name': 'agent_execution_runner', 'types': ['activity']}]
    assert by_name['temporal']['queues'] == []
    assert [h['name'] for h in health if h['serves_temporal']] == ['temporal']
    assert [h['name'] for h in health if h['restart_without_pollers']] == ['server']
    assert all(h['log_path'] is None for h in health)
    assert all(h['unit'] == 'stigmer-%s.service' % h['name'] for h in health)
    report = linux_plan.report_components()
    assert report == [{'name': c['name'], 'unit': c['unit'], 'watch': c['watch']}
                      for c in linux_plan.host()['components']]


def test_every_queue_variable_names_a_queue_upstream_reads():
    variables = [q.variable for kind in COMPONENTS for q in kind.queues]
    assert len(variables) == len(set(variables)) == 7
    assert all(re.match(r'^TEMPORAL_[A-Z_]+_TASK_QUEUE$', v) for v in variables)


def test_queue_names_come_from_the_components_environment():
    plan = build_plan(stigmer_extra_environment={'TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE': 'agents-eu',
                                                 'TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE': ''})
    by_name = dict((h['name'], h) for h in plan.health_components())
    assert by_name['agent-runner']['queues'] == [{'name': 'agents-eu', 'types': ['activity']}]
    # empty means the default, as upstream reads it
    assert by_name['workflow-runner']['queues'][2]['name'] == 'zigflow_execution'
    assert [q['name'] for q in by_name['server']['queues']] == [
        'agent_execution_stigmer', 'workflow_execution_stigmer', 'workflow_validation_stigmer']
    envs = dict((p, parse_env_file(t)) for p, t in plan.environment_files().items())
    assert envs['/etc/stigmer/agent-runner.env']['TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE'] == 'agents-eu'


def test_the_temporal_the_gate_asks():
    assert build_plan().temporal() == {'host': '127.0.0.1', 'port': 7233, 'namespace': 'default'}
    own = build_plan(stigmer_temporal_ip='10.1.2.3', stigmer_temporal_port=7300, stigmer_temporal_namespace='stigmer')
    assert own.temporal() == {'host': '10.1.2.3', 'port': 7300, 'namespace': 'stigmer'}
    external = build_plan(stigmer_temporal_enabled=False, stigmer_temporal_address='[fd00::5]:7233')
    assert external.temporal() == {'host': 'fd00::5', 'port': 7233, 'namespace': 'default'}
    assert parse_env_file(external.environment_files()['/etc/stigmer/agent-runner.env'])[
        'TEMPORAL_SERVICE_ADDRESS'] == '[fd00::5]:7233'


# ---------------------------------------------------------------------------
# Variations
# ---------------------------------------------------------------------------

def test_workflow_runner_disabled_by_extra_var_string():
    plan = build_plan(stigmer_workflow_runner_enabled='false')
    runner = comp(plan, 'workflow-runner')
    assert runner['enabled'] is False
    assert runner['content'] is None
    assert '/etc/stigmer/workflow-runner.env' in plan.host()['remove']
    assert '/etc/stigmer/workflow-runner.env' not in plan.environment_files()
    assert 'workflow-runner' not in [h['name'] for h in plan.health_components()]
    assert 'workflow-runner' not in [r['name'] for r in plan.report_components()]
    assert 'stigmer-workflow-runner.service' not in plan.host()['target']['content']
    assert [h['name'] for h in plan.health_components()] == ['temporal', 'server', 'agent-runner']


def test_services_disabled_plan_installs_binaries_only():
    plan = build_plan(stigmer_service_enabled='no')
    host = plan.host()
    assert host['service_manager'] == 'none'
    assert host['components'] == []
    assert host['account'] is None
    assert host['target'] is None
    assert host['leaves'] == []
    assert plan.environment_files() == {}
    assert plan.health_components() == [] and plan.report_components() == []
    assert '/etc/stigmer' not in [d['path'] for d in host['directories']]
    assert not [p for p in host['remove'] if p.endswith('.env')]
    assert [t['name'] for t in host['trees']] == ['stigmer', 'temporal']


def test_external_temporal_by_ip():
    plan = build_plan(stigmer_temporal_enabled='false', stigmer_temporal_address='10.0.0.5:7233')
    host = plan.host()
    server = comp(plan, 'server')['content']
    assert one(server, 'IPAddressAllow') == 'localhost 10.0.0.5'
    assert 'Requires' not in settings_of(server, 'Unit')
    assert exec_argv(one(server, 'ExecStartPre'))[-2:] == ['10.0.0.5', '7233']
    temporal = comp(plan, 'temporal')
    assert temporal['enabled'] is False and temporal['content'] is None
    assert DOT + '/bin/temporal' not in [link['path'] for link in host['links']]
    assert DOT + '/bin/temporal' in host['remove'] and '/etc/stigmer/temporal.env' in host['remove']
    # A temporal release given anyway builds no temporal tree.
    assert [t['name'] for t in host['trees']] == ['stigmer']
    assert 'temporal' not in plan.releases
    envs = dict((p, parse_env_file(t)) for p, t in plan.environment_files().items())
    assert '/etc/stigmer/temporal.env' not in envs
    assert envs['/etc/stigmer/server.env']['TEMPORAL_HOST_PORT'] == '10.0.0.5:7233'
    assert envs['/etc/stigmer/agent-runner.env']['TEMPORAL_SERVICE_ADDRESS'] == '10.0.0.5:7233'
    assert 'stigmer-temporal.service' not in host['target']['content']
    assert 'temporal' not in [h['name'] for h in plan.health_components()]


def test_external_temporal_by_ipv6_is_bracketed_in_addresses():
    plan = build_plan(stigmer_temporal_enabled=False, stigmer_temporal_address='[fd00::5]:7233')
    assert one(comp(plan, 'server')['content'], 'IPAddressAllow') == 'localhost fd00::5'
    env = parse_env_file(plan.environment_files()['/etc/stigmer/server.env'])
    assert env['TEMPORAL_HOST_PORT'] == '[fd00::5]:7233'


def test_external_temporal_by_name_relies_on_the_allowed_networks():
    plan = build_plan(stigmer_temporal_enabled=False, stigmer_temporal_address='temporal.example.com:7233',
                      stigmer_server_allowed_networks=['10.20.0.0/16'])
    server = comp(plan, 'server')['content']
    assert one(server, 'IPAddressAllow') == 'localhost 10.20.0.0/16'
    assert exec_argv(one(server, 'ExecStartPre'))[-2:] == ['temporal.example.com', '7233']


def test_allowed_networks_are_added_to_the_server_only():
    plan = build_plan(stigmer_server_allowed_networks='10.20.0.0/16,localhost,192.168.1.7')
    assert one(comp(plan, 'server')['content'], 'IPAddressAllow') == 'localhost 10.20.0.0/16 192.168.1.7'
    assert one(comp(plan, 'temporal')['content'], 'IPAddressAllow') == 'localhost'


def test_any_network_drops_the_server_filter():
    plan = build_plan(stigmer_server_allowed_networks=['10.0.0.0/8', 'any'])
    server = settings_of(comp(plan, 'server')['content'])
    assert 'IPAddressDeny' not in server and 'IPAddressAllow' not in server
    assert one(comp(plan, 'temporal')['content'], 'IPAddressAllow') == 'localhost'


def test_namespace_is_escaped_in_units_and_literal_in_environment_files():
    plan = build_plan(stigmer_temporal_namespace='a%b$c')
    temporal = one(comp(plan, 'temporal')['content'], 'ExecStart')
    assert temporal.endswith(' --namespace a%%b$$c')
    assert exec_argv(temporal)[-2:] == ['--namespace', 'a%b$c']
    for path in ('/etc/stigmer/server.env', '/etc/stigmer/workflow-runner.env', '/etc/stigmer/agent-runner.env'):
        text = plan.environment_files()[path]
        assert "TEMPORAL_NAMESPACE='a%b$c'\n" in text
        assert parse_env_file(text)['TEMPORAL_NAMESPACE'] == 'a%b$c'


def test_default_namespace_adds_no_flag(linux_plan):
    assert '--namespace' not in component(linux_plan, 'temporal').command


# Values that pass check() but hold everything systemd treats specially.
TRICKY_STATE_DIR = '/srv/my state/%h/a$/"q";x'
TRICKY_NAMESPACE = 'team %i $HOME ${X} "q" \\ ; end'


def tricky_plan():
    return build_plan(stigmer_state_dir=TRICKY_STATE_DIR, stigmer_temporal_namespace=TRICKY_NAMESPACE)


def test_tricky_values_add_no_setting_to_any_unit(linux_plan):
    plain = dict((c['name'], [(s, k) for s, k, _value in parse_unit(c['content'])]) for c in linux_plan.host()['components'])
    for c in tricky_plan().host()['components']:
        assert [(s, k) for s, k, _value in parse_unit(c['content'])] == plain[c['name']], c['name']


def test_tricky_values_round_trip_through_every_unit():
    plan = tricky_plan()
    dot = TRICKY_STATE_DIR + '/.stigmer'
    for c in plan.host()['components']:
        text = c['content']
        assert exec_argv(one(text, 'ExecStart')) == component(plan, c['name']).command
        assert unspecify(one(text, 'WorkingDirectory')) == TRICKY_STATE_DIR
        assert path_list(one(text, 'ReadWritePaths')) == [dot + '/stigmer.db', dot + '/data/logs',
                                                          dot + '/temporal-data', dot + '/workspace']
    temporal = exec_argv(one(comp(plan, 'temporal')['content'], 'ExecStart'))
    assert temporal[0] == dot + '/bin/temporal'
    assert temporal[-2:] == ['--namespace', TRICKY_NAMESPACE]
    assert temporal[temporal.index('--db-filename') + 1] == dot + '/temporal-data/temporal.db'


def test_tricky_values_are_literal_in_environment_files():
    files = tricky_plan().environment_files()
    for path, text in files.items():
        env = parse_env_file(text)
        assert env['HOME'] == TRICKY_STATE_DIR
        if not path.endswith('/temporal.env'):
            assert env['TEMPORAL_NAMESPACE'] == TRICKY_NAMESPACE
    assert parse_env_file(files['/etc/stigmer/server.env'])['DB_PATH'] == TRICKY_STATE_DIR + '/.stigmer/stigmer.db'


def test_path_with_a_space_is_quoted_in_read_write_paths():
    plan = build_plan(stigmer_state_dir='/srv/my stigmer')
    line = one(comp(plan, 'server')['content'], 'ReadWritePaths')
    assert line.startswith('"/srv/my stigmer/.stigmer/stigmer.db" ')
    assert len(split_words(line)) == 4


@pytest.mark.parametrize('state_dir', ['/srv/stigmer\\', '/srv/stigmer '])
def test_state_dir_ending_in_backslash_or_blank_is_refused(state_dir):
    """Regression (_plan.systemd_path / _settings.absolute_path): WorkingDirectory= takes the rest of the line
    and is written raw. A state dir ending in a backslash makes systemd continue the line, so the next
    setting (ExecStartPre=, or ExecStart= in the temporal unit) becomes part of WorkingDirectory=:
    `systemd-analyze verify` then says "Service has no ExecStart=". One ending in a blank loses it
    (systemd strips values). Suggested fix: absolute_path() refuses backslashes and leading/trailing
    blanks in paths (or systemd_path() refuses a value it cannot write)."""
    try:
        plan = build_plan(stigmer_state_dir=state_dir)
    except SettingsError as exc:
        assert 'stigmer_state_dir' in str(exc)
        return
    for c in plan.host()['components']:
        assert unspecify(one(c['content'], 'WorkingDirectory')) == plan.layout.home, c['name']
        assert len(settings_of(c['content'])['ExecStart']) == 1, c['name']


def test_environment_name_ending_in_a_newline_is_refused():
    """Regression (_settings.environment_problems): _ENV_NAME ends in '$', which also matches before a final
    newline, so stigmer_extra_environment {"id\\n": "x"} passes and every environment file gets a line
    `id` and a line `='x'`. launchd's wrapper sources the file with /bin/sh, which runs `id` (any
    command the key names) as the service account; systemd skips both lines as invalid. Suggested fix:
    _ENV_NAME.fullmatch(key) (or end the pattern with '\\Z')."""
    try:
        plan = build_plan('darwin-arm64', stigmer_extra_environment={'id\n': 'x'})
    except SettingsError as exc:
        assert 'id' in str(exc)
        return
    for path, text in plan.environment_files().items():
        parse_env_file(text)   # fails on the line `id`


def test_environment_that_cannot_be_written_is_refused_naming_it():
    with pytest.raises(SettingsError) as info:
        build_plan(stigmer_extra_environment={'BAD-NAME': 'x', 'QUOTE': "it's", 'OK': 'fine'})
    msg = str(info.value)
    assert 'BAD-NAME' in msg and 'QUOTE' in msg and 'OK,' not in msg and "it's" not in msg


def test_llm_model_with_a_quote_is_refused_naming_its_variable():
    with pytest.raises(SettingsError) as info:
        build_plan(stigmer_llm_model="claude'x")
    assert 'STIGMER_LLM_MODEL' in str(info.value)


def test_unwritable_environment_does_not_matter_without_services():
    plan = build_plan(stigmer_service_enabled=False, stigmer_extra_environment={'BAD-NAME': "it's"})
    assert plan.environment_files() == {}


def test_extra_environment_reaches_every_component():
    plan = build_plan(stigmer_extra_environment='{"LOG_LEVEL": "debug", "HTTPS_PROXY": "http://proxy:3128"}')
    for text in plan.environment_files().values():
        env = parse_env_file(text)
        assert env['LOG_LEVEL'] == 'debug' and env['HTTPS_PROXY'] == 'http://proxy:3128'


# ---------------------------------------------------------------------------
# Environment files and secrets
# ---------------------------------------------------------------------------

def secret_plan(provider='anthropic'):
    return build_plan(stigmer_llm_provider=provider, stigmer_anthropic_api_key=ANTHROPIC,
                      stigmer_openai_api_key=OPENAI, stigmer_github_token=TOKEN,
                      stigmer_mirror_password=MIRROR_PASSWORD, stigmer_api_key=API_KEY,
                      stigmer_llm_model='claude-sonnet', stigmer_llm_base_url='https://llm.example')


def test_environment_files_parse_to_the_component_environments(linux_plan):
    files = linux_plan.environment_files()
    assert sorted(files) == sorted('/etc/stigmer/%s.env' % n for n in NAMES)
    for name in NAMES:
        text = files['/etc/stigmer/%s.env' % name]
        assert text.startswith('# ' + _plan.MANAGED + '\n')
        assert parse_env_file(text) == component(linux_plan, name).environment
    server = parse_env_file(files['/etc/stigmer/server.env'])
    assert server == {'HOME': HOME, 'ENV': 'local', 'GRPC_PORT': '7234', 'DB_PATH': DOT + '/stigmer.db',
                      'TEMPORAL_HOST_PORT': '127.0.0.1:7233', 'TEMPORAL_NAMESPACE': 'default'}
    runner = parse_env_file(files['/etc/stigmer/workflow-runner.env'])
    assert runner['STIGMER_BACKEND_ENDPOINT'] == '127.0.0.1:7234'
    assert runner['SANDBOX_ROOT_DIR'] == DOT + '/workspace'
    assert parse_env_file(files['/etc/stigmer/temporal.env']) == {'HOME': HOME}


def test_anthropic_key_is_in_the_agent_runner_file_only():
    files = secret_plan().environment_files()
    holding = sorted(p for p, t in files.items() if ANTHROPIC in t)
    assert holding == ['/etc/stigmer/agent-runner.env']
    agent = parse_env_file(files['/etc/stigmer/agent-runner.env'])
    assert agent['ANTHROPIC_API_KEY'] == ANTHROPIC
    assert agent['STIGMER_LLM_PROVIDER'] == 'anthropic'
    assert agent['STIGMER_LLM_MODEL'] == 'claude-sonnet' and agent['STIGMER_LLM_BASE_URL'] == 'https://llm.example'
    # The OpenAI key only goes with provider openai; tokens and passwords never.
    for text in files.values():
        assert OPENAI not in text and TOKEN not in text and MIRROR_PASSWORD not in text
    assert 'STIGMER_LLM_PROVIDER' not in parse_env_file(files['/etc/stigmer/workflow-runner.env'])


def test_openai_key_goes_under_both_names_with_provider_openai():
    agent = parse_env_file(secret_plan('openai').environment_files()['/etc/stigmer/agent-runner.env'])
    assert agent['OPENAI_API_KEY'] == agent['STIGMER_LLM_API_KEY'] == OPENAI


def test_api_key_goes_to_the_runners_only():
    files = secret_plan().environment_files()
    assert sorted(p for p, t in files.items() if API_KEY in t) == ['/etc/stigmer/agent-runner.env',
                                                                   '/etc/stigmer/workflow-runner.env']


@pytest.mark.parametrize('provider', ['anthropic', 'openai'])
@pytest.mark.parametrize('platform', ['linux-amd64', 'darwin-arm64'])
def test_public_plan_holds_no_secret(provider, platform):
    overrides = dict(stigmer_llm_provider=provider, stigmer_anthropic_api_key=ANTHROPIC, stigmer_openai_api_key=OPENAI,
                     stigmer_github_token=TOKEN, stigmer_mirror_password=MIRROR_PASSWORD, stigmer_api_key=API_KEY)
    plan = build_plan(platform, **overrides)
    public = json.dumps(plan.public())
    for secret in (ANTHROPIC, OPENAI, TOKEN, MIRROR_PASSWORD, API_KEY):
        assert secret not in public
    assert 'SECRET' not in public
    # The secrets are in the plan, just not in its public part.
    assert ANTHROPIC in ''.join(plan.environment_files().values())


def test_public_plan_content(linux_plan):
    public = linux_plan.public()
    assert set(public) == {'plan', 'releases', 'health_components', 'temporal', 'report_components', 'paths'}
    assert public['temporal'] == {'host': '127.0.0.1', 'port': 7233, 'namespace': 'default'}
    assert public['plan'] is linux_plan.host()
    assert public['releases'] == {'stigmer': {'repo': 'stigmer/stigmer', 'tag': 'v0.1.0', 'version': '0.1.0'},
                                  'temporal': {'repo': 'temporalio/cli', 'tag': 'v1.5.1', 'version': '1.5.1'}}
    assert public['paths'] == {'prefix': '/opt/stigmer', 'home': HOME, 'current': '/opt/stigmer/current',
                               'temporal_current': '/opt/stigmer/temporal/current',
                               'artifact_dir': '/var/cache/stigmer/artifacts', 'config_dir': '/etc/stigmer'}
    json.dumps(public)   # what an action plugin returns must serialise


def test_component_repr_hides_the_environment():
    plan = secret_plan()
    assert ANTHROPIC not in repr(component(plan, 'agent-runner'))


# ---------------------------------------------------------------------------
# launchd (darwin-arm64)
# ---------------------------------------------------------------------------

# Root-only on every Mac, Intel with Homebrew in /usr/local as Apple silicon with /opt/homebrew
# (tests/unit/plugins/module_utils/test_runtime.py checks them against both trees).
DARWIN_HOME = '/private/var/stigmer'
DARWIN_DOT = DARWIN_HOME + '/.stigmer'
DARWIN_CONFIG = '/etc/stigmer'
MACS = ['darwin-arm64', 'darwin-amd64']


@pytest.mark.parametrize('platform', MACS)
def test_launchd_plan(platform):
    plan = build_plan(platform)
    host = plan.host()
    arch = platform.split('-')[1]
    assert host['platform'] == platform
    assert host['service_manager'] == 'launchd'
    assert (host['owner'], host['group']) == ('root', 'wheel')
    assert host['target'] is None
    assert host['prefix'] == '/opt/stigmer'
    assert host['account'] == {'user': 'stigmer', 'group': 'stigmer', 'home': DARWIN_HOME}
    assert host['directories'] == [
        {'path': '/opt/stigmer', 'own': True}, {'path': '/opt/stigmer/versions', 'own': True},
        {'path': '/opt/stigmer/temporal', 'own': True}, {'path': '/opt/stigmer/temporal/versions', 'own': True},
        {'path': '/usr/local/bin', 'own': False}, {'path': DARWIN_CONFIG, 'own': True},
        {'path': DARWIN_HOME, 'own': True}, {'path': DARWIN_DOT, 'own': True},
        {'path': DARWIN_DOT + '/data', 'own': True}, {'path': DARWIN_DOT + '/data/bin', 'own': True},
        {'path': DARWIN_DOT + '/bin', 'own': True}]
    assert host['remove'] == [DARWIN_CONFIG + '/stigmer.env', '/Library/Caches/stigmer/artifacts']
    # Earlier versions' configuration directory goes once the host's install record shows it was ours.
    assert host['retired'] == ['/usr/local/etc/stigmer']
    assert host['uninstall'] == ['/usr/local/bin/stigmer', DARWIN_DOT + '/data/bin', DARWIN_DOT + '/bin',
                                 DARWIN_CONFIG, '/Library/Caches/stigmer/artifacts']
    assert plan.public()['paths']['config_dir'] == DARWIN_CONFIG
    assert '/usr/local/var' not in json.dumps(host) and '/usr/local/etc/stigmer/' not in json.dumps(host)
    assert [t['sources'][0]['name'] for t in host['trees']] == [
        'stigmer-v0.1.0-darwin-%s.tar.gz' % arch, 'temporal_cli_1.5.1_darwin_%s.tar.gz' % arch]
    for c in host['components']:
        assert c['content'] is None
        assert c['unit'] == 'ai.stigmer.%s' % c['name']
        assert c['path'] == '/Library/LaunchDaemons/ai.stigmer.%s.plist' % c['name']
        job = c['launchd']
        log = '%s/data/logs/%s.log' % (DARWIN_DOT, c['name'])
        assert (job['stdout_path'], job['stderr_path']) == (log, log)
        assert (job['user_name'], job['group_name']) == ('stigmer', 'stigmer')
        assert job['working_directory'] == DARWIN_HOME
        kind = [k for k in COMPONENTS if k.name == c['name']][0]
        assert job['extra'] == {'ExitTimeOut': kind.stop_timeout}
        wait = ['127.0.0.1', '7233'] if kind.wait_for_temporal else ['', '']
        env_file = '%s/%s.env' % (DARWIN_CONFIG, c['name'])
        assert job['program_arguments'] == (['/bin/sh', '-c', LAUNCHD_WRAPPER, env_file] + wait
                                            + component(plan, c['name']).command)
    assert component(plan, 'temporal').command[0] == DARWIN_DOT + '/bin/temporal'


@pytest.mark.parametrize('platform', MACS)
def test_launchd_plists_and_environment_files_carry_the_root_only_locations(platform):
    """The plists as the host writes and reads them back, and the environment files they source."""
    plan = build_plan(platform)
    for c in plan.host()['components']:
        plist = parse_plist(serialize_plist(build_plist(c['unit'], **c['launchd'])))
        log = '%s/data/logs/%s.log' % (DARWIN_DOT, c['name'])
        env_file = '%s/%s.env' % (DARWIN_CONFIG, c['name'])
        assert plist['ProgramArguments'][:4] == ['/bin/sh', '-c', LAUNCHD_WRAPPER, env_file]
        assert (plist['WorkingDirectory'], plist['StandardOutPath'], plist['StandardErrorPath']) == (
            DARWIN_HOME, log, log)
        assert (plist['UserName'], plist['GroupName']) == ('stigmer', 'stigmer')
        assert '/usr/local/' not in plist_json(plist)
    files = plan.environment_files()
    assert sorted(files) == sorted('%s/%s.env' % (DARWIN_CONFIG, n) for n in NAMES)
    server, runner = files[DARWIN_CONFIG + '/server.env'], files[DARWIN_CONFIG + '/agent-runner.env']
    assert "HOME='%s'" % DARWIN_HOME in server and "DB_PATH='%s/stigmer.db'" % DARWIN_DOT in server
    assert "SANDBOX_ROOT_DIR='%s/workspace'" % DARWIN_DOT in runner


def plist_json(plist):
    return json.dumps(plist, default=str)


def test_launchd_health_components_name_their_logs():
    health = build_plan('darwin-arm64').health_components()
    assert [(h['name'], h['unit'], h['log_path']) for h in health] == [
        (n, 'ai.stigmer.' + n, '%s/data/logs/%s.log' % (DARWIN_DOT, n)) for n in NAMES]


def test_launchd_disabled_component_still_has_its_job_description():
    """The module boots out a disabled component's job by its label: the plan keeps it, disabled."""
    plan = build_plan('darwin-arm64', stigmer_workflow_runner_enabled=False)
    runner = comp(plan, 'workflow-runner')
    assert runner['enabled'] is False and runner['content'] is None
    assert DARWIN_CONFIG + '/workflow-runner.env' in plan.host()['remove']
    assert 'workflow-runner' not in [h['name'] for h in plan.health_components()]


@pytest.mark.skipif(not os.path.exists('/bin/sh'), reason='needs /bin/sh')
def test_launchd_wrapper_reads_the_environment_file_literally(tmp_path):
    """Run the job's program arguments with /bin/sh (temporal: no wait) against its own environment
    file: every value and every argument arrives exactly as planned."""
    plan = build_plan('darwin-arm64', stigmer_state_dir=TRICKY_STATE_DIR,
                      stigmer_extra_environment={'X_TRICKY': 'a $HOME `id` "q" \\ %s ;'})
    temporal = component(plan, 'temporal')
    env_file = tmp_path / 'temporal.env'
    env_file.write_text(_plan.environment_file(temporal))
    probe = [sys.executable, '-c', 'import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ)]))']
    args = comp(plan, 'temporal')['launchd']['program_arguments']
    assert args[4:6] == ['', '']
    argv = args[:3] + [str(env_file), '', ''] + probe + temporal.command[1:]
    proc = subprocess.run(argv, capture_output=True, text=True, env={'PATH': '/usr/bin:/bin'}, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    got_argv, got_env = json.loads(proc.stdout)
    assert got_argv == temporal.command[1:]
    assert got_env['HOME'] == TRICKY_STATE_DIR
    assert got_env['X_TRICKY'] == 'a $HOME `id` "q" \\ %s ;'
    assert 'stigmer.runtime: start pid' in proc.stderr


# ---------------------------------------------------------------------------
# User scope
# ---------------------------------------------------------------------------

def test_user_scope_layout_under_the_users_home():
    plan = build_plan(user=ALICE, stigmer_install_scope='user', stigmer_service_enabled=False)
    host = plan.host()
    assert host['system'] is False
    assert host['service_manager'] == 'none'
    assert (host['owner'], host['group']) == ('alice', 1000)
    assert host['prefix'] == '/home/alice/.local/share/stigmer'
    assert host['record'] == '/home/alice/.local/share/stigmer/install-record.json'
    assert host['account'] is None and host['components'] == [] and host['leaves'] == []
    assert {'path': '/home/alice', 'own': False} in host['directories']
    assert {'path': '/home/alice/.local/bin', 'own': False} in host['directories']
    assert all(d['path'].startswith('/home/alice') for d in host['directories'])
    assert host['links'][0] == {'path': '/home/alice/.local/bin/stigmer',
                                'target': '/home/alice/.local/share/stigmer/current/bin/stigmer',
                                'shared': True}
    assert all(link['path'].startswith('/home/alice/') for link in host['links'])
    assert host['remove'] == []
    assert host['uninstall'] == ['/home/alice/.local/bin/stigmer', '/home/alice/.stigmer/data/bin',
                                 '/home/alice/.stigmer/bin', '/home/alice/.cache/stigmer/artifacts']
    assert host['trees'][0]['root'] == '/home/alice/.local/share/stigmer/versions'
    assert plan.public()['paths']['artifact_dir'] == '/home/alice/.cache/stigmer/artifacts'
    # The system settings do not leak into a user install.
    assert '/opt/stigmer' not in json.dumps(host) and '/usr/local/bin' not in json.dumps(host)


def test_user_scope_needs_the_users_home():
    s, derived = settings(stigmer_install_scope='user', stigmer_service_enabled=False)
    with pytest.raises(SettingsError):
        _plan.build(s, derived, platform_fact(), os_data('linux'), {'dir': None, 'uid': 'alice', 'gid': 1000})


# ---------------------------------------------------------------------------
# plan_from_vars: an action plugin's view
# ---------------------------------------------------------------------------

def test_plan_from_vars_equals_build_of_the_same_settings():
    variables = task_vars()
    plan = _plan.plan_from_vars(FakeTemplar(variables), variables, release_results())
    assert plan.host() == build_plan().host()
    assert plan.environment_files() == build_plan().environment_files()


def test_plan_from_vars_reads_extra_var_strings():
    variables = task_vars(stigmer_workflow_runner_enabled='false', stigmer_server_port='7300',
                          stigmer_server_allowed_networks='10.20.0.0/16')
    plan = _plan.plan_from_vars(FakeTemplar(variables), variables)
    assert comp(plan, 'workflow-runner')['enabled'] is False
    assert one(comp(plan, 'server')['content'], 'IPAddressAllow') == 'localhost 10.20.0.0/16'
    assert parse_env_file(plan.environment_files()['/etc/stigmer/server.env'])['GRPC_PORT'] == '7300'
    assert plan.host()['trees'] == []


def test_plan_from_vars_renders_templated_variables():
    variables = task_vars(stigmer_state_dir='{{ state_root }}/stigmer', state_root='/srv',
                          stigmer_temporal_namespace='{{ team }}', team='ops')
    plan = _plan.plan_from_vars(FakeTemplar(variables), variables)
    assert plan.layout.home == '/srv/stigmer'
    assert '--namespace' in component(plan, 'temporal').command
    assert component(plan, 'temporal').command[-1] == 'ops'


def test_plan_from_vars_on_darwin():
    variables = task_vars('darwin-arm64')
    plan = _plan.plan_from_vars(FakeTemplar(variables), variables)
    assert plan.host()['service_manager'] == 'launchd'
    assert plan.layout.home == DARWIN_HOME


def test_plan_from_vars_user_scope_from_the_user_facts():
    variables = task_vars(facts={'user_dir': '/home/alice', 'user_id': 'alice', 'user_uid': 1000, 'user_gid': 1000},
                          stigmer_install_scope='user', stigmer_service_enabled='false')
    host = _plan.plan_from_vars(FakeTemplar(variables), variables).host()
    assert host['prefix'] == '/home/alice/.local/share/stigmer'
    assert (host['owner'], host['group']) == ('alice', 1000)


@pytest.mark.parametrize('missing', ['stigmer_platform', '_stigmer_os'])
def test_plan_from_vars_needs_the_platform(missing):
    variables = task_vars()
    if missing == '_stigmer_os':
        del variables['_stigmer_os']
    else:
        del variables['ansible_facts']['stigmer_platform']
    with pytest.raises(SettingsError) as info:
        _plan.plan_from_vars(FakeTemplar(variables), variables)
    assert 'platform' in str(info.value)


def test_plan_from_vars_refuses_bad_settings_before_planning():
    variables = task_vars(stigmer_temporal_namespace='x\nExecStartPre=/bin/id')
    with pytest.raises(SettingsError) as info:
        _plan.plan_from_vars(FakeTemplar(variables), variables)
    assert 'stigmer_temporal_namespace' in str(info.value)


def test_temporal_on_an_address_of_the_host_is_allowed_to_the_server_and_temporal():
    plan = build_plan(stigmer_temporal_ip='10.1.2.3')
    assert one(comp(plan, 'temporal')['content'], 'IPAddressAllow') == 'localhost 10.1.2.3'
    assert one(comp(plan, 'server')['content'], 'IPAddressAllow') == 'localhost 10.1.2.3'
    assert '10.1.2.3' in exec_argv(one(comp(plan, 'server')['content'], 'ExecStartPre'))
    loopback = build_plan(stigmer_temporal_ip='127.0.0.1')
    assert one(comp(loopback, 'server')['content'], 'IPAddressAllow') == 'localhost'


@pytest.mark.parametrize('platform, overrides, guard', [
    ('linux-amd64', {}, {'port': 7234}),
    ('darwin-arm64', {'stigmer_server_port': 7300}, {'port': 7300}),
    ('linux-amd64', {'stigmer_server_allowed_networks': ['any']}, None),             # nothing to filter
    ('linux-amd64', {'stigmer_server_accept_unfiltered_network': 'true'}, None),     # the risk accepted
    ('linux-amd64', {'stigmer_server_accept_unfiltered_network': 'false'}, {'port': 7234}),
    ('linux-amd64', {'stigmer_service_enabled': False}, None),                        # no server at all
])
def test_the_network_guard_is_asked_for_only_where_the_server_is_filtered_and_the_risk_not_accepted(
        platform, overrides, guard):
    assert build_plan(platform, **overrides).host()['network_guard'] == guard
