"""A few raw Kafka requests, built by hand (independently of the gateway's codec), for tests that
need what no client library lets a test choose: a producer id and sequence, a batch sent twice.

Produce v3 (not flexible): transactional_id, acks, timeout, [topic, [partition, records]];
its response: [topic, [partition, error_code, base_offset, log_append_time]], throttle_time.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

import crc32c


def _varint(value: int) -> bytes:
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def record_batch(values: list[bytes], *, producer_id: int = -1, epoch: int = -1, base_sequence: int = -1,
                 timestamp: int = 1_700_000_000_000) -> bytes:  # fmt: skip
    """A v2 record batch of keyless records with these values."""
    records = []
    for i, value in enumerate(values):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(value)) + value + _varint(0)
        records.append(_varint(len(body)) + body)
    return raw_batch(b"".join(records), len(values), producer_id=producer_id, epoch=epoch,
                     base_sequence=base_sequence, timestamp=timestamp)  # fmt: skip


def raw_batch(payload: bytes, count: int, *, codec: int = 0, producer_id: int = -1, epoch: int = -1,
              base_sequence: int = -1, timestamp: int = 1_700_000_000_000) -> bytes:  # fmt: skip
    """A v2 record batch around ``payload`` (its records, compressed with ``codec`` 1-4 if
    given: the batch header says so, the bytes are taken as they are), with a valid CRC."""
    tail = struct.pack(">hiqqqhii", codec, count - 1, timestamp, timestamp, producer_id, epoch, base_sequence,
                       count) + payload  # fmt: skip
    return struct.pack(">qiib", 0, len(tail) + 9, -1, 2) + struct.pack(">I", crc32c.crc32c(tail)) + tail


def produce_frame(topic: str, partition: int, records: bytes, *, acks: int = 1, correlation_id: int = 1) -> bytes:
    """A whole Produce v3 frame whose one partition carries ``records`` (one or more batches)."""
    name = topic.encode()
    body = (struct.pack(">hhi", -1, acks, 10_000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records)  # fmt: skip
    head = struct.pack(">hhih", 0, 3, correlation_id, 4) + b"test"
    return struct.pack(">i", len(head) + len(body)) + head + body


def produce_request(topic: str, partition: int, values: list[bytes], *, acks: int = 1, correlation_id: int = 1,
                    **batch: int) -> bytes:  # fmt: skip
    """A whole Produce v3 frame with one batch of ``values``."""
    return produce_frame(topic, partition, record_batch(values, **batch), acks=acks, correlation_id=correlation_id)


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        out += chunk
    return out


def send_and_read(port: int, frame: bytes) -> tuple[int, int]:
    """Send one Produce v3 frame; (error code, base offset) of its one partition."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        body = _recv(sock, size)
    pos = 4 + 4  # correlation id, topic count
    (n,) = struct.unpack_from(">h", body, pos)
    pos += 2 + n + 4  # topic name, partition count
    _, error, base = struct.unpack_from(">ihq", body, pos)
    return error, base


# JoinGroup v1 (not flexible): group_id, session_timeout_ms, rebalance_timeout_ms, member_id,
# protocol_type, [name, metadata]; its response: error_code, generation_id, protocol_name, leader,
# member_id, [member_id, metadata].


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def join_group_request(group: str, protocols: list[tuple[str, bytes]], *, member_id: str = "",
                       protocol_type: str = "consumer", session_ms: int = 30_000, rebalance_ms: int = 30_000,
                       correlation_id: int = 1) -> bytes:  # fmt: skip
    """A whole JoinGroup v1 frame."""
    body = _str(group) + struct.pack(">ii", session_ms, rebalance_ms) + _str(member_id) + _str(protocol_type)
    body += struct.pack(">i", len(protocols))
    for name, metadata in protocols:
        body += _str(name) + struct.pack(">i", len(metadata)) + metadata
    head = struct.pack(">hhih", 11, 1, correlation_id, 4) + b"test"
    return struct.pack(">i", len(head) + len(body)) + head + body


class JoinGroupAnswer(NamedTuple):
    error: int
    generation: int
    protocol_name: str
    leader: str
    member_id: str
    members: list[tuple[str, bytes]]


def read_join_group_response(sock: socket.socket) -> JoinGroupAnswer:
    """Read one JoinGroup v1 response frame from ``sock``."""
    size = struct.unpack(">i", _recv(sock, 4))[0]
    body = _recv(sock, size)
    pos = 4  # correlation id

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from(">h", body, pos)
        pos += 2
        out = body[pos : pos + max(n, 0)].decode()
        pos += max(n, 0)
        return out

    error, generation = struct.unpack_from(">hi", body, pos)
    pos += 6
    protocol_name, leader, member_id = string(), string(), string()
    (count,) = struct.unpack_from(">i", body, pos)
    pos += 4
    members = []
    for _ in range(count):
        m = string()
        (n,) = struct.unpack_from(">i", body, pos)
        pos += 4
        members.append((m, body[pos : pos + n]))
        pos += n
    return JoinGroupAnswer(error, generation, protocol_name, leader, member_id, members)


def join_group(port: int, group: str, protocols: list[tuple[str, bytes]], **options) -> JoinGroupAnswer:
    """Send one JoinGroup v1 on a new connection and wait for its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(join_group_request(group, protocols, **options))
        return read_join_group_response(sock)
