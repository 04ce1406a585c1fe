#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_release
short_description: Resolve a Stigmer version to a release tag and its asset list
version_added: 0.1.0
description:
  - Resolves O(version) (V(latest) or a pinned V(1.2.3) / V(v1.2.3)) of a GitHub repository to a release
    tag, and returns the release's assets with their download URLs, API URLs and SHA256 digests.
  - V(latest) is the newest published release, by semantic version (then publication date), that carries
    the assets of every one of O(components) for every platform in O(platforms). Newer releases that do not
    (GitHub's own latest may carry no CLI at all) are skipped, returned in RV(skipped_releases) and named in a warning.
    Drafts are never considered, pre-releases only with O(include_prereleases).
  - V(latest) reads the release list from the GitHub API (100 releases a request, at most 10 requests),
    following its C(Link) header. With O(cache_dir), each page is revalidated with its ETag, and when the
    free web UI redirect C(/releases/latest) names the release the previous list read found highest and that
    release is cached and qualifies, no API request is made at all.
  - When no release qualifies, the module fails and names, per platform, the newest release that has a
    build for it.
  - A pinned version that lacks a platform of O(platforms) does not fail the module; the hosts of that
    platform have nothing to install, and RV(newest_by_platform) names the newest release that has a build
    for it (the release list is read only in that case).
  - With O(cache_dir), a release already cached for a pinned tag is used without any network request,
    and API answers are stored there (with their ETag) for the next run.
  - With O(mirror_url), GitHub is never contacted. A pinned version needs no request at all; V(latest) is
    read from the first line of C(<mirror_url>/latest). The asset list is then unknown, so O(platforms) is
    not checked.
  - Every request is retried on transient failures (connection errors, timeouts, HTTP 429 with a short
    C(Retry-After), 500, 502, 503, 504) up to O(attempts) times with exponential backoff and jitter; 404,
    401, 403 and a rate limit that resets later are not retried. Error messages say how many attempts
    were made.
  - Plain C(http://) URLs are refused unless they point at this machine (127.0.0.0/8, ::1, localhost) or
    O(allow_insecure) is set (then a warning is shown); a redirect from https to http is always refused.
  - The module only reads; it never changes anything, so it always reports C(changed=false).
author: stigmer.runtime contributors (@stigmer)
options:
  repo:
    description:
      - GitHub repository that publishes the releases, as C(owner/name).
    type: str
    default: stigmer/stigmer
  version:
    description:
      - V(latest), or a pinned version such as V(1.2.3) or V(v1.2.3).
    type: str
    default: latest
  include_prereleases:
    description:
      - When O(version=latest), also consider pre-releases (tags such as V(v1.3.0-rc.1)), and name them in
        RV(newest_by_platform).
      - Drafts are never considered.
    type: bool
    default: false
  platforms:
    description:
      - The platforms (C(os-arch)) of the hosts in the play.
      - V(latest) resolves to the newest release that has every one of O(components) for each of them.
      - When omitted or empty, a release qualifies when it has every component for any one platform.
    type: list
    elements: str
    choices: [darwin-amd64, darwin-arm64, linux-amd64, linux-arm64]
  mirror_url:
    description:
      - Base URL of a mirror that serves releases as C(<mirror_url>/<tag>/<asset>) and the newest tag in
        C(<mirror_url>/latest).
      - When set, GitHub is not contacted.
      - Credentials given as C(user:password@) in it are taken out of the URL and used as O(url_username) and
        O(url_password) (which win when set); they never appear in results or messages.
    type: str
  url_username:
    description:
      - User name for HTTP basic authentication to the origin of O(mirror_url), never sent to another host.
    type: str
  checksums:
    description:
      - Pinned SHA256 checksums by asset name (the role's C(stigmer_checksums)).
      - A name that belongs to one of O(components) (it starts like their assets, such as C(stigmer-),
        C(agent-runner-) or C(temporal_cli_)) but is not an asset of the resolved release fails the module,
        naming the assets the release has. Names of other components are left to their own release.
    type: dict
  allow_insecure:
    description:
      - Allow plain C(http://) for O(api_url), O(github_url) and O(mirror_url) when they do not point at this
        machine. Tokens and credentials then travel in clear; a warning is shown.
    type: bool
    default: false
  cache_dir:
    description:
      - Directory holding cached release answers as C(<cache_dir>/<owner>/<repo>/<tag>/release.json), and the
        pages of the release list with their ETags under C(<cache_dir>/<owner>/<repo>/_api/).
      - When omitted, nothing is cached.
      - The directory is created C(0700). An existing one must be owned by the user running the module and not
        writable by others (one that others may only read is tightened to C(0700)), and no parent may be
        changeable by another user; otherwise the module fails.
    type: path
  components:
    description:
      - Components whose downloads are planned per platform in RV(artifacts).
      - A platform is offered only when the release has an asset for every component; V(latest) needs them
        for every platform in O(platforms).
    type: list
    elements: str
    choices: [stigmer, agent-runner, temporal]
    default: [stigmer, agent-runner]
  timeout:
    description:
      - Seconds within which each HTTP request, answer included, must complete.
    type: int
    default: 30
extends_documentation_fragment:
  - stigmer.runtime.github
  - stigmer.runtime.transport
attributes:
  check_mode:
    description: Can run in check mode and return the same result as in a real run.
    support: full
  diff_mode:
    description: The module changes nothing, so there is no diff.
    support: none
  platform:
    description: Runs on the controller or on any POSIX host with Python 3.8 or newer.
    support: full
    platforms: posix
notes:
  - Without a token, the GitHub API allows 60 requests an hour per IP address, and a 304 answer to a
    conditional request counts too. Use the module once per play (C(run_once)), pass a token, or pin the
    version to stay well below it.
seealso:
  - module: stigmer.runtime.stigmer_artifact
'''

EXAMPLES = r'''
- name: Resolve the newest Stigmer release with a build for every platform of the play
  stigmer.runtime.stigmer_release:
    platforms: [linux-amd64, darwin-arm64]
    cache_dir: "{{ lookup('env', 'HOME') }}/.cache/stigmer/releases"
  delegate_to: localhost
  run_once: true
  register: stigmer_release

- name: Resolve a pinned version with a token (private fork)
  stigmer.runtime.stigmer_release:
    repo: example/stigmer
    version: 1.2.3
    token: "{{ lookup('env', 'GITHUB_TOKEN') }}"

- name: Resolve the newest tag published on an internal mirror
  stigmer.runtime.stigmer_release:
    mirror_url: https://artifacts.example.com/stigmer
'''

RETURN = r'''
tag:
  description: The release tag.
  returned: success
  type: str
  sample: v1.1.0
version:
  description: The release version, without the leading C(v).
  returned: success
  type: str
  sample: 1.1.0
prerelease:
  description: Whether the release is a pre-release.
  returned: success
  type: bool
  sample: false
source:
  description:
    - Where the asset list came from. V(api) the GitHub API, V(cache) the release cache (for V(latest), the
      cached release list with every page confirmed unchanged by the API, or the redirect fast path),
      V(mirror) a mirror (no asset list).
  returned: success
  type: str
  sample: api
assets:
  description:
    - The release's assets by name, or V(null) with a mirror, whose list is unknown.
    - Each holds C(download_url), C(api_url) (the API asset URL, which serves the bytes of private
      repositories), C(digest) (the lowercase SHA256 published by GitHub, or V(null)) and C(size).
  returned: success
  type: dict
  sample:
    stigmer-v1.1.0-linux-amd64.tar.gz:
      download_url: https://github.com/stigmer/stigmer/releases/download/v1.1.0/stigmer-v1.1.0-linux-amd64.tar.gz
      api_url: https://api.github.com/repos/stigmer/stigmer/releases/assets/123
      digest: 0f343b0931126a20f133d67c2b018a3b5b1b2bd0b1a6b1c5d0a4a7b1b1e2f3a4
      size: 20480512
download_base:
  description: Base URL of the release's files; an asset's URL is this followed by its name.
  returned: success
  type: str
  sample: https://github.com/stigmer/stigmer/releases/download/v1.1.0/
carries:
  description:
    - What the release holds for O(components), worded to follow "it carries" in a message.
    - V(builds for ...) listing the platforms of RV(platforms), or, when that list is empty, why not such as
      V(no assets), V(no stigmer CLI or agent-runner assets) or V(no complete stigmer CLI and agent-runner build
      for any platform).
    - V(null) with a mirror, whose asset list is unknown.
  returned: success
  type: str
  sample: builds for darwin-amd64, darwin-arm64, linux-amd64
skipped_releases:
  description:
    - For V(latest), the newer releases passed over because they lack what O(components) and O(platforms)
      need, newest first, each with its C(tag) and a C(reason) such as V(no assets),
      V(no stigmer CLI or agent-runner assets) or V(no build for linux-arm64). Empty otherwise.
  returned: success
  type: list
  elements: dict
  sample:
    - tag: v3.27.2
      reason: no assets
    - tag: v3.27.1
      reason: no stigmer CLI or agent-runner assets
newest_by_platform:
  description:
    - For a pinned version, one entry per platform of O(platforms) that the release has no build for, with
      the tag of the newest release that has one, or V(null) when no release has.
    - Empty when nothing is missing, for V(latest) (which always covers O(platforms)), and with a mirror.
    - When the release list cannot be read, it stays empty and a warning says why.
  returned: success
  type: dict
  sample:
    linux-arm64: v0.1.0
platforms:
  description: Platforms (C(os-arch)) for which the release has every requested component, sorted.
  returned: success
  type: list
  elements: str
  sample: [darwin-amd64, darwin-arm64, linux-amd64]
artifacts:
  description:
    - Per offered platform, one entry per component with what to download and how to verify it.
    - C(size) is the size the GitHub API states (V(null) with a mirror); pass it to
      M(stigmer.runtime.stigmer_artifact) so a longer body fails at once.
    - A mirror lists no assets, so every supported platform is planned there.
  returned: success
  type: dict
  sample:
    linux-amd64:
      - component: agent-runner
        name: agent-runner-v1.1.0-linux-amd64
        repo: stigmer/stigmer
        release: v1.1.0
        archive: false
        url: https://github.com/stigmer/stigmer/releases/download/v1.1.0/agent-runner-v1.1.0-linux-amd64
        api_url: https://api.github.com/repos/stigmer/stigmer/releases/assets/2
        digest: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        size: 61203456
        checksum_url: https://github.com/stigmer/stigmer/releases/download/v1.1.0/agent-runner-v1.1.0-linux-amd64.sha256
        checksum_api_url: https://api.github.com/repos/stigmer/stigmer/releases/assets/3
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.stigmer.runtime.plugins.module_utils._http import (
    apply_download_environment,
    github_argument_spec,
    scrub,
    transport_argument_spec,
    use_url_credentials,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._platform import SUPPORTED_PLATFORMS
from ansible_collections.stigmer.runtime.plugins.module_utils._release import ReleaseError, plan_artifacts, resolve_release
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError


def argument_spec():
    spec = transport_argument_spec()
    spec.update(github_argument_spec())
    spec.update(
        repo=dict(type='str', default='stigmer/stigmer'),
        version=dict(type='str', default='latest'),
        include_prereleases=dict(type='bool', default=False),
        platforms=dict(type='list', elements='str', choices=list(SUPPORTED_PLATFORMS)),
        mirror_url=dict(type='str'),
        cache_dir=dict(type='path'),
        timeout=dict(type='int', default=30),
        components=dict(type='list', elements='str', choices=['stigmer', 'agent-runner', 'temporal'],
                        default=['stigmer', 'agent-runner']),
        url_username=dict(type='str'),
        checksums=dict(type='dict'),
        allow_insecure=dict(type='bool', default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    use_url_credentials(module, ('mirror_url',), ('api_url', 'github_url'))
    apply_download_environment(module)
    try:
        result = resolve_release(
            params['repo'], params['version'],
            github_url=params['github_url'], api_url=params['api_url'], mirror_url=params['mirror_url'],
            token=params['token'] or None, include_prereleases=params['include_prereleases'],
            cache_dir=params['cache_dir'], validate_certs=params['validate_certs'], timeout=params['timeout'],
            components=params['components'], platforms=params['platforms'] or [],
            url_username=params['url_username'], url_password=params['url_password'],
            checksums=params['checksums'], attempts=params['attempts'], allow_insecure=params['allow_insecure'])
    except (ReleaseError, VersionError) as exc:
        module.fail_json(msg=scrub(exc, params['token'], params['url_password']))
    for warning in result.pop('warnings'):
        module.warn(warning)
    artifacts = plan_artifacts(result, params['repo'].strip(), params['components'])
    # Resolving reads only; writing the release cache is not a change to report.
    module.exit_json(changed=False, artifacts=artifacts, platforms=sorted(artifacts), **result)


if __name__ == '__main__':
    main()
