"""DescribeTaskQueue's protobuf, built by hand here as Temporal's server encodes it."""
import struct

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _temporal as t
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import GrpcError, encode_varint


def ld(number, payload):
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def vi(number, value):
    return encode_varint(number << 3) + encode_varint(value)


def poller(identity, seconds=None, nanos=0, rate=None):
    body = b''
    if seconds is not None:
        body += ld(1, vi(1, seconds) + (vi(2, nanos) if nanos else b''))
    body += ld(2, identity.encode())
    if rate is not None:
        body += encode_varint(3 << 3 | 1) + struct.pack('<d', rate)
    return ld(1, body)


def test_request_names_namespace_queue_kind_and_type():
    req = t.describe_request('default', 'agent_execution_runner', 'activity')
    got = t.fields(req)
    assert got[0] == (1, 2, b'default')
    assert t.fields(got[1][2]) == [(1, 2, b'agent_execution_runner'), (2, 0, 1)]
    assert got[2] == (3, 0, 2)
    assert t.fields(t.describe_request('ns', 'q', 'workflow'))[2] == (3, 0, 1)


def test_unknown_task_type_is_refused():
    with pytest.raises(ValueError, match='activity, workflow'):
        t.describe_request('default', 'q', 'nexus')


def test_pollers_are_decoded_with_identity_time_and_rate():
    status = ld(2, vi(1, 7))   # task_queue_status, ignored
    payload = poller('4242@host-1', 1796395288, 500000000, 100000.0) + status + poller('17@host-2@')
    found = t.decode_pollers(payload)
    assert found == [
        {'identity': '4242@host-1', 'last_access': 1796395288.5, 'rate_per_second': 100000.0},
        {'identity': '17@host-2@', 'last_access': None, 'rate_per_second': None},
    ]


def test_no_pollers_is_an_empty_list():
    assert t.decode_pollers(b'') == []


def test_truncated_message_is_an_error():
    with pytest.raises(GrpcError, match='truncated'):
        t.decode_pollers(poller('1@h')[:-2])


@pytest.mark.parametrize('identity, pid', [
    ('4242@host-1', 4242), ('17@host-2@', 17), ('worker-1', None), ('', None), ('@host', None), ('12x@h', None),
])
def test_identity_pid(identity, pid):
    assert t.identity_pid(identity) == pid


def test_polling_pids_keeps_only_the_given_processes_that_polled_recently():
    found = [{'identity': '10@h', 'last_access': 1000.0}, {'identity': '11@h', 'last_access': 700.0},
             {'identity': '12@h', 'last_access': None}, {'identity': '99@h', 'last_access': 1000.0}]
    assert t.polling_pids(found, [10, 11, 12], now=1010.0, max_age=120) == [10, 12]
    assert t.polling_pids(found, [11], now=1010.0, max_age=400) == [11]


def test_pollers_asks_over_grpc_and_refuses_an_empty_answer(monkeypatch):
    calls = []

    def fake_call(host, port, method, request, timeout, **kwargs):
        calls.append((host, port, method, request))
        return [poller('5@h', 1)] if port == 7233 else []

    monkeypatch.setattr(t, 'call', fake_call)
    assert t.pollers('127.0.0.1', 7233, 'default', 'q', 'workflow')[0]['identity'] == '5@h'
    assert calls[0][2] == '/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue'
    with pytest.raises(GrpcError, match='namespace default'):
        t.pollers('127.0.0.1', 7299, 'default', 'q', 'workflow')
