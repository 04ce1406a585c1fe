# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""grpc_health: HPACK and HTTP/2 framing, gRPC and protobuf encoding, and whole calls against a scripted fake socket."""

import socket
import struct
import threading
import time

import pytest

from ansible_collections.stigmer.runtime.plugins.module_utils import _grpc_health as g
from ansible_collections.stigmer.runtime.plugins.module_utils._grpc_health import (
    ACK,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    GrpcError,
)

WHERE = ('127.0.0.1', 7234)


# ---------------------------------------------------------------- reference decoders (RFC 7541 5.1, 6.2.2)

def decode_int(data, pos, prefix_bits):
    """RFC 7541 5.1 integer decoding, written from the RFC's pseudocode: (value, next position)."""
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7f) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_literals(block):
    """A header block made only of 'literal without indexing, new name', no Huffman: [(name, value)]."""
    headers, pos = [], 0
    while pos < len(block):
        assert block[pos] == 0x00, 'not a literal without indexing with a new name at %d' % pos
        pos += 1
        assert not block[pos] & 0x80, 'Huffman-coded name'
        length, pos = decode_int(block, pos, 7)
        name = block[pos:pos + length].decode('ascii')
        pos += length
        assert not block[pos] & 0x80, 'Huffman-coded value'
        length, pos = decode_int(block, pos, 7)
        value = block[pos:pos + length].decode('utf-8')
        pos += length
        headers.append((name, value))
    return headers


# ---------------------------------------------------------------- HPACK integers and literals

@pytest.mark.parametrize('value, prefix_bits, flags, expected', [
    (10, 5, 0, b'\x0a'),                    # RFC 7541 C.1.1
    (1337, 5, 0, b'\x1f\x9a\x0a'),          # RFC 7541 C.1.2
    (42, 8, 0, b'\x2a'),                    # RFC 7541 C.1.3
    (0, 5, 0, b'\x00'),
    (30, 5, 0, b'\x1e'),                    # one below the prefix limit: still one byte
    (31, 5, 0, b'\x1f\x00'),                # exactly the prefix limit: limit, then a zero continuation
    (31 + 127, 5, 0, b'\x1f\x7f'),          # largest one-continuation-byte value
    (31 + 128, 5, 0, b'\x1f\x80\x01'),      # first value needing two continuation bytes
    (126, 7, 0, b'\x7e'),
    (127, 7, 0, b'\x7f\x00'),
    (128, 7, 0, b'\x7f\x01'),
    (255, 8, 0, b'\xff\x00'),
    (10, 5, 0xe0, b'\xea'),                 # flags fill the bits above the prefix
    (1337, 5, 0x20, b'\x3f\x9a\x0a'),       # ...and only the first byte
])
def test_encode_int(value, prefix_bits, flags, expected):
    assert g.encode_int(value, prefix_bits, flags) == expected


@pytest.mark.parametrize('prefix_bits', range(1, 9))
def test_encode_int_round_trips_through_the_rfc_decoder(prefix_bits):
    limit = (1 << prefix_bits) - 1
    values = set(range(0, 300)) | {limit - 1, limit, limit + 1, limit + 127, limit + 128, 16383, 16384, 2 ** 21, 2 ** 31 - 1}
    for value in sorted(v for v in values if v >= 0):
        encoded = g.encode_int(value, prefix_bits)
        assert decode_int(encoded, 0, prefix_bits) == (value, len(encoded)), value
        assert encoded[0] >> prefix_bits == 0, value  # no flag bits when none are given


def test_hpack_literal_byte_layout():
    assert g.hpack_literal(':path', '/a') == b'\x00\x05:path\x02/a'
    assert g.hpack_literal('te', 'trailers') == b'\x00\x02te\x08trailers'
    assert g.hpack_literal('x', '') == b'\x00\x01x\x00'


