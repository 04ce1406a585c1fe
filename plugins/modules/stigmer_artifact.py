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
  - A copy whose bytes still match its record (and the pin or digest, when given) is kept without any
    network request, so a second run downloads nothing and changes nothing.
  - The expected SHA256 is the pinned O(checksum) when given; otherwise it is read from the release's
    checksum file at O(checksum_url). Without either the module fails rather than install anything
    unverified. When O(digest) (from the GitHub API) is given, it must agree with the expected SHA256
    before anything is downloaded.
  - The bytes are written to a temporary file in O(dest), hashed while they stream, and only moved into
    place when the hash matches; on any failure the temporary file is removed and nothing is installed.
  - Concurrent runs for the same O(dest) and O(name), such as Ansible forks on the controller, take an
    exclusive lock on C(<dest>/.locks/<name>.lock), so the artifact is downloaded once.
author: stigmer.runtime contributors (@stigmer)
options:
  name:
    description:
      - File name of the artifact, for example V(stigmer-v1.2.3-linux-amd64.tar.gz).
      - It names the file in O(dest) and the line to read in the checksum file.
    type: str
    required: true
  url:
    description:
      - Download URL of the artifact, fetched without any token.
    type: str
    required: true
  dest:
    description:
      - Directory that holds the verified artifact; created when missing.
    type: path
    required: true
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
    type: str
  validate_certs:
    description:
      - Whether to validate TLS certificates.
    type: bool
    default: true
  timeout:
    description:
      - Timeout in seconds of each network operation.
    type: int
    default: 60
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
    dest: "{{ lookup('env', 'HOME') }}/.cache/stigmer/artifacts/{{ stigmer_release.tag }}"
  vars:
    asset: stigmer-{{ stigmer_release.tag }}-linux-amd64.tar.gz
  delegate_to: localhost

- name: Download the Temporal CLI, checked against its release's checksums.txt
  stigmer.runtime.stigmer_artifact:
    name: temporal_cli_1.5.1_linux_arm64.tar.gz
    url: https://github.com/temporalio/cli/releases/download/v1.5.1/temporal_cli_1.5.1_linux_arm64.tar.gz
    checksum_url: https://github.com/temporalio/cli/releases/download/v1.5.1/checksums.txt
    dest: /var/cache/stigmer/artifacts/temporal-1.5.1

- name: Download from a mirror with a pinned checksum
  stigmer.runtime.stigmer_artifact:
    name: agent-runner-v1.2.3-linux-amd64
    url: https://artifacts.example.com/stigmer/v1.2.3/agent-runner-v1.2.3-linux-amd64
    checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    dest: /var/cache/stigmer/artifacts/v1.2.3
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
      O(checksum) option, V(digest) the GitHub API digest, V(record) the record of an earlier verified
      download.
  returned: success
  type: list
  elements: str
  sample: [checksum_file, digest]
msg:
  description: What was done.
  returned: always
  type: str
  sample: downloaded stigmer-v1.2.3-linux-amd64.tar.gz (20480512 bytes) and verified it against the pinned checksum in stigmer_checksums
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stigmer.runtime.plugins.module_utils.artifact import ArtifactError, ensure_artifact


def argument_spec():
    return dict(
        name=dict(type='str', required=True),
        url=dict(type='str', required=True),
        dest=dict(type='path', required=True),
        checksum_url=dict(type='str'),
        checksum_name=dict(type='str'),
        checksum_api_url=dict(type='str'),
        checksum=dict(type='str'),
        digest=dict(type='str'),
        api_url=dict(type='str'),
        token=dict(type='str', no_log=True),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='int', default=60),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        result = ensure_artifact(
            params['name'], params['url'], params['dest'],
            checksum_url=params['checksum_url'], checksum_name=params['checksum_name'],
            checksum_api_url=params['checksum_api_url'], pinned=params['checksum'], digest=params['digest'],
            token=params['token'] or None, api_url=params['api_url'],
            validate_certs=params['validate_certs'], timeout=params['timeout'], check_mode=module.check_mode)
    except (ArtifactError, OSError) as exc:
        module.fail_json(msg='%s' % exc)

    previous = result.pop('previous_sha256', None)
    if result['changed'] and module._diff:
        result['diff'] = {'before': previous or '<absent>', 'after': result['sha256'] or '<unknown>'}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
