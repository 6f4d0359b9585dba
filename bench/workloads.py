"""Both sides of every figure: the raw redis-py baseline and the same work through the SDK, each
from facade.benchmark (the core ``facade bench`` runs too); this module adds the setup and checks.

Each side does its own setup, times only the measured part, checks that it did what it claims
(every record written, read and acknowledged), and returns the elapsed seconds. The harness
empties the server (FLUSHALL) before each side, so neither pays for the other's data.

Records are the same on both sides: ``messages`` records of ``size`` random bytes, keyed by 1000
distinct keys, stored with facade's field layout (``key``, ``value``) in the streams of a facade
topic (created, untimed, on both sides: the raw side writes into its streams directly).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis
import redis.asyncio

from facade import Admin, TopicExistsError, aio, benchmark

from .server import BenchError

BATCH = benchmark.BATCH
DISTINCT_KEYS = 1000
STALL_S = 5.0
"""An SDK consume side fails if no record arrives for this long (the raw side: one empty read)."""
PRODUCER_OPTIONS = {"acks": 1, "linger_ms": 5, "batch_size": 256 * 1024}


@dataclass(frozen=True)
class Params:
    """What one side of a figure sends or reads."""

    messages: int
    """Records per side per round."""
    size: int
    """Value size, in bytes."""
    partitions: int
    """Partitions of the topic (raw: streams)."""
    topic: str = "bench"
    group: str = "bench"
    value: bytes = field(init=False, repr=False)
    keys: list[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", os.urandom(self.size))
        object.__setattr__(self, "keys", [b"user-%d" % i for i in range(DISTINCT_KEYS)])


Side = Callable[[str, Params], float]
"""(server url, params) -> elapsed seconds of the measured part."""


@dataclass(frozen=True)
class Figure:
    """One comparison: the same work done raw and through the SDK."""

    name: str
    raw_label: str
    sdk_label: str
    raw: Side
    sdk: Side


# -- setup and checks (never timed) -----------------------------------------------------------------


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _streams(url: str, p: Params) -> list[str]:
    """Create the topic (once per side) and return its stream keys, in partition order."""
    with Admin(url) as admin:
        try:
            admin.create_topic(p.topic, partitions=p.partitions)
        except TopicExistsError:
            pass
        return [info.stream_key for info in admin.describe_topic(p.topic).partitions]


def _fill(client: redis.Redis, streams: list[str], p: Params) -> None:
    """Write the records the consume figures read, raw, as raw_produce does."""
    benchmark.raw_produce(client, streams, p.messages, p.value, p.keys)
    _expect_written(client, streams, p)


def _expect_written(client: redis.Redis, streams: list[str], p: Params) -> None:
    stored = sum(client.xlen(s) for s in streams)
    if stored != p.messages:
        raise BenchError(f"{stored} records stored, expected {p.messages}")


def _expect_acked(client: redis.Redis, streams: list[str], p: Params, read: int) -> None:
    if read != p.messages:
        raise BenchError(f"{read} records read, expected {p.messages}")
    pending = sum(client.xpending(s, p.group)["pending"] for s in streams)
    if pending:
        raise BenchError(f"{pending} records read but not acknowledged")


# -- produce ------------------------------------------------------------------------------------------


def raw_produce(url: str, p: Params) -> float:
    streams = _streams(url, p)
    client = _client(url)
    try:
        client.ping()
        elapsed = benchmark.raw_produce(client, streams, p.messages, p.value, p.keys)
        _expect_written(client, streams, p)
    finally:
        client.close()
    return elapsed


def sdk_produce(url: str, p: Params, idempotent: bool = True, metrics: bool = False) -> float:
    streams = _streams(url, p)
    elapsed, _ = benchmark.sdk_produce(
        url, p.topic, p.messages, p.value, keys=p.keys, idempotent=idempotent, metrics=metrics, **PRODUCER_OPTIONS
    )
    client = _client(url)
    try:
        _expect_written(client, streams, p)
    finally:
        client.close()
    return elapsed


# -- consume ------------------------------------------------------------------------------------------


def raw_consume(url: str, p: Params) -> float:
    streams = _streams(url, p)
    client = _client(url)
    try:
        _fill(client, streams, p)
        elapsed, read = benchmark.raw_consume(client, streams, p.group, p.messages)
        _expect_acked(client, streams, p, read)
    finally:
        client.close()
    return elapsed


def sdk_consume(url: str, p: Params, asynchronous: bool = False, metrics: bool = False) -> float:
    streams = _streams(url, p)
    client = _client(url)
    try:
        _fill(client, streams, p)
        elapsed, _, read = benchmark.sdk_consume(
            url, p.topic, p.group, p.messages, asynchronous=asynchronous, stall_s=STALL_S, metrics=metrics
        )
        _expect_acked(client, streams, p, read)
    finally:
        client.close()
    return elapsed


def raw_produce_each(url: str, p: Params) -> float:
    streams = _streams(url, p)
    client = _client(url)
    try:
        client.ping()
        elapsed = benchmark.raw_produce_each(client, streams, p.messages, p.value, p.keys)
        _expect_written(client, streams, p)
    finally:
        client.close()
    return elapsed


def sdk_produce_linger0(url: str, p: Params) -> float:
    """Producer(linger_ms=0).send() x N, then flush(): records sent while a request is in
    flight go out together in the next one (Kafka's sender)."""
    streams = _streams(url, p)
    elapsed, _ = benchmark.sdk_produce(url, p.topic, p.messages, p.value, keys=p.keys, acks=1, linger_ms=0)
    client = _client(url)
    try:
        _expect_written(client, streams, p)
    finally:
        client.close()
    return elapsed


def sdk_produce_plain(url: str, p: Params) -> float:
    return sdk_produce(url, p, idempotent=False)


def sdk_consume_async_commit(url: str, p: Params) -> float:
    return sdk_consume(url, p, asynchronous=True)


def sdk_produce_metrics(url: str, p: Params) -> float:
    return sdk_produce(url, p, metrics=True)


def sdk_consume_metrics(url: str, p: Params) -> float:
    return sdk_consume(url, p, metrics=True)


def _client_cpu(side: Side) -> Side:
    """``side``, measured in CPU seconds of this process (every thread: the producer's sender,
    the consumer's heartbeat) instead of wall-clock seconds: what the client spends, which other
    load on a shared machine disturbs far less than it disturbs elapsed time."""

    def measured(url: str, p: Params) -> float:
        start = time.process_time()
        side(url, p)
        return time.process_time() - start

    return measured


# -- asyncio produce ----------------------------------------------------------------------------------


async def _araw_produce(url: str, p: Params, streams: list[str]) -> float:
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
        t0 = time.perf_counter()
        for batch in benchmark.raw_batches(streams, p.messages, p.value, p.keys):
            pipe = client.pipeline(transaction=False)
            for stream, fields in batch:
                pipe.xadd(stream, fields)
            await pipe.execute()
        return time.perf_counter() - t0
    finally:
        await client.aclose()


async def _asdk_produce(url: str, p: Params, streams: list[str]) -> float:
    ks, value, topic, n, nkeys = p.keys, p.value, p.topic, p.messages, len(p.keys)
    producer = aio.Producer(url, **PRODUCER_OPTIONS)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            await producer.send(topic, value, key=ks[i % nkeys])
        await producer.flush()
        return time.perf_counter() - t0
    finally:
        await producer.close()


def _run_async(side: Callable[[str, Params, list[str]], Awaitable[float]], url: str, p: Params) -> float:
    streams = _streams(url, p)
    elapsed = asyncio.run(side(url, p, streams))
    client = _client(url)
    try:
        _expect_written(client, streams, p)
    finally:
        client.close()
    return elapsed


def async_raw_produce(url: str, p: Params) -> float:
    return _run_async(_araw_produce, url, p)


def async_sdk_produce(url: str, p: Params) -> float:
    return _run_async(_asdk_produce, url, p)


FIGURES = (
    Figure(
        "produce",
        f"redis-py pipelined XADD, {BATCH} per pipeline",
        "Producer.send() x N, then flush(); acks=1",
        raw_produce,
        sdk_produce,
    ),
    Figure(
        "idempotence_cost",
        "Producer(idempotent=False).send() x N, then flush()",
        "Producer() (idempotent, the default): same work; ratio = idempotent / non-idempotent",
        sdk_produce_plain,
        sdk_produce,
    ),
    Figure(
        "consume",
        f"XREADGROUP over all streams, {BATCH} per call, then XACK",
        f"Consumer.poll(max_records={BATCH}), then commit()",
        raw_consume,
        sdk_consume,
    ),
    Figure(
        "consume_commit_async",
        f"XREADGROUP over all streams, {BATCH} per call, then XACK",
        f"Consumer.poll(max_records={BATCH}), then commit(asynchronous=True): acks ride on the next read",
        raw_consume,
        sdk_consume_async_commit,
    ),
    Figure(
        "metrics_cost_produce",
        "Producer.send() x N, then flush() (metrics off, the default)",
        "Producer(metrics=True): same work; ratio = metrics on / off",
        sdk_produce,
        sdk_produce_metrics,
    ),
    Figure(
        "metrics_cost_consume",
        f"Consumer.poll(max_records={BATCH}), then commit() (metrics off, the default)",
        "Consumer(metrics=True): same work; ratio = metrics on / off",
        sdk_consume,
        sdk_consume_metrics,
    ),
    Figure(
        "metrics_cpu_produce",
        "client CPU of Producer.send() x N, then flush() (metrics off); rate = records per CPU second",
        "client CPU with Producer(metrics=True); ratio = on / off",
        _client_cpu(sdk_produce),
        _client_cpu(sdk_produce_metrics),
    ),
    Figure(
        "metrics_cpu_consume",
        f"client CPU of Consumer.poll(max_records={BATCH}), then commit() (metrics off); rate = records per CPU second",
        "client CPU with Consumer(metrics=True); ratio = on / off",
        _client_cpu(sdk_consume),
        _client_cpu(sdk_consume_metrics),
    ),
    Figure(
        "produce_linger0",
        "redis-py XADD, one call (one round trip) per record",
        "Producer(linger_ms=0).send() x N, then flush(); acks=1",
        raw_produce_each,
        sdk_produce_linger0,
    ),
    Figure(
        "produce_async",
        f"redis.asyncio pipelined XADD, {BATCH} per pipeline",
        "facade.aio Producer: await send() x N, then flush(); acks=1",
        async_raw_produce,
        async_sdk_produce,
    ),
)
