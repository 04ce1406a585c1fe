# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options every module that talks to GitHub or a mirror shares; their argument spec is
    # module_utils._http.transport_argument_spec(), so the two cannot drift apart.
    DOCUMENTATION = r'''
options:
  attempts:
    description:
      - How many times each request is sent before a transient failure is reported.
      - Resets, refused connections, timeouts, short reads, HTTP 500, 502, 503 and 504, and 429 with a short
        C(Retry-After) are retried with bounded exponential backoff and jitter; 401, 403 and 404 are not.
    type: int
    default: 4
  download_environment:
    description:
      - Environment variables set in the module's own process before any request, for example C(https_proxy),
        C(no_proxy) or C(SSL_CERT_FILE).
      - Given here rather than with the task's C(environment) keyword, which puts them on the command line run on the
        host where C(ps) and C(-vvv) show them; the password of a proxy URL here is masked in everything the module
        returns.
    type: dict
    default: {}
  url_password:
    description:
      - Password for O(url_username). Surrounding white space is removed.
    type: str
  validate_certs:
    description:
      - Whether to validate TLS certificates.
    type: bool
    default: true
'''
