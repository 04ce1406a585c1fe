# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What Temporal itself knows of a host's workers: the pollers of a task queue.

WorkflowService/DescribeTaskQueue over the collection's own cleartext gRPC client
(grpc_health.call), with just enough protobuf for its request and the pollers of its
answer. A poller's identity is ``<pid>@<hostname>`` by the SDKs' default (the Go SDK
adds a trailing ``@``), so the pollers can be matched to the processes of a unit, and
on a Temporal shared by several hosts to this host's processes only.

Standard library only: this runs on managed hosts.
"""

import re
import socket
import struct
import time

from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import (
    GrpcError, address, call, encode_varint, health_check, read_varint)

DESCRIBE_TASK_QUEUE = '/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue'
# The service DescribeTaskQueue belongs to: its health is what the gate asks first.
WORKFLOW_SERVICE = 'temporal.api.workflowservice.v1.WorkflowService'
# temporal.api.enums.v1.TaskQueueType / TaskQueueKind
TASK_TYPES = {'workflow': 1, 'activity': 2}
KIND_NORMAL = 1
# A worker's long poll lasts 60 to 70 s and the next follows at once, so a process that polls
# was seen within that; 120 s leaves room for a slow round trip and some clock skew between
# this host and an external Temporal (last_access is Temporal's clock).
POLLER_MAX_AGE = 120
# Temporal spreads a task queue over partitions (matching.numTaskqueueReadPartitions, 4 by default,
# as in the dev server), the root and /_sys/<queue>/1.., and DescribeTaskQueue lists the pollers of
# the one partition asked: a worker's poll can wait on a child partition for a minute unlisted at
# the root. Pollers on partitions beyond these are seen once they poll one of them.
READ_PARTITIONS = 4
_IDENTITY = re.compile(r'^(\d+)@([^@]*)')


def _field(number, wire, payload):
    return encode_varint(number << 3 | wire) + payload


def _string(number, text):
    raw = text.encode('utf-8')
    return _field(number, 2, encode_varint(len(raw)) + raw) if raw else b''


def _message(number, payload):
    return _field(number, 2, encode_varint(len(payload)) + payload)


def _varint(number, value):
    return _field(number, 0, encode_varint(value)) if value else b''


def describe_request(namespace, queue, task_type):
    """DescribeTaskQueueRequest{namespace, task_queue{name, kind NORMAL}, task_queue_type}."""
    if task_type not in TASK_TYPES:
        raise ValueError('task type must be one of %s, not %r' % (', '.join(sorted(TASK_TYPES)), task_type))
    queue_msg = _string(1, queue) + _varint(2, KIND_NORMAL)
    return _string(1, namespace) + _message(2, queue_msg) + _varint(3, TASK_TYPES[task_type])


def fields(payload):
    """[(field number, wire type, value)] of one protobuf message; bytes for length-delimited values."""
    out, pos = [], 0
    while pos < len(payload):
        key, pos = read_varint(payload, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(payload, pos)
        elif wire == 2:
            length, pos = read_varint(payload, pos)
            if pos + length > len(payload):
                raise GrpcError('truncated protobuf message')
            value, pos = payload[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(payload):
                raise GrpcError('truncated protobuf message')
            value, pos = payload[pos:pos + size], pos + size
        else:
            raise GrpcError('unsupported protobuf wire type %d' % wire)
        out.append((number, wire, value))
    return out


def decode_pollers(payload):
    """The pollers of a DescribeTaskQueueResponse: [{'identity', 'last_access', 'rate_per_second'}].

    last_access is the poll's time in seconds since the epoch (google.protobuf.Timestamp), or None.
    """
    pollers = []
    for number, wire, value in fields(payload):
        if number != 1 or wire != 2:
            continue
        poller = {'identity': '', 'last_access': None, 'rate_per_second': None}
        for n, w, v in fields(value):
            if n == 1 and w == 2:
                ts = dict((tn, tv) for tn, tw, tv in fields(v) if tw == 0)
                poller['last_access'] = ts.get(1, 0) + ts.get(2, 0) / 1e9
            elif n == 2 and w == 2:
                poller['identity'] = v.decode('utf-8', 'replace')
            elif n == 3 and w == 1:
                poller['rate_per_second'] = struct.unpack('<d', v)[0]
        pollers.append(poller)
    return pollers


def identity_pid(identity):
    """The process id in an SDK's default identity ``pid@host`` (``pid@host@`` from Go), else None."""
    match = _IDENTITY.match(identity or '')
    return int(match.group(1)) if match else None


