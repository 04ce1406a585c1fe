#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: stigmer_platform
short_description: Detect a host's Stigmer release platform and service manager
version_added: 0.1.0
description:
  - Maps the host's operating system and CPU to the C(os-arch) platform that Stigmer release
    assets are named after, for example C(linux-amd64) or C(darwin-arm64).
  - Sees through Rosetta 2 on Apple Silicon, where C(uname -m) and Python report C(x86_64);
    C(sysctl hw.optional.arm64) and C(sysctl sysctl.proc_translated) decide there.
  - Refuses a 32-bit userland on a 64-bit kernel (for example armhf Python on C(aarch64)), and
    any other CPU or operating system, with a message naming what was seen and the supported
    platforms. Only the affected host fails.
  - Reports the service manager to use, C(systemd), C(launchd) or C(none).
  - Changes nothing on the host.
author:
  - stigmer.runtime contributors (@stigmer)
options:
  supported:
    description:
      - Platforms this play accepts. Narrow it to make other hosts fail early.
    type: list
    elements: str
    choices: [darwin-amd64, darwin-arm64, linux-amd64, linux-arm64]
    default: [darwin-amd64, darwin-arm64, linux-amd64, linux-arm64]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
notes:
  - Upstream publishes no C(linux-arm64) build; such hosts pass here and the release lookup
    decides whether the chosen release offers them.
seealso:
  - name: Stigmer releases
    description: The release assets the platform names refer to.
    link: https://github.com/stigmer/stigmer/releases
"""

EXAMPLES = r"""
- name: Detect the Stigmer platform
  stigmer.runtime.stigmer_platform:

- name: Show it
  ansible.builtin.debug:
    msg: "{{ ansible_facts.stigmer_platform.platform }} via {{ ansible_facts.stigmer_platform.service_manager }}"

- name: Only accept hosts upstream builds for
  stigmer.runtime.stigmer_platform:
    supported:
      - darwin-amd64
      - darwin-arm64
      - linux-amd64
  register: stigmer_host
"""

RETURN = r"""
platform:
  description: The detected platform; the same dictionary as C(ansible_facts.stigmer_platform).
  returned: success
  type: dict
  contains:
    os:
      description: Operating system as used in asset names.
      type: str
      returned: success
      sample: darwin
    arch:
      description: CPU architecture as used in asset names.
      type: str
      returned: success
      sample: arm64
    platform:
      description: C(os-arch).
      type: str
      returned: success
      sample: darwin-arm64
    machine:
      description: Raw C(uname -m), which says C(x86_64) under Rosetta.
      type: str
      returned: success
      sample: x86_64
    rosetta:
      description: Whether Python runs translated by Rosetta 2 on Apple Silicon.
      type: bool
      returned: success
      sample: true
    service_manager:
      description: C(systemd), C(launchd) or C(none) (no systemd as PID 1, for example a plain container).
      type: str
      returned: success
      sample: launchd
ansible_facts:
  description: Facts set on the host.
  returned: success
  type: dict
  contains:
    stigmer_platform:
      description: The same dictionary as RV(platform).
      type: dict
      returned: success
      sample:
        os: linux
        arch: amd64
        platform: linux-amd64
        machine: x86_64
        rosetta: false
        service_manager: systemd
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stigmer.runtime.plugins.module_utils._platform import (
    SUPPORTED_PLATFORMS,
    UnsupportedPlatformError,
    check_supported,
    detect_platform,
    gather_host_facts,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            supported=dict(type='list', elements='str', choices=list(SUPPORTED_PLATFORMS),
                           default=list(SUPPORTED_PLATFORMS)),
        ),
        supports_check_mode=True,
    )

    raw = gather_host_facts(module.run_command)
    try:
        facts = check_supported(detect_platform(**raw), module.params['supported'])
    except UnsupportedPlatformError as exc:
        module.fail_json(msg=str(exc), seen=raw)

    module.exit_json(changed=False, platform=facts, ansible_facts={'stigmer_platform': facts})


if __name__ == '__main__':
    main()