def test_hpack_literal_long_and_non_ascii_values():
    value = 'v' * 200
    assert g.hpack_literal('name', value) == b'\x00\x04name\x7f\x49' + value.encode()  # 200 = 127 + 73
    assert g.hpack_literal('k', u'\xe9') == b'\x00\x01k\x02\xc3\xa9'  # the length counts UTF-8 bytes
    assert decode_literals(g.hpack_literal('name', value) + g.hpack_literal('k', u'\xe9')) == [('name', value), ('k', u'\xe9')]


# ---------------------------------------------------------------- HTTP/2 frames

def test_frame_layout():
    assert g.frame(DATA, END_STREAM, 1, b'abc') == b'\x00\x00\x03' + b'\x00\x01' + b'\x00\x00\x00\x01' + b'abc'
    assert g.frame(SETTINGS, ACK, 0) == b'\x00\x00\x00\x04\x01\x00\x00\x00\x00'
    assert g.frame(DATA, 0, 3, b'x' * 0x012345)[:9] == b'\x01\x23\x45\x00\x00\x00\x00\x00\x03'


def test_parse_frames_round_trip_and_keeps_the_partial_rest():
    frames = [(SETTINGS, 0, 0, b''), (HEADERS, END_HEADERS, 1, b'\x88'), (DATA, END_STREAM | PADDED, 1, b'\x01ab\x00'),
              (PING, 0, 0, b'12345678')]
    whole = b''.join(g.frame(*f) for f in frames)
    assert g.parse_frames(whole) == (frames, b'')
    third = g.frame(GOAWAY, 0, 0, b'\x00' * 8)
    # every split of a trailing frame: complete frames come out, the rest is returned untouched
    for cut in range(len(third)):
        assert g.parse_frames(whole + third[:cut]) == (frames, third[:cut])
    assert g.parse_frames(b'') == ([], b'')
    assert g.parse_frames(third[:8]) == ([], third[:8])        # header not complete
    assert g.parse_frames(third[:12]) == ([], third[:12])      # header complete, payload not


def test_parse_frames_masks_the_reserved_stream_bit():
    raw = b'\x00\x00\x02' + bytes([DATA, 0]) + b'\x80\x00\x00\x05' + b'hi'
    assert g.parse_frames(raw) == ([(DATA, 0, 5, b'hi')], b'')


def test_parse_frames_refuses_a_frame_over_the_advertised_maximum_on_its_header_alone():
    assert g.MAX_FRAME_SIZE == 16384    # SETTINGS_MAX_FRAME_SIZE's initial value: the client's SETTINGS are empty
    at_limit = g.frame(DATA, 0, 1, b'x' * 16384)
    assert g.parse_frames(at_limit) == ([(DATA, 0, 1, b'x' * 16384)], b'')
    assert g.parse_frames(at_limit[:100]) == ([], at_limit[:100])      # waits for the rest of a frame it allows
    for length in (16385, 0xffffff):                                   # the 24-bit length's largest: 16 MiB
        header = struct.pack('>I', length)[1:] + bytes([DATA, 0]) + struct.pack('>I', 1)
        with pytest.raises(GrpcError, match='announced a frame of %d bytes, over the 16384-byte maximum' % length):
            g.parse_frames(g.frame(PING, 0, 0, b'\x00' * 8) + header)
    # A client that advertised more allows more.
    big = g.frame(DATA, 0, 1, b'x' * 16385)
    assert g.parse_frames(big, max_size=1 << 20) == ([(DATA, 0, 1, b'x' * 16385)], b'')


@pytest.mark.parametrize('flags, payload, expected', [
    (0, b'\x02abc\x00\x00', b'\x02abc\x00\x00'),    # no PADDED: the payload as it is
    (END_STREAM, b'\x02abc', b'\x02abc'),
    (PADDED, b'\x02abc\x00\x00', b'abc'),
    (PADDED | END_STREAM, b'\x03abc\x00\x00\x00', b'abc'),
    (PADDED, b'\x00abc', b'abc'),                   # pad length 0: only the length byte goes
    (PADDED, b'', b''),
])
def test_unpad(flags, payload, expected):
    assert g.unpad(flags, payload) == expected


