#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_mirror
short_description: Build and keep current a mirror directory of Stigmer or Temporal CLI releases
version_added: 0.1.0
description:
  - Fills O(dest) with the releases of one GitHub repository in the layout the role reads from
    C(stigmer_mirror_url) or C(stigmer_temporal_mirror_url), so that an air-gapped fleet can install from any
    plain web server that serves the directory.
  - "The layout: C(<dest>/latest) (one line, the newest tag here), C(<dest>/<tag>/<asset>) for every artifact of
    every platform, next to the checksum files the role verifies them against, byte for byte as published
    (C(<asset>.sha256) for the Stigmer CLI and the agent-runner, one C(checksums.txt) for the Temporal CLI), and
    C(<dest>/manifest.json), which lists every file with its SHA256 and size."
  - Each of O(versions) is resolved as M(stigmer.runtime.stigmer_release) resolves it for the role. V(latest) is
    the newest published release that has every one of O(components) for every one of O(platforms), and the
    same warnings name the newer releases it passed over. A pinned release that lacks some of O(platforms) is
    mirrored for the platforms it has, and a warning names the ones it lacks.
  - Every artifact is downloaded and verified as M(stigmer.runtime.stigmer_artifact) does it, against the
    release's checksum file and the SHA256 digest the GitHub API states (both must agree), with the same
    retries, deadlines and size limits. Bytes land in a temporary file in the release's directory and are moved
    into place only once they match; on any failure the temporary file is removed and nothing is written for
    that artifact.
  - A file already in O(dest) is hashed again on every run. When it matches what the release publishes it is
    not downloaded again; when it does not, it is replaced and a warning says so.
  - Releases mirrored by earlier runs stay in O(dest) and in C(manifest.json). C(latest) names the newest tag
    in the mirror by semantic version; pre-releases count only with O(include_prereleases) or when the mirror
    holds nothing else.
  - C(manifest.json) holds no time stamps, so a run that finds everything in place writes nothing and reports
    no change.
  - Directories are created C(0755) and files C(0644), owned by the user running the module, so that a web
    server can serve them. Concurrent runs for the same O(dest) wait for each other (a lock in
    C(<dest>/.locks/)).
