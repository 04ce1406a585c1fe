# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stigmer_health module: the health policy, real calls to a local HTTP/2 server, documentation."""

import socket
import threading

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils.grpc_health import (
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


@pytest.mark.parametrize('status, require_status, healthy', [
    ('SERVING', True, True),
    ('SERVING', False, True),
    ('NOT_SERVING', True, False),
    ('NOT_SERVING', False, False),
    ('SERVICE_UNKNOWN', True, False),
    ('SERVICE_UNKNOWN', False, False),
    ('UNKNOWN', True, False),
    ('UNKNOWN', False, False),
    (None, True, False),
    (None, False, True),
])
def test_judge(status, require_status, healthy):
    assert stigmer_health.judge({'status': status, 'msg': 'x'}, require_status) is healthy


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


def test_trailers_only_with_require_status_is_unhealthy(capsys, h2_server):
    server = h2_server(TRAILERS_ONLY)
    code, out = run(capsys, {'port': server.port})
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
    assert out['msg'].startswith('cannot connect to')
    assert 'failed' not in out


def test_http1_server_is_not_grpc(capsys, h2_server):
    server = h2_server(HTTP1)
    code, out = run(capsys, {'port': server.port})
    assert code == 0
    assert out['healthy'] is False and out['grpc'] is False and out['status'] is None
    assert 'does not speak gRPC' in out['msg'] and '127.0.0.1:%d' % server.port in out['msg']


def test_documentation_matches_the_argument_spec():
    doc, spec, returned = harness.check_documentation(stigmer_health)
    assert doc['module'] == 'stigmer_health'
    assert doc['attributes']['check_mode']['support'] == 'full'
    assert set(returned) == {'healthy', 'status', 'grpc', 'msg'}
    assert all(returned[name]['returned'] == 'always' for name in returned)
    assert doc['options']['timeout']['default'] == 5 and spec['timeout']['type'] == 'float'