# ---------------------------------------------------------------- gRPC messages and protobuf

def test_grpc_message_layout_and_round_trip():
    assert g.grpc_message(b'\x08\x01') == b'\x00\x00\x00\x00\x02\x08\x01'
    assert g.grpc_message(b'') == b'\x00\x00\x00\x00\x00'
    messages = [b'\x08\x01', b'', b'x' * 300]
    assert g.grpc_messages(b''.join(g.grpc_message(m) for m in messages)) == messages
    assert g.grpc_messages(b'') == []


@pytest.mark.parametrize('data', [
    b'\x00\x00\x00',                                 # prefix cut short
    g.grpc_message(b'abc')[:-1],                     # body cut short
    g.grpc_message(b'ok') + b'\x00\x00',             # a second message cut short
])
def test_grpc_messages_truncated(data):
    with pytest.raises(GrpcError, match='truncated gRPC message'):
        g.grpc_messages(data)


def test_grpc_messages_compressed():
    with pytest.raises(GrpcError, match='compressed'):
        g.grpc_messages(b'\x01' + struct.pack('>I', 2) + b'\x08\x01')


def test_read_varint():
    assert g.read_varint(b'\x96\x01', 0) == (150, 2)
    assert g.read_varint(b'\xff\x08\x01', 1) == (8, 2)
    assert g.read_varint(b'\xff\xff\xff\xff\x0f', 0) == (2 ** 32 - 1, 5)
    with pytest.raises(GrpcError, match='truncated protobuf varint'):
        g.read_varint(b'\x96', 0)
    with pytest.raises(GrpcError, match='truncated protobuf varint'):
        g.read_varint(b'\x08', 1)


@pytest.mark.parametrize('service, expected', [
    ('', b''),
    ('abc', b'\x0a\x03abc'),
    (u'\xe9', b'\x0a\x02\xc3\xa9'),
    ('s' * 126, b'\x0a\x7e' + b's' * 126),
])
def test_encode_health_request(service, expected):
    assert g.encode_health_request(service) == expected


@pytest.mark.parametrize('length, varint', [(127, b'\x7f'), (200, b'\xc8\x01')])
def test_encode_health_request_long_service_name_is_a_protobuf_varint(length, varint):
    assert g.encode_health_request('s' * length) == b'\x0a' + varint + b's' * length


SKIPPED_FIELDS = (b'\x10\x96\x01'                       # field 2, varint
                  + b'\x19' + b'\x01' * 8               # field 3, 64-bit
                  + b'\x22\x04\x08\x01\x08\x01'         # field 4, length-delimited (holding bytes that look like field 1)
                  + b'\x2d' + b'\x01' * 4)              # field 5, 32-bit


@pytest.mark.parametrize('payload, expected', [
    (b'', 'UNKNOWN'),
    (b'\x08\x00', 'UNKNOWN'),
    (b'\x08\x01', 'SERVING'),
    (b'\x08\x02', 'NOT_SERVING'),
    (b'\x08\x03', 'SERVICE_UNKNOWN'),
    (b'\x08\x09', 'UNKNOWN'),                              # an enum value this client does not know
    (b'\x08\x81\x01', 'UNKNOWN'),                          # 129, multi-byte varint
    (b'\x08\x01\x08\x02', 'NOT_SERVING'),                  # the last value wins (protobuf merge)
    (SKIPPED_FIELDS + b'\x08\x02', 'NOT_SERVING'),
    (b'\x08\x02' + SKIPPED_FIELDS, 'NOT_SERVING'),
    (SKIPPED_FIELDS, 'UNKNOWN'),
    (b'\xa2\x06\x01x\x08\x01', 'SERVING'),                 # field 100 (two-byte key), length-delimited
])
def test_decode_health_response(payload, expected):
    assert g.decode_health_response(payload) == expected


