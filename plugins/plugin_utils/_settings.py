# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's variables, read once and converted to the types its argument specs declare.

Controller-side only. Every role variable passes through normalise() before anything uses it:
``-e stigmer_service_enabled=false`` (a string) becomes False, ``"7233"`` becomes 7233, a comma
list becomes a list, and a value that cannot be converted is refused naming the variable and the
type it needs, never the value (it may be a secret). Then check() refuses combinations and values
that cannot go where they are going (units, plists, environment files), again naming variables.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# Keys of an argument_specs.yml option that the validator understands; the rest is documentation.
_SPEC_KEYS = ('type', 'elements', 'choices', 'required', 'no_log', 'options', 'aliases')

_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
_ACCOUNT = re.compile(r'[A-Za-z_][A-Za-z0-9_.-]{0,31}')
_HOSTNAME = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
                       r'(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
# Values that end up in a unit file, a plist or on a command line: no control characters there.
UNIT_VALUES = ('stigmer_temporal_namespace', 'stigmer_temporal_ip', 'stigmer_temporal_address',
               'stigmer_service_user', 'stigmer_service_group', 'stigmer_server_address')
# Paths on the managed host: never expanded with the controller's ~ or $VARS.
PATHS = ('stigmer_prefix', 'stigmer_bin_dir', 'stigmer_state_dir')
INTEGERS = ('stigmer_keep_versions', 'stigmer_health_timeout', 'stigmer_health_settle')
# URLs that may carry user:pass@: the tasks get them whole, the printed settings without the password.
URLS = ('stigmer_mirror_url', 'stigmer_temporal_mirror_url')
# Mappings whose values may be URLs with a password (proxies).
URL_MAPS = ('stigmer_download_environment',)
PORTS = ('stigmer_temporal_port', 'stigmer_temporal_ui_port', 'stigmer_server_port')


class SettingsError(Exception):
    """A role variable is missing, of the wrong type, or cannot be used where it goes."""


def validator_spec(options):
    """The parts of argument_specs.yml options the validator uses: no defaults (the role's
    defaults are already in the variables, and some are templates), no documentation."""
    spec = {}
    for name, option in (options or {}).items():
        entry = dict((k, option[k]) for k in _SPEC_KEYS if k in option)
        if name in PATHS:
            entry['type'] = 'str'
        if 'options' in entry:
            entry['options'] = validator_spec(entry['options'])
        spec[name] = entry
    return spec


def secret_names(options):
    return sorted(name for name, option in (options or {}).items() if option.get('no_log'))


def _mask(text, secrets):
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, '********')
    return text


def normalise(options, raw):
    """{variable: value of its declared type} for every option of the spec.

    raw holds the variables as Ansible rendered them (any may be a string). A variable that is
    not set keeps None. Raises SettingsError naming every variable that cannot be converted (the
    values of no_log variables are masked in the message).
    """
    spec = validator_spec(options)
    params = dict((name, raw[name]) for name in spec if raw.get(name) is not None)
    result = ArgumentSpecValidator(spec).validate(params)
    if result.error_messages:
        secrets = [str(raw.get(name) or '') for name in secret_names(options)]
        messages = sorted(set(_mask(m, secrets) for m in result.error_messages))
        raise SettingsError('Role variables of the wrong type: %s. Give each the type its documentation '
                            '(ansible-doc -t role stigmer.runtime.stigmer) names; "true"/"false", "yes"/"no" '
                            'and 1/0 are read as booleans.' % '; '.join(messages))
    values = dict((name, None) for name in spec)
    values.update(result.validated_parameters)
    return values


# ---------------------------------------------------------------------------
# Values checked for where they go
# ---------------------------------------------------------------------------

def unit_safe(name, value):
    """A value that reaches a unit file, a plist or a command line holds no control character."""
    if value is not None and _CONTROL.search(str(value)):
        raise SettingsError('%s holds a newline or another control character; it would reach a service '
                            'definition, where it could add lines of its own. Remove it.' % name)
    return value


