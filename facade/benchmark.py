"""The one benchmark core: the workloads, through the SDK and as raw redis-py baselines.

Both front ends call it: ``facade bench produce|consume|e2e`` (cli/bench.py, installed) and
``python -m bench`` (the repository's bench/ package: figures, rounds, targets, reports). Each
function times only its measured part and returns elapsed seconds (and latencies where it
samples them); setup and checks are the caller's.

The raw baselines are what a careful hand-written client does with the same work: pipelined XADD,
``BATCH`` commands per round trip; XREADGROUP over every stream, ``BATCH`` records per call, then
one pipelined XACK per stream.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from ._sync.admin import Admin
from ._sync.connect import create_client, resolve_url
from ._sync.consumer import Consumer
from ._sync.producer import Producer
from .errors import BrokerError

__all__ = [
    "BATCH",
    "raw_batches",
    "raw_client",
    "raw_consume",
    "raw_produce",
    "raw_produce_each",
    "sdk_consume",
    "sdk_produce",
    "server_name",
]

BATCH = 1000
"""Records per round trip on both sides: per raw pipeline, per raw XREADGROUP over all streams
(COUNT BATCH // streams each) and per SDK poll (max_records; the SDK splits it the same way)."""
MAX_LATENCY_SAMPLES = 20_000
"""Produce latency is sampled on at most about this many records (a callback on each of a
million would slow the run it measures)."""

Progress = Callable[[int], Any]
"""Told how many records are done so far, now and then (a progress bar)."""


def _quiet(done: int) -> None:
    pass


def raw_client(url: str | None) -> Any:
    """A blocking redis-py client for the broker of ``url`` (None: ``$FACADE_URL``, else the
    embedded broker), any URL shape facade takes, without retries. The caller closes it."""
    return create_client(resolve_url(url), retry=Retry(NoBackoff(), 0))


def server_name(client: Any) -> str:
    """"valkey 9.1.2", "redis 7.0.15": what the server says it is."""
    info = client.info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"{info.get('server_name') or 'redis'} {info.get('redis_version', '?')}"


def raw_batches(
    streams: Sequence[str], n: int, value: bytes, keys: Sequence[bytes] = ()
) -> Iterator[list[tuple[str, dict[bytes, bytes]]]]:
    """The raw side's ``n`` records as ``(stream, fields)``, ``BATCH`` per list (one pipeline
    each). With ``keys`` (used in turn), records carry a key and go to the stream its crc32 picks
    (a hand-written client partitions by key too; crc32 is the cheapest hash at hand); without,
    they spread round-robin."""
    nstreams, nkeys = len(streams), len(keys)
    for first in range(0, n, BATCH):
        if nkeys:
            yield [
                (streams[zlib.crc32(k) % nstreams], {b"key": k, b"value": value})
                for k in (keys[i % nkeys] for i in range(first, min(first + BATCH, n)))
            ]
        else:
            yield [(streams[i % nstreams], {b"value": value}) for i in range(first, min(first + BATCH, n))]


def raw_produce(client: Any, streams: Sequence[str], n: int, value: bytes, keys: Sequence[bytes] = ()) -> float:
    """XADD the records of :func:`raw_batches`, one pipeline per batch; elapsed seconds."""
    start = time.perf_counter()
    for batch in raw_batches(streams, n, value, keys):
        pipe = client.pipeline(transaction=False)
        for stream, fields in batch:
            pipe.xadd(stream, fields)
        pipe.execute()
    return time.perf_counter() - start


def raw_produce_each(client: Any, streams: Sequence[str], n: int, value: bytes, keys: Sequence[bytes] = ()) -> float:
    """The records of :func:`raw_batches`, one ``XADD`` call (one round trip) each, as an
    application that writes each event when it happens does; elapsed seconds. The baseline of
    ``Producer(linger_ms=0)``."""
    start = time.perf_counter()
    for batch in raw_batches(streams, n, value, keys):
        for stream, fields in batch:
            client.xadd(stream, fields)
    return time.perf_counter() - start


def raw_consume(client: Any, streams: Sequence[str], group: str, n: int) -> tuple[float, int]:
    """Create ``group`` on every stream at its start, then read and acknowledge until ``n``
    records came or the streams ran dry: XREADGROUP over all streams, then one pipelined XACK.
    Returns (elapsed seconds, records read)."""
    for s in streams:
        client.xgroup_create(s, group, id="0", mkstream=True)
    request = dict.fromkeys(streams, ">")
    count = max(1, BATCH // len(streams))
    read = 0
    start = time.perf_counter()
    while read < n:
        reply = client.xreadgroup(group, "bench", request, count=count)
        if not reply:
            break
        pipe = client.pipeline(transaction=False)
        for stream, entries in reply.items() if isinstance(reply, dict) else reply:
            ids = [entry_id for entry_id, _ in entries]
            read += len(ids)
            pipe.xack(stream, group, *ids)
        pipe.execute()
    return time.perf_counter() - start, read


def sdk_produce(
    url: str | None,
    topic: str,
    n: int,
    value: bytes,
    *,
    keys: Sequence[bytes] = (),
    sample_latency: bool = False,
    progress: Progress = _quiet,
    **options: Any,
) -> tuple[float, list[float]]:
    """``Producer.send()`` x ``n`` (keyed by ``keys`` in turn, if given), then ``flush()``.
    ``options`` go to the Producer. Returns (elapsed seconds, send-to-ack latencies in seconds of
    up to ``MAX_LATENCY_SAMPLES`` records when ``sample_latency``)."""
    every = max(1, n // MAX_LATENCY_SAMPLES) if sample_latency else 0
    latencies: list[float] = []
    clock = time.perf_counter
    nkeys = len(keys)
    with Producer(url, **options) as producer:
        start = clock()
        for i in range(n):
            fut = producer.send(topic, value, key=keys[i % nkeys] if nkeys else None)
            if every and i % every == 0:
                sent = clock()
                fut.add_done_callback(lambda _f, sent=sent: latencies.append(clock() - sent))
            if i % BATCH == 0:
                progress(i)
        producer.flush()
        elapsed = clock() - start
    progress(n)
    return elapsed, latencies


def sdk_consume(
    url: str | None,
    topic: str,
    group: str,
    n: int,
    *,
    asynchronous: bool = False,
    stall_s: float = 30.0,
    progress: Progress = _quiet,
    **options: Any,
) -> tuple[float, list[float], int]:
    """Join ``group`` (not timed), then ``poll(max_records=BATCH)`` and ``commit()`` until ``n``
    records came; BrokerError if none arrives for ``stall_s``. ``options`` go to the Consumer.
    Returns (elapsed seconds, the time of each poll with records plus its commit, records read)."""
    latencies: list[float] = []
    clock = time.perf_counter
    read = 0
    start: float | None = None
    with Admin(url) as admin:
        partitions = admin.topic(topic).partitions
    with Consumer(topic, group, url, auto_offset_reset="earliest", max_poll_records=BATCH, **options) as consumer:
        # Joining the group and claiming every partition is not timed: the raw side has no group
        # protocol to go through. At most one record is read meanwhile, per poll.
        deadline = time.monotonic() + stall_s
        while len(consumer.assignment()) < partitions and time.monotonic() < deadline:
            read += len(consumer.poll(timeout_ms=0, max_records=1))
        last_record = time.monotonic()
        while read < n:
            before = clock()
            batch = consumer.poll(timeout_ms=500, max_records=BATCH)
            if not batch:
                if time.monotonic() - last_record > stall_s:
                    raise BrokerError(f"consumed only {read} of {n} records: nothing arrived for {stall_s:.0f}s")
                continue
            consumer.commit(asynchronous=asynchronous)
            if start is None:
                start = before  # the clock starts with the first fetch, after joining the group
            latencies.append(clock() - before)
            read += len(batch)
            last_record = time.monotonic()
            progress(read)
        if asynchronous:
            consumer.commit()  # the last acknowledgements, before the clock stops
        elapsed = clock() - (start if start is not None else clock())
    return elapsed, latencies, read
