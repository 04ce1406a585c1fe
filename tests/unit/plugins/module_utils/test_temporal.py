"""DescribeTaskQueue's protobuf, built by hand here as Temporal's server encodes it, and what the
health gate makes of Temporal's answers."""
import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _temporal as t
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import GrpcError
from ansible_collections.stigmer.runtime.tests.unit.plugins.module_utils.temporal_messages import ld, poller, vi


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


@pytest.mark.parametrize('identity, host', [
    ('4242@host-1', 'host-1'), ('17@host-2@', 'host-2'), ('17@host-2@agent_execution_runner', 'host-2'),
    ('5@', ''), ('worker-1', None), ('@host', None),
])
def test_identity_host(identity, host):
    assert t.identity_host(identity) == host


def test_polling_pids_keeps_only_the_given_processes_that_polled_recently():
    found = [{'identity': '10@h', 'last_access': 1000.0}, {'identity': '11@h', 'last_access': 700.0},
             {'identity': '12@h@', 'last_access': None}, {'identity': '99@h', 'last_access': 1000.0}]
    assert t.polling_pids(found, [10, 11, 12], 'h', now=1010.0, max_age=120) == [10, 12]
    assert t.polling_pids(found, [11], 'h', now=1010.0, max_age=400) == [11]


def test_polling_pids_ignores_the_same_pid_on_another_host():
    """A Temporal shared by several hosts lists their pollers too: pid 10 there is another process."""
    found = [{'identity': '10@build-02', 'last_access': 1000.0}, {'identity': '10@build-02@', 'last_access': 1000.0},
             {'identity': '10@build-01.example.com', 'last_access': 1000.0}]
    assert t.polling_pids(found, [10], 'build-01', now=1000.0) == []
    assert t.polling_pids(found, [10], 'build-01.example.com', now=1000.0) == [10]


def test_polling_pids_default_bound_is_two_minutes():
    found = [{'identity': '10@h', 'last_access': 1000.0}]
    assert t.POLLER_MAX_AGE == 120
    assert t.polling_pids(found, [10], 'h', now=1120.0) == [10]
    assert t.polling_pids(found, [10], 'h', now=1120.5) == []


def test_poll_verdict_an_activity_poller_of_the_unit():
    # The agent-runner's bootloader (700) is the main PID; its child (701) polls.
    answers = [('agent_execution_runner', 'activity', [{'identity': '701@h', 'last_access': 990.0}])]
    assert t.poll_verdict(answers, [700, 701], 'h', now=1000.0) == ({'agent_execution_runner': {'activity': [701]}}, [])


def test_poll_verdict_stale_foreign_and_other_type_pollers_do_not_count():
    answers = [
        # polled 5 minutes ago, from another host, from a process of another unit
        ('agent_execution_stigmer', 'workflow', [{'identity': '701@h', 'last_access': 700.0},
                                                 {'identity': '701@other', 'last_access': 999.0},
                                                 {'identity': '555@h', 'last_access': 999.0}]),
        # the unit polls this queue, but for workflow tasks only: its activity answer is empty
        ('agent_execution_stigmer', 'activity', []),
        ('workflow_validation_stigmer', 'workflow', [{'identity': '701@h@', 'last_access': 999.0}]),
    ]
    found, missing = t.poll_verdict(answers, [700, 701], 'h', now=1000.0)
    assert found == {'agent_execution_stigmer': {'workflow': [], 'activity': []},
                     'workflow_validation_stigmer': {'workflow': [701]}}
    assert missing == [('agent_execution_stigmer', 'workflow'), ('agent_execution_stigmer', 'activity')]


@pytest.mark.parametrize('missing, text', [
    ([('agent_execution_runner', 'activity')],
     'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner'),
    ([('a', 'activity'), ('a', 'workflow'), ('b', 'workflow'), ('b', 'activity'), ('c', 'workflow')],
     'agent-runner: Temporal lists no workflow or activity poller of this unit on a, b; '
     'no workflow poller of this unit on c'),
])
def test_missing_text(missing, text):
    assert t.missing_text('agent-runner', missing) == text


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


