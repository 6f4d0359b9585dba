"""``facade bench produce|consume|e2e``: throughput and latency against the broker of --url.

Like Kafka's perf-test tools: each run uses a fresh topic ``facade-bench-<random>`` (deleted at
the end, whatever happens), shows a progress bar on a terminal, then prints a table (or --json,
see cli/bench_view.py). ``--compare-raw`` repeats the work with plain redis-py on the same server
in the same run (pipelined XADD; XREADGROUP + XACK) on keys ``facade-bench-raw-<random>:<p>``,
also deleted, and prints the ratio: the figure that compares across machines.

The workloads and raw baselines are facade.benchmark's, the core ``python -m bench`` (the
repository's bench/ package, not installed) runs too; this module only adds the e2e run, the
options and the output.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import click

from facade import Admin, Consumer, FacadeError, Producer, benchmark, redact_url

from . import CliError, Settings, main, render
from .bench_view import BenchResult, RawResult, result_json, result_table
from .progress import Bar, progress

STAMP_HEADER = "bench.sent-ns"
"""e2e: send time (``time.time_ns()``) of each record."""
CONSUME_STALL_S = 30.0
"""A consume run fails if no record arrives for this long."""


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--size",
                type=click.IntRange(1, 1 << 24),
                default=100,
                show_default=True,
                metavar="B",
                help="Value size in bytes.",
            ),
            click.option(
                "--partitions",
                type=click.IntRange(1, 1024),
                default=8,
                show_default=True,
                metavar="P",
                help="Partitions of the benchmark topic.",
            ),
            click.option(
                "--json", "as_json", is_flag=True, help="Print one JSON object instead of the table."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _acks_batch(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--batch", type=click.IntRange(1, 64 << 20), default=256 * 1024, show_default=True, metavar="BYTES",
        help="Producer batch size: a batch goes out when this many bytes are buffered (or after 5 ms).",
    )(fn)  # fmt: skip
    return click.option(
        "--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True,
        help="0: don't wait; 1: the server has it; all: its replicas too.",
    )(fn)  # fmt: skip


def _messages(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--compare-raw", is_flag=True, help="Also run the same work with plain redis-py and print the ratio."
    )(fn)
    return click.option(
        "--messages", type=click.IntRange(1, 100_000_000), default=100_000, show_default=True, metavar="N",
        help="Records to send or read.",
    )(fn)  # fmt: skip


@main.group()
def bench() -> None:
    """Measure throughput and latency against the broker (like kafka-*-perf-test).

    Each run creates a topic facade-bench-<random> and deletes it afterwards.

    \b
    Example:
      facade bench produce --messages 200000 --size 100 --partitions 8 --acks 1
      facade bench consume --messages 200000 --compare-raw
      facade bench e2e --rate 2000 --duration 10
    """


# ---------------------------------------------------------------------------------------------
# Plumbing shared by the workloads


def _broker(url: str | None) -> str:
    return redact_url(url) if url else "embedded"


@contextlib.contextmanager
def _bench_topic(admin: Admin, partitions: int) -> Iterator[str]:
    name = f"facade-bench-{uuid.uuid4().hex[:10]}"
    admin.create_topic(name, partitions)
    try:
        yield name
    finally:
        with contextlib.suppress(FacadeError):
            admin.delete_topic(name)


def _drop_group(admin: Admin, group: str) -> None:
    with contextlib.suppress(FacadeError):
        admin.delete_group(group)


def _show(result: BenchResult, as_json: bool) -> None:
    if as_json:
        click.echo(result_json(result))
    else:
        render.emit(result_table(result))


def _raw_keys(partitions: int) -> list[str]:
    run = uuid.uuid4().hex[:10]
    return [f"facade-bench-raw-{run}:{p}" for p in range(partitions)]


@contextlib.contextmanager
def _raw_streams(raw: Any, partitions: int) -> Iterator[list[str]]:
    streams = _raw_keys(partitions)
    try:
        yield streams
    finally:
        with contextlib.suppress(Exception):
            raw.delete(*streams)


# ---------------------------------------------------------------------------------------------
# Commands


@bench.command("produce", short_help="Producer throughput and send-to-ack latency.")
@_messages
@_common
@_acks_batch
@click.pass_obj
def produce(
    settings: Settings,
    messages: int,
    compare_raw: bool,
    size: int,
    partitions: int,
    as_json: bool,
    acks: str,
    batch: int,
) -> None:
    """Send N records of B bytes (keyless, spread over P partitions) and report msg/s,
    MB/s and the latency from send() to acknowledgement: p50, p95, p99, max.

    \b
    Example:
      facade bench produce --messages 200000 --size 100 --partitions 8
      facade bench produce --acks all --batch 65536 --json
      facade bench produce --compare-raw
    """
    url = settings.url
    value = os.urandom(size)
    with Admin(url) as admin, contextlib.closing(benchmark.raw_client(url)) as raw:
        server = benchmark.server_name(raw)
        with _bench_topic(admin, partitions) as topic, progress("producing", messages) as bar:
            elapsed, latencies = benchmark.sdk_produce(
                url, topic, messages, value, sample_latency=True, progress=bar.set,
                acks=acks, batch_size=batch, linger_ms=5,
            )  # fmt: skip
        raw_result = None
        if compare_raw:
            with _raw_streams(raw, partitions) as streams, progress("raw redis-py XADD", count=False):
                raw_result = RawResult(messages, benchmark.raw_produce(raw, streams, messages, value))
    _show(
        BenchResult(
            "produce", _broker(url), server, messages, size, partitions, elapsed, tuple(latencies),
            {"acks": acks, "batch_bytes": batch}, raw_result,
        ),
        as_json,
    )  # fmt: skip


@bench.command("consume", short_help="Consumer-group throughput and fetch latency.")
@_messages
@_common
@click.option(
    "--group", "-g", metavar="G", help="Consumer group (default: facade-bench-<random>, deleted afterwards)."
)
@click.pass_obj
def consume(
    settings: Settings,
    messages: int,
    compare_raw: bool,
    size: int,
    partitions: int,
    as_json: bool,
    group: str | None,
) -> None:
    """Fill a topic with N records of B bytes (not timed), then read them all as one
    member of a consumer group, committing every batch; report msg/s, MB/s and the
    time of each poll() with records plus its commit(): p50, p95, p99, max.

    \b
    Example:
      facade bench consume --messages 200000 --partitions 8
      facade bench consume --compare-raw --json
    """
    url = settings.url
    value = os.urandom(size)
    own_group = group is None
    group = group or f"facade-bench-{uuid.uuid4().hex[:10]}"
    with Admin(url) as admin, contextlib.closing(benchmark.raw_client(url)) as raw:
        server = benchmark.server_name(raw)
        with _bench_topic(admin, partitions) as topic:
            try:
                with progress("filling the topic", messages) as bar:
                    benchmark.sdk_produce(url, topic, messages, value, progress=bar.set, linger_ms=5)
                with progress("consuming", messages) as bar:
                    elapsed, latencies, _ = benchmark.sdk_consume(
                        url, topic, group, messages, stall_s=CONSUME_STALL_S, progress=bar.set
                    )
            finally:
                if own_group:
                    _drop_group(admin, group)
        raw_result = None
        if compare_raw:
            with _raw_streams(raw, partitions) as streams:
                with progress("raw redis-py: filling", count=False):
                    benchmark.raw_produce(raw, streams, messages, value)
                with progress("raw redis-py XREADGROUP + XACK", count=False):
                    elapsed_raw, read = benchmark.raw_consume(raw, streams, "bench", messages)
                if read < messages:
                    raise CliError(f"raw redis-py read only {read} of {messages} records")
                raw_result = RawResult(messages, elapsed_raw)
    _show(
        BenchResult(
            "consume", _broker(url), server, messages, size, partitions, elapsed, tuple(latencies),
            {"group": group}, raw_result,
        ),
        as_json,
    )  # fmt: skip


@bench.command("e2e", short_help="Produce-to-consume latency at a fixed rate.")
@_common
@click.option(
    "--rate",
    type=click.FloatRange(min=1, max=1_000_000),
    default=1000,
    show_default=True,
    metavar="MSG/S",
    help="Records per second sent.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1, max=86_400),
    default=10,
    show_default=True,
    metavar="S",
    help="Seconds of sending.",
)
@click.option(
    "--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True, help="Producer acks."
)
@click.pass_obj
def e2e(
    settings: Settings, size: int, partitions: int, as_json: bool, rate: float, duration: float, acks: str
) -> None:
    """Send records at a fixed rate for S seconds while one consumer-group member reads
    them; each record carries its send time in a header and the consumer computes
    now - send time. Reports p50, p95, p99 and max of that latency.

    \b
    Example:
      facade bench e2e --rate 2000 --duration 10
      facade bench e2e --rate 100 --duration 5 --size 1000 --json
    """
    url = settings.url
    group = f"facade-bench-{uuid.uuid4().hex[:10]}"
    with Admin(url) as admin, contextlib.closing(benchmark.raw_client(url)) as raw:
        server = benchmark.server_name(raw)
        with _bench_topic(admin, partitions) as topic:
            try:
                with progress("end to end", duration) as bar:
                    received, elapsed, latencies, sent = _e2e(
                        url, topic, partitions, group, size, rate, duration, acks, bar
                    )
            finally:
                _drop_group(admin, group)
    if received < sent:
        click.echo(
            f"facade: warning: {sent - received} of {sent} records were not received in time", err=True
        )
    _show(
        BenchResult(
            "e2e", _broker(url), server, received, size, partitions, elapsed, tuple(latencies),
            {"rate": rate, "duration_s": duration, "acks": acks, "sent": sent},
        ),
        as_json,
    )  # fmt: skip


def _e2e(
    url: str | None,
    topic: str,
    partitions: int,
    group: str,
    size: int,
    rate: float,
    duration: float,
    acks: str,
    bar: Bar,
) -> tuple[int, float, list[float], int]:
    filler = b"x" * max(0, size)
    sent = [0]
    failure: list[BaseException] = []
    done = threading.Event()

    def produce() -> None:
        try:
            with Producer(url, acks=acks, linger_ms=1) as producer:
                start = time.monotonic()
                while True:
                    elapsed = time.monotonic() - start
                    if elapsed >= duration:
                        break
                    while sent[0] < int(elapsed * rate) + 1:
                        producer.send(topic, filler, headers={STAMP_HEADER: str(time.time_ns())})
                        sent[0] += 1
                    time.sleep(min(0.001, 1 / rate))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)
        finally:
            done.set()

    latencies: list[float] = []
    with Consumer(topic, group, url, auto_offset_reset="earliest") as consumer:
        # Join (and own every partition) before the clock starts: a rebalance is not latency.
        deadline = time.monotonic() + 30
        while len(consumer.assignment()) < partitions and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        thread = threading.Thread(target=produce, name="bench-e2e-producer", daemon=True)
        started = time.monotonic()
        thread.start()
        drain_until: float | None = None
        while True:
            for msg in consumer.poll(timeout_ms=100):
                stamp = msg.headers.get(STAMP_HEADER)
                if stamp is not None:
                    latencies.append((time.time_ns() - int(stamp)) / 1e9)
            consumer.commit()
            bar.set(min(duration, time.monotonic() - started))
            if done.is_set():
                if failure:
                    raise failure[0]
                drain_until = drain_until or time.monotonic() + 10
                if len(latencies) >= sent[0] or time.monotonic() > drain_until:
                    break
        elapsed = time.monotonic() - started
        thread.join()
    return len(latencies), elapsed, latencies, sent[0]
