# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one host, built on the controller from typed settings (docs/architecture.md).

One description per component (COMPONENTS) feeds the systemd unit, the launchd job, the
environment file, the health gate and the fleet report. The plan is data: build() returns a
Plan whose host() is what stigmer_runtime receives, whose environment_files() holds the secrets
(passed to the module apart, never returned) and whose health_components() and
report_components() are what stigmer_health and stigmer_info receive.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible_collections.stigmer.runtime.plugins.module_utils._version import tag_to_version
from ansible_collections.stigmer.runtime.plugins.plugin_utils._settings import (
    SettingsError, environment_problems, is_ip, read_role_settings)

MANAGED = 'Managed by the stigmer.runtime Ansible collection; local changes are overwritten.'
# A second run on the same host waits this long for the first to finish.
LOCK_TIMEOUT = 600

# ExecStartPre of the components that need Temporal: wait up to 60 s for a TCP connection
# to $1:$2 with bash's /dev/tcp, so no extra tool is needed on the host.
WAIT_FOR_PORT = ("for _ in {1..60}; do (exec 3<>\"/dev/tcp/$1/$2\") 2>/dev/null && exit 0; sleep 1; done; "
                 "echo \"Temporal at $1:$2 did not accept connections within 60 s\" >&2; exit 1")
# launchd has no ExecStartPre: each job's shell reads the component's environment file, marks
# the start in the log (one file holds every start's lines), waits for Temporal when given its
# host and port, then becomes the component.
LAUNCHD_WRAPPER = ('set -a; . "$0"; set +a; echo "stigmer.runtime: start pid $$" >&2; h=$1; p=$2; shift 2; '
                   'if [ -n "$h" ]; then i=0; until /usr/bin/nc -z -G 1 "$h" "$p" 2>/dev/null; do i=$((i+1)); '
                   'if [ "$i" -ge 60 ]; then echo "Temporal at $h:$p did not accept connections within 60 s" >&2; '
                   'exit 1; fi; sleep 1; done; fi; exec "$@"')


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskQueue:
    """A Temporal task queue a component polls: its default name, the environment variable that
    renames it, and the task types the component registers there (Temporal's SDKs poll a type
    only when something of it is registered)."""
    default: str
    variable: str
    types: Tuple[str, ...]

    def name_in(self, environment):
        # As upstream reads it: unset or empty means the default.
        return environment.get(self.variable) or self.default


WORKFLOW, ACTIVITY, BOTH = ('workflow',), ('activity',), ('workflow', 'activity')


@dataclass(frozen=True)
class ComponentKind:
    """What a component is, whatever the settings (docs/runtime-facts.md)."""
    name: str
    description: str
    wait_for_temporal: bool      # a server started before Temporal serves without its workers
    write_execute: bool          # UPX-packed PyInstaller binary: needs writable+executable memory
    # A worker of Temporal's Python SDK: its core reads /proc/meminfo when a worker is created and
    # panics where ProcSubset=pid hides it (seen with temporalio 1.21.1, upstream's v0.0.7 lock).
    python_sdk: bool
    stop_timeout: int            # seconds from SIGTERM to SIGKILL
    queues: Tuple[TaskQueue, ...] = ()   # what it polls once it works: the gate asks Temporal
    serves_temporal: bool = False        # Temporal itself: ready when it says SERVING
    restart_without_pollers: bool = False   # connects to Temporal only at start: a restart cures it


