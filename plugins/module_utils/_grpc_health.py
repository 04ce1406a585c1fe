# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A minimal gRPC client for the standard health service (grpc.health.v1.Health/Check).

The stigmer server speaks gRPC on its port, so an HTTP/1.1 probe cannot ask it
anything. This speaks just enough HTTP/2 (cleartext, prior knowledge) for one
unary call: the connection preface, SETTINGS, one request stream, and reading
the response's DATA frames. Response headers are never decoded (that would
need HPACK's Huffman table); the call's outcome is the response message, which
is all the health protocol needs.

probe() is the health gate's policy on top of the call: any gRPC answer means
the server is up (the v0.0.5-v0.0.7 server registers no health service and
answers UNIMPLEMENTED), but a health answer other than SERVING means not yet.

Standard library only: this runs on managed hosts.
"""

import socket
import struct
import time

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM = ACK = 0x1
END_HEADERS, PADDED = 0x4, 0x8
HEALTH_CHECK = '/grpc.health.v1.Health/Check'
# SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 6.5.2): the SETTINGS frame this client sends is
# empty, so it is what the client advertised, and a peer's frame over it is a FRAME_SIZE_ERROR.
MAX_FRAME_SIZE = 16384
# What one call reads at most. A health answer is a few bytes and a Temporal answer this collection
# asks for (DescribeTaskQueue with its pollers) some KiB, and a server keeping to flow control sends
# no more DATA than the initial 65,535-byte window (this client sends no WINDOW_UPDATE). The modules
# run as root: a hostile or broken local server must not make them buffer all it sends until the deadline.
MAX_RESPONSE_BYTES = 1 << 20
# grpc.health.v1.HealthCheckResponse.ServingStatus
STATUSES = {0: 'UNKNOWN', 1: 'SERVING', 2: 'NOT_SERVING', 3: 'SERVICE_UNKNOWN'}
STREAM = 1


class GrpcError(Exception):
    """The call did not complete: nothing listens, the peer is not HTTP/2, or it reset the call."""


def encode_int(value, prefix_bits, flags=0):
    """HPACK integer (RFC 7541 5.1) with an N-bit prefix; flags fill the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A header as 'literal without indexing, new name', no Huffman: any HPACK decoder reads it."""
    name, value = name.encode('ascii'), value.encode('utf-8')
    return b'\x00' + encode_int(len(name), 7) + name + encode_int(len(value), 7) + value


def frame(kind, flags, stream, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([kind, flags]) + struct.pack('>I', stream) + payload


def parse_frames(buf, max_size=MAX_FRAME_SIZE):
    """Split complete frames off buf: ([(kind, flags, stream, payload)], rest).

    GrpcError when a frame header announces more than max_size bytes: refused on the header
    alone, so no payload of up to 16 MiB is waited for.
    """
    frames = []
    while len(buf) >= 9:
        length = struct.unpack('>I', b'\x00' + buf[:3])[0]
        if length > max_size:
            raise GrpcError('the server announced a frame of %d bytes, over the %d-byte maximum frame size '
                            'this client advertised (HTTP/2 FRAME_SIZE_ERROR)' % (length, max_size))
        if len(buf) < 9 + length:
            break
        kind, flags = buf[3], buf[4]
        stream = struct.unpack('>I', buf[5:9])[0] & 0x7fffffff
        frames.append((kind, flags, stream, buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


def unpad(flags, payload):
    if flags & PADDED and payload:
        return payload[1:len(payload) - payload[0]]
    return payload


def grpc_message(payload):
    """Length-prefixed gRPC message, uncompressed."""
    return b'\x00' + struct.pack('>I', len(payload)) + payload


def grpc_messages(data):
    """The messages in a stream's DATA bytes; GrpcError on a truncated or compressed one."""
    out = []
    while data:
        if len(data) < 5:
            raise GrpcError('truncated gRPC message')
        if data[0] != 0:
            raise GrpcError('compressed gRPC message (not asked for)')
        length = struct.unpack('>I', data[1:5])[0]
        if len(data) < 5 + length:
            raise GrpcError('truncated gRPC message')
        out.append(data[5:5 + length])
        data = data[5 + length:]
    return out


def read_varint(data, pos):
    value = shift = 0
    while True:
        if pos >= len(data):
            raise GrpcError('truncated protobuf varint')
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7f) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_varint(value):
    out = []
    while value >= 0x80:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_health_request(service):
    """HealthCheckRequest{service}: field 1, length-delimited; proto3 omits the empty default."""
    raw = service.encode('utf-8')
    return b'\x0a' + encode_varint(len(raw)) + raw if raw else b''