@pytest.mark.parametrize('payload, message', [
    (b'\x0f', 'wire type 7'),
    (b'\x08\x01\x0e', 'wire type 6'),
    (b'\x08', 'truncated protobuf varint'),                # key without its value
    (b'\x08\x81', 'truncated protobuf varint'),            # value cut inside the varint
    (b'\x88', 'truncated protobuf varint'),                # key cut inside the varint
    (b'\x22\x05ab', 'truncated HealthCheckResponse'),      # length-delimited field longer than the rest
    (b'\x2d\x00\x00', 'truncated HealthCheckResponse'),    # 32-bit field cut short
    (b'\x19\x00', 'truncated HealthCheckResponse'),        # 64-bit field cut short
])
def test_decode_health_response_malformed(payload, message):
    with pytest.raises(GrpcError, match=message):
        g.decode_health_response(payload)


def test_request_bytes():
    sent = g.request_bytes('h.example:7234', g.HEALTH_CHECK, b'\x0a\x03abc', 2.5)
    assert sent.startswith(PREFACE)
    assert PREFACE == b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
    assert g.hpack_literal(':path', '/grpc.health.v1.Health/Check') in sent
    frames, rest = g.parse_frames(sent[len(PREFACE):])
    assert rest == b''
    assert [f[:3] for f in frames] == [(SETTINGS, 0, 0), (HEADERS, END_HEADERS, 1), (DATA, END_STREAM, 1)]
    assert frames[0][3] == b''
    assert decode_literals(frames[1][3]) == [
        (':method', 'POST'), (':scheme', 'http'), (':path', '/grpc.health.v1.Health/Check'),
        (':authority', 'h.example:7234'), ('content-type', 'application/grpc'), ('te', 'trailers'),
        ('grpc-timeout', '2500m')]
    assert frames[2][3] == g.grpc_message(b'\x0a\x03abc')


def test_request_bytes_timeout_is_at_least_one_millisecond():
    headers = dict(decode_literals(g.parse_frames(g.request_bytes('a:1', '/m', b'', 0.0001)[len(PREFACE):])[0][1][3]))
    assert headers['grpc-timeout'] == '1m'
    assert headers[':path'] == '/m'


# ---------------------------------------------------------------- whole calls over a fake socket

