"""Who held a partition when: tenures, and the anomalies about ownership (split, zombie).

A *tenure* is one process's unbroken run of deliveries of one partition, as far as its own log
and the offsets show: it ends when the process logs a rebalance callback or a fencing for the
partition, a refused commit of it, a seek of it, when it starts or stops, or when its offsets go
back or jump over records the history knows (it re-read from a committed position, or someone else
had the partition meanwhile). A tenure spans [its first delivery, its last], delivery times being
when poll() handed the records out.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from dataclasses import dataclass

from .anomaly import Anomaly, fmt
from .history import TP, Delivery, History, Records
from .offsets import Key, show


@dataclass(frozen=True)
class Tenure:
    """One process's tenure of one partition: when, which offsets, how many deliveries."""

    proc: str
    tp: TP
    start: float
    end: float
    first: Key
    last: Key
    n: int


def tenures(h: History, known: dict[TP, Records]) -> dict[TP, list[Tenure]]:
    """Each process's tenures of each partition, for ``split`` and ``zombie``."""
    breaks: dict[tuple[str, TP | None], list[int]] = defaultdict(list)
    for s in h.signals:
        for tp in s.tps if s.tps is not None else [None]:
            breaks[(s.proc, tp)].append(s.i)
    for e in h.excuses:
        for tp in e.bound:
            breaks[(e.proc, tp)].append(e.i)
    for v in breaks.values():
        v.sort()
    runs: dict[tuple[str, TP], list[Delivery]] = defaultdict(list)
    for d in h.deliveries:
        runs[(d.proc, d.tp)].append(d)
    out: dict[TP, list[Tenure]] = defaultdict(list)

    def broke(proc: str, tp: TP, a: Delivery, b: Delivery) -> bool:
        for idx in (breaks.get((proc, tp), []), breaks.get((proc, None), [])):
            j = bisect.bisect_right(idx, a.i)
            if j < len(idx) and idx[j] < b.i:
                return True
        return b.key <= a.key or bool(known[tp].between(a.key, b.key, inclusive_lo=False))

    for (proc, tp), ds in runs.items():
        ds.sort(key=lambda d: d.i)
        cur = [ds[0]]
        for a, b in itertools.pairwise(ds):
            if broke(proc, tp, a, b):
                out[tp].append(Tenure(proc, tp, cur[0].t, cur[-1].t, cur[0].key, cur[-1].key, len(cur)))
                cur = []
            cur.append(b)
        out[tp].append(Tenure(proc, tp, cur[0].t, cur[-1].t, cur[0].key, cur[-1].key, len(cur)))
    for v in out.values():
        v.sort(key=lambda t: t.start)
    return out


def _running(lo: float, hi: float, paused: list[tuple[float, float]]) -> float:
    """Seconds of [lo, hi] not inside a pause."""
    total = max(0.0, hi - lo)
    for a, b in paused:
        total -= max(0.0, min(b, hi) - max(a, lo))
    return total


def check_split(h: History, tens: dict[TP, list[Tenure]], window_s: float) -> list[Anomaly]:
    out = []
    for tp, ts in tens.items():
        for i, a in enumerate(ts):
            for b in ts[i + 1 :]:
                if b.start >= a.end:
                    break
                if a.proc == b.proc:
                    continue
                lo, hi = b.start, min(a.end, b.end)
                paused = sorted(h.pauses.get(a.proc, []) + h.pauses.get(b.proc, []))
                overlap = _running(lo, hi, paused)
                if overlap > window_s:
                    out.append(
                        Anomaly(
                            "split",
                            f"{fmt(tp)}: {a.proc} (from {show(a.first)}, {a.n} records) and {b.proc} "
                            f"(from {show(b.first)}, {b.n} records) both received it for {overlap:.1f} s "
                            f"(window {window_s:.1f} s)",
                            lo,
                            (a.proc, b.proc),
                            {"tp": list(tp), "overlap_s": round(overlap, 3)},
                        )
                    )
    return out


def check_static(h: History, window_s: float) -> list[Anomaly]:
    """An older process of a static member still receiving records, beyond the window, after a
    newer process with the same ``group_instance_id`` began to (it must be fenced for good)."""
    first: dict[str, float] = {}
    by_proc: dict[str, list[Delivery]] = defaultdict(list)
    for d in h.deliveries:
        first.setdefault(d.proc, d.t)
        by_proc[d.proc].append(d)
    by_instance: dict[str, list[str]] = defaultdict(list)
    for p in sorted(h.procs.values(), key=lambda p: p.start):
        if p.instance:
            by_instance[p.instance].append(p.name)
    out = []
    for instance, names in by_instance.items():
        for i, old in enumerate(names):
            for new in names[i + 1 :]:
                if new not in first:
                    continue
                since = first[new] + window_s
                late = [d for d in by_proc[old] if d.t > since]
                if late:
                    out.append(
                        Anomaly(
                            "split",
                            f"static member {instance}: {old} received {len(late)} record(s) up to "
                            f"{late[-1].t - first[new]:.1f} s after its newer process {new} began receiving "
                            f"(window {window_s:.1f} s)",
                            late[0].t,
                            (old, new),
                            {"instance": instance, "late": len(late)},
                        )
                    )
                break  # the next newer process is judged against its own successor
    return out


def check_zombie(h: History, tens: dict[TP, list[Tenure]]) -> list[Anomaly]:
    starts = {tp: [t.start for t in ts] for tp, ts in tens.items()}
    out = []
    for c in h.commits:
        if c.outcome != "ok":
            continue
        for tp in c.offsets:
            ts = tens.get(tp, [])
            j = bisect.bisect_left(starts.get(tp, []), c.t0) - 1
            if j >= 0 and ts[j].proc != c.proc:
                newer = ts[j]
                out.append(
                    Anomaly(
                        "zombie",
                        f"{fmt(tp)}: {c.proc}'s commit up to {show(c.offsets[tp])} succeeded, though "
                        f"{newer.proc} began receiving it {c.t0 - newer.start:.3f} s before the commit "
                        "started",
                        c.t0,
                        (c.proc, newer.proc),
                        {"tp": list(tp), "commit_t0": c.t0},
                    )
                )
    return out