def port(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise SettingsError('%s must be a TCP port from 1 to 65535.' % name)
    return value


def absolute_path(name, value):
    """An absolute path without '.', '..' or doubled slashes, and without control characters,
    backslashes or blanks at either end (a unit file would read them otherwise)."""
    unit_safe(name, value)
    if not isinstance(value, str) or '\\' in value or value != value.strip():
        raise SettingsError('%s is %r: it must be an absolute path without backslashes or blanks at its ends, '
                            'such as /opt/stigmer.' % (name, value))
    trimmed = value.rstrip('/')
    if not value.startswith('/') or value.startswith('//') or not trimmed or os.path.normpath(trimmed) != trimmed:
        raise SettingsError('%s is %r: it must be an absolute, normalised path such as /opt/stigmer (no "..", "." '
                            'or doubled slashes).' % (name, value))
    return trimmed


def ip_address(name, value):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise SettingsError('%s must be an IP address such as 127.0.0.1.' % name)


def networks(name, values):
    """Addresses and CIDR networks (host bits allowed, as systemd allows them), 'localhost' or 'any'."""
    parsed = []
    for value in values or []:
        unit_safe(name, value)
        text = str(value).strip()
        if text in ('any', 'localhost'):
            parsed.append(text)
            continue
        try:
            parsed.append(str(ipaddress.ip_network(text, strict=False)) if '/' in text
                          else str(ipaddress.ip_address(text)))
        except ValueError:
            raise SettingsError('%s lists %r, which is neither an IP address, a CIDR network such as '
                                '10.20.0.0/16, "localhost" nor "any".' % (name, text))
    return parsed


def host_port(name, value):
    """'host:port' or '[v6]:port' -> (host, port)."""
    unit_safe(name, value)
    match = re.match(r'^\[([0-9A-Fa-f:.]+)\]:(\d+)$', value) or re.match(r'^([^:\[\]]+):(\d+)$', value)
    if not match:
        raise SettingsError('%s must be host:port (or [IPv6]:port) of your Temporal, such as 10.0.0.5:7233.' % name)
    host = match.group(1)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise SettingsError('%s names %r, which is neither an IP address nor a host name.' % (name, host))
    return host, port(name, int(match.group(2)))


def is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def environment_problems(environments):
    """Names (never values) of entries that cannot be written single-quoted into an environment file."""
    bad = set()
    for env in environments:
        for key, value in env.items():
            if not _ENV_NAME.fullmatch(str(key)) or "'" in str(value) or _CONTROL.search(str(value)):
                bad.add(str(key))
    return sorted(bad)


def check(s):
    """Refuse settings that cannot work together or cannot be written where they go. s is normalise()d.

    Returns the derived facts every later step uses: system, services, controller_mode, and for an
    external Temporal its host and port.
    """
    for name in PORTS:
        port(name, s[name])
    for name in PATHS:
        # Only the state directory may be empty (the platform's default).
        if s[name] or name != 'stigmer_state_dir':
            s[name] = absolute_path(name, s[name] or '')
    for name in INTEGERS:
        if not isinstance(s[name], int) or isinstance(s[name], bool):
            raise SettingsError('%s must be a whole number.' % name)
    for name in UNIT_VALUES:
        unit_safe(name, s[name])
    for name in ('stigmer_service_user', 'stigmer_service_group'):
        if not _ACCOUNT.fullmatch(s[name] or ''):
            raise SettingsError('%s must be an account name (letters, digits, "_", "-", ".", not starting with a '
                                'digit or "-").' % name)
    if not s['stigmer_temporal_namespace']:
        raise SettingsError('stigmer_temporal_namespace is empty: name the Temporal namespace (default "default").')
    s['stigmer_temporal_ip'] = ip_address('stigmer_temporal_ip', s['stigmer_temporal_ip'])
    s['stigmer_server_allowed_networks'] = networks('stigmer_server_allowed_networks',
                                                    s['stigmer_server_allowed_networks'])
    system = s['stigmer_install_scope'] == 'system'
    services = bool(s['stigmer_service_enabled']) and system
    if s['stigmer_keep_versions'] < (2 if s['stigmer_rollback_on_failure'] else 1):
        raise SettingsError('stigmer_keep_versions must be at least 1, and at least 2 with stigmer_rollback_on_failure '
                            '(a rollback needs the previous version kept).')
    if s['stigmer_service_enabled'] and not system:
        raise SettingsError('Services need stigmer_install_scope=system; set stigmer_service_enabled=false for a user '
                            'install.')
    if not 0 <= s['stigmer_health_settle'] <= s['stigmer_health_timeout']:
        raise SettingsError('stigmer_health_timeout must be at least stigmer_health_settle, and both at least 0.')
    temporal = None
    if not s['stigmer_temporal_enabled']:
        if not s['stigmer_temporal_address']:
            raise SettingsError('With stigmer_temporal_enabled=false set stigmer_temporal_address to host:port of your '
                                'Temporal.')
        temporal = host_port('stigmer_temporal_address', s['stigmer_temporal_address'])
    if services:
        provider = s['stigmer_llm_provider']
        key_var = {'anthropic': 'stigmer_anthropic_api_key', 'openai': 'stigmer_openai_api_key'}.get(provider)
        if key_var and not s[key_var]:
            raise SettingsError('stigmer_llm_provider is %s but %s is empty: the agent-runner could run no agent. '
                                'Set it (from Ansible Vault), or use stigmer_llm_provider=ollama.' % (provider, key_var))
        for name in ('stigmer_anthropic_api_key', 'stigmer_openai_api_key', 'stigmer_api_key'):
            if re.search('[\'"\\\\\n$`]', s[name] or ''):
                raise SettingsError('An API key contains a quote, backslash, dollar, backtick or newline (%s); API keys '
                                    'never do: check the vaulted value.' % name)
        if temporal and not is_ip(temporal[0]) and temporal[0] != 'localhost' and \
                not s['stigmer_server_allowed_networks']:
            raise SettingsError('stigmer_temporal_address names the host %s, but the server may only connect to '
                                'localhost and stigmer_server_allowed_networks, which take addresses: list '
                                "Temporal's address or network there (or \"any\"), or give stigmer_temporal_address "
                                'as IP:port.' % temporal[0])
    return {
        'system': system,
        'services': services,
        'controller_mode': s['stigmer_download_mode'] == 'controller',
        'temporal_host': temporal[0] if temporal else s['stigmer_temporal_ip'],
        'temporal_port': temporal[1] if temporal else s['stigmer_temporal_port'],
    }


# ---------------------------------------------------------------------------
# From an action plugin's task variables
# ---------------------------------------------------------------------------

_SPEC_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'stigmer', 'meta', 'argument_specs.yml')
_SPEC_CACHE = {}


