# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where the releases come from, for the modules that look them up (stigmer_release,
    # stigmer_mirror); their argument spec is module_utils._http.github_argument_spec().
    DOCUMENTATION = r'''
options:
  github_url:
    description:
      - Base URL of the GitHub web site, used for download URLs and the C(/releases/latest) redirect.
      - Use V(https://HOST) for GitHub Enterprise Server.
    type: str
    default: https://github.com
  api_url:
    description:
      - Base URL of the GitHub REST API.
      - Use V(https://HOST/api/v3) for GitHub Enterprise Server.
    type: str
    default: https://api.github.com
  token:
    description:
      - GitHub token, sent as a Bearer C(Authorization) header to the API host only, never to the web site,
        asset hosts or mirrors.
      - Raises the API rate limit and gives access to private repositories (their artifacts are then
        downloaded through the API).
      - Surrounding white space (such as the newline of C(echo TOKEN | ansible-vault encrypt_string)) is
        removed; a token with other control characters is refused.
    type: str
'''