# Queues and types as upstream registers them: the server at v0.0.5-v0.0.7 (pkg/domain/*/temporal),
# the workflow runner at v0.0.8-v0.0.12 (worker/worker.go), the agent-runner (worker/worker.py).
COMPONENTS = (
    ComponentKind('temporal', 'Temporal dev server for Stigmer', False, False, False, 30, serves_temporal=True),
    ComponentKind('server', 'Stigmer server', True, False, False, 30, restart_without_pollers=True, queues=(
        TaskQueue('agent_execution_stigmer', 'TEMPORAL_AGENT_EXECUTION_STIGMER_TASK_QUEUE', BOTH),
        TaskQueue('workflow_execution_stigmer', 'TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE', BOTH),
        # The validation worker registers its workflow only; the activity is the workflow runner's.
        TaskQueue('workflow_validation_stigmer', 'TEMPORAL_WORKFLOW_VALIDATION_STIGMER_TASK_QUEUE', WORKFLOW))),
    # Upstream's workflow runner logs that it stopped on SIGTERM but never exits.
    ComponentKind('workflow-runner', 'Stigmer workflow runner', True, False, False, 5, queues=(
        TaskQueue('workflow_execution_runner', 'TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE', ACTIVITY),
        TaskQueue('workflow_validation_runner', 'TEMPORAL_WORKFLOW_VALIDATION_RUNNER_TASK_QUEUE', ACTIVITY),
        TaskQueue('zigflow_execution', 'TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE', BOTH))),
    ComponentKind('agent-runner', 'Stigmer agent runner', True, True, True, 30, queues=(
        TaskQueue('agent_execution_runner', 'TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE', ACTIVITY),)),
)


@dataclass
class Component:
    kind: ComponentKind
    enabled: bool
    requires: List[str]
    command: List[str]
    allow_ips: Optional[List[str]]   # None: any address; else only these may connect (or be connected to)
    ports: List[int]
    unit: str
    unit_path: str
    env_path: str
    log_path: Optional[str]
    watch: List[str]
    environment: Dict[str, str] = field(repr=False)   # may hold secrets

    @property
    def name(self):
        return self.kind.name


@dataclass
class Release:
    """A release by both spellings: the tag ('v0.1.0', directory names) and the version ('0.1.0')."""
    repo: str
    tag: str
    version: str
    artifacts: List[dict]

    @classmethod
    def from_result(cls, repo, result, platform):
        if not isinstance(result, dict) or not result.get('tag'):
            raise SettingsError('the release of %s was not resolved before planning' % repo)
        return cls(repo, result['tag'], tag_to_version(result['tag']),
                   list((result.get('artifacts') or {}).get(platform) or []))


@dataclass
class Layout:
    prefix: str
    bin_link_dir: str
    home: str
    config_dir: str
    artifact_dir: str
    owner: object
    group: object

    @property
    def dot(self):
        return self.home + '/.stigmer'

    @property
    def current(self):
        return self.prefix + '/current'

    @property
    def temporal_current(self):
        return self.prefix + '/temporal/current'

    @property
    def log_dir(self):
        return self.dot + '/data/logs'

    @property
    def leaves(self):
        """The only directories the service account owns: where the components write."""
        return [self.dot + '/stigmer.db', self.log_dir, self.dot + '/temporal-data', self.dot + '/workspace']


@dataclass
class Plan:
    settings: dict
    derived: dict
    platform: dict
    layout: Layout
    releases: Dict[str, Release]
    components: List[Component]
    host_plan: dict

    def host(self):
        return self.host_plan

    def enabled(self):
        return [c for c in self.components if c.enabled]

    def environment_files(self):
        """{path: content} of each enabled component's environment file. Secrets: never return it."""
        if not self.derived['services']:
            return {}
        return dict((c.env_path, environment_file(c)) for c in self.enabled())

    def health_components(self):
        """The enabled components as stigmer_health watches them; each queue's name as the component's
        environment sets it."""
        launchd = self.platform['service_manager'] == 'launchd'
        return [{'name': c.name, 'unit': c.unit, 'log_path': c.log_path if launchd else None,
                 'queues': [{'name': q.name_in(c.environment), 'types': list(q.types)} for q in c.kind.queues],
                 'serves_temporal': c.kind.serves_temporal,
                 'restart_without_pollers': c.kind.restart_without_pollers}
                for c in self.enabled()] if self.derived['services'] else []

    def temporal(self):
        """The Temporal the components poll, as stigmer_health asks it: the bundled dev server's
        address or stigmer_temporal_address, and the namespace."""
        return {'host': self.derived['temporal_host'], 'port': self.derived['temporal_port'],
                'namespace': self.settings['stigmer_temporal_namespace']}

    def report_components(self):
        return [{'name': c.name, 'unit': c.unit, 'watch': c.watch}
                for c in self.enabled()] if self.derived['services'] else []

    def public(self):
        """What the role's tasks read: no secret in it."""
        return {
            'plan': self.host_plan,
            'releases': dict((k, {'repo': r.repo, 'tag': r.tag, 'version': r.version})
                             for k, r in self.releases.items()),
            'health_components': self.health_components(),
            'temporal': self.temporal(),
            'report_components': self.report_components(),
            'paths': {'prefix': self.layout.prefix, 'home': self.layout.home, 'current': self.layout.current,
                      'temporal_current': self.layout.temporal_current, 'artifact_dir': self.layout.artifact_dir,
                      'config_dir': self.layout.config_dir},
        }


