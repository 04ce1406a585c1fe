#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: stigmer_fleet_report
short_description: Classify every host of a Stigmer fleet and write the fleet report
version_added: 0.1.0
description:
  - "Runs once, on the controller (C(delegate_to: localhost), C(run_once)), with what every host of
    the play gave, including the hosts that were unreachable or where a task failed."
  - "Each host gets one state, the first that applies: C(unreachable), C(failed), C(not-installed)
    (no Stigmer install, or an incomplete one), C(unhealthy) (the health check failed or a service
    is not active), C(drift) (a service runs an older start than what is installed, the CLI and
    the agent-runner versions differ, the CLI version is not the fleet version, or an install record
    could not be believed), C(healthy)."
  - "A host whose O(hosts[].info) or O(hosts[].health) cannot be read (not a mapping, or a field of
    the wrong type, such as C(problems: 5)), or whose O(hosts[].host) prints as nothing, is
    C(failed), the reason naming what could not be read; the other hosts are reported as usual."
  - Text from the hosts is written without terminal escape sequences, control characters and
    invisible formatting characters (bidirectional overrides, zero-width characters), a byte that
    was not UTF-8 as the replacement character; in the Markdown file, every word a renderer could
    turn into a link (an address with a scheme or C(www.), an e-mail address, a domain name) is
    written as code.
  - The fleet version is O(expected_version) when set; otherwise the most common CLI version of the
    installed reachable hosts, a tie going to the highest semantic version.
  - Writes C(fleet-report.json), C(fleet-report.md) and C(fleet-report.html) into O(dest), each
    replaced atomically with mode C(0644); O(dest) is created (C(0755)) when missing. The HTML page
    is self-contained; it has no script and loads nothing.
  - The JSON file's C(generated) timestamp is kept when nothing else in the report changed, so the
    task reports a change only when the fleet changed.
  - An unhealthy fleet is reported, not raised (RV(ok=false)); the task fails only on bad input or
    when a file cannot be written.
