#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_artifact
short_description: Download one release artifact and verify its SHA256
version_added: 0.1.0
description:
  - Makes C(<dest>/<name>) a verified copy of the artifact at O(url), next to a record
    C(<dest>/<name>.sha256) in C(sha256sum) format.
  - A copy already in O(dest) is kept only when its bytes match a checksum obtained for this run. The
    pinned O(checksum) or the API O(digest) prove it without any network request; otherwise the small
    checksum file is fetched. The record is never taken as proof. A second run downloads nothing and
    changes nothing.
  - The expected SHA256 is the pinned O(checksum) when given; otherwise it is read from the release's
    checksum file at O(checksum_url), or, when the release publishes none, taken from O(digest). Without
    any of them the module fails rather than install anything unverified. When O(digest) (from the GitHub
    API) is given, it must agree with the checksum file before anything is downloaded.
  - Transient failures (connection errors, timeouts, an incomplete body, HTTP 429 with a short
    C(Retry-After), 500, 502, 503, 504) are retried up to O(attempts) times with exponential backoff and
    jitter; other failures (404, 401, 403, a rate limit that resets later, a checksum mismatch) are not.
    Every error message says how many attempts were made.
  - The whole download, retries included, must finish within O(download_timeout) seconds, and its body
    may not exceed O(size) when known or O(max_bytes) otherwise; a longer body fails at once.
  - Plain C(http://) URLs are refused unless they point at this machine (127.0.0.0/8, ::1, localhost) or
    O(allow_insecure) is set (then a warning is shown). A redirect from https to http is always refused.
  - The bytes are written to a temporary file in O(dest), hashed while they stream, and only moved into
    place when the hash matches; on any failure the temporary file is removed and nothing is installed.
  - Concurrent runs for the same O(dest) and O(name), such as Ansible forks on the controller, take an
    exclusive lock on C(<dest>/.locks/<name>.lock), so the artifact is downloaded once. Temporary files
    that an interrupted run left behind are removed under that lock.
author: stigmer.runtime contributors (@stigmer)
options:
  artifact:
    description:
      - One entry of M(stigmer.runtime.stigmer_release)'s RV(stigmer.runtime.stigmer_release#module:artifacts),
        passed whole. It supplies O(name), O(url), O(checksum_url), O(checksum_api_url), O(api_url), O(digest)
        and O(size), each unless given as an option of its own.
    type: dict
  name:
    description:
      - File name of the artifact, for example V(stigmer-v1.2.3-linux-amd64.tar.gz).
      - It names the file in O(dest) and the line to read in the checksum file.
      - Required unless O(artifact) gives it.
    type: str
  url:
    description:
      - Download URL of the artifact, fetched without any token.
      - Credentials given as C(user:password@) in it (or in O(checksum_url)) are taken out of the URL and used
        as O(url_username) and O(url_password) (which win when set); they never appear in results or messages.
      - Required unless O(artifact) gives it.
    type: str
  dest:
    description:
      - Directory that holds the verified artifact; created when missing.
      - With O(private), the artifact goes into C(<dest>/<source key>/), where the source key is a short hash
        of the directory of O(url), so that bytes from one mirror are never reused for another.
    type: path
    required: true
  private:
    description:
      - Treat O(dest) as a private cache, such as the controller's. Directories are created C(0700); an
        existing O(dest) must be owned by the user running the module and not writable by others (one that
        others may only read is tightened to C(0700)), and no parent may be changeable by another user.
        Otherwise the module fails.
    type: bool
    default: false
  url_username:
    description:
      - User name for HTTP basic authentication to the origin of O(url) and O(checksum_url) (a mirror). It is
        never sent to another host, such as the target of a redirect.
    type: str
  size:
    description:
      - Size in bytes of the artifact as the release states it (the GitHub API C(size)). A download that
        announces or delivers another size fails at once.
    type: int
  max_bytes:
    description:
      - Largest artifact accepted when O(size) is unknown (a mirror).
    type: int
    default: 1073741824
  download_timeout:
    description:
      - Seconds within which the checksum file and the artifact must have been fetched, retries included.
    type: int
    default: 1800
  allow_insecure:
    description:
      - Allow plain C(http://) URLs that do not point at this machine. Checksums still protect the bytes,
        but credentials travel in clear; a warning is shown.
    type: bool
    default: false
  github_api_url:
    description:
      - Base URL of the GitHub API. O(token) is sent only to O(api_url) and O(checksum_api_url) on this
        origin; any other origin fails the module.
    type: str
    default: https://api.github.com
  checksum_url:
    description:
      - URL of the checksum file published with the artifact, such as C(<url>.sha256) or C(checksums.txt).
      - Not fetched when O(checksum) is given.
    type: str
  checksum_name:
    description:
      - File name to look up in the checksum file, when it differs from O(name).
    type: str
  checksum_api_url:
    description:
      - GitHub API asset URL of the checksum file. Used instead of O(checksum_url), with O(token), for
        private repositories whose download URLs do not accept tokens.
    type: str
  checksum:
    description:
      - Pinned SHA256 of the artifact, as 64 hex digits or C(sha256:<hex>).
      - When given it is the expected value and the published checksum file is not fetched.
    type: str
  digest:
    description:
      - SHA256 that the GitHub API publishes for the asset (C(sha256:<hex>) or hex). It must match the
        expected SHA256.
    type: str
  api_url:
    description:
      - GitHub API asset URL of the artifact. With O(token), the artifact is downloaded from it with
        C(Accept=application/octet-stream), which private repositories need.
      - The token is sent to the API host only, never on the redirect to the asset host.
    type: str
  token:
    description:
      - GitHub token for O(api_url) and O(checksum_api_url). Never sent to O(url) or O(checksum_url).
      - Surrounding white space (such as the newline of C(echo TOKEN | ansible-vault encrypt_string)) is
        removed; a token with other control characters is refused.
    type: str
  timeout:
    description:
      - Timeout in seconds of each network operation (connecting, or waiting for the next bytes).
    type: int
    default: 60
extends_documentation_fragment:
  - stigmer.runtime.transport
attributes:
  check_mode:
    description:
      - Reports whether the artifact would be downloaded without writing anything.
      - The small checksum file is still fetched, so a missing or contradicting checksum fails in check
        mode too.
    support: full
  diff_mode:
    description: Shows the artifact's SHA256 before and after.
    support: full
  platform:
    description: Runs on the controller or on any POSIX host with Python 3.8 or newer.
    support: full
    platforms: posix
seealso:
  - module: stigmer.runtime.stigmer_release
'''

EXAMPLES = r'''
- name: Download the Stigmer CLI for linux-amd64 into the controller cache
  stigmer.runtime.stigmer_artifact:
    name: "{{ asset }}"
    url: "{{ stigmer_release.download_base }}{{ asset }}"
    checksum_url: "{{ stigmer_release.download_base }}{{ asset }}.sha256"
    digest: "{{ stigmer_release.assets[asset].digest | default(omit, true) }}"
    size: "{{ stigmer_release.assets[asset].size | default(omit, true) }}"
    dest: "{{ lookup('env', 'HOME') }}/.cache/stigmer/artifacts/{{ stigmer_release.tag }}"
    private: true
  vars:
    asset: stigmer-{{ stigmer_release.tag }}-linux-amd64.tar.gz
  delegate_to: localhost

- name: Download the Temporal CLI, checked against its release's checksums.txt
  stigmer.runtime.stigmer_artifact:
    name: temporal_cli_1.5.1_linux_arm64.tar.gz
    url: https://github.com/temporalio/cli/releases/download/v1.5.1/temporal_cli_1.5.1_linux_arm64.tar.gz
    checksum_url: https://github.com/temporalio/cli/releases/download/v1.5.1/checksums.txt
    dest: /var/cache/stigmer/artifacts/temporal-1.5.1

- name: Download from a mirror with a pinned checksum and basic authentication
  stigmer.runtime.stigmer_artifact:
    name: agent-runner-v1.2.3-linux-amd64
    url: https://artifacts.example.com/stigmer/v1.2.3/agent-runner-v1.2.3-linux-amd64
    url_username: deploy
    url_password: "{{ vault_mirror_password }}"
    checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    dest: /var/cache/stigmer/artifacts/v1.2.3
    attempts: 6
    download_timeout: 3600
'''

RETURN = r'''
path:
  description: Path of the verified artifact.
  returned: success
  type: str
  sample: /var/cache/stigmer/artifacts/v1.2.3/stigmer-v1.2.3-linux-amd64.tar.gz
sha256:
  description:
    - SHA256 of the artifact. In check mode, the SHA256 it would have.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
downloaded:
  description: Whether the artifact was downloaded by this run.
  returned: success
  type: bool
  sample: true
verified_against:
  description:
    - What the SHA256 was checked against. V(checksum_file) the published checksum file, V(pinned) the
      O(checksum) option, V(digest) the GitHub API digest.
  returned: success
  type: list
  elements: str
  sample: [checksum_file, digest]
url:
  description:
    - The URL the artifact was downloaded from (after redirects, without credentials or query string), or
      V(null) when nothing was downloaded.
  returned: success
  type: str
  sample: https://objects.example.com/stigmer-v1.2.3-linux-amd64.tar.gz
attempts:
  description: How many times the artifact was requested by this run (V(0) when nothing was downloaded).
  returned: success
  type: int
  sample: 1
msg:
  description: What was done.
  returned: always
  type: str
  sample: >-
    downloaded stigmer-v1.2.3-linux-amd64.tar.gz (20480512 bytes) from https://objects.example.com/a1b2 and
    verified it against the pinned checksum in stigmer_checksums
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import (
    DEFAULT_API_URL,
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_MAX_BYTES,
    ArtifactError,
    ensure_artifact,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._http import (
    apply_download_environment,
    scrub,
    transport_argument_spec,
    use_url_credentials,
)


# What an entry of stigmer_release's artifacts supplies.
ARTIFACT_KEYS = ('name', 'url', 'checksum_url', 'checksum_api_url', 'api_url', 'digest', 'size')


def argument_spec():
    spec = transport_argument_spec()
    spec.update(
        artifact=dict(type='dict'),
        name=dict(type='str'),
        url=dict(type='str'),
        dest=dict(type='path', required=True),
        checksum_url=dict(type='str'),
        checksum_name=dict(type='str'),
        checksum_api_url=dict(type='str'),
        checksum=dict(type='str'),
        digest=dict(type='str'),
        api_url=dict(type='str'),
        token=dict(type='str', no_log=True),
        timeout=dict(type='int', default=60),
        private=dict(type='bool', default=False),
        url_username=dict(type='str'),
        size=dict(type='int'),
        max_bytes=dict(type='int', default=DEFAULT_MAX_BYTES),
        download_timeout=dict(type='int', default=DEFAULT_DOWNLOAD_TIMEOUT),
        allow_insecure=dict(type='bool', default=False),
        github_api_url=dict(type='str', default=DEFAULT_API_URL),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for key in ARTIFACT_KEYS:
        if params[key] is None:
            params[key] = (params['artifact'] or {}).get(key)
    missing = [key for key in ('name', 'url') if not params[key]]
    if missing:
        module.fail_json(msg='missing required arguments: %s (give them, or an artifact that has them)'
                         % ', '.join(missing))
    use_url_credentials(module, ('url', 'checksum_url'), ('api_url', 'checksum_api_url'))
    apply_download_environment(module)
    try:
        result = ensure_artifact(
            params['name'], params['url'], params['dest'],
            checksum_url=params['checksum_url'], checksum_name=params['checksum_name'],
            checksum_api_url=params['checksum_api_url'], pinned=params['checksum'], digest=params['digest'],
            token=params['token'] or None, api_url=params['api_url'],
            validate_certs=params['validate_certs'], timeout=params['timeout'], check_mode=module.check_mode,
            private=params['private'], url_username=params['url_username'], url_password=params['url_password'],
            size=params['size'], max_bytes=params['max_bytes'], attempts=params['attempts'],
            download_timeout=params['download_timeout'], allow_insecure=params['allow_insecure'],
            github_api_url=params['github_api_url'])
    except (ArtifactError, OSError) as exc:
        module.fail_json(msg=scrub(exc, params['token'], params['url_password']))

    for warning in result.pop('warnings'):
        module.warn(warning)

    previous = result.pop('previous_sha256', None)
    if result['changed'] and module._diff:
        result['diff'] = {'before': previous or '<absent>', 'after': result['sha256'] or '<unknown>'}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
