"""Results of a run, and how they are shown: a rich table and a JSON document (pure functions)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


@dataclass
class Result:
    """The rates measured for one figure, one entry per round."""

    name: str
    raw_label: str
    sdk_label: str
    raw_rates: list[float] = field(default_factory=list)
    """Raw side, records per second, per round."""
    sdk_rates: list[float] = field(default_factory=list)
    """SDK side, records per second, per round."""

    @property
    def raw_median(self) -> float:
        return statistics.median(self.raw_rates)

    @property
    def sdk_median(self) -> float:
        return statistics.median(self.sdk_rates)

    @property
    def ratio(self) -> float:
        """SDK median / raw median: the share of the raw rate the SDK delivers."""
        return self.sdk_median / self.raw_median

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw_label,
            "sdk": self.sdk_label,
            "raw_msgs_per_s": [round(r) for r in self.raw_rates],
            "sdk_msgs_per_s": [round(r) for r in self.sdk_rates],
            "raw_median_msgs_per_s": round(self.raw_median),
            "sdk_median_msgs_per_s": round(self.sdk_median),
            "ratio": round(self.ratio, 3),
        }


def document(results: list[Result], *, settings: dict[str, Any], server: dict[str, str],
             machine: dict[str, Any], date: str) -> dict[str, Any]:
    """The JSON document of a run."""
    return {
        "date": date,
        "machine": machine,
        "server": server,
        "settings": settings,
        "figures": {r.name: r.to_json() for r in results},
    }


def table(results: list[Result], *, title: str) -> Table:
    """The results as a rich table: median rates and the SDK / raw ratio per figure."""
    t = Table(title=title, title_justify="left")
    t.add_column("figure")
    t.add_column("raw msg/s", justify="right")
    t.add_column("SDK msg/s", justify="right")
    t.add_column("SDK / raw", justify="right", style="bold")
    for r in results:
        t.add_row(r.name, f"{r.raw_median:,.0f}", f"{r.sdk_median:,.0f}", f"{r.ratio:.2f}")
    return t


def legend(results: list[Result]) -> str:
    """What each side of each figure does, one line per side."""
    lines = []
    for r in results:
        lines += [f"{r.name}: raw = {r.raw_label}", f"{' ' * len(r.name)}  SDK = {r.sdk_label}"]
    return "\n".join(lines)
