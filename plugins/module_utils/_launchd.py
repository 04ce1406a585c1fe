# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""LaunchDaemons in launchd's system domain, driven with the modern launchctl verbs.

Only bootstrap, bootout, enable, kickstart and print are used: load/unload are
deprecated, ignore domains and report errors with exit code 0.

Every process call goes through one runner, ``runner(argv) -> (rc, stdout,
stderr)`` (AnsibleModule.run_command in production), so tests can fake
launchctl and dscl at the process boundary.
"""

import os
import plistlib
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._host import atomic_write

LAUNCHCTL = '/bin/launchctl'
DSCL = '/usr/bin/dscl'
DOMAIN = 'system'
DAEMONS_DIR = '/Library/LaunchDaemons'
ROOT_UID = 0
ROOT_GID = 0  # wheel
PLIST_MODE = 0o644
# launchd finishes a bootout asynchronously; poll `print` until the service is
# gone instead of sleeping a fixed, long time. Sum of delays is about 10 s.
UNLOAD_DELAYS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 1.5)

# Keys this module manages from its own options; ``extra`` may add others.
MANAGED_KEYS = ('Label', 'ProgramArguments', 'UserName', 'GroupName', 'EnvironmentVariables',
                'WorkingDirectory', 'StandardOutPath', 'StandardErrorPath', 'KeepAlive',
                'RunAtLoad', 'ThrottleInterval')


class LaunchdError(Exception):
    """The LaunchDaemon cannot be brought to the requested state."""


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------

def validate_label(label):
    if not isinstance(label, str) or not label.strip():
        raise LaunchdError('label must be a non-empty string')
    if label != label.strip() or '/' in label or '\0' in label or label.startswith('.'):
        raise LaunchdError('label %r is not usable as a launchd label and file name' % label)
    return label


def default_path(label):
    return '%s/%s.plist' % (DAEMONS_DIR, label)


def service_target(label):
    return '%s/%s' % (DOMAIN, label)


def print_argv(label):
    return [LAUNCHCTL, 'print', service_target(label)]


def bootstrap_argv(path):
    return [LAUNCHCTL, 'bootstrap', DOMAIN, path]


def bootout_argv(label):
    return [LAUNCHCTL, 'bootout', service_target(label)]


def enable_argv(label):
    return [LAUNCHCTL, 'enable', service_target(label)]


def kickstart_argv(label):
    return [LAUNCHCTL, 'kickstart', '-k', service_target(label)]


def user_check_argv(name):
    return [DSCL, '.', '-read', '/Users/%s' % name, 'UniqueID']


def group_check_argv(name):
    return [DSCL, '.', '-read', '/Groups/%s' % name, 'PrimaryGroupID']


def _env_value(name, value):
    # launchd wants strings; YAML hands over ints and booleans unquoted.
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (str, int, float)):
        return str(value)
    raise LaunchdError('environment variable %s must be a string, not %s' % (name, type(value).__name__))


def build_plist(label, program_arguments, user_name=None, group_name=None, environment=None,
                working_directory=None, stdout_path=None, stderr_path=None, keep_alive=True,
                run_at_load=True, throttle_interval=10, extra=None):
    """The plist dictionary for one daemon. Same inputs, same dict: the basis of idempotence."""
    validate_label(label)
    if not program_arguments:
        raise LaunchdError('program_arguments must name at least the program to run')
    plist = {
        'Label': label,
        'ProgramArguments': [str(arg) for arg in program_arguments],
        'KeepAlive': bool(keep_alive),
        'RunAtLoad': bool(run_at_load),
        'ThrottleInterval': int(throttle_interval),
    }
    optional = (('UserName', user_name), ('GroupName', group_name),
                ('WorkingDirectory', working_directory), ('StandardOutPath', stdout_path),
                ('StandardErrorPath', stderr_path))
    for key, value in optional:
        if value:
            plist[key] = str(value)
    if environment:
        plist['EnvironmentVariables'] = dict((str(k), _env_value(k, v)) for k, v in environment.items())
    for key, value in (extra or {}).items():
        if key == 'Label':
            raise LaunchdError('extra must not set Label; use the label option')
        if value is None:
            raise LaunchdError('extra key %s is null; a plist cannot hold null' % key)
        plist[key] = value
    # Fail here, with the key named, rather than inside plistlib later.
    serialize_plist(plist)
    return plist


def serialize_plist(plist):
    """XML with sorted keys, so the same dict always gives the same bytes."""
    try:
        return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LaunchdError('the plist cannot be written: %s' % exc)


def parse_plist(data):
    """Parsed plist dict, or None when the bytes are not a plist dictionary."""
    if data is None:
        return None
    try:
        parsed = plistlib.loads(data)
    except Exception:  # plistlib raises several unrelated types on bad input
        return None
    return parsed if isinstance(parsed, dict) else None


def plist_text(plist):
    return serialize_plist(plist).decode('utf-8') if plist is not None else ''


def attr_problems(st, uid=ROOT_UID, gid=ROOT_GID, mode=PLIST_MODE):
    """What is wrong with a plist's owner and mode; launchd refuses writable plists."""
    problems = []
    if st.st_uid != uid or st.st_gid != gid:
        problems.append('owner')
    if st.st_mode & 0o7777 != mode:
        problems.append('mode')
    return problems


