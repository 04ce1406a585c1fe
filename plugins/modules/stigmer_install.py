#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_install
short_description: Install one version of a release into its own directory and switch a link to it
version_added: 0.1.0
description:
  - Builds C(<root>/<version>/bin/) from verified artifacts that are already on the managed host,
    writes extra files such as C(share/agent-runner.version), records everything in
    C(<root>/<version>/.manifest.json) and then points O(link) at the version with one
    atomic rename, so readers see either the old or the new version, never a mix.
  - The new version is staged in C(<root>/.<version>.tmp-XXXX) and checked there before anything
    live is touched. With O(platform) set, the header of every executable in C(bin/) must say it
    runs on that platform (ELF for Linux, thin or universal Mach-O for macOS, or a C(#!) script
    whose interpreter exists here and matches); nothing is executed for that. Then the commands in
    O(checks) run. A binary for another CPU or a failed check fails the task and leaves the active
    version and link as they were.
  - A binary's identity is its verified sha256 and its header. Run O(checks) only on executables
    that answer a command and exit; never point one at the agent-runner, which ignores its
    arguments and starts a worker.
  - A version directory counts as installed only if its manifest lists the same artifact
    digests and every recorded file still hashes, and is owned and permissioned, as recorded;
    otherwise it is rebuilt from the verified artifacts.
  - Rolling back is running the module with an older version that is still kept; only the link
    switches.
  - Old versions beyond O(keep) are removed, least recently installed or activated first;
    the version the link points to is never removed.
  - Uses only the Python standard library; never runs C(tar).
author: stigmer.runtime contributors (@stigmer)
options:
  root:
    description:
      - Directory that holds one subdirectory per version, for example C(/opt/stigmer/versions).
      - Created (mode 0755) when missing.
    type: path
    required: true
  version:
    description:
      - Name of the version directory, for example V(v1.1.0) or V(1.5.1).
    type: str
    required: true
  sources:
    description:
      - Verified artifacts on the managed host that make up C(bin/).
      - Each artifact is hashed again before use; a mismatch fails the task and changes nothing.
    type: list
    elements: dict
    required: true
    suboptions:
      src:
        description:
          - Path of the artifact on the managed host.
          - Under check mode it may be missing (a fresh host whose artifacts were not staged);
            the decision is then made from the manifest and O(sources[].sha256) alone.
        type: path
        required: true
      sha256:
        description:
          - Expected SHA256 of O(sources[].src), as hex or C(sha256:<hex>).
        type: str
        required: true
      archive:
        description:
          - Whether O(sources[].src) is a C(.tar.gz) whose executables go into C(bin/).
          - When V(false) the file itself is installed as C(bin/<dest>).
        type: bool
        default: false
      members:
        description:
          - For archives, the executables to install; a name may sit in a subdirectory of the
            archive if it is unique there.
          - By default every regular file at the top level of the archive that the archive marks
            executable is installed (every top-level file if none is marked), so a README or
            LICENSE beside the binaries stays out of C(bin/).
          - Changing the list rebuilds the version directory.
        type: list
        elements: str
      dest:
        description:
          - For raw files, the name in C(bin/). Defaults to the basename of O(sources[].src).
        type: str
  files:
    description:
      - Extra files to write into the version directory, as a mapping of relative path to content,
        for example C(share/agent-runner.version) mapped to C(v1.1.0) and a newline. Written with mode 0644.
      - Paths must stay inside the version directory and cannot be inside C(bin/).
    type: dict
    default: {}
  platform:
    description:
      - Release platform of this host, for example V(linux-amd64) (the C(platform) that
        M(stigmer.runtime.stigmer_platform) reports).
      - When set, every executable in C(bin/) must be built for it, read from its first bytes only,
        before anything live changes. It is checked again, from the headers, when the version is
        found already installed.
      - A universal Mach-O binary passes when it carries this host's architecture
        (C(arm64e) counts as C(arm64)).
    type: str
    choices: [darwin-amd64, darwin-arm64, linux-amd64, linux-arm64]
  checks:
    description:
      - Commands run from the staged directory before the version is put in place (after the
        O(platform) check), with the environment reduced to C(PATH=/usr/bin:/bin), no standard
        input and a 30 second timeout. A command that cannot be started or times out always fails.
      - Without O(checks[].expect) a check passes when the command exits 0, for example
        C(stigmer --help).
      - With O(checks[].expect) the command must exit 0 and the first semantic version found in
        its standard output and standard error must equal O(checks[].expect); whole lines are
        never compared.
      - Failure messages carry the exit status and the tail of the output.
    type: list
    elements: dict
    default: []
    suboptions:
      command:
        description:
          - Name of an executable in C(bin/).
        type: str
        required: true
      args:
        description:
          - Arguments passed to the command.
        type: list
        elements: str
        default: ['--version']
      expect:
        description:
          - The version the command must report, with or without a leading C(v).
        type: str
      version_optional:
        description:
          - With V(true), a command that prints no version passes whatever its exit status, as a
            CLI without a version flag does (C(stigmer --version) of v0.0.5 to v0.0.7 prints
            nothing and exits 1); one that prints a version must still print O(checks[].expect)
            and exit 0.
          - Requires O(checks[].expect).
        type: bool
        default: false
  link:
    description:
      - Path of the symbolic link to the active version, for example C(/opt/stigmer/current).
      - It is written as a path relative to its own directory, for example C(versions/v1.1.0).
      - If the path exists and is not a symbolic link the task fails.
    type: path
    required: true
  keep:
    description:
      - How many version directories to keep, counting the active one.
      - The others that were most recently installed or activated are kept, whatever their
        version number, so that a rollback target survives.
    type: int
    default: 2
  owner:
    description:
      - Owner of the installed directories and files.
    type: str
    default: root
  group:
    description:
      - Group of the installed directories and files.
      - Defaults to the platform's root group (V(root) on Linux, V(wheel) on macOS).
    type: str
  switch:
    description:
      - Whether to point O(link) at this version.
      - With V(false) the version is only installed, and kept even if O(keep) would prune it.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Works on a fresh host whose artifacts were not copied yet.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - Shows the active version before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - A stale C(.<version>.tmp-*) directory or C(<link>.tmp-*) link left by an interrupted run
    is removed on the next run.
seealso:
  - module: stigmer.runtime.stigmer_launchd
'''

EXAMPLES = r'''
- name: Install stigmer v1.1.0 (linux-amd64)
  stigmer.runtime.stigmer_install:
    root: /opt/stigmer/versions
    version: v1.1.0
    link: /opt/stigmer/current
    sources:
      - src: /var/cache/stigmer/artifacts/v1.1.0/stigmer-v1.1.0-linux-amd64.tar.gz
        sha256: "{{ stigmer_cli_sha256 }}"
        archive: true
      - src: /var/cache/stigmer/artifacts/v1.1.0/agent-runner-v1.1.0-linux-amd64
        sha256: "{{ stigmer_agent_runner_sha256 }}"
        dest: agent-runner
    files:
      share/agent-runner.version: "v1.1.0\n"
    platform: linux-amd64
    checks:
      # Older CLIs have no version flag; newer ones must name this version.
      - command: stigmer
        expect: v1.1.0
        version_optional: true
      - command: stigmer
        args: [--help]
    keep: 2

- name: Install Temporal CLI 1.5.1, only the temporal executable
  stigmer.runtime.stigmer_install:
    root: /opt/stigmer/temporal/versions
    version: 1.5.1
    link: /opt/stigmer/temporal/current
    sources:
      - src: /var/cache/stigmer/artifacts/temporal/temporal_cli_1.5.1_linux_amd64.tar.gz
        sha256: "{{ temporal_sha256 }}"
        archive: true
        members: [temporal]
    platform: linux-amd64
    checks:
      - command: temporal
        expect: 1.5.1

- name: Roll back to the kept v1.0.0 (switches the link only)
  stigmer.runtime.stigmer_install:
    root: /opt/stigmer/versions
    version: v1.0.0
    link: /opt/stigmer/current
    sources: "{{ stigmer_v100_sources }}"
'''

RETURN = r'''
version:
  description: The requested version.
  returned: always
  type: str
  sample: v1.1.0
path:
  description: The version directory.
  returned: always
  type: str
  sample: /opt/stigmer/versions/v1.1.0
previous:
  description: The version the link pointed at before the task, or null if it pointed nowhere under O(root).
  returned: always
  type: str
  sample: v1.0.0
installed:
  description: Whether the version directory was (or under check mode would be) built.
  returned: always
  type: bool
  sample: true
switched:
  description: Whether the link was (or would be) switched.
  returned: always
  type: bool
  sample: true
pruned:
  description: Version directories removed (or that would be removed), oldest use first.
  returned: always
  type: list
  elements: str
  sample: [v0.9.0]
cleaned:
  description: Leftovers of interrupted runs that were (or would be) removed.
  returned: always
  type: list
  elements: str
  sample: [/opt/stigmer/versions/.v1.1.0.tmp-k2j3h4]
files:
  description:
    - Names of the executables in C(bin/). Under check mode on a fresh host only the names that
      are known without the artifacts.
  returned: always
  type: list
  elements: str
  sample: [agent-runner, stigmer]
reason:
  description: Why the version directory had to be built, or null when it was intact.
  returned: always
  type: str
  sample: bin/stigmer does not match its recorded sha256
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.stigmer.runtime.plugins.module_utils.install import (
    InstallError,
    ensure_version,
)
from ansible_collections.stigmer.runtime.plugins.module_utils.platform import SUPPORTED_PLATFORMS


def argument_spec():
    return dict(
        root=dict(type='path', required=True),
        version=dict(type='str', required=True),
        sources=dict(type='list', elements='dict', required=True, options=dict(
            src=dict(type='path', required=True),
            sha256=dict(type='str', required=True),
            archive=dict(type='bool', default=False),
            members=dict(type='list', elements='str'),
            dest=dict(type='str'),
        )),
        files=dict(type='dict', default={}),
        platform=dict(type='str', choices=list(SUPPORTED_PLATFORMS)),
        checks=dict(type='list', elements='dict', default=[], options=dict(
            command=dict(type='str', required=True),
            args=dict(type='list', elements='str', default=['--version']),
            expect=dict(type='str'),
            version_optional=dict(type='bool', default=False),
        )),
        link=dict(type='path', required=True),
        keep=dict(type='int', default=2),
        owner=dict(type='str', default='root'),
        group=dict(type='str'),
        switch=dict(type='bool', default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        result = ensure_version(
            root=params['root'], version=params['version'], sources=params['sources'],
            link=params['link'], files=params['files'], checks=params['checks'], platform=params['platform'],
            keep=params['keep'], owner=params['owner'], group=params['group'],
            switch=params['switch'], check_mode=module.check_mode,
        )
    except InstallError as exc:
        module.fail_json(msg=to_native(exc))
    except OSError as exc:
        module.fail_json(msg='installing %s under %s failed: %s' % (params['version'], params['root'], to_native(exc)))

    after = params['version'] if result['switched'] or result['previous'] == params['version'] else result['previous']
    if module._diff:
        result['diff'] = {
            'before_header': params['link'],
            'after_header': params['link'],
            'before': {'version': result['previous']},
            'after': {'version': after},
        }
    module.exit_json(**result)


if __name__ == '__main__':
    main()
