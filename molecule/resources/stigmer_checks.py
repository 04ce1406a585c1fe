"""Checks shared by the Molecule scenarios' testinfra tests.

The stand-ins behave like upstream's binaries (docs/runtime-facts.md): the v0.0.x CLI prints
no version, the agent-runner ignores argv (running it starts a worker), and only newer
servers have the gRPC health service. So nothing here runs a binary to learn its version.
"""
import hashlib
import json
import os
import pathlib
import re

UNITS = ('stigmer-temporal', 'stigmer-server', 'stigmer-workflow-runner', 'stigmer-agent-runner')
HOME = '/var/lib/stigmer'
DATA_BIN = HOME + '/.stigmer/data/bin'
START_LOG = HOME + '/.stigmer/data/logs/standin-starts.log'
READY_LINE = 'Worker ready, polling for tasks'
GRPC_HEALTH = pathlib.Path(__file__).resolve().parents[2] / 'plugins' / 'module_utils' / '_grpc_health.py'


def installed_tag(host):
    """The tag `current` points at (the install record, not what a binary prints)."""
    return host.check_output('readlink /opt/stigmer/current').rsplit('/', 1)[-1]


def sha256_on_host(host, path):
    return host.check_output('sha256sum %s' % path).split()[0]


def controller_artifact(name):
    """The verified artifact in the controller cache of this scenario."""
    cache = pathlib.Path(os.environ['MOLECULE_EPHEMERAL_DIRECTORY']) / 'stigmer-cache'
    matches = list(cache.rglob(name))
    assert len(matches) == 1, 'expected one %s in %s, found %s' % (name, cache, matches)
    return hashlib.sha256(matches[0].read_bytes()).hexdigest()


def security_score(host, unit):
    out = host.check_output('systemd-analyze security --no-pager %s.service' % unit)
    match = re.search(r'Overall exposure level for \S+: ([0-9.]+)', out)
    assert match, out
    return float(match.group(1))


def health(host, address='127.0.0.1', port=7234):
    """grpc.health.v1.Health/Check asked on the host with the collection's own client:
    {'grpc': bool, 'status': 'SERVING'|...|None (no health service), 'msg': str}."""
    script = GRPC_HEALTH.read_text() + '''
import json
try:
    answer = health_check(%r, %d)
    answer['grpc'] = True
except GrpcError as exc:
    answer = {'grpc': False, 'status': None, 'msg': str(exc)}
print(json.dumps(answer))
''' % (address, port)
    out = host.run("python3 - <<'STIGMER_EOF'\n%s\nSTIGMER_EOF" % script)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def main_pid(host, unit):
    pid = host.check_output('systemctl show -p MainPID --value %s.service' % unit)
    assert pid != '0', unit
    return pid


def process_environment(host, unit):
    """The environment the unit's main process really has, read as root from /proc."""
    raw = host.check_output("tr '\\0' '\\n' < /proc/%s/environ" % main_pid(host, unit))
    return dict(line.split('=', 1) for line in raw.splitlines() if '=' in line)


def current_start_log(host, unit):
    """What the unit logged since its current start."""
    invocation = host.check_output('systemctl show -p InvocationID --value %s.service' % unit)
    return host.run('journalctl --no-pager -a -o cat _SYSTEMD_INVOCATION_ID=%s' % invocation).stdout


def agent_runner_starts(host):
    """Every start the stand-in agent-runner recorded: pid, uid, ppid, parent."""
    lines = host.run('cat %s' % START_LOG).stdout.splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def started_count(host, unit):
    """How many times systemd started the unit since boot."""
    out = host.run('journalctl --no-pager -o cat -u %s.service' % unit).stdout
    return len(re.findall(r'^Started %s\.service' % re.escape(unit), out, re.M))


def marker_bytes(host):
    """The version marker exactly as the CLI reads it, trailing newline included."""
    return host.check_output('od -An -c %s/.version' % DATA_BIN).split()


def unit_pids(host, unit):
    """The processes of a unit, from its control group (a one-file agent-runner polls from a
    child of its main process)."""
    group = host.check_output('systemctl show -p ControlGroup --value %s.service' % unit)
    procs = host.check_output('cat /sys/fs/cgroup{0}/cgroup.procs 2>/dev/null || '
                              'cat /sys/fs/cgroup/systemd{0}/cgroup.procs'.format(group))
    return set(int(pid) for pid in procs.split())


def temporal_pollers(host, queue):
    """[(task type, identity)] of a task queue, asked with upstream's own `temporal` CLI on the
    host (its describe reads every partition of the queue)."""
    out = host.check_output('/opt/stigmer/temporal/current/bin/temporal task-queue describe --address 127.0.0.1:7233 --task-queue %s -o json' % queue)
    return [(p['taskQueueType'], p['identity']) for p in json.loads(out).get('pollers') or []]