# ---------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------

def read_existing(path):
    """(raw bytes or None, lstat or None). A symlink counts as content to replace."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if not os.path.isfile(path) or os.path.islink(path):
        return b'', st
    with open(path, 'rb') as handle:
        return handle.read(), st


class Launchd(object):
    """launchctl verbs over one runner; records every mutating argv in ``actions``."""

    def __init__(self, runner, check_mode=False, sleep=time.sleep, delays=UNLOAD_DELAYS):
        self.runner = runner
        self.check_mode = check_mode
        self.sleep = sleep
        self.delays = delays
        self.actions = []

    def is_loaded(self, label):
        rc, dummy, dummy2 = self.runner(print_argv(label))
        return rc == 0

    def act(self, argv, what):
        """Run a mutating verb; under check mode only record it."""
        self.actions.append(argv)
        if self.check_mode:
            return
        rc, out, err = self.runner(argv)
        if rc != 0:
            raise LaunchdError('%s failed (rc=%d): %s' % (what, rc, (err or out or '').strip() or 'no output'))

    def check_account(self, user_name, group_name):
        """Fail before touching the service if launchd could not start it as user_name."""
        if user_name:
            argv = user_check_argv(user_name)
            rc, dummy, err = self.runner(argv)
            if rc != 0:
                raise LaunchdError(
                    "the service account '%s' does not exist on this host (%s said: %s). Create it "
                    "first (for example with ansible.builtin.user, system: true) or set user_name to "
                    "an existing account." % (user_name, ' '.join(argv), (err or '').strip() or 'rc=%d' % rc))
        if group_name:
            argv = group_check_argv(group_name)
            rc, dummy, err = self.runner(argv)
            if rc != 0:
                raise LaunchdError(
                    "the group '%s' does not exist on this host (%s said: %s). Create it first or "
                    "set group_name to an existing group." % (group_name, ' '.join(argv),
                                                              (err or '').strip() or 'rc=%d' % rc))

    def bootstrap(self, label, path):
        # A disabled service cannot be bootstrapped, and enable is what makes
        # it come back at boot: enable first.
        self.act(enable_argv(label), 'launchctl enable %s' % service_target(label))
        self.act(bootstrap_argv(path), 'launchctl bootstrap %s %s' % (DOMAIN, path))

    def bootout(self, label):
        argv = bootout_argv(label)
        self.actions.append(argv)
        if self.check_mode:
            return
        rc, out, err = self.runner(argv)
        # bootout returns before launchd has torn the job down, and a non-zero
        # rc may only mean it was already gone: what counts is `print` failing.
        for delay in self.delays:
            if not self.is_loaded(label):
                return
            self.sleep(delay)
        if not self.is_loaded(label):
            return
        raise LaunchdError('launchctl bootout %s did not unload the service (rc=%d: %s)'
                           % (service_target(label), rc, (err or out or '').strip() or 'no output'))

    def kickstart(self, label):
        self.act(kickstart_argv(label), 'launchctl kickstart -k %s' % service_target(label))

    def load(self, label, path, run_at_load=True):
        """Bootstrap the job from path; one without RunAtLoad is started as well."""
        self.bootstrap(label, path)
        if not run_at_load:
            self.kickstart(label)

    def reload(self, label, path, run_at_load=True):
        """A loaded job keeps the plist it was bootstrapped with: boot it out and load it again.

        Only this job is touched; its process restarts with the plist now at path.
        """
        self.bootout(label)
        self.load(label, path, run_at_load)


def ensure_daemon(label, state='present', program_arguments=None, user_name=None, group_name=None,
                  environment=None, working_directory=None, stdout_path=None, stderr_path=None,
                  keep_alive=True, run_at_load=True, throttle_interval=10, extra=None, path=None,
                  runner=None, check_mode=False, uid=ROOT_UID, gid=ROOT_GID, chown=None,
                  sleep=time.sleep, delays=UNLOAD_DELAYS):
    """Bring one LaunchDaemon to state; return the module result (with a diff)."""
    validate_label(label)
    chown = chown or os.chown
    if state not in ('present', 'absent', 'restarted'):
        raise LaunchdError('state must be present, absent or restarted, not %r' % state)
    path = path or default_path(label)
    launchd = Launchd(runner, check_mode=check_mode, sleep=sleep, delays=delays)

    raw, st = read_existing(path)
    existing = parse_plist(raw)
    # The diff compares canonical renderings, so formatting-only differences never show.
    before_text = plist_text(existing) if existing is not None else (raw or b'').decode('utf-8', 'replace')
    result = {'changed': False, 'plist_changed': False, 'loaded': False, 'actions': launchd.actions,
              'path': path}

    loaded = launchd.is_loaded(label)

    if state == 'absent':
        if loaded:
            launchd.bootout(label)
        if st is not None:
            result['plist_changed'] = True
            if not check_mode:
                os.unlink(path)
        result['loaded'] = False
        result['changed'] = bool(result['plist_changed'] or launchd.actions)
        result['diff'] = {'before_header': path, 'after_header': path, 'before': before_text, 'after': ''}
        return result

    desired = build_plist(label, program_arguments, user_name=user_name, group_name=group_name,
                          environment=environment, working_directory=working_directory,
                          stdout_path=stdout_path, stderr_path=stderr_path, keep_alive=keep_alive,
                          run_at_load=run_at_load, throttle_interval=throttle_interval, extra=extra)
    data = serialize_plist(desired)
    content_changed = existing != desired
    fix_attrs = [] if content_changed or st is None else attr_problems(st, uid, gid)

    need_bootstrap = content_changed or not loaded
    if need_bootstrap and not check_mode:
        # Before the plist is written or the running job is touched. Skipped
        # under --check: the task creating the account did not run either.
        launchd.check_account(user_name, group_name)

    if not check_mode:
        if content_changed:
            if not os.path.isdir(os.path.dirname(path) or '.'):
                os.makedirs(os.path.dirname(path), 0o755)
            # Owner and mode are set before the rename: launchd never sees a writable plist.
            atomic_write(path, data, PLIST_MODE, uid, gid, chown)
        elif fix_attrs:
            if 'owner' in fix_attrs:
                chown(path, uid, gid)
            os.chmod(path, PLIST_MODE)

    bootstrapped = False
    if not loaded:
        launchd.bootstrap(label, path)
        bootstrapped = True
    elif content_changed:
        # A loaded job keeps the plist it was bootstrapped with: reload it.
        launchd.bootout(label)
        launchd.bootstrap(label, path)
        bootstrapped = True

    # A fresh bootstrap with RunAtLoad already started the program.
    if state == 'restarted' and not (bootstrapped and desired.get('RunAtLoad')):
        launchd.kickstart(label)

    result['plist_changed'] = content_changed
    result['attributes_fixed'] = fix_attrs
    result['loaded'] = True
    result['changed'] = bool(content_changed or fix_attrs or launchd.actions)
    result['diff'] = {'before_header': path, 'after_header': path,
                      'before': before_text, 'after': data.decode('utf-8')}
    return result