# ---------------------------------------------------------------------------
# Escaping for where values go
# ---------------------------------------------------------------------------

def systemd_word(value, exec_line=False):
    """One word of a unit-file setting: specifiers ('%') doubled, '$' doubled on Exec lines
    (where systemd expands variables), quoted when it holds blanks or quotes."""
    text = str(value).replace('%', '%%')
    if exec_line:
        text = text.replace('$', '$$')
    if text == '' or any(ch in text for ch in ' \t"\'\\;'):
        text = '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')
    return text


def systemd_words(values, exec_line=False):
    return ' '.join(systemd_word(v, exec_line) for v in values)


def systemd_path(value):
    """A path setting that takes the rest of the line (WorkingDirectory=, EnvironmentFile=)."""
    return str(value).replace('%', '%%')


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

def environment_file(comp):
    """Single-quoted values, which systemd's EnvironmentFile= and /bin/sh (launchd) both read literally."""
    lines = ['# ' + MANAGED,
             '# Environment of stigmer-%s, and only what it reads. May hold secrets:' % comp.name,
             '# readable by root and the service group only.']
    lines += ["%s='%s'" % (name, comp.environment[name]) for name in sorted(comp.environment)]
    return '\n'.join(lines) + '\n'


def systemd_unit(comp, s, layout, temporal_host, temporal_port):
    lines = ['# ' + MANAGED, '[Unit]', 'Description=%s' % comp.kind.description, 'PartOf=stigmer.target',
             'After=network-online.target' + ''.join(' stigmer-%s.service' % d for d in comp.requires)]
    lines += ['Requires=stigmer-%s.service' % d for d in comp.requires]
    lines += ['StartLimitIntervalSec=300', 'StartLimitBurst=30', '',
              '[Service]', 'Type=simple',
              'User=%s' % s['stigmer_service_user'], 'Group=%s' % s['stigmer_service_group'],
              'EnvironmentFile=%s' % systemd_path(comp.env_path),
              'WorkingDirectory=%s' % systemd_path(layout.home)]
    if comp.kind.wait_for_temporal:
        wait = ['/bin/bash', '-c', WAIT_FOR_PORT, 'wait-for-temporal', temporal_host, str(temporal_port)]
        lines.append('ExecStartPre=' + systemd_words(wait, exec_line=True))
    lines += ['ExecStart=' + systemd_words(comp.command, exec_line=True),
              'Restart=always', 'RestartSec=2', 'TimeoutStopSec=%d' % comp.kind.stop_timeout, 'UMask=0027', '',
              '# Hardening: every unit must score 2.0 or lower in `systemd-analyze security`.',
              'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'AmbientCapabilities=',
              'ProtectSystem=strict', 'ProtectHome=yes',
              '# Everything else, the state directory included, is read-only: the component writes only its leaves.',
              'ReadWritePaths=' + systemd_words(layout.leaves),
              'PrivateTmp=yes', 'PrivateDevices=yes',
              'PrivateUsers=%s' % ('yes' if s['stigmer_systemd_private_users'] else 'no'),
              'DevicePolicy=closed', 'ProtectHostname=yes', 'ProtectClock=yes', 'ProtectKernelTunables=yes',
              'ProtectKernelModules=yes', 'ProtectKernelLogs=yes', 'ProtectControlGroups=yes',
              'ProtectProc=invisible', 'KeyringMode=private', 'LockPersonality=yes']
    if not comp.kind.python_sdk:
        lines.append('ProcSubset=pid')
    if not comp.kind.write_execute:
        lines.append('MemoryDenyWriteExecute=yes')
    lines += ['RestrictRealtime=yes', 'RestrictSUIDSGID=yes', 'RestrictNamespaces=yes', 'RemoveIPC=yes',
              'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'SystemCallArchitectures=native',
              'SystemCallFilter=@system-service', 'SystemCallFilter=~@privileged @resources',
              'SystemCallErrorNumber=EPERM']
    if comp.allow_ips is not None:
        lines += ['IPAddressDeny=any', 'IPAddressAllow=' + ' '.join(comp.allow_ips)]
    lines += ['', '[Install]', 'WantedBy=stigmer.target']
    return '\n'.join(lines) + '\n'


