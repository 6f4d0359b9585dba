"""Trace context in record headers (W3C ``traceparent`` / ``tracestate``) and OpenTelemetry spans
that follow its messaging semantic conventions. Needs ``pip install 'facade[otel]'``
(opentelemetry-api); the application brings the SDK and its exporter.

    producer = Producer(tracing=True)       # each send(): a PRODUCER span "send <topic>", its
                                            # context in the record's headers
    consumer = Consumer("orders", "billing", tracing=True)   # a "poll <topic>" span per poll()
    for msg in consumer.poll():                              # with records, linked to each
        with facade.tracing.process(msg, "billing"):         # a CONSUMER span "process <topic>",
            handle(msg)                                      # child of the record's send span

:func:`extract` gives a record's context for other uses (``tracer.start_span(..., context=)``).
The propagator is OpenTelemetry's global one (W3C trace context by default), so whatever the
application configured (B3, baggage) is what goes into the headers. A header the application set
itself (``traceparent`` already present) is left as it is.

Attributes (semantic conventions 1.27+): ``messaging.system`` ("facade"),
``messaging.operation.type`` / ``.name``, ``messaging.destination.name``,
``messaging.destination.partition.id``, ``messaging.consumer.group.name``,
``messaging.client.id``, ``messaging.batch.message_count``, ``messaging.message.body.size``,
and, since facade's records are Kafka's, ``messaging.kafka.message.key`` and
``messaging.kafka.offset``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from . import codec
from .errors import ConfigError

__all__ = ["OFF", "TRACEPARENT", "TRACESTATE", "ConsumerTracing", "ProducerTracing", "available", "extract", "process"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SYSTEM = "facade"
MAX_LINKS = 128
"""Links a "poll" span keeps (one per record, as the conventions ask, up to this many)."""


def _otel() -> tuple[Any, Any]:
    try:
        from opentelemetry import propagate, trace
    except ImportError as exc:
        raise ConfigError(
            "tracing needs OpenTelemetry's API: pip install 'facade[otel]' (opentelemetry-api)"
        ) from exc
    return trace, propagate


def available() -> bool:
    """Whether opentelemetry-api is installed."""
    try:
        _otel()
    except ConfigError:
        return False
    return True


def _tracer(trace: Any) -> Any:
    from . import __version__

    return trace.get_tracer("facade", __version__)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def extract(message: Any) -> Any:
    """The OpenTelemetry context carried in ``message``'s headers (the current one's root when
    there is none)."""
    _, propagate = _otel()
    carrier = {name: _text(value) for name, value in message.headers}
    return propagate.extract(carrier)


def _record_attributes(message: Any) -> dict[str, Any]:
    attributes = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": message.topic,
        "messaging.destination.partition.id": str(message.partition),
        "messaging.kafka.offset": message.offset,
        "messaging.message.body.size": len(message.value),
    }
    if message.key is not None:
        attributes["messaging.kafka.message.key"] = _text(message.key)
    return attributes


@contextlib.contextmanager
def process(message: Any, group: str | None = None, client_id: str | None = None) -> Iterator[Any]:
    """A CONSUMER span "process <topic>" around the application's handling of ``message``,
    child of the span that sent it (so one trace runs from the send to here), current while
    the block runs. An exception leaving the block is recorded on it."""
    trace, _ = _otel()
    attributes = _record_attributes(message)
    attributes.update({"messaging.operation.type": "process", "messaging.operation.name": "process"})
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    if client_id is not None:
        attributes["messaging.client.id"] = client_id
    with _tracer(trace).start_as_current_span(
        f"process {message.topic}", context=extract(message), kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


class _Off:
    """What clients hold when tracing is off: nothing happens."""

    __slots__ = ()
    enabled = False

    def send(self, topic: str, key: Any, headers: Any, partition: int | None) -> tuple[Any, Any]:
        return headers, None

    def sent(self, span: Any, batch_future: Any, index: int) -> None:
        pass

    def received(self, records: Any, started_ns: int) -> None:
        pass


OFF: Any = _Off()


class ProducerTracing:
    """A producer's spans: one PRODUCER span per record, its context injected into the headers."""

    enabled = True

    def __init__(self, client_id: str) -> None:
        self._trace, self._propagate = _otel()
        self._tracer = _tracer(self._trace)
        self._client_id = client_id

    def send(self, topic: str, key: Any, headers: Any, partition: int | None) -> tuple[Any, Any]:
        """Start the record's span and put its context in the headers: (headers, span)."""
        try:
            pairs = [] if headers is None else [tuple(p) for p in codec.header_pairs(headers)]
        except ConfigError:
            return headers, None  # not headers at all: codec.encode says so
        if any(name == TRACEPARENT for name, _ in pairs):
            return headers, None  # the application propagates itself
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            "messaging.client.id": self._client_id,
        }
        if partition is not None:
            attributes["messaging.destination.partition.id"] = str(partition)
        if key is not None:
            attributes["messaging.kafka.message.key"] = _text(key)
        span = self._tracer.start_span(f"send {topic}", kind=self._trace.SpanKind.PRODUCER, attributes=attributes)
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        return pairs + list(carrier.items()), span

    def sent(self, span: Any, batch_future: Any, index: int) -> None:
        """End ``span`` when the record's batch is stored (with its partition and offset) or
        failed (with the error)."""
        if span is None:
            return

        def done(fut: Any) -> None:
            try:
                error = fut.exception()
            except BaseException as exc:  # noqa: BLE001 - cancelled
                error = exc
            if error is not None:
                span.record_exception(error)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)))
            else:
                from .accumulator import record_metadata

                meta = record_metadata(fut.result(), index)
                span.set_attribute("messaging.destination.partition.id", str(meta.partition))
                if meta.offset is not None:
                    span.set_attribute("messaging.kafka.offset", meta.offset)
            span.end()

        batch_future.add_done_callback(done)


class ConsumerTracing:
    """A consumer's spans: a CONSUMER span "poll <topic>" per poll() that returned records,
    linked to each record's sending span."""

    enabled = True

    def __init__(self, client_id: str, group: str) -> None:
        self._trace, self._propagate = _otel()
        self._tracer = _tracer(self._trace)
        self._client_id = client_id
        self._group = group

    def received(self, records: Any, started_ns: int) -> None:
        trace = self._trace
        links = []
        for m in records[:MAX_LINKS]:
            ctx = trace.get_current_span(extract(m)).get_span_context()
            if ctx.is_valid:
                links.append(trace.Link(ctx, {"messaging.kafka.offset": m.offset}))
        topics = sorted({m.topic for m in records})
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "receive",
            "messaging.operation.name": "poll",
            "messaging.destination.name": ",".join(topics),
            "messaging.consumer.group.name": self._group,
            "messaging.client.id": self._client_id,
            "messaging.batch.message_count": len(records),
        }
        span = self._tracer.start_span(
            f"poll {','.join(topics)}", kind=trace.SpanKind.CONSUMER, attributes=attributes, links=links,
            start_time=started_ns,
        )  # fmt: skip
        span.end()


def now_ns() -> int:
    """The clock spans use (ns since the epoch)."""
    return time.time_ns()
