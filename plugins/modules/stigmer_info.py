#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_info
short_description: Report the installed Stigmer CLI, agent-runner and Temporal versions
version_added: 0.1.0
description:
  - Reads the installed versions by running the installed executables with C(--version) and
    extracting the semantic version from their output (never comparing whole lines).
  - Reads the agent-runner version marker C(.version) that the CLI checks before it starts, and
    tells whether the CLI, the agent-runner and the marker agree.
  - Changes nothing; a missing install is reported, not an error.
author: stigmer.runtime contributors (@stigmer)
options:
  cli:
    description: Path of the installed C(stigmer) executable.
    type: path
    required: true
  agent_runner:
    description: Path of the agent-runner where the CLI looks for it (C(~/.stigmer/data/bin/agent-runner)).
    type: path
    required: true
  marker:
    description: Path of the agent-runner version marker (C(~/.stigmer/data/bin/.version)).
    type: path
    required: true
  temporal:
    description: Path of the Temporal CLI; omit when Temporal is external.
    type: path
attributes:
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
'''

EXAMPLES = r'''
- name: Read the installed Stigmer versions
  stigmer.runtime.stigmer_info:
    cli: /opt/stigmer/current/bin/stigmer
    agent_runner: /var/lib/stigmer/.stigmer/data/bin/agent-runner
    marker: /var/lib/stigmer/.stigmer/data/bin/.version
    temporal: /var/lib/stigmer/.stigmer/bin/temporal
  register: stigmer_installed
'''

RETURN = r'''
installed:
  description: Whether the CLI and the agent-runner are both present.
  returned: always
  type: bool
cli_version:
  description: Version the CLI reports, without a leading v; null when absent or unreadable.
  returned: always
  type: str
  sample: 1.1.0
agent_runner_version:
  description: Version the agent-runner reports; null when absent or unreadable.
  returned: always
  type: str
  sample: 1.1.0
marker:
  description: Content of the version marker, stripped; null when absent.
  returned: always
  type: str
  sample: v1.1.0
temporal_version:
  description: Version Temporal reports; null when absent or not asked for.
  returned: always
  type: str
  sample: 1.5.1
versions_match:
  description: True when the CLI, the agent-runner and the marker name the same version.
  returned: always
  type: bool
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stigmer.runtime.plugins.module_utils.version import extract_version


def read_marker(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def reported_version(module, path):
    """Run `path --version` and extract the version; None when it cannot run."""
    if not path or not os.path.exists(path):
        return None
    rc, out, err = module.run_command([path, '--version'])
    if rc != 0:
        return None
    return extract_version(out + '\n' + err)


def versions_agree(cli, agent_runner, marker):
    if not cli or not agent_runner or not marker:
        return False
    return cli == agent_runner == extract_version(marker)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cli=dict(type='path', required=True),
            agent_runner=dict(type='path', required=True),
            marker=dict(type='path', required=True),
            temporal=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    cli = reported_version(module, params['cli'])
    agent_runner = reported_version(module, params['agent_runner'])
    marker = read_marker(params['marker'])
    module.exit_json(
        changed=False,
        installed=os.path.exists(params['cli']) and os.path.exists(params['agent_runner']),
        cli_version=cli,
        agent_runner_version=agent_runner,
        marker=marker,
        temporal_version=reported_version(module, params['temporal']),
        versions_match=versions_agree(cli, agent_runner, marker),
    )


if __name__ == '__main__':
    main()
