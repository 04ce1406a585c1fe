"""The role's argument_specs must document every default, with the same value."""
import pathlib

import yaml

ROLE = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'stigmer'


def load(relpath):
    with open(ROLE / relpath) as handle:
        return yaml.safe_load(handle)


def test_every_default_is_specified_with_the_same_value():
    defaults = load('defaults/main.yml')
    options = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert options[name].get('default') == value, name


def test_public_variables_carry_the_role_prefix():
    assert all(name.startswith('stigmer_') for name in load('defaults/main.yml'))


def test_internal_variables_start_with_an_underscore():
    for path in (ROLE / 'vars').glob('*.yml'):
        assert all(name.startswith('_stigmer_') for name in load(path.relative_to(ROLE))), path


def test_readme_documents_every_variable():
    readme = (ROLE.parents[1] / 'README.md').read_text()
    missing = [name for name in load('defaults/main.yml') if '| `%s` |' % name not in readme]
    assert missing == []
