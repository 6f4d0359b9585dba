"""How a record is stored in a stream entry, and read back.

An entry's ID is ``"<append ms>-<offset>"`` (facade/offsets.py). Its fields, in order: ``key``
(keyed records only), ``value``, ``ts`` (CreateTime topics: append ms minus the record's create
time, a small number), then ``h:<name>`` for each header, in the record's order (a name may
repeat). Kafka's nulls, which only Kafka clients write (through ``facade gateway``), have markers
of their own, so that null and empty stay apart: ``nv`` (empty) in place of ``value`` for a null
value (a tombstone), and ``n:<name>`` (empty) in place of ``h:<name>`` for a header whose value
is null; such records read back with ``value`` None and that header's value None. ``XRANGE`` in redis-cli shows them plainly; the field names repeat identically from entry
to entry, so the stream's listpack stores them once per node, not per entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, MessageTooLargeError
from .records import CREATE_TIME, LOG_APPEND_TIME, NO_HEADERS, Headers, Message

KEY = b"key"
VALUE = b"value"
TS = b"ts"
HEADER_PREFIX = b"h:"
NULL_VALUE = b"nv"
NULL_HEADER_PREFIX = b"n:"
# A record's fields go through Lua's unpack(), whose stack holds about 8000 values.
MAX_HEADERS = 1000


def to_bytes(value: Any, what: str) -> bytes:
    """``value`` as bytes: bytes as is, str as UTF-8; anything else is refused."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ConfigError(f"{what} must be bytes or str, not {type(value).__name__}")


def header_pairs(headers: Any) -> list[tuple[Any, Any]]:
    """The (name, value) pairs of headers given as a mapping or a sequence of pairs."""
    if isinstance(headers, Mapping):
        return list(headers.items())
    if isinstance(headers, Sequence) and not isinstance(headers, (str, bytes)):
        pairs = list(headers)
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ConfigError(f"headers must be (name, value) pairs, got {pair!r}")
        return pairs  # type: ignore[return-value]
    raise ConfigError(
        f"headers must be a mapping or a sequence of (name, value) pairs, not {type(headers).__name__}"
    )


def encode(key: Any, value: Any, headers: Any, max_bytes: int) -> tuple[list[bytes], int]:
    """Stream fields for one record (without ``ts``, which the broker adds) and its size in bytes
    (key + value + headers).

    Raises ConfigError for a wrong type and MessageTooLargeError above ``max_bytes``.
    """
    # The common shapes first (bytes or str key and value, no headers): no helper calls.
    tv = type(value)
    v = value if tv is bytes else value.encode("utf-8") if tv is str else to_bytes(value, "value")
    if key is None:
        fields = [VALUE, v]
        size = len(v)
    else:
        tk = type(key)
        k = key if tk is bytes else key.encode("utf-8") if tk is str else to_bytes(key, "key")
        fields = [KEY, k, VALUE, v]
        size = len(k) + len(v)
    if headers:
        pairs = header_pairs(headers)
        if len(pairs) > MAX_HEADERS:
            raise ConfigError(f"a record may have at most {MAX_HEADERS} headers, got {len(pairs)}")
        for name, hv in pairs:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"header names must be non-empty strings, got {name!r}")
            n = name.encode("utf-8")
            b = to_bytes(hv, f"header {name!r}")
            fields += (HEADER_PREFIX + n, b)
            size += len(n) + len(b)
    if size > max_bytes:
        raise MessageTooLargeError(
            f"record of {size} bytes exceeds max_message_bytes={max_bytes}; "
            "raise max_message_bytes or send less (nothing was sent)",
            size=size,
            limit=max_bytes,
        )
    return fields, size


def stream_replies(reply: Any) -> Any:
    """An ``XREAD``/``XREADGROUP`` reply as ``(stream, entries)`` pairs: RESP3 (redis-py 8's
    default) answers a map of stream -> entries, RESP2 a list of pairs; None (timed out) gives none."""
    if not reply:
        return ()
    return reply.items() if isinstance(reply, Mapping) else ((item[0], item[1]) for item in reply)


def decode(
    topic: str, partition: int, entry_id: bytes | str, flat: Sequence[bytes] | Mapping[bytes, bytes], count: int = 1
) -> Message:
    """A :class:`Message` from an entry ID and its fields (flat ``[field, value, ...]`` or a dict)."""
    eid = entry_id.decode() if type(entry_id) is bytes else entry_id
    dash = eid.index("-")
    ms = int(eid[:dash])
    offset = int(eid[dash + 1 :])
    # The shapes facade writes without headers first.
    if type(flat) is list:
        n = len(flat)
        if n == 6 and flat[0] == KEY and flat[2] == VALUE and flat[4] == TS:
            return Message(topic, partition, offset, flat[1], flat[3], NO_HEADERS, count, ms - int(flat[5]), CREATE_TIME)
        if n == 4:
            if flat[0] == VALUE and flat[2] == TS:
                return Message(topic, partition, offset, None, flat[1], NO_HEADERS, count, ms - int(flat[3]), CREATE_TIME)
            if flat[0] == KEY and flat[2] == VALUE:
                return Message(topic, partition, offset, flat[1], flat[3], NO_HEADERS, count, ms, LOG_APPEND_TIME)
        if n == 2 and flat[0] == VALUE:
            return Message(topic, partition, offset, None, flat[1], NO_HEADERS, count, ms, LOG_APPEND_TIME)
    key = None
    value: bytes | None = b""
    timestamp, kind = ms, LOG_APPEND_TIME
    headers: list[tuple[str, bytes | None]] = []
    # Flat [field, value, ...] from scripts; a dict from redis-py's own XRANGE parsing.
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2])
    for f, v in pairs:
        if f == VALUE:
            value = v
        elif f == KEY:
            key = v
        elif f == TS:
            timestamp, kind = ms - int(v), CREATE_TIME
        elif f[:2] == HEADER_PREFIX:
            headers.append((f[2:].decode("utf-8", "replace"), v))
        elif f == NULL_VALUE:
            value = None
        elif f[:2] == NULL_HEADER_PREFIX:
            headers.append((f[2:].decode("utf-8", "replace"), None))
    return Message(topic, partition, offset, key, value, Headers(headers) if headers else NO_HEADERS, count, timestamp, kind)