class FakeSocket(object):
    """Replays scripted recv() results (bytes, or an exception to raise), then b'' (closed); records what was sent."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []
        self.timeouts = []
        self.closed = False

    def sendall(self, data):
        assert not self.closed
        self.sent.append(bytes(data))

    def settimeout(self, value):
        self.timeouts.append(value)

    def recv(self, size):
        assert not self.closed
        if not self.script:
            return b''
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        assert len(item) <= size
        return item

    def close(self):
        self.closed = True


class Connect(object):
    """Stands in for socket.create_connection: hands out the fake socket, records the arguments."""

    def __init__(self, sock=None, error=None):
        self.sock, self.error = sock, error
        self.calls = []

    def __call__(self, address, timeout):
        self.calls.append((address, timeout))
        if self.error is not None:
            raise self.error
        return self.sock


SERVER_SETTINGS = g.frame(SETTINGS, 0, 0, struct.pack('>HI', 3, 100))  # SETTINGS_MAX_CONCURRENT_STREAMS=100
RESPONSE_HEADERS = g.frame(HEADERS, END_HEADERS, 1, g.hpack_literal(':status', '200') + g.hpack_literal('content-type', 'application/grpc'))
TRAILERS = g.frame(HEADERS, END_HEADERS | END_STREAM, 1, g.hpack_literal('grpc-status', '0'))


def answer(status_payload):
    return RESPONSE_HEADERS + g.frame(DATA, 0, 1, g.grpc_message(status_payload)) + TRAILERS


def run(script, service='', timeout=5.0):
    sock = FakeSocket(script)
    connect = Connect(sock)
    result = g.health_check(WHERE[0], WHERE[1], service, timeout, connect=connect)
    return result, sock, connect


def test_serving():
    result, sock, connect = run([SERVER_SETTINGS + answer(b'\x08\x01')])
    assert result == {'status': 'SERVING', 'msg': '127.0.0.1:7234 reports SERVING for the server'}
    assert connect.calls == [(WHERE, 5.0)]
    assert sock.sent[0] == g.request_bytes('127.0.0.1:7234', g.HEALTH_CHECK, b'', 5.0)
    assert sock.sent[1:] == [g.frame(SETTINGS, ACK, 0)]
    assert sock.closed
    assert sock.timeouts and all(0 < t <= 5.0 for t in sock.timeouts)


def test_named_service_not_serving():
    result, sock, connect = run([SERVER_SETTINGS, answer(b'\x08\x02')], service='stigmer')
    assert result == {'status': 'NOT_SERVING', 'msg': "127.0.0.1:7234 reports NOT_SERVING for service 'stigmer'"}
    assert g.frame(DATA, END_STREAM, 1, g.grpc_message(b'\x0a\x07stigmer')) in sock.sent[0]


def test_answer_arriving_one_byte_at_a_time():
    whole = SERVER_SETTINGS + answer(b'\x08\x03')
    result, sock, connect = run([whole[i:i + 1] for i in range(len(whole))])
    assert result['status'] == 'SERVICE_UNKNOWN'
    assert sock.sent[1:] == [g.frame(SETTINGS, ACK, 0)]
    assert sock.script == []


def test_trailers_only_answer_has_no_status():
    trailers_only = g.frame(HEADERS, END_HEADERS | END_STREAM, 1,
                            g.hpack_literal(':status', '200') + g.hpack_literal('grpc-status', '12'))
    result, sock, connect = run([SERVER_SETTINGS, trailers_only, g.frame(DATA, 0, 1, g.grpc_message(b'\x08\x01'))])
    assert result['status'] is None
    assert 'speaks gRPC but gave no health status for the server' in result['msg']
    assert len(sock.script) == 1  # stopped reading at END_STREAM
    assert sock.closed


def test_settings_acked_and_ping_answered_with_the_same_payload():
    ping = g.frame(PING, 0, 0, b'\x01\x02\x03\x04\x05\x06\x07\x08')
    ping_ack_from_server = g.frame(PING, ACK, 0, b'zzzzzzzz')    # an ACK is not answered
    settings_ack_from_server = g.frame(SETTINGS, ACK, 0)          # nor is one
    result, sock, connect = run([SERVER_SETTINGS + ping, settings_ack_from_server + ping_ack_from_server, answer(b'\x08\x01')])
    assert result['status'] == 'SERVING'
    assert sock.sent[1:] == [g.frame(SETTINGS, ACK, 0), b'\x00\x00\x08\x06\x01\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08']


def test_padded_data_frame():
    body = g.grpc_message(b'\x08\x01')
    padded = g.frame(DATA, PADDED | END_STREAM, 1, bytes([5]) + body + b'\x00' * 5)
    result, sock, connect = run([SERVER_SETTINGS + RESPONSE_HEADERS + padded])
    assert result['status'] == 'SERVING'


def test_message_split_over_data_frames_and_other_streams_ignored():
    body = g.grpc_message(b'\x08\x02')
    frames = (RESPONSE_HEADERS + g.frame(DATA, 0, 1, body[:3])
              + g.frame(DATA, 0, 3, g.grpc_message(b'\x08\x01'))      # another stream's data
              + g.frame(RST_STREAM, 0, 3, b'\x00\x00\x00\x08')          # another stream's reset
              + g.frame(0x8, 0, 0, b'\x00\x00\x10\x00')                 # WINDOW_UPDATE: ignored
              + g.frame(DATA, 0, 1, body[3:]) + TRAILERS)
    result, sock, connect = run([SERVER_SETTINGS + frames])
    assert result['status'] == 'NOT_SERVING'


def test_rst_stream_raises():
    with pytest.raises(GrpcError, match=r'127\.0\.0\.1:7234 reset the call to /grpc\.health\.v1\.Health/Check'):
        run([SERVER_SETTINGS + g.frame(RST_STREAM, 0, 1, b'\x00\x00\x00\x07')])


def test_goaway_raises():
    sock = FakeSocket([SERVER_SETTINGS + g.frame(GOAWAY, 0, 0, b'\x00\x00\x00\x00\x00\x00\x00\x0b')])
    with pytest.raises(GrpcError, match=r'127\.0\.0\.1:7234 refused the call \(GOAWAY\)'):
        g.health_check('127.0.0.1', 7234, connect=Connect(sock))
    assert sock.closed


def test_http1_answer_is_not_grpc():
    sock = FakeSocket([b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'])
    with pytest.raises(GrpcError) as info:
        g.health_check('127.0.0.1', 7234, connect=Connect(sock))
    assert 'does not speak gRPC' in str(info.value)
    assert 'HTTP/1.1 400' in str(info.value)
    assert sock.sent[1:] == [] and sock.closed


def test_http1_answer_in_small_pieces_is_not_grpc():
    raw = b'HTTP/1.1 400 Bad Request\r\n\r\n'
    with pytest.raises(GrpcError, match='does not speak gRPC'):
        run([raw[:4], raw[4:8], raw[8:]])


@pytest.mark.parametrize('script', [
    [],                                                    # closed at once
    [SERVER_SETTINGS],                                     # after the settings
    [SERVER_SETTINGS + RESPONSE_HEADERS + g.frame(DATA, 0, 1, g.grpc_message(b'\x08\x01'))[:12]],  # mid-frame
])
def test_connection_closed_early(script):
    with pytest.raises(GrpcError, match=r'127\.0\.0\.1:7234 closed the connection before answering /grpc\.health\.v1\.Health/Check'):
        run(script)


def test_connection_refused_names_host_and_port():
    connect = Connect(error=ConnectionRefusedError(111, 'Connection refused'))
    with pytest.raises(GrpcError) as info:
        g.health_check('127.0.0.1', 7999, timeout=1.5, connect=connect)
    assert str(info.value) == 'cannot connect to 127.0.0.1:7999: Connection refused'
    assert connect.calls == [(('127.0.0.1', 7999), 1.5)]


def test_connect_timeout():
    with pytest.raises(GrpcError, match=r'cannot connect to 127\.0\.0\.1:7234: timed out'):
        g.health_check('127.0.0.1', 7234, connect=Connect(error=socket.timeout('timed out')))


def test_recv_timeout():
    sock = FakeSocket([SERVER_SETTINGS, socket.timeout('timed out')])
    with pytest.raises(GrpcError) as info:
        g.health_check('127.0.0.1', 7234, timeout=0.5, connect=Connect(sock))
    assert str(info.value) == '127.0.0.1:7234 did not answer /grpc.health.v1.Health/Check within 0.5s'
    assert sock.closed


def test_connection_reset_while_reading():
    sock = FakeSocket([ConnectionResetError(104, 'Connection reset by peer')])
    with pytest.raises(GrpcError, match=r'connection to 127\.0\.0\.1:7234 failed: Connection reset by peer'):
        g.health_check('127.0.0.1', 7234, connect=Connect(sock))
    assert sock.closed


def test_deadline_covers_the_whole_call(monkeypatch):
    """A server that keeps talking but never answers is cut off at the deadline, not after each quiet recv."""
    clock = [100.0]

    class Clock(object):
        @staticmethod
        def monotonic():
            clock[0] += 1.0
            return clock[0]

    monkeypatch.setattr(g, 'time', Clock)
    ping = g.frame(PING, 0, 0, b'\x00' * 8)
    sock = FakeSocket([SERVER_SETTINGS] + [ping] * 50)
    with pytest.raises(GrpcError, match=r'did not answer /grpc\.health\.v1\.Health/Check within 3s'):
        g.health_check('127.0.0.1', 7234, timeout=3, connect=Connect(sock))
    assert len(sock.script) > 40
    assert sock.timeouts == sorted(sock.timeouts, reverse=True) and sock.timeouts[-1] > 0


def test_a_frame_announced_over_the_maximum_is_refused_before_its_payload_is_read():
    huge = b'\xff\xff\xff' + bytes([DATA, 0]) + struct.pack('>I', 1)   # 16 MiB announced
    sock = FakeSocket([SERVER_SETTINGS + RESPONSE_HEADERS + huge + b'x' * 100] + [b'x' * 65536] * 3)
    with pytest.raises(GrpcError, match='announced a frame of 16777215 bytes, over the 16384-byte maximum'):
        g.health_check('127.0.0.1', 7234, connect=Connect(sock))
    assert len(sock.script) == 3 and sock.closed


def call_with(script, **kwargs):
    sock = FakeSocket(script)
    return g.call(WHERE[0], WHERE[1], '/m', b'', 5.0, connect=Connect(sock), **kwargs), sock


def test_a_temporal_sized_answer_fits_under_the_default_cap():
    # DescribeTaskQueue with hundreds of pollers is some tens of KiB; 300 KiB in maximum-size frames still passes.
    body = g.grpc_message(b'p' * (300 << 10))
    frames = b''.join(g.frame(DATA, 0, 1, body[i:i + 16384]) for i in range(0, len(body), 16384))
    whole = SERVER_SETTINGS + RESPONSE_HEADERS + frames + TRAILERS
    assert g.MAX_RESPONSE_BYTES == 1 << 20
    messages, sock = call_with([whole[i:i + 65536] for i in range(0, len(whole), 65536)])
    assert messages == [b'p' * (300 << 10)]


def test_the_cap_counts_every_byte_the_server_sends_and_callers_may_choose_it():
    whole = SERVER_SETTINGS + answer(b'\x08\x01' * 1000)
    assert call_with([whole], max_bytes=len(whole))[0] == [b'\x08\x01' * 1000]
    with pytest.raises(GrpcError) as info:
        call_with([whole], max_bytes=len(whole) - 1)
    assert str(info.value) == ('127.0.0.1:7234 sent more than %d bytes answering /m, more than a health or '
                               'Temporal answer can be: the call was given up' % (len(whole) - 1))
    # Frames that hold no response count too: a server that only pings is cut off as well.
    pings = [g.frame(PING, ACK, 0, b'\x00' * 8) * 100] * 10
    with pytest.raises(GrpcError, match='sent more than 4096 bytes'):
        call_with([SERVER_SETTINGS] + pings, max_bytes=4096)


class EndlessData(object):
    """A local server that, after its SETTINGS and the response headers, streams DATA on the call's
    stream without ever ending it, up to ``stop`` bytes; ``sent`` counts what it got out."""

    def __init__(self, stop):
        self.stop, self.sent = stop, 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve)
        self.thread.daemon = True
        self.thread.start()

    def serve(self):
        conn, peer = self.listener.accept()
        # Small kernel buffers: what was sent is close to what the client read.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        data = g.frame(DATA, 0, 1, b'\x00' * 16384)
        try:
            conn.sendall(SERVER_SETTINGS + RESPONSE_HEADERS)
            while self.sent < self.stop:
                conn.sendall(data)
                self.sent += len(data)
            while conn.recv(65536):
                pass        # hold the call open until the client gives up
        except OSError:
            pass            # the client closed the connection
        finally:
            conn.close()

    def close(self):
        self.listener.close()
        self.thread.join(10)


def test_endless_data_from_a_local_server_is_cut_off_at_the_cap():
    cap = 1 << 20    # MAX_RESPONSE_BYTES
    server = EndlessData(stop=8 * cap)
    read = [0]

    class Counted(object):
        """The client's real socket with a small receive buffer, counting what the client read."""

        def __init__(self, sock):
            self.sock = sock

        def recv(self, size):
            chunk = self.sock.recv(size)
            read[0] += len(chunk)
            return chunk

        def __getattr__(self, name):
            return getattr(self.sock, name)

    def connect(address, timeout):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(timeout)
        sock.connect(address)
        return Counted(sock)

    started = time.monotonic()
    try:
        with pytest.raises(GrpcError) as info:
            g.health_check('127.0.0.1', server.port, timeout=5.0, connect=connect)
    finally:
        server.close()
    assert str(info.value) == ('127.0.0.1:%d sent more than 1048576 bytes answering /grpc.health.v1.Health/Check, '
                               'more than a health or Temporal answer can be: the call was given up' % server.port)
    assert time.monotonic() - started < 4.0                    # given up at the cap, not at the deadline
    assert cap < read[0] <= cap + 65536
    assert not server.thread.is_alive()
    assert server.sent < 2 * cap        # the client stopped reading, so the server could send little more