def target_unit(components):
    return '\n'.join([
        '# ' + MANAGED, '[Unit]', 'Description=Stigmer runtime (Temporal, server, workflow-runner, agent-runner)',
        'Wants=' + ' '.join('stigmer-%s.service' % c.name for c in components),
        'After=network-online.target', 'Wants=network-online.target', '',
        '[Install]', 'WantedBy=multi-user.target']) + '\n'


def launchd_job(comp, s, layout, temporal_host, temporal_port):
    wait = [temporal_host, str(temporal_port)] if comp.kind.wait_for_temporal else ['', '']
    return {
        'program_arguments': ['/bin/sh', '-c', LAUNCHD_WRAPPER, comp.env_path] + wait + [str(a) for a in comp.command],
        'user_name': s['stigmer_service_user'], 'group_name': s['stigmer_service_group'],
        'working_directory': layout.home, 'stdout_path': comp.log_path, 'stderr_path': comp.log_path,
        'extra': {'ExitTimeOut': comp.kind.stop_timeout},
    }


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

def layout_for(s, derived, os_data, user):
    if derived['system']:
        return Layout(prefix=s['stigmer_prefix'], bin_link_dir=s['stigmer_bin_dir'],
                      home=s['stigmer_state_dir'] or os_data['default_state_dir'], config_dir=os_data['config_dir'],
                      artifact_dir=os_data['host_artifact_dir'], owner='root', group=os_data['root_group'])
    if not user or not user.get('dir'):
        raise SettingsError('a user-scope install needs the connecting user\'s home (the role gathers it)')
    home = user['dir']
    return Layout(prefix=home + '/.local/share/stigmer', bin_link_dir=home + '/.local/bin', home=home,
                  config_dir=os_data['config_dir'], artifact_dir=home + '/.cache/stigmer/artifacts',
                  owner=user['uid'], group=user['gid'])


