# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_settings: the role's variables converted to the types meta/argument_specs.yml declares
(normalise), then refused where they cannot work or cannot be written where they go (check),
each refusal naming its variable and never a secret.
"""

import pytest

from ansible_collections.stigmer.runtime.plugins.plugin_utils import _settings
from ansible_collections.stigmer.runtime.plugins.plugin_utils._settings import SettingsError, normalise
from ansible_collections.stigmer.runtime.tests.unit.plugins.plugin_utils.conftest import (
    FakeTemplar, role_vars, settings, task_vars)

OPTIONS = _settings.role_options()
SECRETS = ('stigmer_anthropic_api_key', 'stigmer_github_token', 'stigmer_mirror_password', 'stigmer_openai_api_key')
TOKEN = 'github-test-token-SECRET-4711'
ANTHROPIC = 'anthropic-test-value-SECRET-0815'


def refusal(**overrides):
    """The SettingsError message of the defaults with overrides (normalise, then check)."""
    with pytest.raises(SettingsError) as info:
        settings(**overrides)
    return str(info.value)


# ---------------------------------------------------------------------------
# normalise(): the declared types
# ---------------------------------------------------------------------------

def test_defaults_pass_and_keep_their_types():
    s = normalise(OPTIONS, role_vars())
    assert set(s) == set(OPTIONS)
    assert s['stigmer_service_enabled'] is True
    assert s['stigmer_temporal_port'] == 7233
    assert s['stigmer_server_allowed_networks'] == []
    assert s['stigmer_checksums'] == {}
    assert s['stigmer_mirror_platforms'] == ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64']


@pytest.mark.parametrize('given', ['false', 'no', 'off', '0', 0, False, 'False', 'NO'])
def test_falsy_spellings_become_false(given):
    s = normalise(OPTIONS, role_vars(stigmer_service_enabled=given, stigmer_workflow_runner_enabled=given))
    assert s['stigmer_service_enabled'] is False
    assert s['stigmer_workflow_runner_enabled'] is False


@pytest.mark.parametrize('given', ['true', 'yes', 'on', '1', 1, 'True'])
def test_truthy_spellings_become_true(given):
    s = normalise(OPTIONS, role_vars(stigmer_temporal_enabled=given))
    assert s['stigmer_temporal_enabled'] is True


def test_string_number_becomes_int():
    s = normalise(OPTIONS, role_vars(stigmer_temporal_port='7233', stigmer_keep_versions='3'))
    assert s['stigmer_temporal_port'] == 7233 and isinstance(s['stigmer_temporal_port'], int)
    assert s['stigmer_keep_versions'] == 3


def test_comma_string_becomes_list():
    s = normalise(OPTIONS, role_vars(stigmer_server_allowed_networks='10.0.0.0/8,192.168.1.7'))
    assert s['stigmer_server_allowed_networks'] == ['10.0.0.0/8', '192.168.1.7']


def test_json_string_becomes_dict():
    s = normalise(OPTIONS, role_vars(stigmer_checksums='{"stigmer-v0.1.0-linux-amd64.tar.gz": "ab12"}',
                                     stigmer_extra_environment='{"LOG_LEVEL": "debug"}'))
    assert s['stigmer_checksums'] == {'stigmer-v0.1.0-linux-amd64.tar.gz': 'ab12'}
    assert s['stigmer_extra_environment'] == {'LOG_LEVEL': 'debug'}


def test_number_given_for_a_string_becomes_a_string():
    s = normalise(OPTIONS, role_vars(stigmer_temporal_namespace=42))
    assert s['stigmer_temporal_namespace'] == '42'


def test_unset_and_null_variables_stay_none():
    raw = role_vars(stigmer_llm_model=None)
    del raw['stigmer_llm_base_url']
    s = normalise(OPTIONS, raw)
    assert s['stigmer_llm_model'] is None
    assert s['stigmer_llm_base_url'] is None
    assert set(s) == set(OPTIONS)


def test_variables_outside_the_spec_are_ignored():
    s = normalise(OPTIONS, role_vars(ansible_host='10.0.0.1', stigmer_not_an_option='x'))
    assert 'ansible_host' not in s and 'stigmer_not_an_option' not in s


@pytest.mark.parametrize('name, value, type_name', [
    ('stigmer_temporal_port', 'seven', 'int'),
    ('stigmer_keep_versions', '2.5', 'int'),
    ('stigmer_service_enabled', 'maybe', 'bool'),
    ('stigmer_checksums', 'not a mapping', 'dict'),
    ('stigmer_extra_environment', ['LOG_LEVEL=debug'], 'dict'),
])
def test_unconvertible_value_is_refused_naming_variable_and_type(name, value, type_name):
    with pytest.raises(SettingsError) as info:
        normalise(OPTIONS, role_vars(**{name: value}))
    msg = str(info.value)
    assert name in msg
    assert type_name in msg


def test_every_unconvertible_variable_is_named_at_once():
    with pytest.raises(SettingsError) as info:
        normalise(OPTIONS, role_vars(stigmer_temporal_port='seven', stigmer_rollback_on_failure='perhaps'))
    assert 'stigmer_temporal_port' in str(info.value)
    assert 'stigmer_rollback_on_failure' in str(info.value)


def test_value_outside_choices_is_refused_naming_variable():
    with pytest.raises(SettingsError) as info:
        normalise(OPTIONS, role_vars(stigmer_llm_provider='gpt'))
    assert 'stigmer_llm_provider' in str(info.value)


@pytest.mark.parametrize('secret_var, secret, misplaced_in', [
    ('stigmer_github_token', TOKEN, 'stigmer_temporal_port'),
    ('stigmer_anthropic_api_key', ANTHROPIC, 'stigmer_health_timeout'),
    ('stigmer_mirror_password', 'hunter2-SECRET', 'stigmer_validate_certs'),
])
def test_secret_never_appears_in_a_type_error(secret_var, secret, misplaced_in):
    """The vaulted value also given, by mistake, to a variable of another type: the validator quotes
    the value it could not convert, normalise() masks it."""
    with pytest.raises(SettingsError) as info:
        normalise(OPTIONS, role_vars(**{secret_var: secret, misplaced_in: secret}))
    msg = str(info.value)
    assert misplaced_in in msg
    assert secret not in msg
    # Where the validator quotes the value (a bool on every ansible-core, an int on the newer ones), it is masked.
    if misplaced_in == 'stigmer_validate_certs':
        assert '********' in msg


def test_validator_spec_keeps_only_what_the_validator_reads():
    spec = _settings.validator_spec(OPTIONS)
    assert set(spec) == set(OPTIONS)
    for name, entry in spec.items():
        assert set(entry) <= set(_settings._SPEC_KEYS), name
        # Host paths are plain strings: the validator's path type would expand the controller's ~ and $VARS.
        assert entry['type'] == ('str' if name in _settings.PATHS else OPTIONS[name]['type'])
    assert spec['stigmer_mirror_platforms']['choices'] == OPTIONS['stigmer_mirror_platforms']['choices']
    assert spec['stigmer_server_allowed_networks']['elements'] == 'str'


def test_secret_names_are_the_no_log_options():
    assert _settings.secret_names(OPTIONS) == sorted(SECRETS)


def test_public_drops_every_secret_and_keeps_the_rest():
    s, _derived = settings(stigmer_github_token=TOKEN, stigmer_anthropic_api_key=ANTHROPIC, stigmer_llm_provider='anthropic',
                           stigmer_mirror_password='hunter2-SECRET', stigmer_openai_api_key='openai-test-value-SECRET')
    public = _settings.public(s)
    assert not set(SECRETS) & set(public)
    assert set(public) == set(s) - set(SECRETS)
    assert public['stigmer_api_key'] == 'dummy-local-key'


def test_public_settings_hide_the_mirror_url_password():
    """Regression (_settings.public / stigmer_plan): the docs promise that user:pass@ in stigmer_mirror_url is
    "masked in all output", but public() keeps the URL whole and stigmer_plan returns it in
    `settings`, so `-v` prints the password of the plan task. Before the plan moved to Python the URL
    only reached stigmer_release, which masks it."""
    s, _derived = settings(stigmer_mirror_url='https://ops:hunter2-SECRET@mirror.example/stigmer')
    assert 'hunter2-SECRET' not in repr(_settings.public(s))


def test_public_settings_hide_a_proxy_password_in_the_download_environment():
    s, _derived = settings(stigmer_download_environment={'https_proxy': 'http://ops:pr0xy-SECRET@proxy.example:3128',
                                                         'no_proxy': 'localhost'})
    shown = _settings.public(s)['stigmer_download_environment']
    assert shown == {'https_proxy': 'http://ops:********@proxy.example:3128', 'no_proxy': 'localhost'}
    assert 'pr0xy-SECRET' in s['stigmer_download_environment']['https_proxy']  # the settings themselves keep it


def test_host_paths_are_not_expanded_on_the_controller(monkeypatch):
    """Regression (_settings.normalise): the host paths are declared type: path, and the validator expands
    '~' and $VARS with the controller's environment. '~/stigmer' becomes the controller user's home
    on every host and then passes check() as an absolute path; '/srv/$VAR' takes a controller
    variable. Suggested fix: validate host paths (PATHS) as 'str' in validator_spec() (absolute_path()
    then refuses '~/...'). Either refusing or keeping the value literal passes this test."""
    monkeypatch.setenv('HOME', '/home/controller-user')
    monkeypatch.setenv('STIGMER_TEST_DIR', '/controller/dir')
    for name, value in (('stigmer_prefix', '~/stigmer'), ('stigmer_state_dir', '/srv/$STIGMER_TEST_DIR')):
        try:
            s, _derived = settings(**{name: value})
        except SettingsError as exc:
            assert name in str(exc)
            continue
        assert s[name] == value, '%s=%r became %r' % (name, value, s[name])


# ---------------------------------------------------------------------------
# check(): what the settings lead to
# ---------------------------------------------------------------------------

def test_default_derived_values():
    _typed, derived = settings()
    assert derived == {'system': True, 'services': True, 'controller_mode': True,
                       'temporal_host': '127.0.0.1', 'temporal_port': 7233}


def test_host_download_mode_is_not_controller_mode():
    assert settings(stigmer_download_mode='host')[1]['controller_mode'] is False


def test_services_off_when_disabled_by_extra_var_string():
    s, derived = settings(stigmer_service_enabled='false')
    assert derived['services'] is False and derived['system'] is True


def test_user_scope_has_no_services():
    _typed, derived = settings(stigmer_install_scope='user', stigmer_service_enabled=False)
    assert derived['system'] is False and derived['services'] is False


def test_user_scope_with_services_is_refused():
    msg = refusal(stigmer_install_scope='user')
    assert 'stigmer_install_scope' in msg and 'stigmer_service_enabled' in msg


def test_check_normalises_paths_networks_and_addresses():
    s, _derived = settings(stigmer_prefix='/opt/stigmer/', stigmer_state_dir='/srv/stigmer/', stigmer_temporal_ip='0:0::1',
                           stigmer_server_allowed_networks=['10.1.2.3/16', ' localhost ', 'fd00::1', 'any'])
    assert s['stigmer_prefix'] == '/opt/stigmer'
    assert s['stigmer_state_dir'] == '/srv/stigmer'
    assert s['stigmer_temporal_ip'] == '::1'
    assert s['stigmer_server_allowed_networks'] == ['10.1.0.0/16', 'localhost', 'fd00::1', 'any']


def test_empty_state_dir_means_the_platform_default():
    s, _derived = settings(stigmer_state_dir='')
    assert s['stigmer_state_dir'] == ''


@pytest.mark.parametrize('name, value', [
    ('stigmer_server_allowed_networks', ['10.0.0.1\nExecStartPre=/bin/sh -c id']),
    ('stigmer_server_allowed_networks', '10.0.0.0/8\r'),
    ('stigmer_temporal_namespace', 'default\n[Service]\nExecStartPre=/bin/id'),
    ('stigmer_temporal_namespace', 'ns\x00'),
    ('stigmer_temporal_address', '10.0.0.5:7233\n'),
    ('stigmer_server_address', '127.0.0.1\nEVIL=1'),
    ('stigmer_service_user', 'stigmer\n'),
    ('stigmer_service_group', 'stigmer\tx'),
    ('stigmer_state_dir', '/srv/stigmer\nExecStart=/bin/id'),
    ('stigmer_prefix', '/opt/stig\x7fmer'),
])
def test_control_characters_are_refused_naming_the_variable(name, value):
    overrides = {name: value}
    if name == 'stigmer_temporal_address':
        overrides['stigmer_temporal_enabled'] = False
    msg = refusal(**overrides)
    assert name in msg
    assert '\n' not in msg and 'EVIL' not in msg and 'ExecStart' not in msg


@pytest.mark.parametrize('networks', [['10.0.0.0/33'], ['10.0.0.256'], ['intranet'], ['localhost/8'],
                                      ['10.0.0.0/8', 'x']])
def test_bad_network_is_refused_naming_variable(networks):
    assert 'stigmer_server_allowed_networks' in refusal(stigmer_server_allowed_networks=networks)


@pytest.mark.parametrize('name', ['stigmer_temporal_port', 'stigmer_temporal_ui_port', 'stigmer_server_port'])
@pytest.mark.parametrize('value', [0, 70000, 65536, -1])
def test_port_out_of_range_is_refused_naming_variable(name, value):
    msg = refusal(**{name: value})
    assert name in msg and '65535' in msg


@pytest.mark.parametrize('name', ['stigmer_prefix', 'stigmer_bin_dir', 'stigmer_state_dir'])
@pytest.mark.parametrize('value', ['opt/stigmer', '/opt/../etc', '/opt/./stigmer', '//opt/stigmer', '/opt//stigmer',
                                   '..', '/'])
def test_relative_or_unnormalised_path_is_refused_naming_variable(name, value):
    assert name in refusal(**{name: value})


@pytest.mark.parametrize('name', ['stigmer_service_user', 'stigmer_service_group'])
@pytest.mark.parametrize('value', ['1stigmer', '-stigmer', 'stig mer', 'stig:mer', 'a' * 33, '', 'stigmer;id'])
def test_bad_account_name_is_refused_naming_variable(name, value):
    assert name in refusal(**{name: value})


@pytest.mark.parametrize('value', ['_stigmer', 'stigmer', 'svc.stigmer-1', 'a' * 32])
def test_good_account_names_pass(value):
    s, _derived = settings(stigmer_service_user=value, stigmer_service_group=value)
    assert s['stigmer_service_user'] == value


def test_temporal_ip_must_be_an_address():
    assert 'stigmer_temporal_ip' in refusal(stigmer_temporal_ip='localhost')


def test_empty_namespace_is_refused():
    assert 'stigmer_temporal_namespace' in refusal(stigmer_temporal_namespace='')


@pytest.mark.parametrize('keep, rollback', [(1, True), (0, False), (-1, False)])
def test_too_few_kept_versions_are_refused(keep, rollback):
    assert 'stigmer_keep_versions' in refusal(stigmer_keep_versions=keep, stigmer_rollback_on_failure=rollback)


def test_one_kept_version_without_rollback_passes():
    assert settings(stigmer_keep_versions=1, stigmer_rollback_on_failure=False)[0]['stigmer_keep_versions'] == 1


@pytest.mark.parametrize('settle, timeout', [(100, 90), (-1, 90)])
def test_health_settle_beyond_timeout_is_refused(settle, timeout):
    msg = refusal(stigmer_health_settle=settle, stigmer_health_timeout=timeout)
    assert 'stigmer_health_timeout' in msg and 'stigmer_health_settle' in msg


def test_temporal_disabled_without_address_is_refused():
    assert 'stigmer_temporal_address' in refusal(stigmer_temporal_enabled=False)


@pytest.mark.parametrize('address, host, port', [
    ('10.0.0.5:7233', '10.0.0.5', 7233),
    ('[fd00::5]:7234', 'fd00::5', 7234),
    ('localhost:7233', 'localhost', 7233),
])
def test_external_temporal_address_is_split(address, host, port):
    _typed, derived = settings(stigmer_temporal_enabled='false', stigmer_temporal_address=address)
    assert (derived['temporal_host'], derived['temporal_port']) == (host, port)


@pytest.mark.parametrize('address', ['10.0.0.5', 'temporal:0', 'temporal:99999', 'bad_host!:7233', 'a:b:7233',
                                     '[temporal]:7233', 'temporal.example:port', ':7233', 'tem poral:7233'])
def test_malformed_external_temporal_address_is_refused(address):
    assert 'stigmer_temporal_address' in refusal(stigmer_temporal_enabled=False, stigmer_temporal_address=address)


def test_hostname_temporal_without_allowed_networks_is_refused():
    msg = refusal(stigmer_temporal_enabled=False, stigmer_temporal_address='temporal.example.com:7233')
    assert 'stigmer_temporal_address' in msg and 'stigmer_server_allowed_networks' in msg
    assert 'temporal.example.com' in msg


def test_hostname_temporal_with_allowed_networks_passes():
    _typed, derived = settings(stigmer_temporal_enabled=False, stigmer_temporal_address='temporal.example.com:7233',
                               stigmer_server_allowed_networks=['10.20.0.0/16'])
    assert derived['temporal_host'] == 'temporal.example.com'


def test_hostname_temporal_without_services_needs_no_network():
    _typed, derived = settings(stigmer_temporal_enabled=False, stigmer_temporal_address='temporal.example.com:7233',
                               stigmer_service_enabled=False)
    assert derived['services'] is False and derived['temporal_host'] == 'temporal.example.com'


@pytest.mark.parametrize('provider, key_var', [('anthropic', 'stigmer_anthropic_api_key'),
                                               ('openai', 'stigmer_openai_api_key')])
def test_provider_without_its_key_is_refused(provider, key_var):
    msg = refusal(stigmer_llm_provider=provider)
    assert key_var in msg and provider in msg


def test_provider_without_key_passes_without_services():
    assert settings(stigmer_llm_provider='anthropic', stigmer_service_enabled=False)[1]['services'] is False


def test_provider_with_key_passes():
    s, _derived = settings(stigmer_llm_provider='anthropic', stigmer_anthropic_api_key=ANTHROPIC)
    assert s['stigmer_anthropic_api_key'] == ANTHROPIC


@pytest.mark.parametrize('key_var', ['stigmer_anthropic_api_key', 'stigmer_openai_api_key', 'stigmer_api_key'])
@pytest.mark.parametrize('bad', ["'", '"', '\\', '$', '`'])
def test_api_key_with_shell_character_is_refused_without_showing_it(key_var, bad):
    key = 'key-SECRET%sREST' % bad
    msg = refusal(**{key_var: key, 'stigmer_llm_provider': 'ollama'})
    assert key_var in msg
    assert 'SECRET' not in msg


# ---------------------------------------------------------------------------
# Defects: each test below fails until _settings.check() is fixed
# ---------------------------------------------------------------------------

def test_empty_prefix_or_bin_dir_is_refused():
    """Regression (_settings.check): `if s[name]:` skips the absolute-path check for an empty value, which
    is meant only for stigmer_state_dir (empty: the platform default). `-e stigmer_prefix=` then
    plans /versions, /current and /install-record.json at the root, `-e stigmer_bin_dir=` a link
    /stigmer. Suggested fix: check stigmer_prefix and stigmer_bin_dir unconditionally (at least for
    system scope), keep the empty-allowed case for stigmer_state_dir only."""
    accepted = []
    for name in ('stigmer_prefix', 'stigmer_bin_dir'):
        try:
            settings(**{name: ''})
            accepted.append(name)
        except SettingsError as exc:
            assert name in str(exc)
    assert accepted == []


def test_null_integer_is_refused_naming_it():
    """Regression (_settings.check): a variable set to null (`stigmer_keep_versions:` with no value in an
    inventory) stays None after normalise(), and check() compares it with an int: TypeError, a
    unexpected failure of the action plugin (it catches SettingsError and AnsibleError only) instead of
    a message naming the variable. Suggested fix: refuse None for every option check() computes with, e.g. an
    `integer(name, value)` helper like port(). Also stigmer_health_timeout and stigmer_health_settle."""
    with pytest.raises(SettingsError) as info:
        settings(stigmer_keep_versions=None)
    assert 'stigmer_keep_versions' in str(info.value)


def test_environment_problems_names_bad_names_and_values_only():
    env = {'GOOD': 'plain value with $ and %', 'BAD-NAME': 'x', '9START': 'x', 'QUOTED': "it's", 'NEWLINE': 'a\nb',
           'TAB': 'a\tb'}
    assert _settings.environment_problems([env]) == sorted(['9START', 'BAD-NAME', 'NEWLINE', 'QUOTED', 'TAB'])


# ---------------------------------------------------------------------------
# From task variables
# ---------------------------------------------------------------------------

def test_read_role_settings_renders_the_role_variables_and_types_them():
    variables = task_vars(stigmer_service_enabled='no', stigmer_server_port='{{ my_port }}', my_port='7300',
                          stigmer_mirror_temporal_versions=['{{ stigmer_temporal_version }}'])
    templar = FakeTemplar(variables)
    s, derived = _settings.read_role_settings(templar, variables)
    assert s['stigmer_service_enabled'] is False and derived['services'] is False
    assert s['stigmer_server_port'] == 7300
    assert s['stigmer_mirror_temporal_versions'] == ['1.5.1']
    # Only the role's variables are rendered: not the facts, not the per-OS data.
    assert not any(v is variables['ansible_facts'] or v is variables['_stigmer_os'] for v in templar.rendered)


def test_read_role_settings_refuses_bad_values():
    variables = task_vars(stigmer_temporal_port='{{ my_port }}', my_port='0')
    with pytest.raises(SettingsError) as info:
        _settings.read_role_settings(FakeTemplar(variables), variables)
    assert 'stigmer_temporal_port' in str(info.value)


def test_mirror_entry_point_has_its_own_options():
    mirror = _settings.role_options('mirror')
    assert 'stigmer_mirror_dir' in mirror and 'stigmer_service_user' not in mirror
    assert mirror['stigmer_github_token']['no_log'] is True
