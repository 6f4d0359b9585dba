"""What needs attention on the dashboard, and the short numbers its columns show: pure functions
of a Snapshot (cli/dashboard_data.py), tested on their own."""

from __future__ import annotations

from dataclasses import dataclass

from .dashboard_data import Snapshot
from .render import format_ms

__all__ = ["Alert", "age_text", "alerts", "human_bytes", "human_count", "human_rate"]

PENDING_OLD_MS = 30_000
"""A record delivered this long ago and still not committed needs attention."""
MEMORY_WARN = 0.80
MEMORY_CRIT = 0.90
REPLICA_LAG_WARN_S = 10


@dataclass(frozen=True)
class Alert:
    """Something that needs attention."""

    level: str
    """"crit" (red) or "warn" (yellow)."""
    text: str


# ---------------------------------------------------------------------------------------------
# Numbers


def human_count(n: int | None) -> str:
    """12345 -> "12345", 1234567 -> "1.2M" (short enough for narrow columns)."""
    if n is None:
        return "-"
    if abs(n) < 100_000:
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)  # pragma: no cover - unreachable


def human_rate(r: float | None) -> str:
    """Messages per second: "-" when unknown, else "0", "12.5", "3.4k"."""
    if r is None:
        return "-"
    if r < 0.05:
        return "0"
    if r < 1000:
        return f"{r:.1f}"
    return human_count(int(r))


def human_bytes(n: int | None) -> str:
    """Bytes as "512B", "1.5KB", "2.0MB", "3.1GB"."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}TB"  # pragma: no cover - unreachable


def age_text(ms: int | None) -> str:
    """An age in ms as "-", "850ms", "12s", "3m4s" (whole seconds from a second on)."""
    return "-" if ms is None else format_ms(ms - ms % 1000 if ms >= 1000 else ms)


# ---------------------------------------------------------------------------------------------
# What needs attention


def alerts(s: Snapshot) -> list[Alert]:
    """Everything in ``s`` that needs attention, the most serious first."""
    out: list[Alert] = []
    if s.error:
        out.append(Alert("crit", f"cannot read the broker: {s.error}"))
    srv = s.server
    if srv is not None:
        if srv.maxmemory and srv.used_memory >= MEMORY_WARN * srv.maxmemory:
            level = "crit" if srv.used_memory >= MEMORY_CRIT * srv.maxmemory else "warn"
            pct = 100 * srv.used_memory / srv.maxmemory
            out.append(Alert(level, f"memory {pct:.0f}% of maxmemory: producers fail when it is full"))
        if srv.maxmemory_policy not in ("noeviction", "?"):
            out.append(
                Alert("crit", f"maxmemory-policy is {srv.maxmemory_policy}: the server may evict records")
            )
        if srv.role == "slave":
            out.append(Alert("warn", f"connected to a replica of {srv.primary_link}: writes are refused"))
        for r in srv.replicas:
            if r.state != "online":
                out.append(Alert("warn", f"replica {r.address} is {r.state}"))
            elif r.lag_s is not None and r.lag_s >= REPLICA_LAG_WARN_S:
                out.append(Alert("warn", f"replica {r.address} last acknowledged {r.lag_s}s ago"))
    for g in s.groups:
        if not g.members and (g.lag or g.pending):
            out.append(Alert("warn", f"group {g.group} has no members and lag {human_count(g.lag)}"))
        elif g.lag_delta is not None and g.lag_delta > 0 and g.lag:
            out.append(
                Alert(
                    "warn",
                    f"lag of group {g.group} is growing (+{human_count(g.lag_delta)} to {human_count(g.lag)})",
                )
            )
        old = [
            p
            for p in g.partitions
            if p.oldest_pending_ms is not None and p.oldest_pending_ms >= PENDING_OLD_MS
        ]
        if old:
            worst = max(old, key=lambda p: p.oldest_pending_ms or 0)
            out.append(
                Alert(
                    "warn",
                    f"group {g.group}: a record on {worst.topic}:{worst.partition} uncommitted for "
                    f"{age_text(worst.oldest_pending_ms)} (appended, not committed)",
                )
            )
    for t in s.topics:
        if t.is_dead_letters and t.messages:
            out.append(Alert("warn", f"{t.messages} dead letter{'s' if t.messages != 1 else ''} in {t.name}"))
    for e in s.events[-2:]:
        out.append(Alert("warn", e))
    out.sort(key=lambda a: a.level != "crit")
    return out
