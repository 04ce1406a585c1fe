# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import hashlib
import os

from ansible_collections.stigmer.runtime.plugins.module_utils._install import ensure_version
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_info
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

IDS = (os.getuid(), os.getgid())
# Executables that record a run: stigmer_info must read records, never execute.
TRAP = b'#!/bin/sh\ntouch "$0.ran"\necho 9.9.9\n'


def install(tmp_path, name, version, executables, files=None):
    """Install executables (name -> bytes) as version under tmp_path/opt/<name>; return the link."""
    base = tmp_path / 'opt' / name
    sources = []
    for exe, data in executables.items():
        path = tmp_path / ('%s-%s-%s' % (name, version, exe))
        path.write_bytes(data)
        sources.append({'src': str(path), 'sha256': hashlib.sha256(data).hexdigest(), 'dest': exe})
    ensure_version(root=str(base / 'versions'), version=version, sources=sources, link=str(base / 'current'),
                   files=files, ids=IDS)
    return str(base / 'current')


def stigmer(tmp_path, version='v1.1.0', runner_version=None):
    return install(tmp_path, 'stigmer', version, {'stigmer': TRAP, 'agent-runner': TRAP},
                   {'share/agent-runner.version': '%s\n' % (runner_version or version)})


def run_module(args, capsys):
    return harness.run_module(stigmer_info, args, capsys)[1]


def ran(tmp_path):
    return [str(p) for p in tmp_path.rglob('*.ran')]


def test_reports_versions_without_executing_anything(tmp_path, capsys):
    current = stigmer(tmp_path)
    temporal = install(tmp_path, 'temporal', '1.5.1', {'temporal': TRAP})
    result = run_module({'current': current, 'temporal_current': temporal}, capsys)
    assert result['changed'] is False
    assert result['installed'] is True
    assert (result['cli_version'], result['agent_runner_version'], result['temporal_version']) == \
        ('1.1.0', '1.1.0', '1.5.1')
    assert result['versions_match'] is True
    assert result['problems'] == []
    assert ran(tmp_path) == []


def test_nothing_installed(tmp_path, capsys):
    result = run_module({'current': str(tmp_path / 'current')}, capsys)
    assert result == dict(result, installed=False, cli_version=None, agent_runner_version=None,
                          temporal_version=None, versions_match=False, problems=[])


def test_mismatched_runner_record(tmp_path, capsys):
    result = run_module({'current': stigmer(tmp_path, runner_version='v1.0.0')}, capsys)
    assert (result['cli_version'], result['agent_runner_version'], result['versions_match']) == \
        ('1.1.0', '1.0.0', False)


def test_untrusted_records_are_reported_not_believed(tmp_path, capsys):
    current = stigmer(tmp_path)
    share = os.path.join(os.path.dirname(current), 'versions', 'v1.1.0', 'share', 'agent-runner.version')
    os.unlink(share)
    planted = tmp_path / 'planted'
    planted.write_text('v1.1.0\n')
    os.symlink(str(planted), share)
    result = run_module({'current': current}, capsys)
    assert result['cli_version'] == '1.1.0' and result['installed'] is True
    assert result['agent_runner_version'] is None and result['versions_match'] is False
    assert result['problems'] == ['%s: share/agent-runner.version is a symbolic link or not a file' % current]

    os.unlink(current)
    os.symlink('/etc', current)
    result = run_module({'current': current, 'temporal_current': str(tmp_path / 'none')}, capsys)
    assert result['cli_version'] is None and result['installed'] is False
    assert result['problems'] == ['%s: %s points at /etc, not at a version directory beside it' % (current, current)]


def test_temporal_without_its_binary(tmp_path, capsys):
    current = stigmer(tmp_path)
    temporal = install(tmp_path, 'temporal', '1.5.1', {'temporal-other': TRAP})
    result = run_module({'current': current, 'temporal_current': temporal}, capsys)
    assert result['temporal_version'] is None
    assert result['problems'] == ['%s: bin/temporal is not part of the install of 1.5.1' % temporal]


def test_documentation_matches_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_info)
    assert set(doc['attributes']) == {'check_mode', 'diff_mode', 'platform'}
    assert set(returned) == {'installed', 'cli_version', 'agent_runner_version', 'temporal_version', 'services',
                             'versions_match', 'problems'}


def test_services_report_a_process_that_started_before_the_version_link_changed(tmp_path, monkeypatch):
    from ansible_collections.stigmer.runtime.plugins.module_utils import _runtime
    link = stigmer(tmp_path)
    unit = tmp_path / 'stigmer-server.service'
    unit.write_text('[Service]\n')
    shown = ('Id=stigmer-server.service\nActiveState=active\nMainPID=%d\nUnitFileState=enabled\n\n'
             'Id=stigmer-agent-runner.service\nActiveState=failed\nMainPID=0\nUnitFileState=enabled\n')
    started = {'value': 0.0}
    monkeypatch.setattr(_runtime, 'process_start', lambda pid, run=None: started['value'])
    comps = [{'name': 'server', 'unit': 'stigmer-server.service', 'watch': [link, str(unit)]},
             {'name': 'agent-runner', 'unit': 'stigmer-agent-runner.service', 'watch': [link]}]

    def run(argv, **kw):
        assert argv[1] == 'show'
        return 0, shown % 4242, ''
    now = os.lstat(link).st_mtime
    started['value'] = now - 60
    stale = _runtime.running_versions('systemd', comps, run)
    assert stale['server'] == {'state': 'active', 'active': True,
                               'stale': 'started before %s changed' % ', '.join(sorted([link, str(unit)]))}
    assert stale['agent-runner'] == {'state': 'failed', 'active': False, 'stale': None}
    started['value'] = now + 60
    assert _runtime.running_versions('systemd', comps, run)['server']['stale'] is None
    assert _runtime.running_versions('none', comps, run) == {}


def test_without_components_services_is_empty(tmp_path, capsys):
    result = run_module({'current': stigmer(tmp_path)}, capsys)
    assert result['services'] == {} and result['cli_version'] == '1.1.0'