def environments(s, derived, layout):
    """Each component gets the environment it reads, and only that (docs/runtime-facts.md)."""
    temporal_address = '%s:%s' % (('[%s]' % derived['temporal_host']) if ':' in derived['temporal_host']
                                  else derived['temporal_host'], derived['temporal_port'])
    base = dict({'HOME': layout.home}, **dict((str(k), str(v)) for k, v in (s['stigmer_extra_environment'] or {}).items()))
    server = dict(base, ENV='local', GRPC_PORT=str(s['stigmer_server_port']), DB_PATH=layout.dot + '/stigmer.db',
                  TEMPORAL_HOST_PORT=temporal_address, TEMPORAL_NAMESPACE=s['stigmer_temporal_namespace'])
    runner = dict(base, MODE='local',
                  STIGMER_BACKEND_ENDPOINT='%s:%s' % (s['stigmer_server_address'], s['stigmer_server_port']),
                  STIGMER_API_KEY=s['stigmer_api_key'], STIGMER_SERVICE_USE_TLS='false',
                  TEMPORAL_SERVICE_ADDRESS=temporal_address, TEMPORAL_NAMESPACE=s['stigmer_temporal_namespace'],
                  SANDBOX_TYPE='filesystem', SANDBOX_ROOT_DIR=layout.dot + '/workspace')
    # The agent-runner alone talks to the LLM; it reads an OpenAI key only as STIGMER_LLM_API_KEY.
    llm = {'STIGMER_LLM_PROVIDER': s['stigmer_llm_provider']}
    if s['stigmer_llm_model']:
        llm['STIGMER_LLM_MODEL'] = s['stigmer_llm_model']
    if s['stigmer_llm_base_url']:
        llm['STIGMER_LLM_BASE_URL'] = s['stigmer_llm_base_url']
    if s['stigmer_anthropic_api_key']:
        llm['ANTHROPIC_API_KEY'] = s['stigmer_anthropic_api_key']
    if s['stigmer_llm_provider'] == 'openai' and s['stigmer_openai_api_key']:
        llm['OPENAI_API_KEY'] = llm['STIGMER_LLM_API_KEY'] = s['stigmer_openai_api_key']
    return {'temporal': base, 'server': server, 'workflow-runner': runner, 'agent-runner': dict(runner, **llm)}


def components_for(s, derived, layout, os_data):
    temporal_on = s['stigmer_temporal_enabled']
    envs = environments(s, derived, layout)
    allowed = s['stigmer_server_allowed_networks']
    # The server reaches an external Temporal given by address; a host name cannot go into IPAddressAllow=.
    external = [derived['temporal_host']] if not temporal_on and is_ip(derived['temporal_host']) else []
    # A Temporal bound to an address of the host's own (not loopback) is reached through that address.
    own = [s['stigmer_temporal_ip']] if temporal_on and not ipaddress.ip_address(s['stigmer_temporal_ip']).is_loopback else []
    temporal_cmd = [layout.dot + '/bin/temporal', 'server', 'start-dev', '--ip', s['stigmer_temporal_ip'],
                    '--port', str(s['stigmer_temporal_port']), '--ui-port', str(s['stigmer_temporal_ui_port']),
                    '--db-filename', layout.dot + '/temporal-data/temporal.db']
    # start-dev always creates "default"; --namespace adds another.
    if s['stigmer_temporal_namespace'] != 'default':
        temporal_cmd += ['--namespace', s['stigmer_temporal_namespace']]
    table = {
        'temporal': dict(enabled=temporal_on, requires=[], command=temporal_cmd, allow_ips=['localhost'] + own,
                         ports=[s['stigmer_temporal_port']]),
        'server': dict(enabled=True, requires=['temporal'] if temporal_on else [],
                       command=[layout.current + '/bin/stigmer', 'internal-server'],
                       allow_ips=None if 'any' in allowed else ['localhost'] + own
                       + [a for a in allowed if a != 'localhost'] + external, ports=[s['stigmer_server_port']]),
        'workflow-runner': dict(enabled=s['stigmer_workflow_runner_enabled'], requires=['server'],
                                command=[layout.current + '/bin/stigmer', 'internal-workflow-runner'],
                                allow_ips=None, ports=[]),
        'agent-runner': dict(enabled=True, requires=['server'], command=[layout.dot + '/data/bin/agent-runner'],
                             allow_ips=None, ports=[]),
    }
    result = []
    for kind in COMPONENTS:
        unit = os_data['unit_name'] % kind.name
        env_path = '%s/%s.env' % (layout.config_dir, kind.name)
        unit_path = os_data['unit_path'] % unit
        # What the component is started from: a process that started before one of these last changed
        # runs an older binary or older settings.
        watch = [unit_path, env_path, layout.temporal_current if kind.name == 'temporal' else layout.current]
        result.append(Component(kind=kind, unit=unit, unit_path=unit_path, env_path=env_path,
                                log_path='%s/%s.log' % (layout.log_dir, kind.name), watch=watch,
                                environment=envs[kind.name], **table[kind.name]))
    return result


