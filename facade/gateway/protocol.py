"""Kafka wire framing around the kio codec: request headers in, response frames out, and building
a response entity of any version from keyword arguments.

Why kio (https://github.com/Aiven-Open/kio): its entities are generated from Apache Kafka's own
message JSON schemas, every version of every API, flexible versions and tagged fields included,
both directions (kafka-python's ``kafka.protocol`` is written for the client side: it encodes
requests and decodes responses, and lags the schemas); its readers are native (Rust), and the
record bytes of Produce and Fetch stay opaque bytes, which lets the gateway pack and unpack
record batches itself (facade/gateway/batches.py). kio needs Python 3.11+, hence the
``gateway`` extra.

A frame is ``int32 size`` then ``size`` bytes. Request header: ``int16 api_key, int16
api_version, int32 correlation_id, nullable string client_id`` and, for flexible versions, a
tagged-field section. Response header: ``int32 correlation_id`` and, for flexible versions, a
tagged-field section, except ApiVersions, whose response header never has one (clients read
it before they know what the broker supports).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import struct
import uuid
from types import ModuleType, NoneType, UnionType
from typing import Any, NamedTuple, get_args, get_origin

try:
    from kio.index import load_payload_module
    from kio.schema.errors import ErrorCode
    from kio.serial import entity_reader, entity_writer
    from kio.static.constants import EntityType
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"facade gateway needs the gateway extra: pip install 'facade[gateway]' (kio, Python 3.11+) ({exc})"
    ) from exc

__all__ = [
    "ErrorCode",
    "Header",
    "ProtocolError",
    "frame",
    "make",
    "read_header",
    "request_class",
    "response_module",
]

API_VERSIONS_KEY = 18
ZERO_UUID = uuid.UUID(int=0)
_HEADER = struct.Struct(">hhih")
_SIZE = struct.Struct(">i")


class ProtocolError(Exception):
    """A frame the gateway cannot read: the connection is closed (as a Kafka broker does)."""


class Header(NamedTuple):
    """A request header, and where the body starts in the frame."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def _skip_tagged_fields(buf: bytes | memoryview, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    if pos > len(buf):
        raise ProtocolError("request header's tagged fields run past the frame")
    return pos


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """An unsigned varint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 28:
            raise ProtocolError("bad varint in request header")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def read_header(buf: bytes, flexible: Any) -> Header:
    """The request header of frame ``buf``. ``flexible(api_key, version)`` says whether the
    request is of a flexible version (header v2, with tagged fields)."""
    if len(buf) < 10:
        raise ProtocolError(f"frame of {len(buf)} bytes is shorter than a request header")
    api_key, version, correlation_id, n = _HEADER.unpack_from(buf, 0)
    pos = 10
    client_id = None
    if n >= 0:
        if pos + n > len(buf):
            raise ProtocolError("client id runs past the frame")
        client_id = buf[pos : pos + n].decode("utf-8", "replace")
        pos += n
    if flexible(api_key, version):
        pos = _skip_tagged_fields(buf, pos)
    return Header(api_key, version, correlation_id, client_id, pos)


def frame(correlation_id: int, body: bytes, flexible_header: bool) -> bytes:
    """One response frame: size, header, body."""
    head = _SIZE.pack(correlation_id) + (b"\x00" if flexible_header else b"")
    return _SIZE.pack(len(head) + len(body)) + head + body


@functools.cache
def request_class(api_key: int, version: int) -> type | None:
    """kio's request entity for this API and version, or None when kio has none."""
    try:
        module = load_payload_module(api_key, version, EntityType.request)
    except Exception:  # noqa: BLE001 - kio's index raises its own errors for unknown keys and versions
        return None
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "__type__", None) == EntityType.request:
            return value
    return None


@functools.cache
def response_module(api_key: int, version: int) -> ModuleType:
    """kio's module of this API's response at this version (the response classes, nested ones too)."""
    return load_payload_module(api_key, version, EntityType.response)


@functools.cache
def response_class(api_key: int, version: int) -> type:
    for value in vars(response_module(api_key, version)).values():
        if isinstance(value, type) and getattr(value, "__type__", None) == EntityType.response:
            return value
    raise KeyError((api_key, version))


@functools.cache
def reader(cls: type) -> Any:
    return entity_reader(cls)


@functools.cache
def writer(cls: type) -> Any:
    return entity_writer(cls)


def decode(cls: type, buf: bytes, offset: int) -> Any:
    """The entity of class ``cls`` in ``buf`` from ``offset``."""
    entity, _ = reader(cls)(buf, offset)
    return entity


def encode(entity: Any) -> bytes:
    out = io.BytesIO()
    writer(type(entity))(out, entity)
    return out.getvalue()


def is_flexible(api_key: int, version: int) -> bool:
    cls = request_class(api_key, version)
    return bool(cls is not None and cls.__flexible__)


# -- building responses ------------------------------------------------------------------------

_SCALAR_DEFAULTS: dict[str, Any] = {
    "bool": False,
    "bytes": b"",
    "records": None,
    "string": "",
    "uuid": ZERO_UUID,
    "float64": 0.0,
    "timedelta_i32": datetime.timedelta(0),
    "timedelta_i64": datetime.timedelta(0),
    "error_code": ErrorCode.none,
}


def _default(f: dataclasses.Field) -> Any:
    tp = f.type
    if get_origin(tp) is tuple:
        return ()
    if get_origin(tp) in (UnionType,) and NoneType in get_args(tp):
        return None
    kafka_type = f.metadata.get("kafka_type")
    if kafka_type in _SCALAR_DEFAULTS:
        return _SCALAR_DEFAULTS[kafka_type]
    if kafka_type is None and dataclasses.is_dataclass(tp):
        return make(tp)
    if kafka_type == "datetime_i64":
        return datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
    return 0  # the integer types


@functools.cache
def _shape(cls: type) -> tuple[frozenset[str], tuple[dataclasses.Field, ...]]:
    """The field names of ``cls``, and its fields without a default of their own."""
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    required = tuple(
        f for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return names, required


def make(cls: type, **values: Any) -> Any:
    """An entity of ``cls`` from ``values``: names this version lacks are dropped, fields given
    no value take Kafka's neutral value (0, "", empty array, null where allowed, no error). One
    handler can then answer every version of its API."""
    names, required = _shape(cls)
    kwargs = {k: v for k, v in values.items() if k in names}
    for f in required:
        if f.name not in kwargs:
            kwargs[f.name] = _default(f)
    return cls(**kwargs)


def error_response(api_key: int, version: int, code: ErrorCode) -> bytes:
    """The body of a response to any request, carrying ``code`` in its top-level error code (or,
    for responses with none, empty result arrays: the client sees no result for its items)."""
    return encode(make(response_class(api_key, version), error_code=code))
