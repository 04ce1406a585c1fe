# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_health module: real gRPC calls to a local HTTP/2 server, the gate over a faked systemctl and
journalctl with a fake clock, option checks, documentation."""

import socket
import threading

import pytest

from ansible.module_utils import basic

from ansible_collections.stigmer.runtime.plugins.module_utils import _service_state as service_state
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    SETTINGS,
    frame,
    grpc_message,
    hpack_literal,
    parse_frames,
)
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_health
from ansible_collections.stigmer.runtime.tests.unit.plugins.modules import harness

RESPONSE_HEADERS = frame(HEADERS, END_HEADERS, 1, hpack_literal(':status', '200') + hpack_literal('content-type', 'application/grpc'))
TRAILERS = frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack_literal('grpc-status', '0'))


def grpc_answer(status_payload):
    return frame(SETTINGS, 0, 0) + RESPONSE_HEADERS + frame(DATA, 0, 1, grpc_message(status_payload)) + TRAILERS


SERVING = grpc_answer(b'\x08\x01')
NOT_SERVING = grpc_answer(b'\x08\x02')
TRAILERS_ONLY = frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack_literal(':status', '200')
                                              + hpack_literal('content-type', 'application/grpc')
                                              + hpack_literal('grpc-status', '12'))
HTTP1 = b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'


class H2Server(object):
    """Listens on 127.0.0.1 (ephemeral port); per connection reads the client's preface and request, then replies.

    Records each connection's frames (after the preface) in self.requests.
    """

    def __init__(self, reply):
        self.reply = reply
        self.requests = []
        self.errors = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(5)
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn = self.listener.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setblocking(True)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(5)
            buf = b''
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    raise AssertionError('client closed before sending its request: %r' % buf)
                buf += chunk
                if len(buf) >= len(PREFACE):
                    assert buf.startswith(PREFACE), buf
                    frames, rest = parse_frames(buf[len(PREFACE):])
                    if any(f[0] == DATA and f[1] & END_STREAM and f[2] == 1 for f in frames):
                        break
            self.requests.append(frames)
            conn.sendall(self.reply)
            # read until the client hangs up, so closing never resets a connection with unread bytes
            while conn.recv(65536):
                pass
        except Exception as exc:  # reported by the test through self.errors
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def h2_server():
    servers = []

    def start(reply):
        servers.append(H2Server(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run(capsys, args):
    return harness.run_module(stigmer_health, args, capsys)


def test_serving(capsys, h2_server):
    server = h2_server(SERVING)
    code, out = run(capsys, {'port': server.port, 'timeout': 5})
    assert code == 0
    assert out['changed'] is False
    assert out['healthy'] is True and out['grpc'] is True and out['status'] == 'SERVING'
    assert out['msg'] == '127.0.0.1:%d reports SERVING for the server' % server.port
    assert 'failed' not in out
    assert server.errors == []
    # what the server got: SETTINGS, then HEADERS and the empty HealthCheckRequest on stream 1
    frames = server.requests[0]
    assert [f[:3] for f in frames[:3]] == [(SETTINGS, 0, 0), (HEADERS, END_HEADERS, 1), (DATA, END_STREAM, 1)]
    assert hpack_literal(':path', '/grpc.health.v1.Health/Check') in frames[1][3]
    assert hpack_literal(':authority', '127.0.0.1:%d' % server.port) in frames[1][3]
    assert frames[2][3] == grpc_message(b'')


def test_named_service_in_check_mode(capsys, h2_server):
    server = h2_server(SERVING)
    code, out = run(capsys, {'port': server.port, 'service': 'stigmer', '_ansible_check_mode': True})
    assert code == 0
    assert out['changed'] is False and out['healthy'] is True
    assert out['msg'] == "127.0.0.1:%d reports SERVING for service 'stigmer'" % server.port
    assert server.requests[0][2][3] == grpc_message(b'\x0a\x07stigmer')


@pytest.mark.parametrize('require_status', [True, False])
def test_not_serving_is_unhealthy_either_way(capsys, h2_server, require_status):
    server = h2_server(NOT_SERVING)
    code, out = run(capsys, {'port': server.port, 'require_status': require_status})
    assert code == 0
    assert out['healthy'] is False and out['grpc'] is True and out['status'] == 'NOT_SERVING'
    assert 'failed' not in out


def test_trailers_only_without_require_status_is_healthy(capsys, h2_server):
    server = h2_server(TRAILERS_ONLY)
    code, out = run(capsys, {'port': server.port, 'require_status': False})
    assert code == 0
    assert out['healthy'] is True and out['grpc'] is True and out['status'] is None
    assert 'no grpc.health.v1 service' in out['msg']


def test_trailers_only_is_healthy_by_default(capsys, h2_server):
    server = h2_server(TRAILERS_ONLY)
    code, out = run(capsys, {'port': server.port})
    assert code == 0
    assert out['healthy'] is True and out['status'] is None and out['components'] == {}


def test_trailers_only_with_require_status_is_unhealthy(capsys, h2_server):
    server = h2_server(TRAILERS_ONLY)
    code, out = run(capsys, {'port': server.port, 'require_status': True})
    assert code == 0
    assert out['healthy'] is False and out['grpc'] is True and out['status'] is None


def test_nothing_listening(capsys):
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()  # bound, never listening: the port is free and refuses connections
    code, out = run(capsys, {'port': port, 'timeout': 2})
    assert code == 0
    assert out['changed'] is False
    assert out['healthy'] is False and out['grpc'] is False and out['status'] is None
    assert '127.0.0.1:%d' % port in out['msg']
    assert out['msg'] == 'server did not answer gRPC on 127.0.0.1:%d: cannot connect to 127.0.0.1:%d: %s' % (
        port, port, 'Connection refused')
    assert 'failed' not in out


def test_http1_server_is_not_grpc(capsys, h2_server):
    server = h2_server(HTTP1)
    code, out = run(capsys, {'port': server.port})
    assert code == 0
    assert out['healthy'] is False and out['grpc'] is False and out['status'] is None
    assert 'does not speak gRPC' in out['msg'] and '127.0.0.1:%d' % server.port in out['msg']


class Clock(object):
    """Stands in for the time module inside service_state: sleeping advances the clock."""

    def __init__(self):
        self.now = 50.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


INVOCATION = 'c0ffee00c0ffee00c0ffee00c0ffee00'
STALE = 'Failed to connect to Temporal server - workflows will not execute'


class Systemctl(object):
    """systemctl show / restart and journalctl for one unit, at the process boundary; records argv."""

    def __init__(self, journal):
        self.journal, self.calls = journal, []
        self.pid, self.invocation = 812, INVOCATION

    def __call__(self, argv, **kwargs):
        assert kwargs == {'errors': 'surrogate_then_replace'}  # log lines need not be UTF-8
        self.calls.append(argv)
        if argv[:2] == ['systemctl', 'show']:
            return 0, ('MainPID=%d\nNRestarts=0\nExecMainStartTimestamp=Tue 2026-01-06 10:00:03 UTC\n'
                       'Id=stigmer-server.service\nActiveState=active\nSubState=running\nInvocationID=%s\n'
                       % (self.pid, self.invocation)), ''
        if argv[:2] == ['systemctl', 'restart']:
            self.pid, self.invocation = 900, 'f' * 32
            return 0, '', ''
        if argv[0] == 'journalctl':
            if argv[-2] == '-u':
                return 0, 'older line\nlast line\n', ''
            return 0, self.journal.get(argv[-1].split('=', 1)[1], ''), ''
        raise AssertionError('unexpected command %r' % argv)


@pytest.fixture
def host(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(service_state, 'time', clock)

    def start(journal):
        fake = Systemctl(journal)
        monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda module, argv, **kwargs: fake(argv, **kwargs))
        return fake, clock
    return start


SERVER = {'name': 'server', 'unit': 'stigmer-server.service', 'stale_pattern': STALE}


def test_gate_waits_for_the_settle_window(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock = host({INVOCATION: 'INF serving\n'})
    code, out = run(capsys, {'port': server.port, 'wait': 30, 'settle': 5, 'service_manager': 'systemd',
                             'components': [SERVER]})
    assert code == 0 and out['healthy'] is True and out['changed'] is False
    assert clock.now - 50 == 5
    assert len([a for a in fake.calls if a[1] == 'show']) == 6
    assert out['components']['server']['pid'] == 812 and out['restarted'] == []
    assert out['msg'].endswith('; server stayed up for 5 s with no restart')


def test_gate_restarts_a_stale_server_once(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock = host({INVOCATION: 'WRN %s\n' % STALE, 'f' * 32: 'INF serving\n'})
    code, out = run(capsys, {'port': server.port, 'wait': 30, 'settle': 2, 'service_manager': 'systemd',
                             'components': [SERVER]})
    assert code == 0 and out['healthy'] is True and out['changed'] is True and out['restarted'] == ['server']
    assert [a for a in fake.calls if a[1] == 'restart'] == [['systemctl', 'restart', 'stigmer-server.service']]
    assert out['components']['server']['pid'] == 900


def test_gate_in_check_mode_restarts_nothing(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock = host({INVOCATION: 'WRN %s\n' % STALE})
    code, out = run(capsys, {'port': server.port, 'wait': 30, 'service_manager': 'systemd', 'components': [SERVER],
                             '_ansible_check_mode': True})
    assert code == 0 and 'failed' not in out
    assert out['healthy'] is False and out['changed'] is True and out['restarted'] == ['server']
    assert out['msg'] == "server logged %r since it started: would restart server (check mode)" % STALE
    assert [a for a in fake.calls if a[1] == 'restart'] == []
    assert out['logs'] == {'server': ['older line', 'last line']}


def test_gate_failure_does_not_fail_the_task(capsys, host):
    fake, clock = host({INVOCATION: 'INF serving\n'})
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    code, out = run(capsys, {'port': port, 'timeout': 1, 'wait': 3, 'settle': 2, 'service_manager': 'systemd',
                             'components': [SERVER], 'log_lines': 1})
    assert code == 0 and 'failed' not in out
    assert out['healthy'] is False and out['grpc'] is False and clock.now - 50 == 3
    assert out['msg'].startswith('server did not answer gRPC on 127.0.0.1:%d: cannot connect' % port)
    assert out['logs'] == {'server': ['last line']}


def test_service_manager_none_ignores_components(capsys, h2_server, host):
    server = h2_server(SERVING)
    fake, clock = host({})
    code, out = run(capsys, {'port': server.port, 'components': [{'name': 'x', 'unit': '-bad'}]})
    assert code == 0 and out['healthy'] is True and out['components'] == {} and fake.calls == []


@pytest.mark.parametrize('args, message', [
    ({'wait': 5, 'settle': 10}, 'wait (5 s) must be 0 (sample once) or at least settle (10 s)'),
    ({'wait': -1}, 'wait must not be negative'),
    ({'service_manager': 'launchd', 'components': [{'name': 'server', 'unit': 'ai.stigmer.server'}]},
     'component server needs log_path under launchd'),
    ({'service_manager': 'systemd', 'components': [{'name': 'a', 'unit': 'a.service'}, {'name': 'a', 'unit': 'b'}]},
     'component a is listed twice'),
])
def test_bad_options_fail(capsys, args, message):
    code, out = run(capsys, args)
    assert code == 1 and out['failed'] is True and out['msg'] == message


def test_documentation_matches_the_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_health)
    assert doc['module'] == 'stigmer_health'
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert set(returned) == {'changed', 'healthy', 'status', 'grpc', 'msg', 'restarted', 'components', 'logs'}
    assert all(returned[name]['returned'] == 'always' for name in returned)
    assert doc['options']['timeout']['default'] == 5 and spec['timeout']['type'] == 'float'
    assert doc['options']['require_status']['default'] is False
    assert sorted(returned['components']['contains']) == sorted(
        ['unit', 'active', 'state', 'pid', 'restarts', 'ready', 'started'])
