"""Kafka record batches (magic v2), unpacked from Produce and packed for Fetch.

Layout (https://kafka.apache.org/documentation/#recordbatch)::

    baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8 (2),
    crc uint32 (CRC-32C of everything after it), attributes int16, lastOffsetDelta int32,
    baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
    baseSequence int32, recordCount int32, records (compressed as a whole when attributes say)

    record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
            keyLength varint (-1: null), key, valueLength varint (-1: null), value,
            headerCount varint, headers: keyLength varint, key, valueLength varint (-1: null), value

Varints are zigzag-encoded. Attributes: bits 0-2 compression (0 none, 1 gzip, 2 snappy, 3 lz4,
4 zstd), bit 3 timestamp type (1: LogAppendTime), bit 4 transactional, bit 5 control.

Both directions work on plain bytes and tuples, no per-record objects: these loops are the
gateway's hot path (docs/gateway.md, "Speed").
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, NamedTuple

from crc32c import crc32c

__all__ = ["BatchError", "ProducedBatch", "encode_batch", "parse_batches", "uvarint"]

_HEAD = struct.Struct(">qiibIhiqqqhii")
HEAD_SIZE = _HEAD.size  # 61
_AFTER_CRC = 21  # baseOffset 8 + batchLength 4 + leaderEpoch 4 + magic 1 + crc 4
MAX_DECOMPRESSED = 64 * 1024 * 1024
"""A compressed batch may expand to at most this many bytes (a bound on decompression bombs)."""


class BatchError(Exception):
    """A batch the gateway refuses; ``code`` is the Kafka error code to answer with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ProducedBatch(NamedTuple):
    """One record batch of a Produce request, unpacked."""

    producer_id: int
    """-1 for a producer without idempotence."""
    producer_epoch: int
    base_sequence: int
    transactional: bool
    records: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]
    """(timestamp ms, key, value, headers) per record; None key/value/header value is Kafka's null."""


def _zigzag_varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise BatchError("varint longer than 10 bytes", 2)


_TOO_LARGE = 10  # MESSAGE_TOO_LARGE: what the Java client answers by splitting its batch
_CORRUPT = 2  # CORRUPT_MESSAGE


def _too_large(codec: str) -> BatchError:
    return BatchError(f"a {codec} batch expands past {MAX_DECOMPRESSED} bytes; send smaller batches", _TOO_LARGE)


def _decompress(codec: int, data: bytes) -> bytes:
    """A compressed batch's records, never holding more than MAX_DECOMPRESSED bytes of output:
    gzip stops at the bound; snappy's declared lengths are checked before decompressing; lz4 and
    zstd are decompressed into a buffer that may not grow past the bound."""
    try:
        if codec == 1:
            out = zlib.decompressobj(wbits=47)  # gzip or zlib header, as gzip.decompress accepts
            result = out.decompress(data, MAX_DECOMPRESSED)
            if out.unconsumed_tail:
                raise _too_large("gzip")
            return result
        import cramjam

        if codec == 2:
            return _snappy(cramjam, data)
        if codec == 3:
            return _bounded_into(cramjam.lz4.decompress_into, data, "lz4")
        if codec == 4:
            return _bounded_into(cramjam.zstd.decompress_into, data, "zstd")
    except BatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - each codec library raises its own types
        raise BatchError(f"cannot decompress a batch (codec {codec}): {exc}", _CORRUPT) from None
    raise BatchError(f"unknown compression codec {codec}", 76)


def _snappy(cramjam: Any, data: bytes) -> bytes:
    """Raw snappy, or the xerial framing of the Java client (raw chunks, each with its length).
    A raw block states its decompressed length first: the sum is checked against the bound
    before anything is decompressed (the library allocates what a block states)."""
    if data[:8] != b"\x82SNAPPY\x00":
        chunks = [data]
    else:
        chunks, pos = [], 16
        while pos < len(data):
            if pos + 4 > len(data):
                raise BatchError("truncated xerial snappy chunk header", _CORRUPT)
            (size,) = struct.unpack_from(">i", data, pos)
            if size < 0 or pos + 4 + size > len(data):
                raise BatchError(f"xerial snappy chunk of {size} bytes runs past the batch", _CORRUPT)
            chunks.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
    stated = 0
    for chunk in chunks:
        stated += cramjam.snappy.decompress_raw_len(chunk)
        if stated > MAX_DECOMPRESSED:
            raise _too_large("snappy")
    return b"".join(bytes(cramjam.snappy.decompress_raw(chunk)) for chunk in chunks)


