# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_health module: real gRPC calls to local HTTP/2 servers (the Stigmer server, a Temporal
frontend), the gate over a faked systemctl and journalctl with a fake clock, option checks, documentation."""

import socket
import threading
import time

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
    grpc_messages,
    hpack_literal,
    parse_frames,
)
from ansible_collections.stigmer.runtime.plugins.module_utils._temporal import TASK_TYPES, fields
from ansible_collections.stigmer.runtime.plugins.modules import stigmer_health
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.temporal_messages import describe_response
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
    """Listens on 127.0.0.1 (ephemeral port); per connection reads the client's preface and request, then replies:
    reply is the bytes to send, or a function of the request's frames that returns them.

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
            conn.sendall(self.reply(frames) if callable(self.reply) else self.reply)
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
HOSTNAME = socket.gethostname()
SERVER_QUEUES = [{'name': 'agent_execution_stigmer', 'types': ['workflow', 'activity']},
                 {'name': 'workflow_validation_stigmer', 'types': ['workflow']}]


def temporal_frontend(polling_pid):
    """A Temporal frontend: SERVING for its health check; to DescribeTaskQueue, the server's process
    polling_pid() (Go SDK identity, polled 5 s ago) on its queues for the types it registers, else nobody."""
    def reply(frames):
        headers = b''.join(f[3] for f in frames if f[0] == HEADERS)
        if hpack_literal(':path', '/grpc.health.v1.Health/Check') in headers:
            return SERVING
        request = fields(grpc_messages(b''.join(f[3] for f in frames if f[0] == DATA))[0])
        queue = fields(request[1][2])[0][2].decode()
        task_type = dict((v, k) for k, v in TASK_TYPES.items())[request[2][2]]
        asked = [q for q in SERVER_QUEUES if q['name'] == queue and task_type in q['types']]
        pid = polling_pid()
        pollers = [('%d@%s@' % (pid, HOSTNAME), time.time() - 5)] if asked and pid else []
        return grpc_answer(describe_response(pollers))
    return reply


class Systemctl(object):
    """systemctl show / restart and journalctl for one unit, at the process boundary; records argv."""

    def __init__(self):
        self.calls = []
        self.pid, self.invocation = 812, INVOCATION

    def __call__(self, argv, **kwargs):
        assert kwargs == {'errors': 'surrogate_then_replace'}  # log lines need not be UTF-8
        self.calls.append(argv)
        if argv[:2] == ['systemctl', 'show']:
            return 0, ('MainPID=%d\nNRestarts=0\nExecMainStartTimestamp=Tue 2026-01-06 10:00:03 UTC\n'
                       'Id=stigmer-server.service\nActiveState=active\nSubState=running\nInvocationID=%s\n'
                       'ControlGroup=\n' % (self.pid, self.invocation)), ''
        if argv[:2] == ['systemctl', 'restart']:
            self.pid, self.invocation = 900, 'f' * 32
            return 0, '', ''
        if argv[0] == 'journalctl' and argv[-2] == '-u':
            return 0, 'older line\nlast line\n', ''
        raise AssertionError('unexpected command %r' % argv)


@pytest.fixture
def host(monkeypatch, h2_server):
    """A systemd host whose server unit polls Temporal from pid polls_from(current main pid) (0: none),
    with a Temporal frontend for it; gives (systemctl, clock, Temporal's port)."""
    clock = Clock()
    monkeypatch.setattr(service_state, 'time', clock)

    def start(polls_from=lambda pid: pid):
        fake = Systemctl()
        monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda module, argv, **kwargs: fake(argv, **kwargs))
        temporal = h2_server(temporal_frontend(lambda: polls_from(fake.pid)))
        return fake, clock, temporal.port
    return start


SERVER = {'name': 'server', 'unit': 'stigmer-server.service', 'queues': SERVER_QUEUES, 'restart_without_pollers': True}


def gate_args(server_port, temporal_port, **more):
    return dict({'port': server_port, 'temporal_port': temporal_port, 'temporal_namespace': 'stigmer', 'wait': 30,
                 'settle': 2, 'service_manager': 'systemd', 'components': [SERVER]}, **more)


