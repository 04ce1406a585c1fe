#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: stigmer_plan
short_description: Read the stigmer role's variables by type and build one host's plan on the controller
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin); nothing is sent to the host.
  - Reads every variable of the C(stigmer.runtime.stigmer) role once, renders it, and converts it to the type
    its argument spec declares, so C(-e stigmer_service_enabled=false) is the boolean V(false) and
    C(-e stigmer_server_port=7300) the integer 7300. A value that cannot be converted, or that cannot go where
    it goes (a newline in anything that reaches a unit file or a plist, an allow-list entry that is no address
    or network, a port out of range, a relative path) fails the task naming the variable, before any host
    changes. Secret values are never echoed.
  - With O(releases), builds the host's plan (docs/architecture.md) from those settings, the host's platform
    (the C(stigmer_platform) fact) and the role's per-OS data; the role passes the plan whole to
    M(stigmer.runtime.stigmer_runtime).
author: stigmer.runtime contributors (@stigmer)
options:
  releases:
    description:
      - The registered results of M(stigmer.runtime.stigmer_release) by tree, C(stigmer) and (with Temporal)
        C(temporal).
      - Without it the plan has no version trees (uninstall and the fleet report need none).
    type: dict
  settings_only:
    description: Only read and check the settings; build no plan (the platform is not known yet).
    type: bool
    default: false
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
seealso:
  - module: stigmer.runtime.stigmer_runtime
'''

EXAMPLES = r'''
- name: Read and check the role's settings
  stigmer.runtime.stigmer_plan:
    settings_only: true
  register: _stigmer

- name: Plan the host
  stigmer.runtime.stigmer_plan:
    releases:
      stigmer: "{{ _stigmer_release }}"
      temporal: "{{ _stigmer_temporal_release }}"
  register: _stigmer
'''

RETURN = r'''
settings:
  description: Every role variable with its declared type, secrets (C(no_log) options) left out.
  returned: always
  type: dict
  sample: {stigmer_service_enabled: false, stigmer_server_port: 7234}
services:
  description: Whether the host runs the Stigmer services (system scope with services enabled).
  returned: always
  type: bool
system:
  description: Whether the install is system-wide (root-owned) rather than in the connecting user's home.
  returned: always
  type: bool
controller_mode:
  description: Whether artifacts are downloaded on the controller.
  returned: always
  type: bool
plan:
  description: The host's plan, the O(stigmer.runtime.stigmer_runtime#module:plan) of M(stigmer.runtime.stigmer_runtime).
  returned: unless O(settings_only)
  type: dict
releases:
  description: The planned releases by tree, each with C(repo), C(tag) (such as V(v0.1.0)) and C(version) (V(0.1.0)).
  returned: unless O(settings_only)
  type: dict
health_components:
  description:
    - The enabled components as M(stigmer.runtime.stigmer_health) watches them, each with the task queues
      it polls (their names as the component's environment sets them) and the task types it registers there.
  returned: unless O(settings_only)
  type: list
  elements: dict
temporal:
  description:
    - The Temporal the components poll, as M(stigmer.runtime.stigmer_health) asks it, by C(host) and C(port) (the
      bundled dev server's, or C(stigmer_temporal_address)) and C(namespace).
  returned: unless O(settings_only)
  type: dict
  sample: {host: 127.0.0.1, port: 7233, namespace: default}
report_components:
  description: The enabled components as M(stigmer.runtime.stigmer_info) reports them.
  returned: unless O(settings_only)
  type: list
  elements: dict
paths:
  description: The host's C(prefix), C(home), C(current), C(temporal_current), C(artifact_dir) and C(config_dir).
  returned: unless O(settings_only)
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(releases=dict(type='dict'), settings_only=dict(type='bool', default=False)),
                           supports_check_mode=True)
    module.fail_json(msg='stigmer_plan runs on the controller (its action plugin); it cannot run as a module on a host.')


if __name__ == '__main__':
    main()
