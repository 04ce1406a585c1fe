"""tests/env/galaxy_import.py fails on whatever galaxy-importer reports, although the importer exits 0."""
import configparser
import importlib.util
import pathlib

import pytest

TOP = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('galaxy_import', TOP / 'tests' / 'env' / 'galaxy_import.py')
galaxy_import = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(galaxy_import)

CLEAN = '''Importing with galaxy-importer 0.4.44
Getting doc strings via ansible-doc
Loading module stigmer_info
Linting collection via ansible-lint 26.10.1...
...ansible-lint run complete
WARNING: Ignore files skip ansible-test sanity tests, found ignore-2.19.txt with 0 statement(s)
Collection loading complete
Importer processing completed successfully
'''


def test_a_clean_import_passes():
    assert galaxy_import.problems(CLEAN) == []


@pytest.mark.parametrize('line', [
    'ERROR: Error running ansible-doc: cmd="ansible-doc --type module --json stigmer.runtime.x" returncode="1"',
    'WARNING: roles/stigmer/tasks/main.yml:3: name[casing]: All names should start with an uppercase letter.',
    'WARNING: Ignore files skip ansible-test sanity tests, found ignore-2.19.txt with 2 statement(s)',
    'CRITICAL: something Galaxy would refuse',
])
def test_every_error_and_warning_fails(line):
    assert galaxy_import.problems(CLEAN.replace('Collection loading complete', line)) == [line]


def test_a_failed_or_unfinished_import_fails():
    assert galaxy_import.problems(CLEAN, returncode=1) == ['galaxy-importer exited 1']
    unfinished = CLEAN.replace(galaxy_import.SUCCESS, 'ERROR: The import failed for the following reason: No role readme found.')
    assert galaxy_import.problems(unfinished) == [
        'ERROR: The import failed for the following reason: No role readme found.',
        'galaxy-importer did not report "%s"' % galaxy_import.SUCCESS]


def test_the_importer_sees_only_its_own_tools_and_config(monkeypatch, tmp_path):
    monkeypatch.setenv('ANSIBLE_COLLECTIONS_PATH', '/elsewhere')
    monkeypatch.setenv('ANSIBLE_CONFIG', '/elsewhere/ansible.cfg')
    monkeypatch.setenv('PYTHONPATH', '/elsewhere')
    monkeypatch.setenv('GALAXY_IMPORTER_RUN_ANSIBLE_TEST', 'true')
    monkeypatch.setenv('PATH', '/usr/bin')
    env = galaxy_import.importer_environment(tmp_path)
    assert not [key for key in env if key.startswith('ANSIBLE_') or key == 'PYTHONPATH']
    assert 'GALAXY_IMPORTER_RUN_ANSIBLE_TEST' not in env
    assert env['PATH'] == '%s/bin:/usr/bin' % tmp_path
    assert env['GALAXY_IMPORTER_CONFIG'] == str(galaxy_import.CONFIG)


def test_the_config_skips_only_ansible_test():
    config = configparser.ConfigParser()
    config.read(str(galaxy_import.CONFIG))
    section = config['galaxy-importer']
    assert section.getboolean('run_ansible_test') is False
    assert all(section.getboolean(key) for key in ('run_ansible_doc', 'run_ansible_lint', 'check_changelog'))