author: stigmer.runtime contributors (@stigmer)
options:
  hosts:
    description:
      - One entry per host, in the order the report lists them.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: The inventory name.
        type: str
        required: true
      platform:
        description: The host's platform, such as C(linux-amd64); null when it was not detected.
        type: str
      unreachable:
        description: Why the host could not be reached; null when it was reached.
        type: str
      failed:
        description: Why a task failed on the host; null when none did.
        type: str
      info:
        description:
          - The result of M(stigmer.runtime.stigmer_info) on the host (a mapping), with its C(services)
            (component name to C(active), C(state) and C(stale)).
          - Null or partial when a task failed. A registered result with C(failed) or
            C(unreachable) set makes the host C(failed) or C(unreachable), its C(msg) the reason.
          - Anything but a mapping (or a JSON object in a string), or a mapping with a field of the
            wrong type, makes the host C(failed) instead of failing the task.
        type: raw
      health:
        description:
          - The result of M(stigmer.runtime.stigmer_health) on the host (a mapping); its C(polling) says which
            components Temporal lists polling.
          - Null or partial when a task failed, and read as O(hosts[].info) is.
        type: raw
      supervised:
        description:
          - Whether the role runs the host's services (system scope with services enabled).
          - When false (binaries only), there is nothing to be healthy and O(hosts[].health) is not required.
          - A value that is not a boolean (after Ansible's conversion of text such as C(yes)) fails only that host's
            row, never the report.
        type: raw
        default: true
  dest:
    description: The controller directory the report files are written to.
    type: path
    required: true
  expected_version:
    description:
      - The version every host must run, a release tag or a version, with or without a leading C(v),
        such as C(v0.1.0) or C(0.1.0).
      - When set, it is the fleet version (RV(summary.fleet_version) and RV(summary.expected_version)),
        and every host whose CLI version differs from it is C(drift) (or worse), with the reason
        C(asked v0.1.0, found v0.0.7); a fleet uniformly on another version is C(drift) on every
        host and RV(ok) is false.
      - When omitted, the fleet version is the most common CLI version, and a host differing from
        it has the reason C(CLI v0.0.7, fleet runs v0.1.0).
      - Not a version (such as C(latest), which must be resolved to a tag first) fails the task.
    type: str
    version_added: 0.1.0
  formats:
    description: Which report files to write.
    type: list
    elements: str
    choices: [json, markdown, html]
    default: [json, markdown, html]
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is written; RV(files) and C(changed) say what would be.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
    details: Runs on the controller.
seealso:
  - module: stigmer.runtime.stigmer_info
  - module: stigmer.runtime.stigmer_health
'''

EXAMPLES = r'''
- name: Write the fleet report on the controller
  stigmer.runtime.stigmer_fleet_report:
    hosts:
      - host: build-01
        platform: linux-amd64
        info: "{{ hostvars['build-01']._stigmer_info }}"
        health: "{{ hostvars['build-01']._stigmer_health }}"
      - host: mac-mini-01
        unreachable: "Failed to connect to the host via ssh"
    dest: "{{ playbook_dir }}/reports"
    expected_version: v0.1.0
  delegate_to: localhost
  run_once: true
  register: stigmer_fleet

- name: Show the fleet
  ansible.builtin.debug:
    msg: "{{ stigmer_fleet.table }}"
  run_once: true

- name: Fail when a host is not healthy
  ansible.builtin.fail:
    msg: "{{ stigmer_fleet.problems }}"
  when: not stigmer_fleet.ok
  run_once: true
'''

RETURN = r'''
ok:
  description: True only when every host is healthy, and so runs the fleet version.
  returned: always
  type: bool
  sample: false
problems:
  description: "One line per host that is not healthy: C(host: state: reasons), the reasons joined by C(; )."
  returned: always
  type: list
  elements: str
  sample: ["web-2: drift: asked v0.1.0, found v0.0.7"]
table:
  description: The report as fixed-width text lines, the verdict last.
  returned: always
  type: list
  elements: str
  sample:
    - "HOST   PLATFORM     STATE    CLI    AGENT-RUNNER  TEMPORAL  SERVICES  POLLING                                REASON"
    - "web-1  linux-amd64  healthy  0.1.0  0.1.0         1.5.1     4 active  server, workflow-runner, agent-runner"
    - "OK: fleet version v0.1.0, 1 host: 1 healthy"
files:
  description: The report files written (in check mode, that would be written), whether or not they changed.
  returned: always
  type: list
  elements: path
  sample: [/srv/reports/fleet-report.json, /srv/reports/fleet-report.md, /srv/reports/fleet-report.html]
summary:
  description: The fleet's verdict.
  returned: always
  type: dict
  contains:
    fleet_version:
      description: The version every host should run, without a leading v; null when no host has one.
      type: str
      sample: 0.1.0
    expected_version:
      description: O(expected_version) without a leading v; null when it was not set.
      type: str
    counts:
      description: How many hosts are in each state (every state present, 0 included).
      type: dict
      sample: {healthy: 2, drift: 1, unhealthy: 0, not-installed: 0, failed: 0, unreachable: 0}
    total:
      description: The number of hosts.
      type: int
    ok:
      description: Same as RV(ok).
      type: bool
    problems:
      description: Same as RV(problems).
      type: list
      elements: str
rows:
  description: One entry per host, in the order of O(hosts).
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The inventory name.
      type: str
    platform:
      description: The host's platform; null when unknown.
      type: str
    state:
      description: One of C(unreachable), C(failed), C(not-installed), C(unhealthy), C(drift), C(healthy).
      type: str
      sample: drift
    cli_version:
      description: The installed CLI version, without a leading v; null when unknown.
      type: str
    agent_runner_version:
      description: The installed agent-runner version, without a leading v; null when unknown.
      type: str
    temporal_version:
      description: The installed Temporal CLI version; null when unknown or external.
      type: str
    services:
      description: Each component's service, C(active), C(inactive), C(failed), C(stale) (runs an older start) or C(unknown).
      type: dict
      sample: {agent-runner: active, server: stale}
    polling:
      description:
        - The components Temporal lists polling every task queue they must (the C(polling) of the
          M(stigmer.runtime.stigmer_health) result); null when the host's health result does not say.
        - The table, Markdown and HTML show them as a comma-separated list, C(none), or C(-) when not known.
      type: list
      elements: str
      sample: [server, workflow-runner, agent-runner]
    health:
      description: What the gRPC probe found, such as C(SERVING), C(answers gRPC (no health service)), C(no answer) or C(not checked).
      type: str
    reasons:
      description: Why the host is not healthy, the reasons of its state first; empty when healthy.
      type: list
      elements: str
      sample: ["server: installed v0.1.0, running an older start: started before /opt/stigmer/current changed"]
'''

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.common.validation import check_type_bool, check_type_dict

from ansible_collections.stigmer.runtime.plugins.module_utils._fleet_report import (
    FORMATS,
    ReportWriteError,
    classify,
    one_line,
    render_table,
    write_reports,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError


def argument_spec():
    return dict(
        hosts=dict(type='list', elements='dict', required=True, options=dict(
            host=dict(type='str', required=True),
            platform=dict(type='str'),
            unreachable=dict(type='str'),
            failed=dict(type='str'),
            # raw: one host's unreadable result makes that host failed, not the whole report.
            info=dict(type='raw'),
            health=dict(type='raw'),
            supervised=dict(type='raw', default=True),
        )),
        dest=dict(type='path', required=True),
        expected_version=dict(type='str'),
        formats=dict(type='list', elements='str', choices=list(FORMATS), default=list(FORMATS)),
    )


def as_mapping(value):
    """A result given as a JSON object or key=value string, as type dict would read it; an empty
    string as no result; anything else as given, for the report to call unreadable."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return check_type_dict(value)
        except (TypeError, ValueError):
            return value
    return value


def as_boolean(value):
    """A boolean as type bool would read it ("true", "no", 1...); anything else as given, for the
    report to call unreadable."""
    try:
        return check_type_bool(value)
    except (TypeError, ValueError):
        return value


def read_results(hosts):
    return [dict(entry, info=as_mapping(entry.get('info')), health=as_mapping(entry.get('health')),
                 supervised=as_boolean(entry.get('supervised')))
            for entry in hosts]


def input_problems(hosts):
    if not hosts:
        return ['hosts is empty; pass every host of the play, the unreachable ones included (ansible_play_hosts_all)']
    problems = []
    seen = set()
    for index, entry in enumerate(hosts):
        name = entry['host']
        if not name.strip():
            problems.append('hosts[%d].host is empty' % index)
        elif name in seen:
            problems.append('hosts[%d]: %s is listed more than once' % (index, one_line(name, 200)))
        seen.add(name)
    return problems


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problems = input_problems(params['hosts'])
    if problems:
        module.fail_json(msg='; '.join(problems))
    try:
        report = classify(read_results(params['hosts']), params['expected_version'])
    except VersionError as exc:
        module.fail_json(msg='expected_version: %s' % to_native(exc))
    generated = datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    try:
        files, changed = write_reports(params['dest'], report, params['formats'], generated,
                                       check_mode=module.check_mode)
    except ReportWriteError as exc:
        # strerror alone: the OSError's own text names the temporary file, not the report.
        reason = getattr(exc.error, 'strerror', None) or to_native(exc.error)
        module.fail_json(msg='cannot write the fleet report %s: %s; set dest (stigmer_report_dir) to a directory '
                         'the controller user can write, or fix its permissions' % (exc.path, reason),
                         path=exc.path)
    summary = report['summary']
    module.exit_json(changed=bool(changed), rows=report['rows'], summary=summary, ok=summary['ok'],
                     problems=summary['problems'], table=render_table(report), files=files)


if __name__ == '__main__':
    main()
