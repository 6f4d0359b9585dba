"""Both sides of every figure: the raw redis-py commands, and the same work through the SDK.

Each side does its own setup, times only the measured part, checks that it did what it claims
(every record written, read and acknowledged), and returns the elapsed seconds. The harness
empties the server (FLUSHALL) before each side, so neither pays for the other's data.

Records are the same on both sides: ``messages`` records of ``size`` random bytes, keyed by 1000
distinct keys, stored with facade's field layout (``key``, ``value``) in facade's stream keys.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import redis
import redis.asyncio

from facade import Admin, Consumer, Producer, aio, keys

from .server import BenchError

BATCH = 1000
"""Records per round trip on both sides: per raw pipeline, per raw XREADGROUP over all streams
(COUNT BATCH // partitions each) and per SDK poll (max_records; the SDK splits it the same way)."""
DISTINCT_KEYS = 1000
POLL_TIMEOUT_MS = 1000
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

    def streams(self) -> list[str]:
        """facade's stream key of every partition, in partition order."""
        return [keys.stream(self.topic, p) for p in range(self.partitions)]


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


def _create_topic(url: str, p: Params) -> None:
    admin = Admin(url)
    try:
        admin.create_topic(p.topic, partitions=p.partitions)
    finally:
        admin.close()


def _fill(client: redis.Redis, p: Params) -> None:
    """Write the records the consume figures read, raw, as raw_produce does."""
    _raw_produce(client, p)
    _expect_written(client, p)


def _expect_written(client: redis.Redis, p: Params) -> None:
    stored = sum(client.xlen(s) for s in p.streams())
    if stored != p.messages:
        raise BenchError(f"{stored} records stored, expected {p.messages}")


def _expect_acked(client: redis.Redis, p: Params, read: int) -> None:
    if read != p.messages:
        raise BenchError(f"{read} records read, expected {p.messages}")
    pending = sum(client.xpending(s, p.group)["pending"] for s in p.streams())
    if pending:
        raise BenchError(f"{pending} records read but not acknowledged")


# -- produce ------------------------------------------------------------------------------------------


def _raw_produce(client: redis.Redis, p: Params) -> None:
    streams, ks, value = p.streams(), p.keys, p.value
    n, nkeys, nparts = p.messages, len(ks), p.partitions
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, n)):
            k = ks[i % nkeys]
            # A hand-written client partitions by key too; crc32 is the cheapest hash at hand.
            pipe.xadd(streams[zlib.crc32(k) % nparts], {b"key": k, b"value": value})
        pipe.execute()


def raw_produce(url: str, p: Params) -> float:
    client = _client(url)
    try:
        client.ping()
        t0 = time.perf_counter()
        _raw_produce(client, p)
        elapsed = time.perf_counter() - t0
        _expect_written(client, p)
    finally:
        client.close()
    return elapsed


def sdk_produce(url: str, p: Params, idempotent: bool = True) -> float:
    _create_topic(url, p)
    ks, value, topic, n, nkeys = p.keys, p.value, p.topic, p.messages, len(p.keys)
    producer = Producer(url, idempotent=idempotent, **PRODUCER_OPTIONS)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            producer.send(topic, value, key=ks[i % nkeys])
        producer.flush()
        elapsed = time.perf_counter() - t0
    finally:
        producer.close()
    client = _client(url)
    try:
        _expect_written(client, p)
    finally:
        client.close()
    return elapsed


# -- consume ------------------------------------------------------------------------------------------


def raw_consume(url: str, p: Params) -> float:
    client = _client(url)
    try:
        _fill(client, p)
        for s in p.streams():
            client.xgroup_create(s, p.group, id="0")
        request = {s: ">" for s in p.streams()}
        count = max(1, BATCH // p.partitions)
        read = 0
        t0 = time.perf_counter()
        while read < p.messages:
            reply = client.xreadgroup(p.group, "bench", request, count=count)
            if not reply:
                break
            pipe = client.pipeline(transaction=False)
            for stream, entries in reply:
                ids = [entry_id for entry_id, _ in entries]
                read += len(ids)
                pipe.xack(stream, p.group, *ids)
            pipe.execute()
        elapsed = time.perf_counter() - t0
        _expect_acked(client, p, read)
    finally:
        client.close()
    return elapsed


def sdk_consume(url: str, p: Params, asynchronous: bool = False) -> float:
    _create_topic(url, p)
    client = _client(url)
    try:
        _fill(client, p)
        consumer = Consumer([p.topic], group=p.group, url=url, auto_offset_reset="earliest")
        read = 0
        try:
            # Joining the group and claiming the partitions is not timed: the raw side has no group
            # protocol to go through either. One record per partition at most is read meanwhile.
            while len(consumer.assignment()) < p.partitions:
                read += len(consumer.poll(timeout_ms=0, max_records=1))
            t0 = time.perf_counter()
            while read < p.messages:
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH)
                if not batch:
                    break
                read += len(batch)
                consumer.commit(asynchronous=asynchronous)
            if asynchronous:
                consumer.commit()  # the last acknowledgements, before the clock stops
            elapsed = time.perf_counter() - t0
        finally:
            consumer.close()
        _expect_acked(client, p, read)
    finally:
        client.close()
    return elapsed


def sdk_produce_plain(url: str, p: Params) -> float:
    return sdk_produce(url, p, idempotent=False)


def sdk_consume_async_commit(url: str, p: Params) -> float:
    return sdk_consume(url, p, asynchronous=True)


# -- asyncio produce ----------------------------------------------------------------------------------


async def _araw_produce(url: str, p: Params) -> float:
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
        streams, ks, value = p.streams(), p.keys, p.value
        n, nkeys, nparts = p.messages, len(ks), p.partitions
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + BATCH, n)):
                k = ks[i % nkeys]
                pipe.xadd(streams[zlib.crc32(k) % nparts], {b"key": k, b"value": value})
            await pipe.execute()
        return time.perf_counter() - t0
    finally:
        await client.aclose()


async def _asdk_produce(url: str, p: Params) -> float:
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


def _run_async(side: Callable[[str, Params], Awaitable[float]], url: str, p: Params) -> float:
    elapsed = asyncio.run(side(url, p))
    client = _client(url)
    try:
        _expect_written(client, p)
    finally:
        client.close()
    return elapsed


def async_raw_produce(url: str, p: Params) -> float:
    return _run_async(_araw_produce, url, p)


def async_sdk_produce(url: str, p: Params) -> float:
    _create_topic(url, p)
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
        "produce_async",
        f"redis.asyncio pipelined XADD, {BATCH} per pipeline",
        "facade.aio Producer: await send() x N, then flush(); acks=1",
        async_raw_produce,
        async_sdk_produce,
    ),
)
