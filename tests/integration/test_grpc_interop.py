"""gRPC interop, both ways, with an independent implementation (grpcio): the collection's
health client against grpcio servers, and grpcio clients against the stand-in server, which
must answer as upstream's grpc-go server does (v0.0.x: no health service at all)."""

import os
import platform
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ansible_collections.stigmer.runtime.plugins.module_utils import _grpc_health as grpc_health

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'fixtures'))

import build_releases  # noqa: E402
import server_ctl  # noqa: E402


@pytest.fixture
def grpc_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    yield port, servicer
    server.stop(0)


@pytest.mark.parametrize('status', ['SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'])
def test_reads_each_serving_status_of_a_grpcio_server(grpc_server, status):
    port, servicer = grpc_server
    servicer.set('', health_pb2.HealthCheckResponse.ServingStatus.Value(status))
    assert grpc_health.health_check('127.0.0.1', port)['status'] == status


def test_asks_about_the_named_service(grpc_server):
    port, servicer = grpc_server
    servicer.set('', health_pb2.HealthCheckResponse.SERVING)
    servicer.set('stigmer.Server', health_pb2.HealthCheckResponse.NOT_SERVING)
    answer = grpc_health.health_check('127.0.0.1', port, 'stigmer.Server')
    assert answer['status'] == 'NOT_SERVING'
    assert "service 'stigmer.Server'" in answer['msg']


def test_an_unknown_service_is_never_serving(grpc_server):
    port, servicer = grpc_server
    servicer.set('', health_pb2.HealthCheckResponse.SERVING)
    assert grpc_health.health_check('127.0.0.1', port, 'stigmer.NoSuchService')['status'] != 'SERVING'


def test_a_server_without_the_health_service_gives_no_status():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    try:
        answer = grpc_health.health_check('127.0.0.1', port)
    finally:
        server.stop(0)
    assert answer['status'] is None
    assert 'no grpc.health.v1 service' in answer['msg']


def test_many_calls_in_a_row_each_get_an_answer(grpc_server):
    port, servicer = grpc_server
    servicer.set('', health_pb2.HealthCheckResponse.SERVING)
    assert [grpc_health.health_check('127.0.0.1', port)['status'] for _attempt in range(20)] == ['SERVING'] * 20


# ------------------------------------------------- grpcio against the stand-in server
def this_platform():
    machine = os.uname().machine.lower()
    return '%s-%s' % (platform.system().lower(), {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(machine, machine))


@pytest.fixture(scope='module')
def executables(tmp_path_factory):
    """{'v0.0.7': stigmer, 'v0.1.0': stigmer, 'temporal': temporal} for this platform."""
    root = tmp_path_factory.mktemp('releases')
    build_releases.build(str(root))
    plat, out = this_platform(), {}
    for name, tarball in (('v0.0.7', 'stigmer/stigmer/v0.0.7/stigmer-v0.0.7-%s.tar.gz' % plat),
                          ('v0.1.0', 'stigmer/stigmer/v0.1.0/stigmer-v0.1.0-%s.tar.gz' % plat),
                          ('temporal', 'temporalio/cli/v1.5.1/temporal_cli_1.5.1_%s.tar.gz' % plat.replace('-', '_'))):
        dest = tmp_path_factory.mktemp('bin')
        with tarfile.open(root / tarball) as tar:
            member = 'temporal' if name == 'temporal' else 'stigmer'
            (dest / member).write_bytes(tar.extractfile(member).read())
        (dest / member).chmod(0o755)
        out[name] = dest / member
    return out


def grpcio_check(port, service=''):
    """(status code name, serving status name or None) as grpcio's health stub sees them."""
    with grpc.insecure_channel('127.0.0.1:%d' % port) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3, wait_for_ready=True)
        except grpc.RpcError as exc:
            return exc.code().name, exc.details()
    return 'OK', health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def spawn(tmp_path):
    """Start an executable; each one is stopped (SIGTERM, then SIGKILL) at the end."""
    procs = []

    def start(cmd, port, **env):
        full = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(tmp_path), 'NO_COLOR': '1'}
        full.update((k, str(v)) for k, v in env.items())
        proc = subprocess.Popen([str(c) for c in cmd], env=full, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, 'nothing listens on %d' % port
            time.sleep(0.05)
        return proc

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_server(spawn, executables, tag, tmp_path, temporal_port):
    port = server_ctl.free_port()
    spawn([executables[tag], 'internal-server'], port, GRPC_PORT=port, DB_PATH=tmp_path / ('db-%d' % port),
          TEMPORAL_HOST_PORT='127.0.0.1:%d' % temporal_port)
    return port


def test_the_v00x_server_has_no_health_service(executables, spawn, tmp_path):
    temporal_port = server_ctl.free_port()
    spawn([executables['temporal'], 'server', 'start-dev', '--port', temporal_port, '--headless'], temporal_port)
    port = start_server(spawn, executables, 'v0.0.7', tmp_path, temporal_port)
    assert grpcio_check(port) == ('UNIMPLEMENTED', 'unknown service grpc.health.v1.Health')
    assert grpcio_check(port, 'stigmer.Server')[0] == 'UNIMPLEMENTED'
    # the collection's client reads that as "gRPC, but no health status"
    answer = grpc_health.health_check('127.0.0.1', port)
    assert answer['status'] is None and 'no grpc.health.v1 service' in answer['msg']


def test_the_newer_server_serves_health_as_temporal_was_at_its_start(executables, spawn, tmp_path):
    without = start_server(spawn, executables, 'v0.1.0', tmp_path, server_ctl.free_port())
    assert grpcio_check(without) == ('OK', 'NOT_SERVING')
    temporal_port = server_ctl.free_port()
    spawn([executables['temporal'], 'server', 'start-dev', '--port', temporal_port, '--headless'], temporal_port)
    assert grpcio_check(without) == ('OK', 'NOT_SERVING')  # it never dials Temporal again
    port = start_server(spawn, executables, 'v0.1.0', tmp_path, temporal_port)
    assert grpcio_check(port) == ('OK', 'SERVING')
    assert grpcio_check(port, 'stigmer.NoSuchService') == ('NOT_FOUND', 'unknown service')
    assert grpc_health.health_check('127.0.0.1', port)['status'] == 'SERVING'
    assert [grpc_health.health_check('127.0.0.1', without)['status'] for _attempt in range(5)] == ['NOT_SERVING'] * 5
