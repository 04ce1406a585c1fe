# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A real AnsibleModule.run_command for the module_utils tests that run programs for real (the checks
of a staged version), so they go through the same call as on a host."""

from ansible.module_utils import basic

from ansible_collections.stigmer.runtime.plugins.module_utils._install import check_runner

_MODULE = []


def run_command(argv, **kwargs):
    if not _MODULE:
        # Imported here: modules/conftest.py must register the harness for assertion rewriting first.
        from ansible_collections.stigmer.runtime.tests.unit.plugins.modules.harness import patch_module_args
        with patch_module_args({}):
            _MODULE.append(basic.AnsibleModule(argument_spec={}))
    return _MODULE[0].run_command(argv, **kwargs)


def runner(timeout=30, account=None):
    """The runner of staged checks that stigmer_runtime uses, over a real run_command."""
    return check_runner(run_command, timeout, account)
