"""``facade bench`` results: percentiles, the JSON object and the table. Pure functions.

JSON (``--json``), one object::

    {"workload": "produce"|"consume"|"e2e", "broker", "server", "messages", "size_bytes",
     "partitions", "settings": {...}, "elapsed_s", "msg_per_s", "mb_per_s",
     "latency_ms": {"p50", "p95", "p99", "max", "samples"},
     "raw": {"msg_per_s", "mb_per_s", "elapsed_s"} | null, "ratio": SDK/raw | null}

MB is 2**20 bytes (as Kafka's perf tools count); ``mb_per_s`` counts values only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .render import json_line

__all__ = ["BenchResult", "RawResult", "latency_summary", "percentile", "result_json", "result_table"]

MB = 1024 * 1024

LATENCY_MEANING = {
    "produce": "send() to acknowledgement",
    "consume": "one poll() with records, plus its commit()",
    "e2e": "send() to receipt by the consumer",
}


@dataclass(frozen=True)
class RawResult:
    """The same work done with plain redis-py on the same server (--compare-raw)."""

    messages: int
    elapsed_s: float

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class BenchResult:
    """One benchmark run."""

    workload: str
    """"produce", "consume" or "e2e"."""
    broker: str
    """The URL, password hidden."""
    server: str
    """"valkey 9.1.2", "redis 7.0.15"."""
    messages: int
    """Records produced / consumed / received."""
    size: int
    """Value size in bytes."""
    partitions: int
    elapsed_s: float
    latencies_s: tuple[float, ...]
    """Latency samples in seconds (what they measure: LATENCY_MEANING)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The workload's own options (acks, batch bytes, group, rate, ...)."""
    raw: RawResult | None = None

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.msg_per_s * self.size / MB

    @property
    def ratio(self) -> float | None:
        """SDK rate / raw redis-py rate, when measured."""
        if self.raw is None or not self.raw.msg_per_s:
            return None
        return self.msg_per_s / self.raw.msg_per_s


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of already sorted samples; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(samples_s: Sequence[float]) -> dict[str, Any]:
    """``{"p50", "p95", "p99", "max"}`` in milliseconds (None without samples) and ``"samples"``."""
    ordered = sorted(samples_s)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "p50": ms(percentile(ordered, 50)),
        "p95": ms(percentile(ordered, 95)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1] if ordered else None),
        "samples": len(ordered),
    }


def result_json(r: BenchResult) -> str:
    """``--json`` (shape in the module docstring)."""
    raw = None
    if r.raw is not None:
        raw = {
            "msg_per_s": round(r.raw.msg_per_s, 1),
            "mb_per_s": round(r.raw.msg_per_s * r.size / MB, 3),
            "elapsed_s": round(r.raw.elapsed_s, 4),
        }
    return json_line(
        {
            "workload": r.workload,
            "broker": r.broker,
            "server": r.server,
            "messages": r.messages,
            "size_bytes": r.size,
            "partitions": r.partitions,
            "settings": dict(r.settings),
            "elapsed_s": round(r.elapsed_s, 4),
            "msg_per_s": round(r.msg_per_s, 1),
            "mb_per_s": round(r.mb_per_s, 3),
            "latency_ms": latency_summary(r.latencies_s),
            "raw": raw,
            "ratio": None if r.ratio is None else round(r.ratio, 3),
        }
    )


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def result_table(r: BenchResult) -> RenderableType:
    """The table printed after a run: rate, throughput, latency percentiles, and the raw
    comparison when measured."""
    lat = latency_summary(r.latencies_s)
    settings = "  ".join(f"{k} {v}" for k, v in r.settings.items())
    head = Text.assemble(
        (f"facade bench {r.workload}", "bold"),
        f"  {r.messages} messages of {r.size} B, {r.partitions} partitions  {settings}\n",
        f"broker {r.broker} ({r.server})",
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("", "msg/s", "MB/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "elapsed s"):
        table.add_column(name, justify="left" if not name else "right")
    table.add_row(
        "facade",
        f"{r.msg_per_s:,.0f}",
        f"{r.mb_per_s:.2f}",
        _ms(lat["p50"]),
        _ms(lat["p95"]),
        _ms(lat["p99"]),
        _ms(lat["max"]),
        f"{r.elapsed_s:.2f}",
    )
    lines: list[RenderableType] = [head, table]
    if r.raw is not None:
        table.add_row(
            "raw redis-py",
            f"{r.raw.msg_per_s:,.0f}",
            f"{r.raw.msg_per_s * r.size / MB:.2f}",
            "-", "-", "-", "-",
            f"{r.raw.elapsed_s:.2f}",
        )  # fmt: skip
        lines.append(
            Text.assemble(("facade / raw: ", "bold"), f"{r.ratio:.2f}" if r.ratio is not None else "-")
        )
    lines.append(Text(f"latency: {LATENCY_MEANING.get(r.workload, '')} ({lat['samples']} samples)", "dim"))
    return Group(*lines)