def trees_for(s, layout, releases):
    """Per version tree what it is built from; a SHA256 known now (a pin, GitHub's digest) must match
    the installed one, otherwise the one verified at install time stands."""
    def sources(release):
        pinned = s['stigmer_checksums'] or {}
        return dict((a['component'], {'name': a['name'], 'archive': a['archive'], 'dest': a.get('dest'),
                                      'members': a.get('members'),
                                      'sha256': pinned.get(a['name']) or a.get('digest') or None})
                    for a in release.artifacts)
    trees = []
    if 'stigmer' in releases:
        rel = releases['stigmer']
        src = sources(rel)
        trees.append({'name': 'stigmer', 'root': layout.prefix + '/versions', 'link': layout.current,
                      'version': rel.tag, 'sources': [src['stigmer'], src['agent-runner']],
                      # The version marker ends with a newline, as upstream writes it.
                      'files': {'share/agent-runner.version': rel.tag + '\n'},
                      'checks': [{'command': 'stigmer', 'args': ['--help']},
                                 {'command': 'stigmer', 'args': ['--version'], 'expect': rel.tag,
                                  'version_optional': True}]})
    if 'temporal' in releases:
        rel = releases['temporal']
        trees.append({'name': 'temporal', 'root': layout.prefix + '/temporal/versions', 'link': layout.temporal_current,
                      'version': rel.tag, 'sources': [sources(rel)['temporal']], 'files': {},
                      'checks': [{'command': 'temporal', 'expect': rel.version}]})
    return trees


def network_guard(s, comps, manager):
    """What the host must enforce for the server's allow-list (its port), or None: nothing to
    enforce (no server, "any" allowed, no service manager) or the risk accepted."""
    server = [c for c in comps if c.name == 'server' and c.enabled]
    if not server or server[0].allow_ips is None or manager not in ('systemd', 'launchd') \
            or s['stigmer_server_accept_unfiltered_network']:
        return None
    return {'port': s['stigmer_server_port']}


