"""How a record is stored in a stream entry, and read back.

An entry's fields, in order: ``key`` (only for keyed records), ``value``, then ``h:<name>`` for
each header. ``XRANGE`` in redis-cli shows all three plainly; the field names repeat identically
from entry to entry, so the stream's listpack stores them once per node, not per entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, MessageTooLargeError
from .records import _NO_HEADERS, Message

KEY = b"key"
VALUE = b"value"
HEADER_PREFIX = b"h:"
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


def encode(
    key: Any, value: Any, headers: Mapping[str, Any] | None, max_bytes: int
) -> tuple[list[bytes], int]:
    """Stream fields for one record and its size in bytes (key + value + headers).

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
        if not isinstance(headers, Mapping):
            raise ConfigError(f"headers must be a mapping of str to bytes or str, not {type(headers).__name__}")
        if len(headers) > MAX_HEADERS:
            raise ConfigError(f"a record may have at most {MAX_HEADERS} headers, got {len(headers)}")
        for name, hv in headers.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"header names must be non-empty strings, got {name!r}")
            n = name.encode("utf-8")
            b = to_bytes(hv, f"header {name!r}")
            fields += (HEADER_PREFIX + n, b)
            size += len(n) + len(b)
    if size > max_bytes:
        raise MessageTooLargeError(
            f"record of {size} bytes exceeds max_message_bytes={max_bytes}; "
            "raise max_message_bytes or send less (nothing was sent)"
        )
    return fields, size


def decode(
    topic: str, partition: int, entry_id: bytes | str, flat: Sequence[bytes] | Mapping[bytes, bytes], count: int = 1
) -> Message:
    """A :class:`Message` from an entry ID and its fields (flat ``[field, value, ...]`` or a dict)."""
    offset = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    # The shapes facade writes without headers: [key, k, value, v] and [value, v].
    if type(flat) is list:
        n = len(flat)
        if n == 4 and flat[0] == KEY and flat[2] == VALUE:
            return Message(topic, partition, offset, flat[1], flat[3], _NO_HEADERS, count)
        if n == 2 and flat[0] == VALUE:
            return Message(topic, partition, offset, None, flat[1], _NO_HEADERS, count)
    key = None
    value = b""
    headers: dict[str, bytes] = {}
    # Flat [field, value, ...] from scripts; a dict from redis-py's own XRANGE parsing.
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2])
    for f, v in pairs:
        if f == VALUE:
            value = v
        elif f == KEY:
            key = v
        elif f[:2] == HEADER_PREFIX:
            headers[f[2:].decode("utf-8", "replace")] = v
    return Message(topic, partition, offset, key, value, headers, count)
