"""Trace context in record headers (``tracing=True``): one trace from a send in one process to
the consumer's processing in another, with spans that follow OpenTelemetry's messaging
conventions; checked with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import facade
from facade import Admin, ConfigError, Consumer, Producer

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans():
    """This process's finished spans (one global provider per process, set once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


# A producer process: a request span, inside it a send with tracing=True; prints its spans.
PRODUCER = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from facade import Producer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with trace.get_tracer("shop").start_as_current_span("checkout"):
        with Producer(sys.argv[1], tracing=True, client_id="shop") as p:
            meta = p.send("orders", b"order-1", key="cust-7").result(10)
    out = []
    for s in exporter.get_finished_spans():
        out.append({
            "name": s.name, "kind": s.kind.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None, "attributes": dict(s.attributes),
        })
    print(json.dumps({"spans": out, "offset": meta.offset}))
    """
)


@pytest.mark.timeout(60)
def test_one_trace_from_a_send_in_one_process_to_processing_in_another(url, spans):
    with Admin(url) as admin:
        admin.create_topic("orders", 2)
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER, url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    by_name = {s["name"]: s for s in sent["spans"]}
    checkout, send = by_name["checkout"], by_name["send orders"]
    assert send["kind"] == "PRODUCER" and send["parent"] == checkout["span_id"]
    assert send["trace_id"] == checkout["trace_id"]
    attrs = send["attributes"]
    assert attrs["messaging.system"] == "facade" and attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.destination.name"] == "orders" and attrs["messaging.client.id"] == "shop"
    assert attrs["messaging.kafka.message.key"] == "cust-7" and attrs["messaging.kafka.offset"] == sent["offset"]

    with Consumer("orders", "billing", url, tracing=True, client_id="billing-1", auto_offset_reset="earliest") as c:
        got = wait_until(lambda: c.poll(timeout_ms=200), timeout=20, what="the record")
        msg = got[0]
        # The context travels in the record's headers, as W3C trace context.
        parent = msg.headers["traceparent"].decode()
        assert parent.startswith(f"00-{send['trace_id']:032x}-{send['span_id']:016x}-")
        assert int(parent.rsplit("-", 1)[1], 16) & 1  # sampled
        with facade.tracing.process(msg, "billing", "billing-1") as span:
            assert span.get_span_context().trace_id == send["trace_id"]
            trace.get_tracer("billing").start_span("charge card").end()  # the handler's own work
    finished = {s.name: s for s in spans.get_finished_spans()}
    process, poll, charge = finished["process orders"], finished["poll orders"], finished["charge card"]
    # One trace: checkout -> send orders (process 1) -> process orders -> charge card (process 2).
    assert process.context.trace_id == charge.context.trace_id == checkout["trace_id"]
    assert process.parent.span_id == send["span_id"] and charge.parent.span_id == process.context.span_id
    assert process.kind == trace.SpanKind.CONSUMER and poll.kind == trace.SpanKind.CONSUMER
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.consumer.group.name"] == "billing"
    assert process.attributes["messaging.kafka.offset"] == msg.offset
    assert process.attributes["messaging.destination.partition.id"] == str(msg.partition)
    # The poll span links to the span of each record it received.
    assert poll.attributes["messaging.batch.message_count"] == 1
    assert [link.context.span_id for link in poll.links] == [send["span_id"]]


def test_headers_the_application_set_are_kept(url, spans):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("work"), Producer(url, tracing=True) as p:
        p.send("t", b"a", headers={"traceparent": theirs, "x": "1"})
        p.send("t", b"b", headers=[("x", b"2")])
        p.send("t", b"c")
        p.flush()
    with Consumer("t", "g", url, auto_offset_reset="earliest") as c:
        got = []
        wait_until(lambda: got.extend(c.poll(timeout_ms=200)) or len(got) >= 3, timeout=20, what="3 records")
    a, b, c_ = sorted(got, key=lambda m: m.offset)
    assert a.headers.get_all("traceparent") == [theirs.encode()]  # not replaced, not doubled
    assert b.headers["x"] == b"2" and b.headers["traceparent"].startswith(b"00-")
    assert c_.headers.keys() == ["traceparent"]
    sends = [s for s in spans.get_finished_spans() if s.name == "send t"]
    assert len(sends) == 2  # one per record it traced


def test_without_tracing_no_headers_are_added(url):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    with trace.get_tracer("app").start_as_current_span("work"), Producer(url) as p:
        p.send("t", b"a").result(10)
    with Consumer("t", "g", url, auto_offset_reset="earliest") as c:
        got = wait_until(lambda: c.poll(timeout_ms=200), timeout=20, what="the record")
    assert got[0].headers == ()


def test_tracing_without_opentelemetry_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert not facade.tracing.available()
    with pytest.raises(ConfigError, match=r"pip install 'facade\[otel\]'"):
        Producer("redis://127.0.0.1:1", tracing=True)
