"""Every role has a README for Galaxy whose variables table is generated from meta/argument_specs.yml."""
import importlib.util
import pathlib
import re

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location('role_readme', TOP / 'tests' / 'env' / 'role_readme.py')
role_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_readme)

ROLES = role_readme.role_dirs(TOP)


def load_specs(role):
    with open(role / 'meta' / 'argument_specs.yml') as handle:
        return yaml.safe_load(handle)


def test_there_is_a_role_to_check():
    assert [role.name for role in ROLES] and all((role / 'meta' / 'argument_specs.yml').is_file() for role in ROLES)


def test_every_role_readme_matches_its_argument_specs():
    # On failure: run `make role-readme` (python3 tests/env/role_readme.py) and commit the README.
    assert role_readme.stale_readmes(TOP) == []


@pytest.mark.parametrize('role', ROLES, ids=lambda role: role.name)
def test_table_lists_every_option_once_and_nothing_else(role):
    readme = (role / 'README.md').read_text()
    section = readme.split(role_readme.BEGIN)[1].split(role_readme.END)[0]
    rows = re.findall(r'^\| `([a-z0-9_]+)` \|', section, re.MULTILINE)
    options = [name for spec in load_specs(role)['argument_specs'].values() for name in spec.get('options', {})]
    assert sorted(rows) == sorted(options)


@pytest.mark.parametrize('role', ROLES, ids=lambda role: role.name)
def test_prose_names_only_variables_that_exist(role):
    readme = (role / 'README.md').read_text()
    prose = readme.split(role_readme.BEGIN)[0] + readme.split(role_readme.END)[1]
    options = {name for spec in load_specs(role)['argument_specs'].values() for name in spec.get('options', {})}
    prefix = role.name + '_'
    named = set(re.findall(r'`(%s[a-z0-9_]+)' % prefix, prose))
    assert named, 'the README should name the variables that matter most'
    assert named - options == set()


@pytest.mark.parametrize('text, expected', [
    ('Set C(latest) or I(stigmer_version) to V(1.2.3).', 'Set `latest` or `stigmer_version` to `1.2.3`.'),
    ('See O(dest=/tmp) and RV(msg); E(GITHUB_TOKEN).', 'See `dest=/tmp` and `msg`; `GITHUB_TOKEN`.'),
    ('B(Never) use M(ansible.builtin.copy).', '**Never** use `ansible.builtin.copy`.'),
    ('L(the docs,https://example.com/x) or U(https://example.com)', '[the docs](https://example.com/x) or <https://example.com>'),
    ('R(Secrets,ansible_collections.x.docsite.secrets) and ABC(x)', 'Secrets and ABC(x)'),
])
def test_markup_to_md(text, expected):
    assert role_readme.markup_to_md(text) == expected


@pytest.mark.parametrize('spec, expected', [
    ({'default': 'latest'}, '`latest`'),
    ({'default': ''}, 'empty'),
    ({}, 'empty'),
    ({'required': True}, 'required'),
    ({'default': False}, '`false`'),
    ({'default': 90}, '`90`'),
    ({'default': {}}, '`{}`'),
    ({'default': ['a', 'b']}, '`[a, b]`'),
    ({'default': "{{ lookup('env', 'X') }}"}, 'computed, see below'),
])
def test_format_default(spec, expected):
    assert role_readme.format_default(spec) == expected


def test_table_escapes_pipes_and_lists_computed_defaults_verbatim():
    table = role_readme.variables_table({
        'x_dir': {'type': 'path', 'description': ['A C(a|b)', 'path.'], 'default': "{{ a | default('b') }}"},
        'x_mode': {'description': 'Mode.', 'default': 'on', 'choices': ['on', 'off']},
    })
    assert '| `x_dir` | path | computed, see below | A `a\\|b` path. |' in table
    assert '| `x_mode` | str | `on` | Mode. Choices: `on`, `off`. |' in table
    assert table.endswith("- `x_dir`: `{{ a | default('b') }}`")


def test_render_replaces_only_the_generated_section():
    specs = {'argument_specs': {'main': {'options': {'x_a': {'type': 'int', 'default': 1, 'description': 'A.'}}}}}
    readme = 'intro\n%s\nstale table\n%s\noutro\n' % (role_readme.BEGIN, role_readme.END)
    rendered = role_readme.render(readme, specs)
    assert rendered.startswith('intro\n' + role_readme.BEGIN + '\n| variable |')
    assert '| `x_a` | int | `1` | A. |\n' + role_readme.END + '\noutro\n' in rendered
    assert 'stale table' not in rendered
    assert role_readme.render(rendered, specs) == rendered


def test_render_heads_each_entry_point_when_there_are_several():
    specs = {'argument_specs': {'main': {'options': {'x_a': {'description': 'A.'}}},
                                'remove': {'options': {'x_b': {'description': 'B.'}}}}}
    rendered = role_readme.render('%s\n%s' % (role_readme.BEGIN, role_readme.END), specs)
    assert '### Entry point `main`' in rendered and '### Entry point `remove`' in rendered


@pytest.mark.parametrize('readme', ['no markers', role_readme.BEGIN, role_readme.END + role_readme.BEGIN])
def test_render_refuses_a_readme_without_one_marked_section(readme):
    with pytest.raises(role_readme.ReadmeError):
        role_readme.render(readme, {'argument_specs': {}})


def test_check_names_a_stale_or_missing_readme(tmp_path):
    for name, readme in (('good', None), ('stale', 'x\n%s\nold\n%s\n'), ('missing', False)):
        role = tmp_path / 'roles' / name
        (role / 'meta').mkdir(parents=True)
        specs = {'argument_specs': {'main': {'options': {'%s_a' % name: {'description': 'A.'}}}}}
        (role / 'meta' / 'argument_specs.yml').write_text(yaml.safe_dump(specs))
        if readme is None:
            (role / 'README.md').write_text(role_readme.render('%s\n%s\n' % (role_readme.BEGIN, role_readme.END), specs))
        elif readme:
            (role / 'README.md').write_text(readme % (role_readme.BEGIN, role_readme.END))
    assert role_readme.stale_readmes(tmp_path) == [
        'missing: no README.md',
        'stale: README.md variables table differs from meta/argument_specs.yml',
    ]
    assert role_readme.stale_readmes(tmp_path, write=True) == ['missing: no README.md']
    assert role_readme.stale_readmes(tmp_path) == ['missing: no README.md']
