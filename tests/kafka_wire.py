"""A few raw Kafka requests, built by hand (independently of the gateway's codec), for tests that
need what no client library lets a test choose: a producer id and sequence, a batch sent twice.

Produce v3 (not flexible): transactional_id, acks, timeout, [topic, [partition, records]];
its response: [topic, [partition, error_code, base_offset, log_append_time]], throttle_time.
"""

from __future__ import annotations

import socket
import struct

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
    records = b""
    for i, value in enumerate(values):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(value)) + value + _varint(0)
        records += _varint(len(body)) + body
    tail = struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp, timestamp, producer_id, epoch, base_sequence,
                       len(values)) + records  # fmt: skip
    return struct.pack(">qiib", 0, len(tail) + 9, -1, 2) + struct.pack(">I", crc32c.crc32c(tail)) + tail


def produce_request(topic: str, partition: int, values: list[bytes], *, acks: int = 1, correlation_id: int = 1,
                    **batch: int) -> bytes:  # fmt: skip
    """A whole Produce v3 frame."""
    records = record_batch(values, **batch)
    name = topic.encode()
    body = (struct.pack(">hhi", -1, acks, 10_000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records)  # fmt: skip
    head = struct.pack(">hhih", 0, 3, correlation_id, 4) + b"test"
    return struct.pack(">i", len(head) + len(body)) + head + body


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