def identity_host(identity):
    """The host name in an SDK's default identity, else None."""
    match = _IDENTITY.match(identity or '')
    return match.group(2) if match else None


def pollers(host, port, namespace, queue, task_type, timeout=5.0, connect=None):
    """The pollers Temporal at host:port lists for one task queue and task type.

    GrpcError when Temporal cannot be asked or ends the call without an answer (an unknown
    namespace, for one).
    """
    kwargs = {'connect': connect} if connect else {}
    answer = call(host, port, DESCRIBE_TASK_QUEUE, describe_request(namespace, queue, task_type), timeout, **kwargs)
    if not answer:
        raise GrpcError('Temporal at %s:%s gave no answer to DescribeTaskQueue for %s in namespace %s '
                        '(is the namespace there?)' % (host, port, queue, namespace))
    return decode_pollers(answer[0])


def polling_pids(found, pids, hostname, now, max_age=POLLER_MAX_AGE):
    """The pids among ``pids`` whose process on this host (``hostname``) polled within max_age
    seconds of now, in ``found`` (decode_pollers()). The same pid on another host is another process."""
    wanted = set(pids)
    return sorted(set(identity_pid(p['identity']) for p in found
                      if identity_pid(p['identity']) in wanted and identity_host(p['identity']) == hostname
                      and (p['last_access'] is None or now - p['last_access'] <= max_age)))


def partitions(queue, count=READ_PARTITIONS):
    """The names of a task queue's partitions, the root first."""
    return [queue] + ['/_sys/%s/%d' % (queue, number) for number in range(1, count)]


def poll_verdict(answers, pids, hostname, now, max_age=POLLER_MAX_AGE):
    """What Temporal's answers say of one unit's processes.

    answers: [(queue, task type, decode_pollers() list)], one per queue and type the unit must
    poll. Returns (pollers, missing): {queue: {type: [pids]}} and the [(queue, type)] that no
    process of the unit polled.
    """
    found, missing = {}, []
    for queue, task_type, listed in answers:
        pids_there = polling_pids(listed, pids, hostname, now, max_age)
        found.setdefault(queue, {})[task_type] = pids_there
        if not pids_there:
            missing.append((queue, task_type))
    return found, missing


def missing_text(name, missing):
    """'agent-runner: Temporal lists no activity poller of this unit on agent_execution_runner', for
    each set of missing types the queues that lack them."""
    by_types = {}
    for queue in dict.fromkeys(q for q, t in missing):
        types = tuple(t for t in TASK_TYPES if (queue, t) in missing)
        by_types.setdefault(types, []).append(queue)
    parts = ['no %s poller of this unit on %s' % (' or '.join(types), ', '.join(queues))
             for types, queues in by_types.items()]
    return '%s: Temporal lists %s' % (name, '; '.join(parts))


class Temporal(object):
    """The Temporal the components poll (host, port, namespace), as the health gate asks it."""

    def __init__(self, host, port, namespace, timeout=5.0, connect=socket.create_connection, clock=time.time):
        self.host, self.port, self.namespace = host, port, namespace
        self.timeout, self.connect = timeout, connect
        self.clock = clock    # the wall clock, which Temporal's last_access stamps are read against
        self.hostname = socket.gethostname()   # what the SDKs put in their identity

    def where(self):
        return address(self.host, self.port)

    def serving(self):
        """{'healthy', 'msg'}: whether Temporal's workflow service says SERVING."""
        try:
            answer = health_check(self.host, self.port, WORKFLOW_SERVICE, self.timeout, self.connect)
        except GrpcError as exc:
            return {'healthy': False, 'msg': 'Temporal did not answer gRPC on %s: %s' % (self.where(), exc)}
        if answer['status'] == 'SERVING':
            return {'healthy': True, 'msg': answer['msg']}
        return {'healthy': False, 'msg': 'Temporal is not serving yet: %s' % answer['msg']}

    def pollers(self, queue, task_type):
        return pollers(self.host, self.port, self.namespace, queue, task_type, self.timeout, self.connect)

    def unit_pollers(self, queue, task_type, pids, now):
        """The pollers of a queue and type, from its partitions in turn until one lists a process
        among pids on this host."""
        listed = []
        for partition in partitions(queue):
            listed.extend(self.pollers(partition, task_type))
            if polling_pids(listed, pids, self.hostname, now):
                break
        return listed