def _bounded_into(decompress_into: Any, data: bytes, codec: str) -> bytes:
    """Decompress into a buffer of a fixed size, four times larger each time it is too small, up
    to MAX_DECOMPRESSED: the libraries (cramjam 2.x) stream into the buffer and stop with an error
    once it is full, so a bomb costs at most the bound in memory and time."""
    size = min(MAX_DECOMPRESSED, max(1 << 16, 8 * len(data)))
    while True:
        out = bytearray(size)
        try:
            n = decompress_into(data, out)
        except Exception as exc:  # cramjam.DecompressionError (or a codec library's own type)
            if "failed to write whole buffer" not in str(exc):  # io::ErrorKind::WriteZero: buffer full
                raise
            if size >= MAX_DECOMPRESSED:
                raise _too_large(codec) from None
            size = min(MAX_DECOMPRESSED, size * 4)
            continue
        return bytes(memoryview(out)[:n])


def parse_batches(data: bytes, max_batch_bytes: int) -> list[ProducedBatch]:
    """The record batches of a Produce request's partition records. Raises BatchError (with the
    Kafka code: CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, UNSUPPORTED_COMPRESSION_TYPE, ...)."""
    out = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < HEAD_SIZE:
            raise BatchError(f"truncated record batch ({end - pos} bytes left)", 2)
        (_, length, _, magic, crc, attributes, _, base_ts, _, pid, epoch, base_seq, count) = (
            _HEAD.unpack_from(data, pos)
        )
        if magic != 2:
            raise BatchError(f"record batch magic {magic}: only v2 batches are accepted (Produce v3+)", 2)
        stop = pos + 12 + length
        if length < HEAD_SIZE - 12 or stop > end:
            raise BatchError(f"record batch length {length} runs past the request", 2)
        if length + 12 > max_batch_bytes:
            raise BatchError(
                f"record batch of {length + 12} bytes is above the limit of {max_batch_bytes}", 10
            )
        if crc32c(data[pos + _AFTER_CRC : stop]) != crc:
            raise BatchError("record batch CRC-32C does not match", 2)
        if attributes & 0x20:
            raise BatchError("control batches are not accepted (transactions are not supported)", 87)
        if count <= 0:  # as Kafka's LogValidator (InvalidRecordException)
            raise BatchError(f"record batch with {count} records (at least 1 is needed)", 87)
        body = data[pos + HEAD_SIZE : stop]
        codec = attributes & 0x07
        if codec:
            body = _decompress(codec, body)
        if count > len(body):
            raise BatchError(f"record count {count} does not fit the batch", 2)
        out.append(
            ProducedBatch(pid, epoch, base_seq, bool(attributes & 0x10), _records(body, count, base_ts))
        )
        pos = stop
    return out