def test_gate_waits_for_the_settle_window_and_asks_temporal(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock, temporal_port = host()
    code, out = run(capsys, gate_args(server.port, temporal_port, settle=5))
    assert code == 0 and out['healthy'] is True and out['changed'] is False
    assert clock.now - 50 == 5
    assert len([a for a in fake.calls if a[1] == 'show']) == 6
    assert out['components']['server']['pid'] == 812 and out['restarted'] == []
    assert out['components']['server']['pollers'] == {
        'agent_execution_stigmer': {'workflow': [812], 'activity': [812]}, 'workflow_validation_stigmer': {'workflow': [812]}}
    assert out['polling'] == ['server']
    assert out['msg'].endswith('; server stayed up for 5 s with no restart; '
                               'Temporal lists pollers of server on every task queue')


def test_gate_restarts_a_server_that_polls_nothing_once(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock, temporal_port = host(polls_from=lambda pid: pid if pid == 900 else 0)
    code, out = run(capsys, gate_args(server.port, temporal_port, wait=60))
    assert code == 0 and out['healthy'] is True and out['changed'] is True and out['restarted'] == ['server']
    assert [a for a in fake.calls if a[1] == 'restart'] == [['systemctl', 'restart', 'stigmer-server.service']]
    assert out['components']['server']['pid'] == 900
    # restarted after POLL_GRACE (settle 2, but a worker gets that long to poll), settled 2 s later
    assert clock.now - 50 == service_state.POLL_GRACE + 2


def test_gate_in_check_mode_restarts_nothing(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock, temporal_port = host(polls_from=lambda pid: 0)
    code, out = run(capsys, gate_args(server.port, temporal_port, wait=60, _ansible_check_mode=True))
    assert code == 0 and 'failed' not in out
    assert out['healthy'] is False and out['changed'] is True and out['restarted'] == ['server']
    assert out['msg'] == ('server: Temporal lists no poller of this unit on any of its task queues %d s after it '
                          'started: would restart server (check mode)' % service_state.POLL_GRACE)
    assert [a for a in fake.calls if a[1] == 'restart'] == []
    assert out['logs'] == {'server': ['older line', 'last line']}


def test_one_sample_names_what_temporal_misses_and_restarts_nothing(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock, temporal_port = host(polls_from=lambda pid: 0)
    code, out = run(capsys, gate_args(server.port, temporal_port, wait=0))
    assert code == 0 and out['healthy'] is False and out['changed'] is False and out['polling'] == []
    assert out['msg'] == ('server: Temporal lists no workflow or activity poller of this unit on agent_execution_stigmer; '
                          'no workflow poller of this unit on workflow_validation_stigmer')


def test_gate_failure_does_not_fail_the_task(capsys, h2_server, host):
    fake, clock, temporal_port = host()
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    code, out = run(capsys, gate_args(port, temporal_port, timeout=1, wait=3, log_lines=1))
    assert code == 0 and 'failed' not in out
    assert out['healthy'] is False and out['grpc'] is False and clock.now - 50 == 3
    assert out['msg'].startswith('server did not answer gRPC on 127.0.0.1:%d: cannot connect' % port)
    assert out['logs'] == {'server': ['last line']}


def test_temporal_that_does_not_answer_is_named(capsys, h2_server, host):
    server = h2_server(TRAILERS_ONLY)
    fake, clock, temporal_port = host()
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(('127.0.0.1', 0))
    closed = probe.getsockname()[1]
    probe.close()
    code, out = run(capsys, gate_args(server.port, closed, wait=0, components=[
        dict(SERVER, name='temporal', unit='stigmer-temporal.service', queues=[], serves_temporal=True,
             restart_without_pollers=False)]))
    assert code == 0 and out['healthy'] is False
    assert out['msg'] == ('Temporal did not answer gRPC on 127.0.0.1:%d: cannot connect to 127.0.0.1:%d: '
                          'Connection refused' % (closed, closed))
    assert out['components']['temporal']['ready'] is False


def test_service_manager_none_ignores_components(capsys, h2_server, host):
    server = h2_server(SERVING)
    fake, clock, temporal_port = host()
    code, out = run(capsys, {'port': server.port, 'components': [{'name': 'x', 'unit': '-bad'}]})
    assert code == 0 and out['healthy'] is True and out['components'] == {} and fake.calls == []


@pytest.mark.parametrize('args, message', [
    ({'wait': 5, 'settle': 10}, 'wait (5 s) must be 0 (sample once) or at least settle (10 s)'),
    ({'wait': -1}, 'wait must not be negative'),
    ({'service_manager': 'launchd', 'components': [{'name': 'server', 'unit': 'ai.stigmer.server'}]},
     'component server needs log_path under launchd'),
    ({'service_manager': 'systemd', 'components': [{'name': 'a', 'unit': 'a.service'}, {'name': 'a', 'unit': 'b'}]},
     'component a is listed twice'),
    ({'service_manager': 'systemd', 'components': [{'name': 'a', 'unit': 'a.service', 'queues': [{'name': 'q', 'types': []}]}]},
     'component a: queue q names no task type'),
])
def test_bad_options_fail(capsys, args, message):
    code, out = run(capsys, args)
    assert code == 1 and out['failed'] is True and out['msg'] == message


def test_documentation_matches_the_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_health)
    assert doc['module'] == 'stigmer_health'
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert set(returned) == {'changed', 'healthy', 'status', 'grpc', 'msg', 'restarted', 'components', 'polling', 'logs'}
    assert all(returned[name]['returned'] == 'always' for name in returned)
    assert doc['options']['timeout']['default'] == 5 and spec['timeout']['type'] == 'float'
    assert doc['options']['require_status']['default'] is False
    assert sorted(returned['components']['contains']) == sorted(
        ['unit', 'active', 'state', 'pid', 'restarts', 'ready', 'started', 'pollers'])
    components = doc['options']['components']['suboptions']
    assert components['queues']['suboptions']['types']['choices'] == list(TASK_TYPES)
    assert (doc['options']['temporal_host']['default'], doc['options']['temporal_port']['default'],
            doc['options']['temporal_namespace']['default']) == ('127.0.0.1', 7233, 'default')
