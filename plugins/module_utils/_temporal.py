# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What Temporal itself knows of a host's workers: the pollers of a task queue.

WorkflowService/DescribeTaskQueue over the collection's own cleartext gRPC client
(grpc_health.call), with just enough protobuf for its request and the pollers of its
answer. A poller's identity is ``<pid>@<hostname>`` by the SDKs' default (the Go SDK
adds a trailing ``@``), so the pollers can be matched to the processes of a unit.

Standard library only: this runs on managed hosts.
"""

import re
import struct

from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import (
    GrpcError, call, encode_varint, read_varint)

DESCRIBE_TASK_QUEUE = '/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue'
# temporal.api.enums.v1.TaskQueueType / TaskQueueKind
TASK_TYPES = {'workflow': 1, 'activity': 2}
KIND_NORMAL = 1
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


def polling_pids(found, pids, now, max_age):
    """The pids among ``pids`` that polled within max_age seconds in ``found`` (decode_pollers())."""
    wanted = set(pids)
    return sorted(set(identity_pid(p['identity']) for p in found
                      if identity_pid(p['identity']) in wanted
                      and (p['last_access'] is None or now - p['last_access'] <= max_age)))
