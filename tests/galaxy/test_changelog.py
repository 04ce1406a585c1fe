"""The changelog follows antsibull-changelog's rules, and `antsibull-changelog release` works.

- Fragments describe changes. New modules and roles are announced by their `version_added` (playbooks,
  which have no documentation, by an `add object.playbook` section), never by a fragment's prose.
- Every `version_added` (modules, their options, role entry points and options) is a version this
  collection released (changelogs/changelog.yaml) or the one it is about to release (galaxy.yml), and an
  option is never older than its module.
- Fragments are reStructuredText: Ansible's C(...) markup would show literally in CHANGELOG.md.

DOCS_VENV is the virtualenv with antsibull-changelog (tests/env/galaxy-setup.sh makes build/venv-docs).
"""
import ast
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from test_tarball import git_files

TOP = pathlib.Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((TOP / 'galaxy.yml').read_text())
VERSION = GALAXY['version']
RELEASED = sorted((yaml.safe_load((TOP / 'changelogs' / 'changelog.yaml').read_text()).get('releases') or {}))
ALLOWED = set(RELEASED) | {VERSION}
MODULES = sorted(path for path in (TOP / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__')
ROLES = sorted(path for path in (TOP / 'roles').iterdir() if (path / 'meta' / 'argument_specs.yml').is_file())
FRAGMENTS = sorted((TOP / 'changelogs' / 'fragments').glob('*.y*ml'))
ANSIBLE_MARKUP = re.compile(r'\b(?:B|C|E|I|L|M|O|P|R|RV|U|V)\([^()]*\)')
ANNOUNCEMENT = re.compile(r'\bnew (?:module|role|plugin|playbook)s?\b', re.IGNORECASE)


def semver(text):
    return tuple(int(part) for part in re.match(r'^(\d+)\.(\d+)\.(\d+)', str(text)).groups())


def documentation(path):
    """A module's DOCUMENTATION, read without importing the module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError('%s has no DOCUMENTATION' % path.name)


def option_versions(options, parent_version, prefix=''):
    """(dotted option name, version_added, the version it may not precede) for every option that has one."""
    for name, spec in (options or {}).items():
        added = spec.get('version_added')
        if added is not None:
            yield prefix + name, str(added), parent_version
        yield from option_versions(spec.get('suboptions') or spec.get('options'), str(added or parent_version),
                                   prefix + name + '.')


def version_problems(owner, version_added, options):
    problems = []
    if version_added is None:
        return ['%s has no version_added' % owner]
    if str(version_added) not in ALLOWED:
        problems.append('%s: version_added %s is neither released (%s) nor the next release %s'
                        % (owner, version_added, ', '.join(RELEASED) or 'none yet', VERSION))
    for name, added, parent in option_versions(options, str(version_added)):
        if added not in ALLOWED:
            problems.append('%s option %s: version_added %s is neither released nor %s' % (owner, name, added, VERSION))
        elif semver(added) < semver(parent):
            problems.append('%s option %s: version_added %s precedes its parent (%s)' % (owner, name, added, parent))
    return problems


def fragment_entries():
    for path in FRAGMENTS:
        for section, entries in (yaml.safe_load(path.read_text()) or {}).items():
            if not section.startswith('add ') and isinstance(entries, list):
                for entry in entries:
                    yield path.name, section, entry


def test_there_are_modules_roles_and_fragments():
    assert MODULES and ROLES and FRAGMENTS


@pytest.mark.parametrize('path', MODULES, ids=lambda path: path.stem)
def test_module_version_added_is_consistent(path):
    doc = documentation(path)
    assert version_problems(path.stem, doc.get('version_added'), doc.get('options')) == []


@pytest.mark.parametrize('role', ROLES, ids=lambda role: role.name)
def test_role_entry_points_version_added_is_consistent(role):
    specs = yaml.safe_load((role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']
    problems = []
    for entry_point, spec in specs.items():
        problems += version_problems('role %s entry point %s' % (role.name, entry_point),
                                     spec.get('version_added'), spec.get('options'))
    assert problems == []


def test_no_fragment_announces_a_new_module_role_or_playbook():
    # antsibull-changelog lists them itself ("New Modules", "New Roles") from version_added;
    # playbooks go in an "add object.playbook" section.
    announcing = ['%s (%s): %s' % item for item in fragment_entries() if ANNOUNCEMENT.search(item[2])]
    assert announcing == []


def test_fragments_use_rst_not_ansible_markup():
    marked = ['%s (%s): %s' % item for item in fragment_entries() if ANSIBLE_MARKUP.search(item[2])]
    assert marked == []


def test_version_problems_catch_what_they_should():
    assert version_problems('m', None, {}) == ['m has no version_added']
    assert version_problems('m', VERSION, {'a': {'version_added': VERSION}}) == []
    wrong = version_problems('m', '99.0.0', {'a': {'suboptions': {'b': {'version_added': '98.0.0'}}}})
    assert len(wrong) == 2 and 'version_added 99.0.0' in wrong[0] and 'option a.b' in wrong[1]


def test_release_writes_the_changelog_for_this_version(tmp_path):
    venv = pathlib.Path(os.environ.get('DOCS_VENV', TOP / 'build' / 'venv-docs'))
    if not (venv / 'bin' / 'antsibull-changelog').exists():
        pytest.fail('antsibull-changelog is not installed in %s: run tests/env/galaxy-setup.sh' % venv)
    root = tmp_path / 'ansible_collections' / GALAXY['namespace'] / GALAXY['name']
    for name in git_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(TOP / name), str(root / name))
    env = {key: value for key, value in os.environ.items() if not key.startswith('ANSIBLE_')}
    env.update(PATH='%s%s%s' % (venv / 'bin', os.pathsep, env['PATH']), ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    subprocess.run(['antsibull-changelog', 'release', '--version', VERSION, '--date', '2026-01-01'],
                   cwd=str(root), env=env, check=True)

    markdown = (root / 'CHANGELOG.md').read_text()
    assert 'v%s' % VERSION.replace('.', '\\.') in markdown
    assert 'v%s' % VERSION in (root / 'CHANGELOG.rst').read_text()
    assert not ANSIBLE_MARKUP.search(markdown.replace('\\', ''))
    new_modules = [path.stem for path in MODULES if str(documentation(path).get('version_added')) == VERSION]
    new_roles = [role.name for role in ROLES if str(yaml.safe_load(
        (role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']['main'].get('version_added')) == VERSION]
    plain = markdown.replace('\\', '')
    for section, names in (('New Modules', new_modules), ('New Roles', new_roles)):
        if names:
            assert '### %s' % section in plain
            listed = plain.split('### %s' % section)[1].split('<a id=')[0]
            assert [name for name in names if '%s.%s.%s' % (GALAXY['namespace'], GALAXY['name'], name) not in listed] == []
    assert list((root / 'changelogs' / 'fragments').glob('*.y*ml')) == []