def build(s, derived, platform, os_data, user=None, release_results=None):
    """The whole plan of one host. s: normalised and checked settings; derived: _settings.check(s);
    platform: the stigmer_platform fact; os_data: the role's per-OS data (vars/<os>.yml);
    release_results: {'stigmer': stigmer_release result, 'temporal': ...}, or None for a plan without
    version trees (uninstall, report)."""
    services = derived['services']
    manager = platform['service_manager'] if services else 'none'
    layout = layout_for(s, derived, os_data, user)
    comps = components_for(s, derived, layout, os_data)
    releases = {}
    for key, repo in (('stigmer', s['stigmer_github_repo']), ('temporal', s['stigmer_temporal_repo'])):
        if (release_results or {}).get(key) and (key == 'stigmer' or s['stigmer_temporal_enabled']):
            releases[key] = Release.from_result(repo, release_results[key], platform['platform'])
    enabled = [c for c in comps if c.enabled]
    if services:
        bad = environment_problems(c.environment for c in enabled)
        if bad:
            raise SettingsError(
                'These environment variables cannot be written to the services\' environment files: %s. A name must '
                'be letters, digits and underscores, not starting with a digit; a value cannot hold a single quote, '
                'a newline or another control character. Check stigmer_extra_environment, stigmer_llm_model, '
                'stigmer_llm_base_url, the API keys and stigmer_state_dir.' % ', '.join(bad))
    th, tp = derived['temporal_host'], derived['temporal_port']
    temporal_on = s['stigmer_temporal_enabled']
    dot = layout.dot
    directories = ([{'path': layout.prefix, 'own': True}, {'path': layout.prefix + '/versions', 'own': True},
                    {'path': layout.prefix + '/temporal', 'own': True},
                    {'path': layout.prefix + '/temporal/versions', 'own': True},
                    {'path': layout.bin_link_dir, 'own': False}]
                   + ([{'path': layout.config_dir, 'own': True}] if services else [])
                   + [{'path': layout.home, 'own': derived['system']}, {'path': dot, 'own': True},
                      {'path': dot + '/data', 'own': True}, {'path': dot + '/data/bin', 'own': True},
                      {'path': dot + '/bin', 'own': True}])
    # The CLI looks for the agent-runner, its version marker and temporal in the state directory and
    # replaces anything that does not match its version with an unverified download: root-owned links
    # into current keep them verified and in step with every switch.
    # The bin link shares its directory with other software (shared: replaced and removed only while it is ours).
    links = [{'path': layout.bin_link_dir + '/stigmer', 'target': layout.current + '/bin/stigmer', 'shared': True},
             {'path': dot + '/data/bin/agent-runner', 'target': layout.current + '/bin/agent-runner'},
             {'path': dot + '/data/bin/.version', 'target': layout.current + '/share/agent-runner.version'}]
    if temporal_on:
        links.append({'path': dot + '/bin/temporal', 'target': layout.temporal_current + '/bin/temporal'})
    # What no longer belongs on the host: collection 0.1.0's shared stigmer.env, the environment of
    # disabled components, the temporal link without Temporal, per-host artifact copies in controller mode.
    obsolete = (([layout.config_dir + '/stigmer.env'] + [c.env_path for c in comps if not c.enabled])
                if services else [])
    obsolete += [] if temporal_on else [dot + '/bin/temporal']
    obsolete += [os_data['host_artifact_dir']] if derived['controller_mode'] and derived['system'] else []
    # Where earlier collection versions kept the configuration by default (secrets included): the host
    # removes such a directory once the install record shows it was this install's.
    retired = [p for p in os_data.get('retired_config_dirs') or [] if p != layout.config_dir] if services else []
    uninstall = [layout.bin_link_dir + '/stigmer', dot + '/data/bin', dot + '/bin']
    uninstall += [layout.config_dir, os_data['host_artifact_dir']] if derived['system'] else [layout.artifact_dir]
    host = {
        'platform': platform['platform'],
        'service_manager': manager,
        'system': derived['system'],
        'owner': layout.owner, 'group': layout.group,
        'keep': s['stigmer_keep_versions'],
        'lock_timeout': LOCK_TIMEOUT,
        'prefix': layout.prefix,
        'record': layout.prefix + '/install-record.json',
        'account': ({'user': s['stigmer_service_user'], 'group': s['stigmer_service_group'], 'home': layout.home}
                    if services else None),
        'trees': trees_for(s, layout, releases),
        'directories': directories,
        'leaves': layout.leaves if services else [],
        'links': links,
        'remove': obsolete,
        'retired': retired,
        'uninstall': uninstall,
        'components': [{
            'name': c.name, 'enabled': c.enabled, 'unit': c.unit, 'path': c.unit_path, 'watch': c.watch,
            'content': systemd_unit(c, s, layout, th, tp) if c.enabled and manager == 'systemd' else None,
            'launchd': launchd_job(c, s, layout, th, tp) if manager == 'launchd' else None,
        } for c in comps] if services else [],
        'target': ({'unit': 'stigmer.target', 'path': os_data['unit_path'] % 'stigmer.target', 'content': target_unit(enabled)}
                   if manager == 'systemd' else None),
        'network_guard': network_guard(s, comps, manager) if services else None,
    }
    return Plan(settings=s, derived=derived, platform=platform, layout=layout, releases=releases,
                components=comps, host_plan=host)


def plan_from_vars(templar, task_vars, release_results=None):
    """The Plan of the host whose variables task_vars holds (an action plugin's view)."""
    s, derived = read_role_settings(templar, task_vars)
    facts = task_vars.get('ansible_facts') or {}
    platform = facts.get('stigmer_platform')
    os_data = templar.template(task_vars.get('_stigmer_os'))
    if not platform or not os_data:
        raise SettingsError('the platform of this host is not known yet (the role detects it first)')
    user = {'dir': facts.get('user_dir'), 'uid': facts.get('user_id'), 'gid': facts.get('user_gid')}
    return build(s, derived, platform, os_data, user, release_results)