def temporal(monkeypatch, health=None, answers=None):
    """A Temporal object whose gRPC calls are replaced: health is health_check()'s answer or a
    GrpcError; answers maps (queue, type) to pollers."""
    calls = []

    def fake_health_check(host, port, service, timeout, connect):
        calls.append(('health', service))
        if isinstance(health, Exception):
            raise health
        return health

    def fake_call(host, port, method, request, timeout, **kwargs):
        got = t.fields(request)
        queue = t.fields(got[1][2])[0][2].decode()
        task_type = dict((v, k) for k, v in t.TASK_TYPES.items())[got[2][2]]
        calls.append((queue, task_type, got[0][2].decode()))
        return [b''.join(poller(identity, 1000) for identity in (answers or {}).get((queue, task_type), []))]

    monkeypatch.setattr(t, 'health_check', fake_health_check)
    monkeypatch.setattr(t, 'call', fake_call)
    return t.Temporal('10.0.0.5', 7233, 'stigmer', timeout=2), calls


def test_temporal_serving_asks_the_workflow_service(monkeypatch):
    serving, calls = temporal(monkeypatch, health={'status': 'SERVING', 'msg': '10.0.0.5:7233 reports SERVING'})
    assert serving.serving() == {'healthy': True, 'msg': '10.0.0.5:7233 reports SERVING'}
    assert calls == [('health', 'temporal.api.workflowservice.v1.WorkflowService')]
    assert serving.where() == '10.0.0.5:7233'


@pytest.mark.parametrize('health, msg', [
    ({'status': 'NOT_SERVING', 'msg': '10.0.0.5:7233 reports NOT_SERVING'},
     'Temporal is not serving yet: 10.0.0.5:7233 reports NOT_SERVING'),
    (GrpcError('cannot connect to 10.0.0.5:7233: Connection refused'),
     'Temporal did not answer gRPC on 10.0.0.5:7233: cannot connect to 10.0.0.5:7233: Connection refused'),
])
def test_temporal_not_serving(monkeypatch, health, msg):
    assert temporal(monkeypatch, health=health)[0].serving() == {'healthy': False, 'msg': msg}


def test_partitions_root_first():
    assert t.partitions('agent_execution_runner') == [
        'agent_execution_runner', '/_sys/agent_execution_runner/1', '/_sys/agent_execution_runner/2',
        '/_sys/agent_execution_runner/3']
    assert t.partitions('q', 1) == ['q']


def test_unit_pollers_ask_partition_after_partition_until_the_unit_polls(monkeypatch):
    here = t.Temporal('10.0.0.5', 7233, 'stigmer').hostname
    answers = {('/_sys/agent_execution_runner/1', 'activity'): ['99@%s' % here],
               ('/_sys/agent_execution_runner/2', 'activity'): ['701@%s' % here]}
    asked, calls = temporal(monkeypatch, answers=answers)
    found = asked.unit_pollers('agent_execution_runner', 'activity', [700, 701], now=1000.0)
    assert [p['identity'] for p in found] == ['99@%s' % here, '701@%s' % here]
    assert [c[0] for c in calls] == ['agent_execution_runner', '/_sys/agent_execution_runner/1',
                                     '/_sys/agent_execution_runner/2']
    del calls[:]
    assert asked.unit_pollers('agent_execution_runner', 'workflow', [700, 701], now=1000.0) == []
    assert len(calls) == t.READ_PARTITIONS == 4


def test_temporal_pollers_ask_in_its_namespace(monkeypatch):
    asked, calls = temporal(monkeypatch, answers={('agent_execution_runner', 'activity'): ['701@h']})
    assert [p['identity'] for p in asked.pollers('agent_execution_runner', 'activity')] == ['701@h']
    assert asked.pollers('agent_execution_runner', 'workflow') == []
    assert calls == [('agent_execution_runner', 'activity', 'stigmer'), ('agent_execution_runner', 'workflow', 'stigmer')]