# ---------------------------------------------------------------- the gate's probe policy

@pytest.mark.parametrize('host, port, expected', [
    ('127.0.0.1', 7234, '127.0.0.1:7234'),
    ('localhost', 1, 'localhost:1'),
    ('::1', 7234, '[::1]:7234'),
])
def test_address(host, port, expected):
    assert g.address(host, port) == expected


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
    assert g.judge({'status': status, 'msg': 'x'}, require_status) is healthy


TRAILERS_ONLY = g.frame(HEADERS, END_HEADERS | END_STREAM, 1,
                        g.hpack_literal(':status', '200') + g.hpack_literal('grpc-status', '12'))


def probe(script, require_status=False, service=''):
    return g.probe(WHERE[0], WHERE[1], service, 5.0, require_status, connect=Connect(FakeSocket(script)))


def test_probe_without_a_health_service_is_up_unless_required():
    assert probe([SERVER_SETTINGS + TRAILERS_ONLY]) == {
        'grpc': True, 'status': None, 'healthy': True,
        'msg': '127.0.0.1:7234 speaks gRPC but gave no health status for the server '
               '(no grpc.health.v1 service there), which counts as up'}
    assert probe([SERVER_SETTINGS + TRAILERS_ONLY], require_status=True) == {
        'grpc': True, 'status': None, 'healthy': False,
        'msg': 'server is not healthy: 127.0.0.1:7234 speaks gRPC but gave no health status for the server '
               '(no grpc.health.v1 service there), and require_status is true'}


