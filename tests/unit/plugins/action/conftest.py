# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugins are controller code: importing one imports ansible._internal, which marks the whole
process as the controller (ansible.module_utils._internal.is_controller), and from then on module
warnings go to the controller's display instead of the module result. The tests here import the
plugins only inside the fixtures below and put the process back afterwards, so that the module
tests that run later still see their warnings in their results."""

import importlib

import pytest

_CONTROLLER_HOOKS = ('is_controller', 'import_controller_module', 'get_controller_serialize_map')


@pytest.fixture(scope='module', autouse=True)
def _controller_state_restored():
    try:
        from ansible.module_utils import _internal
    except ImportError:  # ansible-core before 2.19 has no such state
        yield
        return
    saved = dict((name, getattr(_internal, name)) for name in _CONTROLLER_HOOKS if hasattr(_internal, name))
    yield
    for name, value in saved.items():
        setattr(_internal, name, value)


@pytest.fixture(scope='module')
def runtime_action():
    return importlib.import_module('ansible_collections.stigmer.runtime.plugins.action.stigmer_runtime')


@pytest.fixture(scope='module')
def plan_action():
    return importlib.import_module('ansible_collections.stigmer.runtime.plugins.action.stigmer_plan')
