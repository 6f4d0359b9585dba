"""python -m bench: measure the SDK against raw redis-py on a throwaway server (see bench/__init__.py)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import redis
from rich.console import Console

from facade import ServerError, local

from .report import Result, document, legend, table
from .server import BenchError, BenchServer
from .workloads import FIGURES, Params

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
QUICK = {"messages": 2000, "rounds": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput of the facade SDK against raw redis-py, on a server started for the run.",
    )
    add = ap.add_argument
    add("--messages", type=int, metavar="N", help="records per side per round (default 200000)")
    add("--rounds", type=int, metavar="N", help="rounds per figure, median reported (default 3)")
    add("--size", type=int, default=100, metavar="BYTES", help="value size (default %(default)s)")
    add("--partitions", type=int, default=8, metavar="N", help="topic partitions (default %(default)s)")
    add(
        "--server-binary",
        metavar="PATH",
        help="redis-server or valkey-server to start (default: $FACADE_SERVER_BINARY, else bundled Valkey)",
    )
    add("--quick", action="store_true", help=f"a smoke run: {QUICK['messages']} records, 1 round")
    add("--figures", metavar="NAME,...",
        help=f"run only these figures (of {', '.join(f.name for f in FIGURES)}); default: all (also --figure NAME, "
        "repeatable)")
    add("--json-out", type=Path, default=DEFAULT_JSON, metavar="PATH", help="results (default %(default)s)")
    add("--no-targets", action="store_true", help="skip memory, latency and growth measurements")
    add("--figure", action="append", metavar="NAME", help="run only this figure (repeatable): see --figures")
    add("--metrics-overhead", action="store_true",
        help="only measure the CPU share of client metrics (metrics=True) on produce and consume, and no figure "
             "unless --figure is given too")
    add("--growth-max", type=int, default=1_000_000, metavar="N",
        help="largest record count of the growth curve (default %(default)s; the issue's 5000000 takes minutes)")
    add("--lookup-records", type=int, default=1_000_000, metavar="N",
        help="records in the partition where offset lookups are timed (default %(default)s; the issue's 10000000 "
        "takes about a minute to fill and 1 GB of server memory)")
    args = ap.parse_args(argv)
    # Explicit --messages / --rounds win over --quick.
    preset = QUICK if args.quick else {"messages": 200_000, "rounds": 3}
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("messages", "rounds", "size", "partitions"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    known = [f.name for f in FIGURES]
    chosen = [*(args.figures.split(",") if args.figures else ()), *(args.figure or ())]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        ap.error(f"--figures: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    # No choice: every figure, unless --metrics-overhead asked for that measurement alone.
    args.figures = chosen or ([] if args.metrics_overhead else known)
    return args


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    binary = args.server_binary or local.server_binary()
    params = Params(messages=args.messages, size=args.size, partitions=args.partitions)
    figures = [f for f in FIGURES if f.name in args.figures]
    results = [Result(f.name, f.raw_label, f.sdk_label) for f in figures]
    try:
        with BenchServer(binary) as server:
            info = server.info()
            console.print(
                f"{info['name']} {info['version']} on 127.0.0.1:{server.port}; {args.messages:,} records of "
                f"{args.size} bytes, {args.partitions} partitions, {args.rounds} round(s)"
            )
            for figure, result in zip(figures, results):  # (none with --metrics-overhead alone)
                for rnd in range(args.rounds):
                    # Raw then SDK in every round, so drift during the run hits both sides alike.
                    for side, rates in ((figure.raw, result.raw_rates), (figure.sdk, result.sdk_rates)):
                        _flush(server.url)
                        rates.append(args.messages / side(server.url, params))
                    console.print(
                        f"  {figure.name} round {rnd + 1}: raw {result.raw_rates[-1]:,.0f} msg/s, "
                        f"SDK {result.sdk_rates[-1]:,.0f} msg/s",
                        style="dim",
                    )
            _flush(server.url)
            if args.metrics_overhead:
                extra = {"metrics_overhead": _metrics_overhead(console, server.url, args)}
            else:
                extra = {} if args.no_targets else _targets(console, server.url, args)
    except (BenchError, ServerError) as exc:
        console.print(f"bench failed: {exc}", style="red", markup=False, highlight=False)
        return 1
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
    }
    settings = {name: getattr(args, name) for name in ("messages", "rounds", "size", "partitions")}
    console.print(table(results, title=f"facade SDK vs raw redis-py: median of {args.rounds} round(s)"))
    console.print(legend(results), style="dim", highlight=False, markup=False)
    doc = document(results, settings=settings, server=info, machine=machine, date=date)
    doc["targets"] = extra
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"results written to {args.json_out}", soft_wrap=True)
    return 0


def _metrics_overhead(console: Console, url: str, args: argparse.Namespace) -> dict:
    from rich.table import Table

    from . import targets

    runs = []
    for _ in range(args.rounds):
        _flush(url)
        runs.append(targets.metrics_overhead(url, args.messages, args.size, args.partitions))
    _flush(url)
    t = Table(title=f"client metrics (metrics=True): CPU they add to the client, {args.rounds} round(s)")
    t.add_column("workload")
    t.add_column("hooks / client CPU without them, each round", justify="right")
    t.add_column("median", justify="right")
    t.add_column("target")
    out = {}
    for name in ("produce", "consume"):
        costs = [r[name]["cost"] for r in runs]
        median = sorted(costs)[len(costs) // 2]
        t.add_row(name, " ".join(f"{100 * c:.2f}%" for c in costs), f"{100 * median:.2f}%", "<= 5%")
        out[name] = {"rounds": [r[name] for r in runs], "median_cost": median}
    console.print(t)
    return out


def _targets(console: Console, url: str, args: argparse.Namespace) -> dict:
    from rich.table import Table

    from . import targets

    small = args.quick
    mem = targets.memory_per_record(url, 2000 if small else 100_000, args.size)
    lat1 = targets.e2e_latency(url, rate=1000 if small else 10_000, seconds=1 if small else 5, acks=1)
    lat_all = targets.e2e_latency(url, rate=1000 if small else 10_000, seconds=1 if small else 5, acks="all")
    curve = targets.growth(
        url, [1, 8] if small else [1, 8, 64], [2000] if small else [100_000, args.growth_max], args.size
    )
    lookup = targets.offset_lookup(url, 1000 if small else args.lookup_records)
    t = Table(title="other targets")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target")
    t.add_row("memory per record, SDK / raw XADD", f"{mem['ratio']:.3f} ({mem['sdk_bytes']:.0f} vs {mem['raw_bytes']:.0f} B)", "<= 1.1")
    for name, lat in (("acks=1", lat1), ("acks=all (no replicas)", lat_all)):
        t.add_row(f"e2e latency p50 / p99, {name}", f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} ms", "p99 <= 2 ms at 10k msg/s")
    for point in curve:
        t.add_row(f"produce / consume, {point['partitions']} partitions, {point['messages']:,} records",
                  f"{point['msg_per_s']:,.0f} / {point['consume_msg_per_s']:,.0f} msg/s", "flat")
    t.add_row(
        f"seek + poll(1) to a random offset, {lookup['records']:,} records vs 1,000 (p50 / p99; script µs)",
        f"{lookup['big_p50_ms']:.2f} / {lookup['big_p99_ms']:.2f} ms ({lookup['big_script_us']:.0f} µs) vs "
        f"{lookup['small_p50_ms']:.2f} / {lookup['small_p99_ms']:.2f} ms ({lookup['small_script_us']:.0f} µs)",
        "flat",
    )
    console.print(t)
    overhead = _metrics_overhead(console, url, args)
    return {"memory": mem, "latency_acks_1": lat1, "latency_acks_all": lat_all, "growth": curve,
            "lookup": lookup, "metrics_overhead": overhead}


if __name__ == "__main__":
    sys.exit(main())
