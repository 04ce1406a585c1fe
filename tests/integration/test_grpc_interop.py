"""The collection's gRPC health client against an independent gRPC implementation (grpcio)."""

from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ansible_collections.stigmer.runtime.plugins.module_utils import grpc_health


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