def _records(body: bytes, count: int, base_ts: int) -> list[Any]:
    # Varints of one byte (lengths up to 63, small deltas) are decoded inline: most are.
    records = []
    pos = 0
    varint = _zigzag_varint
    try:
        for _ in range(count):
            b = body[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                length, pos = varint(body, pos)
            stop = pos + length
            pos += 1  # attributes
            b = body[pos]
            if b < 0x80:
                ts_delta = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                ts_delta, pos = varint(body, pos)
            # offset delta: offsets are the partition's, given in order
            pos = pos + 1 if body[pos] < 0x80 else varint(body, pos)[1]
            b = body[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                n, pos = varint(body, pos)
            if n < 0:
                key = None
            else:
                key = body[pos : pos + n]
                pos += n
            b = body[pos]
            if b < 0x80:
                n = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                n, pos = varint(body, pos)
            if n < 0:
                value = None
            else:
                value = body[pos : pos + n]
                pos += n
            headers = []
            if body[pos] == 0:
                pos += 1
            else:
                nh, pos = varint(body, pos)
                for _ in range(nh):
                    n, pos = varint(body, pos)
                    name = body[pos : pos + n].decode("utf-8")
                    pos += n
                    n, pos = varint(body, pos)
                    if n < 0:
                        headers.append((name, None))
                    else:
                        headers.append((name, body[pos : pos + n]))
                        pos += n
            if pos != stop or n < -1:
                raise BatchError("a record's length does not match its fields", 2)
            records.append((base_ts + ts_delta, key, value, headers))
    except (IndexError, UnicodeDecodeError):
        raise BatchError("truncated or malformed record", 2) from None
    if pos != len(body):
        raise BatchError("bytes left after the batch's records", 2)
    return records


# -- packing (Fetch) -------------------------------------------------------------------------------


def uvarint(n: int) -> bytes:
    """An unsigned varint (Kafka's compact lengths in flexible versions)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zz(value: int) -> bytes:
    """A zigzag varint (record fields)."""
    return uvarint((value << 1) ^ (value >> 63))


_SMALL = [_zz(i) for i in range(-1, 8192)]  # _SMALL[i + 1] is the varint of i


def zz(value: int) -> bytes:
    return _SMALL[value + 1] if -1 <= value < 8191 else _zz(value)


_KEY, _VALUE, _TS, _NULL_VALUE = b"key", b"value", b"ts", b"nv"


def encode_batch(entries: list[Any], log_append_time: bool, max_bytes: int) -> tuple[bytes, int, int]:
    """One uncompressed v2 batch of stream entries (log_read's raw ``[ID, [field, value, ...]]``),
    stopping before ``max_bytes`` (but never empty). For a LogAppendTime topic the batch ends where
    the append ms changes (one batch carries one such time). Returns (batch bytes, records packed,
    the last one's offset)."""
    parts = []
    size = 0
    first_id = entries[0][0]
    dash = first_id.index(b"-")
    base_ms = int(first_id[:dash])
    base_offset = int(first_id[dash + 1 :])
    first_ts = max_ts = None
    last_offset = base_offset
    packed = 0
    small = _SMALL
    for eid, flat in entries:
        dash = eid.index(b"-")
        ms = int(eid[:dash])
        offset = int(eid[dash + 1 :])
        if log_append_time and ms != base_ms:
            break
        n = len(flat)
        headers = []
        # The shapes facade stores most (codec.py): keyed or not, CreateTime ("ts") or not.
        if n == 6 and flat[0] == _KEY and flat[2] == _VALUE and flat[4] == _TS:
            key, value, ts = flat[1], flat[3], ms - int(flat[5])
            n = 0
        elif n == 4 and flat[0] == _VALUE and flat[2] == _TS:
            key, value, ts = None, flat[1], ms - int(flat[3])
            n = 0
        else:
            key = None
            value = b""
            ts = ms
        i = 0
        while i < n:
            f = flat[i]
            v = flat[i + 1]
            if f == _VALUE:
                value = v
            elif f == _KEY:
                key = v
            elif f == _TS:
                ts = ms - int(v)
            elif f == _NULL_VALUE:
                value = None
            elif f[:2] == b"h:":
                headers.append((f[2:], v))
            elif f[:2] == b"n:":
                headers.append((f[2:], None))
            i += 2
        if first_ts is None:
            first_ts = max_ts = ts
        elif ts > max_ts:
            max_ts = ts
        delta = offset - base_offset
        td = ts - first_ts
        body = [
            b"\x00",
            small[td + 1] if -1 <= td < 8191 else _zz(td),
            small[delta + 1] if delta < 8191 else _zz(delta),
        ]
        if key is None:
            body.append(b"\x01")
        else:
            kl = len(key)
            body.append(small[kl + 1] if kl < 8191 else _zz(kl))
            body.append(key)
        if value is None:
            body.append(b"\x01")
        else:
            vl = len(value)
            body.append(small[vl + 1] if vl < 8191 else _zz(vl))
            body.append(value)
        if headers:
            body.append(zz(len(headers)))
            for name, hv in headers:
                body.append(zz(len(name)))
                body.append(name)
                if hv is None:
                    body.append(b"\x01")
                else:
                    body.append(zz(len(hv)))
                    body.append(hv)
        else:
            body.append(b"\x00")
        record = b"".join(body)
        rl = len(record)
        if packed and size + rl + 5 > max_bytes:
            break
        parts.append(small[rl + 1] if rl < 8191 else _zz(rl))
        parts.append(record)
        size += rl + 5
        packed += 1
        last_offset = offset
    records = b"".join(parts)
    attributes = 0x08 if log_append_time else 0
    if log_append_time:
        first_ts = max_ts = base_ms
    tail = (
        struct.pack(">hiqqqhii", attributes, last_offset - base_offset, first_ts, max_ts, -1, -1, -1, packed)
        + records
    )
    head = struct.pack(">qiib", base_offset, len(tail) + 9, 0, 2)
    return head + struct.pack(">I", crc32c(tail)) + tail, packed, last_offset
