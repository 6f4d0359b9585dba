"""Serializers: application keys and values to record bytes, and back (Kafka's key/value
serializers and deserializers).

A serializer is given to the producer as ``key_serializer`` / ``value_serializer``, a
deserializer to the consumer as ``key_deserializer`` / ``value_deserializer``. Each is a name of
a built-in one or any callable, as in kafka-python:

    "json"    serialize: json.dumps (compact, UTF-8; any JSON value, None included)
              deserialize: json.loads of the bytes
    "str"     serialize: str encoded as UTF-8 (bytes pass as they are)
              deserialize: the bytes decoded as UTF-8 (strictly: bad UTF-8 is an error)
    "bytes"   the bytes as they are (the default, same as None)
    callable  serialize: ``fn(obj) -> bytes | str``; deserialize: ``fn(data: bytes) -> object``

A key serializer is not applied to a None key (a keyless record stays keyless), and a key
deserializer not to a record without a key, as Kafka's built-in ones return null for null.

A serializer that fails, or returns something other than bytes or str, raises
:class:`facade.SerializationError` from ``send()`` and nothing is sent. A deserializer that fails
does not fail ``poll()``: the record is handed out, and reading its ``key`` or ``value`` raises
:class:`facade.DeserializationError` (``message.error`` holds it), so the application can give it
to ``consumer.fail(message, error)``, which with ``max_deliveries`` moves it to the dead-letter
topic with its stored bytes (docs/design.md, "Delivery counts and dead letters").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, DeserializationError, SerializationError
from .records import Message

__all__ = ["BUILT_IN", "Deserializer", "Serializer", "deserialize", "deserializer", "serialize", "serializer"]

Serializer = str | Callable[[Any], Any] | None
"""What a producer's ``key_serializer`` / ``value_serializer`` may be."""
Deserializer = str | Callable[[bytes], Any] | None
"""What a consumer's ``key_deserializer`` / ``value_deserializer`` may be."""

BUILT_IN = ("json", "str", "bytes")
"""Names of the built-in serializers and deserializers."""


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _str_encode(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if not isinstance(obj, str):
        raise TypeError(f"expected str, got {type(obj).__name__}")
    return obj.encode("utf-8")


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


_SERIALIZERS: dict[str, Callable[[Any], Any] | None] = {"json": _json_dumps, "str": _str_encode, "bytes": None}
_DESERIALIZERS: dict[str, Callable[[bytes], Any] | None] = {"json": json.loads, "str": _utf8, "bytes": None}


def _resolve(spec: Any, option: str, table: dict[str, Any]) -> Callable[..., Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in table:
            raise ConfigError(f"{option} must be one of {', '.join(map(repr, BUILT_IN))} or a callable, got {spec!r}")
        return table[spec]
    if not callable(spec):
        raise ConfigError(
            f"{option} must be one of {', '.join(map(repr, BUILT_IN))} or a callable, not {type(spec).__name__}"
        )
    return spec  # type: ignore[no-any-return]


def serializer(spec: Serializer, option: str) -> Callable[[Any], Any] | None:
    """The function behind a serializer option (None: bytes or str as given). ConfigError names
    ``option`` when ``spec`` is neither a built-in name nor a callable."""
    return _resolve(spec, option, _SERIALIZERS)


def deserializer(spec: Deserializer, option: str) -> Callable[[bytes], Any] | None:
    """The function behind a deserializer option (None: the stored bytes)."""
    return _resolve(spec, option, _DESERIALIZERS)


def _name(spec: Any) -> str:
    return repr(spec) if isinstance(spec, str) else getattr(spec, "__qualname__", None) or type(spec).__name__


def serialize(fn: Callable[[Any], Any], spec: Serializer, obj: Any, what: str, topic: str) -> bytes | str:
    """``fn(obj)``, checked: bytes or str come out, or SerializationError (nothing was sent)."""
    try:
        out = fn(obj)
    except Exception as exc:
        raise SerializationError(
            f"{what}_serializer {_name(spec)} failed on the {what} sent to topic {topic!r} "
            f"({type(exc).__name__}: {exc}); nothing was sent"
        ) from exc
    if isinstance(out, (bytes, str)):
        return out
    if isinstance(out, (bytearray, memoryview)):
        return bytes(out)
    raise SerializationError(
        f"{what}_serializer {_name(spec)} returned {type(out).__name__} for the {what} sent to topic "
        f"{topic!r}; a serializer must return bytes or str (nothing was sent)"
    )


class _Undecodable(Message):
    """A record whose key or value could not be deserialized: reading that field raises the
    DeserializationError; everything else (topic, partition, offset, headers, ...) reads as
    usual, and the tuple still holds the stored bytes."""

    @property
    def key(self) -> Any:  # type: ignore[override]
        error = self.__dict__["_key_error"]
        if error is not None:
            raise error
        return self.__dict__["_key"]

    @property
    def value(self) -> Any:  # type: ignore[override]
        error = self.__dict__["_value_error"]
        if error is not None:
            raise error
        return self.__dict__["_value"]

    @property
    def error(self) -> DeserializationError:  # type: ignore[override]
        return self.__dict__["_key_error"] or self.__dict__["_value_error"]


def deserialize(
    msg: Message,
    key_fn: Callable[[bytes], Any] | None,
    key_spec: Deserializer,
    value_fn: Callable[[bytes], Any] | None,
    value_spec: Deserializer,
) -> Message:
    """``msg`` with its key and value deserialized; when one fails, a Message whose ``error`` is
    the DeserializationError and whose failing field raises it when read."""
    key, value = msg[3], msg[4]
    errors: dict[str, DeserializationError | None] = {"key": None, "value": None}
    if key_fn is not None and key is not None:
        try:
            key = key_fn(key)
        except Exception as exc:  # noqa: BLE001 - any failure of application code is the record's error
            errors["key"] = _error(msg, "key", key_spec, exc)
    if value_fn is not None:
        try:
            value = value_fn(value)
        except Exception as exc:  # noqa: BLE001 - any failure of application code is the record's error
            errors["value"] = _error(msg, "value", value_spec, exc)
    if errors["key"] is None and errors["value"] is None:
        return Message(msg[0], msg[1], msg[2], key, value, msg[5], msg[6], msg[7], msg[8])
    bad = _Undecodable(*msg)
    bad.__dict__.update(_key=key, _value=value, _key_error=errors["key"], _value_error=errors["value"])
    return bad


def _error(msg: Message, what: str, spec: Deserializer, exc: Exception) -> DeserializationError:
    raw = msg[3] if what == "key" else msg[4]
    error = DeserializationError(
        f"{what}_deserializer {_name(spec)} failed on {msg.topic}[{msg.partition}] offset {msg.offset} "
        f"({type(exc).__name__}: {exc}); give the record to consumer.fail(message, error) to skip it "
        "(with max_deliveries it moves to the dead-letter topic)",
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        field=what,
        data=raw,
    )
    error.__cause__ = exc
    return error