@pytest.mark.parametrize('payload, status', [(b'\x08\x02', 'NOT_SERVING'), (b'\x08\x03', 'SERVICE_UNKNOWN'),
                                             (b'', 'UNKNOWN')])
@pytest.mark.parametrize('require_status', [False, True])
def test_probe_health_answer_other_than_serving_is_not_yet(payload, status, require_status):
    assert probe([SERVER_SETTINGS + answer(payload)], require_status) == {
        'grpc': True, 'status': status, 'healthy': False,
        'msg': 'server is not serving yet: 127.0.0.1:7234 reports %s for the server' % status}


def test_probe_serving():
    assert probe([SERVER_SETTINGS + answer(b'\x08\x01')], True, 'stigmer') == {
        'grpc': True, 'status': 'SERVING', 'healthy': True,
        'msg': "127.0.0.1:7234 reports SERVING for service 'stigmer'"}


def test_probe_nothing_listening_is_reported_not_raised():
    result = g.probe('127.0.0.1', 7234, connect=Connect(error=ConnectionRefusedError(111, 'Connection refused')))
    assert result == {'grpc': False, 'status': None, 'healthy': False,
                      'msg': 'server did not answer gRPC on 127.0.0.1:7234: '
                             'cannot connect to 127.0.0.1:7234: Connection refused'}


def test_probe_http1_server_is_not_grpc():
    result = probe([b'HTTP/1.1 400 Bad Request\r\n\r\n'])
    assert result['grpc'] is False and result['healthy'] is False
    assert result['msg'].startswith('server did not answer gRPC on 127.0.0.1:7234: 127.0.0.1:7234 does not speak gRPC')
