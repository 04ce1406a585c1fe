# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest


@pytest.fixture(scope='module')
def shared_origin(tmp_path_factory):
    """One stand-in GitHub (test_mirror.Origin) per test module of the mirror's tests."""
    from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.test_mirror import Origin
    server = Origin(tmp_path_factory.mktemp('releases'))
    yield server
    server.close()
