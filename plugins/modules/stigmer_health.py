#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_health
short_description: Ask the Stigmer server's gRPC port whether it is serving
version_added: 0.1.0
description:
  - The stigmer server speaks gRPC on its port (7234), so an HTTP probe cannot ask it anything.
    This module makes one call to the standard gRPC health service, C(grpc.health.v1.Health/Check),
    over cleartext HTTP/2, with the Python standard library only.
  - The answer is reported, not raised. An unreachable or unhealthy server gives RV(healthy=false)
    and the reason in RV(msg), so the module can be retried with C(until).
  - Changes nothing.
author: stigmer.runtime contributors (@stigmer)
options:
  host:
    description: Address the server listens on.
    type: str
    default: 127.0.0.1
  port:
    description: The server's gRPC port.
    type: int
    default: 7234
  service:
    description:
      - Health service name to ask about; the empty string asks about the server as a whole.
    type: str
    default: ''
  require_status:
    description:
      - When true, only a C(SERVING) answer counts as healthy.
      - When false, a server that speaks gRPC but has no health service also counts as healthy,
        which is all the Stigmer CLI's own probe (a gRPC dial) checks. An explicit C(NOT_SERVING)
        is unhealthy either way.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the connection and the answer.
    type: float
    default: 5
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
- name: Wait until the Stigmer server reports SERVING
  stigmer.runtime.stigmer_health:
    port: 7234
  register: stigmer_health
  until: stigmer_health.healthy
  retries: 30
  delay: 2
'''

RETURN = r'''
healthy:
  description: Whether the answer counts as healthy under O(require_status).
  returned: always
  type: bool
status:
  description:
    - The serving status the server gave (C(SERVING), C(NOT_SERVING), C(SERVICE_UNKNOWN), C(UNKNOWN)).
    - Null when nothing answered over gRPC or the server has no health service.
  returned: always
  type: str
  sample: SERVING
grpc:
  description: Whether a gRPC server answered on the port at all.
  returned: always
  type: bool
msg:
  description: What was asked and what came back, or why nothing came back.
  returned: always
  type: str
  sample: "127.0.0.1:7234 reports SERVING for the server"
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stigmer.runtime.plugins.module_utils.grpc_health import GrpcError, health_check


def judge(answer, require_status):
    """healthy under the policy: SERVING, or (when allowed) no health service at all."""
    return answer['status'] == 'SERVING' or (answer['status'] is None and not require_status)


def argument_spec():
    return dict(
        host=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=7234),
        service=dict(type='str', default=''),
        require_status=dict(type='bool', default=True),
        timeout=dict(type='float', default=5),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        answer = health_check(params['host'], params['port'], params['service'], params['timeout'])
    except GrpcError as exc:
        module.exit_json(changed=False, healthy=False, status=None, grpc=False, msg=str(exc))
    module.exit_json(changed=False, healthy=judge(answer, params['require_status']), status=answer['status'],
                     grpc=True, msg=answer['msg'])


if __name__ == '__main__':
    main()
