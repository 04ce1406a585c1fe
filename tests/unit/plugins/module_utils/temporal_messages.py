# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Temporal's DescribeTaskQueue answers, encoded by hand as Temporal's server encodes them."""

import struct

from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import encode_varint


def ld(number, payload):
    """A length-delimited protobuf field."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def vi(number, value):
    """A varint protobuf field."""
    return encode_varint(number << 3) + encode_varint(value)


def poller(identity, seconds=None, nanos=0, rate=None):
    """One PollerInfo{last_access_time, identity, rate_per_second} as a field of the response."""
    body = b''
    if seconds is not None:
        body += ld(1, vi(1, seconds) + (vi(2, nanos) if nanos else b''))
    body += ld(2, identity.encode())
    if rate is not None:
        body += encode_varint(3 << 3 | 1) + struct.pack('<d', rate)
    return ld(1, body)


def describe_response(pollers):
    """A DescribeTaskQueueResponse listing pollers [(identity, last access in epoch seconds)]."""
    return b''.join(poller(identity, int(seconds)) for identity, seconds in pollers)