author: stigmer.runtime contributors (@stigmer)
options:
  dest:
    description:
      - The mirror directory of one repository, created when missing. Serve it as C(stigmer_mirror_url) (for
        O(repo=stigmer/stigmer)) or C(stigmer_temporal_mirror_url) (for O(repo=temporalio/cli)).
      - A directory whose C(manifest.json) belongs to another repository is refused.
    type: path
    required: true
  repo:
    description:
      - GitHub repository whose releases are mirrored, as C(owner/name), such as V(stigmer/stigmer) or
        V(temporalio/cli).
    type: str
    required: true
  versions:
    description:
      - Releases to mirror, each V(latest) or a pinned version such as V(1.2.3) or V(v1.2.3).
    type: list
    elements: str
    default: [latest]
  components:
    description:
      - Components whose artifacts are mirrored. V(stigmer) and V(agent-runner) for O(repo=stigmer/stigmer),
        V(temporal) for O(repo=temporalio/cli).
    type: list
    elements: str
    choices: [stigmer, agent-runner, temporal]
    default: [stigmer, agent-runner]
  platforms:
    description:
      - Platforms (C(os-arch)) whose artifacts are mirrored.
    type: list
    elements: str
    choices: [darwin-amd64, darwin-arm64, linux-amd64, linux-arm64]
    default: [linux-amd64, linux-arm64, darwin-amd64, darwin-arm64]
  include_prereleases:
    description:
      - Let V(latest) in O(versions) resolve to a pre-release, and let C(<dest>/latest) name one.
      - Drafts are never mirrored.
    type: bool
    default: false
  url_username:
    description:
      - User name for HTTP basic authentication to the origin of the download URLs (a GitHub Enterprise Server
        behind basic authentication), never sent to another host. GitHub itself needs none.
    type: str
  timeout:
    description:
      - Seconds within which each request of the release lookup must complete, and that each download may wait
        to connect or for its next bytes.
    type: int
    default: 30
  allow_insecure:
    description:
      - Allow plain C(http://) for O(api_url) and O(github_url) when they do not point at this machine. Tokens
        and credentials then travel in clear; a warning is shown.
    type: bool
    default: false
extends_documentation_fragment:
  - stigmer.runtime.github
  - stigmer.runtime.transport
attributes:
  check_mode:
    description:
      - Reports what would be downloaded and written (RV(written)) without writing anything.
      - The release lookup and the small checksum files are still fetched, so a missing or contradicting
        checksum fails in check mode too.
    support: full
  diff_mode:
    description: Shows the changes to C(latest) and C(manifest.json), which lists every file with its SHA256.
    support: full
  platform:
    description: Runs on the controller or on any POSIX host with Python 3.8 or newer.
    support: full
    platforms: posix
notes:
  - Serve O(dest) with any web server, for example C(python3 -m http.server --directory DEST 8080), and set
    C(stigmer_mirror_url) (or C(stigmer_temporal_mirror_url)) to its URL. Plain C(http://) to another machine
    needs C(stigmer_allow_insecure_transport) on the fleet; the checksums still protect the bytes.
  - Without a token, the GitHub API allows 60 requests an hour per IP address; each pinned version costs one
    request and V(latest) one per 100 releases.
seealso:
  - module: stigmer.runtime.stigmer_release
  - module: stigmer.runtime.stigmer_artifact
'''

EXAMPLES = r'''
- name: Mirror the newest Stigmer release and a pinned one for Linux and macOS
  stigmer.runtime.stigmer_mirror:
    dest: /srv/mirror/stigmer
    repo: stigmer/stigmer
    versions: [latest, 0.1.0]
    components: [stigmer, agent-runner]
    token: "{{ lookup('ansible.builtin.env', 'GITHUB_TOKEN') }}"
  delegate_to: localhost
  register: stigmer_mirror

- name: Mirror the Temporal CLI the role installs, for Linux only
  stigmer.runtime.stigmer_mirror:
    dest: /srv/mirror/temporal
    repo: temporalio/cli
    versions: ["1.5.1"]
    components: [temporal]
    platforms: [linux-amd64, linux-arm64]

- name: Show what a refresh would download, without writing anything
  stigmer.runtime.stigmer_mirror:
    dest: /srv/mirror/stigmer
    repo: stigmer/stigmer
  check_mode: true
'''

RETURN = r'''
tags:
  description: Each of O(versions), as given, with the release tag it resolved to.
  returned: success
  type: dict
  sample:
    latest: v0.1.0
    0.0.7: v0.0.7
written:
  description:
    - Paths inside O(dest) that this run wrote (in check mode, that it would write), in the order written.
    - Empty when the mirror was already up to date.
  returned: success
  type: list
  elements: str
  sample:
    - v0.1.0/agent-runner-v0.1.0-linux-amd64
    - v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz
    - v0.1.0/agent-runner-v0.1.0-linux-amd64.sha256
    - v0.1.0/stigmer-v0.1.0-linux-amd64.tar.gz.sha256
    - latest
    - manifest.json
releases:
  description: Every release tag in the mirror, the ones of earlier runs included, newest first.
  returned: success
  type: list
  elements: str
  sample: [v0.1.0, v0.0.7]
latest:
  description: The tag that C(<dest>/latest) names.
  returned: success
  type: str
  sample: v0.1.0
warnings:
  description:
    - Newer releases V(latest) passed over, platforms a pinned release lacks, checksum files a release does not
      publish, and files that were replaced because they did not match.
  returned: when there are any
  type: list
  elements: str
  sample:
    - >-
      v0.0.6 of stigmer/stigmer has no build for linux-arm64, so only darwin-amd64, darwin-arm64, linux-amd64
      was mirrored. Newest release with a build, per platform: linux-arm64: v0.1.0
msg:
  description: What was done.
  returned: always
  type: str
  sample: mirrored v0.1.0 of stigmer/stigmer into /srv/mirror/stigmer (6 files written); latest is v0.1.0
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stigmer.runtime.plugins.module_utils._mirror import (
    DEFAULT_PLATFORMS,
    MirrorError,
    mirror_releases,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._http import (
    apply_download_environment,
    github_argument_spec,
    scrub,
    transport_argument_spec,
    use_url_credentials,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils._release import ReleaseError
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError


def argument_spec():
    spec = transport_argument_spec()
    spec.update(github_argument_spec())
    spec.update(
        dest=dict(type='path', required=True),
        repo=dict(type='str', required=True),
        versions=dict(type='list', elements='str', default=['latest']),
        components=dict(type='list', elements='str', choices=['stigmer', 'agent-runner', 'temporal'],
                        default=['stigmer', 'agent-runner']),
        platforms=dict(type='list', elements='str', choices=list(SUPPORTED_PLATFORMS),
                       default=list(DEFAULT_PLATFORMS)),
        include_prereleases=dict(type='bool', default=False),
        url_username=dict(type='str'),
        timeout=dict(type='int', default=30),
        allow_insecure=dict(type='bool', default=False),
    )
    return spec


def summary(result, repo, dest, check_mode):
    tags = ', '.join(sorted(set(result['tags'].values())))
    count = len(result['written'])
    if not count:
        done = 'already up to date'
    elif check_mode:
        done = '%d files would be written' % count
    else:
        done = '%d files written' % count
    return 'mirrored %s of %s into %s (%s); latest is %s' % (tags, repo, dest, done, result['latest'])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    # The token goes to the API only: credentials in these URLs would travel with it.
    use_url_credentials(module, (), ('api_url', 'github_url'))
    apply_download_environment(module)
    try:
        result = mirror_releases(
            params['dest'], params['repo'], versions=params['versions'], components=params['components'],
            platforms=params['platforms'], include_prereleases=params['include_prereleases'],
            github_url=params['github_url'], api_url=params['api_url'], token=params['token'] or None,
            url_username=params['url_username'], url_password=params['url_password'],
            validate_certs=params['validate_certs'], timeout=params['timeout'], attempts=params['attempts'],
            allow_insecure=params['allow_insecure'], check_mode=module.check_mode)
    except (MirrorError, ReleaseError, VersionError, OSError) as exc:
        module.fail_json(msg=scrub(exc, params['token'], params['url_password']))

    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if result['changed'] and module._diff:
        result['diff'] = diff
    module.exit_json(msg=summary(result, params['repo'].strip(), params['dest'], module.check_mode), **result)


if __name__ == '__main__':
    main()
