"""The user guides in docs/ name only role variables that exist (they are published on the docs site)."""
import pathlib
import re

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
GUIDES = ['secrets.md', 'air-gapped.md', 'macos.md']


def role_options():
    with open(TOP / 'roles' / 'stigmer' / 'meta' / 'argument_specs.yml') as handle:
        return set(yaml.safe_load(handle)['argument_specs']['main']['options'])


@pytest.mark.parametrize('guide', GUIDES)
def test_guide_names_only_existing_variables(guide):
    text = (TOP / 'docs' / guide).read_text()
    modules = {path.stem for path in (TOP / 'plugins' / 'modules').glob('stigmer_*.py')}
    named = set(re.findall(r'\b(stigmer_[a-z0-9_]+)', text)) - modules
    assert named, 'a guide that names no variable is not about this role'
    assert named - role_options() == set()
