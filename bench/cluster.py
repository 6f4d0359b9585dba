"""python -m bench.cluster: produce throughput on a single server, and on clusters of 1 and 3 shards.

    python -m bench.cluster              # from the repository root; --help for the options

Every setup is started for the run from the same server binary (``--server-binary``, else
``$FACADE_SERVER_BINARY``, else the bundled Valkey), with AOF on as facade's own servers run, and
stopped afterwards. Each round sends ``--messages`` keyed records to a ``--partitions`` topic with
the blocking Producer and again with the asyncio one (whose per-shard round trips overlap), flushes,
and checks that every record was stored. The median rate of the rounds is reported, and its ratio
to the single server's.

On one machine every shard shares the same cores, so a cluster cannot be faster here: what the
figures show is the cost of cluster mode (slot routing, one round trip per shard) rather than the
speed-up that shards on separate machines bring.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facade import Admin, FacadeError, Producer, ServerError, aio, local

from .server import BenchError, BenchServer

DISTINCT_KEYS = 1000
PRODUCER_OPTIONS = {"acks": 1, "linger_ms": 5, "batch_size": 256 * 1024}
SHARD_COUNTS = (1, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    add = ap.add_argument
    add("--messages", type=int, default=100_000, metavar="N", help="records per round (default %(default)s)")
    add("--rounds", type=int, default=3, metavar="N", help="rounds per setup, median reported (default %(default)s)")
    add("--size", type=int, default=100, metavar="BYTES", help="value size (default %(default)s)")
    add("--partitions", type=int, default=12, metavar="N", help="topic partitions (default %(default)s)")
    add("--server-binary", metavar="PATH", help="redis-server or valkey-server (default: the bundled Valkey)")
    add("--quick", action="store_true", help="a smoke run: 2000 records, 1 round")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.rounds = 2000, 1
    for name in ("messages", "rounds", "size", "partitions"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def _stored(url: str, topic: str, partitions: int) -> int:
    with Admin(url) as admin:
        return sum(info.length for info in admin.describe_topic(topic).partitions)


def _produce_sync(url: str, topic: str, n: int, value: bytes, ks: list[bytes]) -> float:
    with Producer(url, **PRODUCER_OPTIONS) as producer:
        t0 = time.perf_counter()
        for i in range(n):
            producer.send(topic, value, key=ks[i % len(ks)])
        producer.flush()
        return time.perf_counter() - t0


def _produce_async(url: str, topic: str, n: int, value: bytes, ks: list[bytes]) -> float:
    async def run() -> float:
        async with aio.Producer(url, **PRODUCER_OPTIONS) as producer:
            t0 = time.perf_counter()
            for i in range(n):
                await producer.send(topic, value, key=ks[i % len(ks)])
            await producer.flush()
            return time.perf_counter() - t0

    return asyncio.run(run())


def _measure(url: str, args: argparse.Namespace, console: Console, label: str) -> dict[str, float]:
    value, ks = os.urandom(args.size), [b"user-%d" % i for i in range(DISTINCT_KEYS)]
    rates: dict[str, list[float]] = {"blocking": [], "asyncio": []}
    for rnd in range(args.rounds):
        for flavour, side in (("blocking", _produce_sync), ("asyncio", _produce_async)):
            topic = f"bench-{flavour}-{rnd}"
            with Admin(url) as admin:
                admin.create_topic(topic, args.partitions)
            elapsed = side(url, topic, args.messages, value, ks)
            stored = _stored(url, topic, args.partitions)
            if stored != args.messages:
                raise BenchError(f"{label}: {stored} of {args.messages} records stored")
            rates[flavour].append(args.messages / elapsed)
            with Admin(url) as admin:
                admin.delete_topic(topic)
            console.print(f"  {label}, {flavour}, round {rnd + 1}: {rates[flavour][-1]:,.0f} msg/s", style="dim")
    return {flavour: statistics.median(r) for flavour, r in rates.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    binary = args.server_binary or local.server_binary()
    results: list[tuple[str, dict[str, float]]] = []
    try:
        with BenchServer(binary) as server:
            results.append(("single server (redis://)", _measure(server.url, args, console, "single server")))
        for shards in SHARD_COUNTS:
            with tempfile.TemporaryDirectory(prefix="facade-bench-cluster-") as d:
                status = local.start_cluster(Path(d), shards=shards, binary=binary)
                try:
                    label = f"cluster, {shards} shard{'s' if shards > 1 else ''}"
                    results.append((label, _measure(status.url, args, console, label)))
                finally:
                    local.stop(Path(d))
    except (BenchError, ServerError, FacadeError) as exc:
        console.print(f"bench failed: {exc}", style="red", markup=False, highlight=False)
        return 1
    base = results[0][1]
    t = Table(
        title=f"produce: {args.messages:,} keyed records of {args.size} B to {args.partitions} partitions, "
        f"median of {args.rounds} round(s)"
    )
    t.add_column("setup")
    for flavour in ("blocking", "asyncio"):
        t.add_column(f"{flavour} msg/s", justify="right")
        t.add_column("vs single", justify="right")
    for label, rates in results:
        row = [label]
        for flavour in ("blocking", "asyncio"):
            row += [f"{rates[flavour]:,.0f}", f"{rates[flavour] / base[flavour]:.2f}"]
        t.add_row(*row)
    console.print(t)
    console.print(
        f"{os.cpu_count()} CPU(s), {Path(binary).name}: every shard runs on this same machine, so these "
        "figures show the overhead of cluster mode (slot routing, one round trip per shard), not the "
        "speed-up of shards on machines of their own.",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
