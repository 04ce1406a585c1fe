"""Checks shared by the Molecule scenarios' testinfra tests."""
import hashlib
import os
import pathlib
import re

UNITS = ('stigmer-temporal', 'stigmer-server', 'stigmer-workflow-runner', 'stigmer-agent-runner')
HOME = '/var/lib/stigmer'
DATA_BIN = HOME + '/.stigmer/data/bin'


def cli_version(host):
    return host.check_output('/usr/local/bin/stigmer --version')


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


def health(host):
    """The stand-in server's own view over gRPC (stigmer server status): status, version, runners."""
    import json
    return json.loads(host.run('stigmer server status').stdout)


def started_count(host, unit):
    """How many times systemd started the unit since boot."""
    out = host.run('journalctl --no-pager -o cat -u %s.service' % unit).stdout
    return len(re.findall(r'^Started %s\.service' % re.escape(unit), out, re.M))


def marker_bytes(host):
    """The version marker exactly as the CLI reads it, trailing newline included."""
    return host.check_output('od -An -c %s/.version' % DATA_BIN).split()