def role_options(entry_point='main', path=_SPEC_FILE):
    """The options of one entry point of the role's meta/argument_specs.yml, read once per process."""
    key = (os.path.realpath(path), entry_point)
    if key not in _SPEC_CACHE:
        import yaml
        with open(path) as handle:
            _SPEC_CACHE[key] = yaml.safe_load(handle)['argument_specs'][entry_point]['options']
    return _SPEC_CACHE[key]


def read_role_settings(templar, task_vars, entry_point='main'):
    """(settings, derived) of the host whose variables task_vars holds: each role variable rendered
    once, converted to its declared type and checked (normalise(), check())."""
    options = role_options(entry_point)
    raw = {}
    for name in options:
        if name in task_vars:
            raw[name] = templar.template(task_vars[name])
    settings = normalise(options, raw)
    return settings, check(settings)


def without_password(url):
    """A URL with the password of its user:pass@ replaced, for printing."""
    match = re.match(r'^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@(.*)$', url or '')
    return '%s:********@%s' % match.groups() if match else url


def public(settings, options=None):
    """The settings without their secrets (no_log options, passwords in URLs): what tasks may read and print."""
    hidden = set(secret_names(options or role_options()))

    def shown(key, value):
        if key in URLS:
            return without_password(value)
        if key in URL_MAPS and isinstance(value, dict):
            return dict((name, without_password(v) if isinstance(v, str) else v) for name, v in value.items())
        return value
    return dict((k, shown(k, v)) for k, v in settings.items() if k not in hidden)