def decode_health_response(payload):
    """The ServingStatus name of a HealthCheckResponse (field 1, varint; absent means UNKNOWN)."""
    status, pos = 0, 0
    while pos < len(payload):
        key, pos = read_varint(payload, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(payload, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = read_varint(payload, pos)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise GrpcError('malformed HealthCheckResponse (wire type %d)' % wire)
    if pos > len(payload):
        raise GrpcError('truncated HealthCheckResponse')
    return STATUSES.get(status, 'UNKNOWN')


def request_bytes(authority, method, request, timeout):
    """Everything the client sends for one unary call, in order."""
    headers = b''.join(hpack_literal(k, v) for k, v in (
        (':method', 'POST'), (':scheme', 'http'), (':path', method), (':authority', authority),
        ('content-type', 'application/grpc'), ('te', 'trailers'),
        ('grpc-timeout', '%dm' % max(1, int(timeout * 1000)))))
    return (PREFACE + frame(SETTINGS, 0, 0)
            + frame(HEADERS, END_HEADERS, STREAM, headers)
            + frame(DATA, END_STREAM, STREAM, grpc_message(request)))


def address(host, port):
    """host:port as a URL authority (IPv6 literals bracketed)."""
    return ('[%s]:%s' if ':' in host else '%s:%s') % (host, port)


def call(host, port, method, request=b'', timeout=5.0, connect=socket.create_connection,
         max_bytes=MAX_RESPONSE_BYTES):
    """One unary gRPC call over cleartext HTTP/2; returns the response messages (maybe none).

    No message means the server ended the call with an error status in its
    trailers (for the health service: unimplemented, or an unknown service).
    GrpcError once the server has sent more than max_bytes, frames of every kind
    counted: that bounds both the response and the unparsed frame buffer.
    """
    where = address(host, port)
    deadline = time.monotonic() + timeout
    try:
        sock = connect((host, port), timeout)
    except (OSError, ValueError) as exc:
        raise GrpcError('cannot connect to %s: %s' % (where, getattr(exc, 'strerror', None) or exc))
    try:
        sock.sendall(request_bytes(where, method, request, timeout))
        buf, data, first, received = b'', b'', True, 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GrpcError('%s did not answer %s within %gs' % (where, method, timeout))
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                raise GrpcError('%s closed the connection before answering %s' % (where, method))
            received += len(chunk)
            if received > max_bytes:
                raise GrpcError('%s sent more than %d bytes answering %s, more than a health or Temporal answer '
                                'can be: the call was given up' % (where, max_bytes, method))
            if first and len(buf + chunk) >= 9 and (buf + chunk)[3] != SETTINGS:
                raise GrpcError('%s does not speak gRPC (HTTP/2): it answered %r'
                                % (where, (buf + chunk)[:40]))
            first = first and len(buf + chunk) < 9
            frames, buf = parse_frames(buf + chunk)
            for kind, flags, stream, payload in frames:
                if kind == SETTINGS and not flags & ACK:
                    sock.sendall(frame(SETTINGS, ACK, 0))
                elif kind == PING and not flags & ACK:
                    sock.sendall(frame(PING, ACK, 0, payload))
                elif kind == GOAWAY:
                    raise GrpcError('%s refused the call (GOAWAY)' % where)
                elif stream == STREAM and kind == RST_STREAM:
                    raise GrpcError('%s reset the call to %s' % (where, method))
                elif stream == STREAM and kind == DATA:
                    data += unpad(flags, payload)
                if stream == STREAM and kind in (DATA, HEADERS) and flags & END_STREAM:
                    return grpc_messages(data)
    except socket.timeout:
        raise GrpcError('%s did not answer %s within %gs' % (where, method, timeout))
    except OSError as exc:
        raise GrpcError('connection to %s failed: %s' % (where, exc.strerror or exc))
    finally:
        sock.close()


def health_check(host, port, service='', timeout=5.0, connect=socket.create_connection):
    """Ask grpc.health.v1.Health/Check; returns {'status': name or None, 'msg': text}.

    status None: the server speaks gRPC but gave no health answer (no health
    service, or none for that service name). GrpcError: no gRPC server there.
    """
    answer = call(host, port, HEALTH_CHECK, encode_health_request(service), timeout, connect)
    label = 'service %r' % service if service else 'the server'
    if not answer:
        msg = '%s:%s speaks gRPC but gave no health status for %s (no grpc.health.v1 service there)'
        return {'status': None, 'msg': msg % (host, port, label)}
    status = decode_health_response(answer[0])
    return {'status': status, 'msg': '%s:%s reports %s for %s' % (host, port, status, label)}


def judge(answer, require_status):
    """Whether a health_check() answer counts as up: SERVING, or (unless required) no health service."""
    return answer['status'] == 'SERVING' or (answer['status'] is None and not require_status)


def probe(host, port, service='', timeout=5.0, require_status=False, connect=socket.create_connection):
    """One health_check() judged for the gate: {'grpc', 'status', 'healthy', 'msg'}; never raises GrpcError."""
    try:
        answer = health_check(host, port, service, timeout, connect)
    except GrpcError as exc:
        return {'grpc': False, 'status': None, 'healthy': False,
                'msg': 'server did not answer gRPC on %s: %s' % (address(host, port), exc)}
    healthy = judge(answer, require_status)
    if healthy and answer['status'] is None:
        msg = '%s, which counts as up' % answer['msg']
    elif healthy:
        msg = answer['msg']
    elif answer['status'] is None:
        msg = 'server is not healthy: %s, and require_status is true' % answer['msg']
    else:
        msg = 'server is not serving yet: %s' % answer['msg']
    return {'grpc': True, 'status': answer['status'], 'healthy': healthy, 'msg': msg}
