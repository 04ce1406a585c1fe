# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures for the module tests; plain helpers live in harness.py (conftest is not importable by name)."""

import pytest

from ansible.module_utils import basic

HARNESS = 'ansible_collections.stigmer.runtime.tests.unit.plugins.modules.harness'

# The shared documentation check asserts in harness.py: let pytest explain its failures.
pytest.register_assert_rewrite(HARNESS)


@pytest.fixture
def module_exits(monkeypatch):
    """Turn exit_json/fail_json into exceptions carrying the result."""
    from ansible_collections.stigmer.runtime.tests.unit.plugins.modules.harness import ModuleExit, ModuleFail

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def fail_json(self, **kwargs):
        kwargs['failed'] = True
        raise ModuleFail(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
