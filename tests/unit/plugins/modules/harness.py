# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Scaffolding shared by the module tests: run main() and read its result, check the documentation."""

import contextlib
import importlib
import json

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args=None):
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old


class ModuleExit(Exception):
    """exit_json was called (module_exits fixture); args[0] is the result."""


class ModuleFail(Exception):
    """fail_json was called (module_exits fixture); args[0] is the result, with failed=True."""


def run_module(module, args, capsys):
    """Run module.main() with args as the task would; return (exit code, result from stdout)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def check_documentation(module):
    """Check that DOCUMENTATION's options match argument_spec() and that EXAMPLES parses.

    Returns (doc, spec, returned) so a test can add checks of its own module.
    """
    doc = yaml.safe_load(module.DOCUMENTATION)
    for name in doc.get('extends_documentation_fragment') or []:
        fragment = importlib.import_module('ansible_collections.stigmer.runtime.plugins.doc_fragments.'
                                           + name.rsplit('.', 1)[-1])
        doc['options'].update(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)['options'])
    spec = module.argument_spec()
    assert sorted(doc['options']) == sorted(spec)
    for name, option in doc['options'].items():
        assert option['type'] == spec[name]['type'], name
        assert option.get('default') == spec[name].get('default'), name
        assert bool(option.get('required')) == bool(spec[name].get('required')), name
        assert option.get('choices') == spec[name].get('choices'), name
        if 'suboptions' in option:
            assert sorted(option['suboptions']) == sorted(spec[name]['options']), name
    yaml.safe_load(module.EXAMPLES)
    return doc, spec, yaml.safe_load(module.RETURN)
