"""A run's logs read back as typed history: what was acknowledged, delivered, committed, moved.

Nothing here knows how facade works; it only reads what the workers and the runner logged (see
:mod:`events`). Times are made non-decreasing per process, so sorting by time keeps each
process's own order.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import log_files, proc_name, read_log
from .offsets import BEFORE_ALL, Key, order_key, successor

TP = tuple[str, int]


@dataclass(frozen=True)
class Ack:
    """A record a producer was told is stored."""

    proc: str
    t: float
    tp: TP
    key: Key
    k: str
    s: int


@dataclass(frozen=True)
class Delivery:
    """A record handed to an application. ``t`` is when poll() returned it (the log line is
    written later, when its processing begins: a slow handler may take a while to reach it)."""

    proc: str
    i: int  # position in its process's log
    t: float
    tp: TP
    key: Key
    k: str
    s: int
    member: str = ""
    generation: int = -1


@dataclass(frozen=True)
class Commit:
    """A commit call: per partition, the position it stores (the offset after the last delivered)."""

    proc: str
    i: int  # position in its process's log
    t0: float
    t1: float
    outcome: str  # ok | failed (CommitFailedError) | error, async or unknown (outcome unknown: async,
    # or the process died inside commit())
    offsets: dict[TP, Key]
    err: str = ""


@dataclass(frozen=True)
class Excuse:
    """A seek or an offset reset: redeliveries after it are expected, and what it skipped is not lost.

    ``bound``: per partition, the position it set (the next record delivered is at or after it).
    ``skip``: per partition, the range [lo, hi) of offsets it jumped over; only records stored
    (acknowledged) by ``until`` are excused, the rest were appended after it and must come.
    """

    kind: str  # seek | reset
    proc: str  # the seeking process, or "runner"
    i: int  # position of the seek in its process's log (-1: a reset)
    t0: float
    t1: float
    bound: dict[TP, Key]
    skip: dict[TP, tuple[Key, Key]]
    until: float = float("inf")


@dataclass(frozen=True)
class Signal:
    """Something a process said about its ownership: assign/revoke/lost (of ``tps``),
    failed (a refused commit of ``tps``), fenced/start/stop (of everything: ``tps`` None)."""

    proc: str
    i: int  # position in its process's log
    t: float
    kind: str
    tps: frozenset[TP] | None


@dataclass
class Proc:
    name: str
    role: str
    mode: str = "normal"
    instance: str | None = None
    pid: int = 0
    start: float = 0.0
    end: float = 0.0
    stopped: bool = False  # logged a clean stop
    torn: bool = False


@dataclass(frozen=True)
class Drain:
    """How the group drained after the faults stopped (from the runner)."""

    quiet: float
    deadline: float
    drained: float | None
    lag: dict[TP, int | None]


@dataclass
class History:
    acks: list[Ack] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    excuses: list[Excuse] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    pauses: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # SIGSTOP..SIGCONT per process
    unread: dict[str, set[TP]] = field(default_factory=dict)  # partitions a process paused (consumer.pause)
    drain: Drain | None = None
    config: dict[str, Any] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # every process's raw events
    figures: Counter = field(default_factory=Counter)

    def known(self) -> dict[TP, dict[Key, tuple[str, int, float]]]:
        """Every record the history shows, per partition: offset -> (key, seq, when it was first
        known to be stored: acknowledged or delivered)."""
        out: dict[TP, dict[Key, tuple[str, int, float]]] = {}
        for r in (*self.acks, *self.deliveries):
            seen = out.setdefault(r.tp, {})
            k, s, t = seen.get(r.key, (r.k, r.s, r.t))
            seen[r.key] = (k, s, min(t, r.t))
        return out


class Records:
    """The records of one partition the history shows, in offset order, and the ranges seeks and
    resets skipped (each with the time by which a record must have been stored to be excused)."""

    def __init__(
        self, records: dict[Key, tuple[str, int, float]], skips: list[tuple[Key, Key, float]]
    ) -> None:
        self.records = records
        self.keys = sorted(records)
        self.skips = skips

    def excused(self, key: Key) -> bool:
        """Whether a seek or reset skipped the record at ``key`` (it was stored by then)."""
        return any(lo <= key < hi and self.records[key][2] <= until for lo, hi, until in self.skips)

    def between(self, lo: Key, hi: Key, *, inclusive_lo: bool) -> list[Key]:
        """Known, unexcused offsets in [lo, hi) (or (lo, hi))."""
        start = bisect.bisect_left(self.keys, lo) if inclusive_lo else bisect.bisect_right(self.keys, lo)
        end = bisect.bisect_left(self.keys, hi)
        return [k for k in self.keys[start:end] if not self.excused(k)]

    @classmethod
    def of(cls, h: History) -> dict[TP, Records]:
        """Every partition's records (an empty view for a partition the history never shows)."""
        skips: dict[TP, list[tuple[Key, Key, float]]] = defaultdict(list)
        for e in h.excuses:
            for tp, (lo, hi) in e.skip.items():
                skips[tp].append((lo, hi, e.until))
        out: dict[TP, Records] = defaultdict(lambda: cls({}, []))
        for tp, records in h.known().items():
            out[tp] = cls(records, skips.get(tp, []))
        return out


def _tp(topic: Any, p: Any) -> TP:
    return (str(topic), int(p))


def _tps(items: Any) -> frozenset[TP]:
    return frozenset(_tp(t, p) for t, p in items or ())


def _member(h: History, proc: str, events: list[dict[str, Any]]) -> None:
    open_seek: dict[str, Any] | None = None
    begun: tuple[int, dict[str, Any]] | None = None  # a commit called but not answered (yet)
    for i, e in enumerate(events):
        ev, t = e["ev"], e["t"]
        if ev == "commit-begin":
            begun = (i, e)
            continue
        if ev == "d":
            h.deliveries.append(
                Delivery(
                    proc,
                    i,
                    min(float(e.get("h", t)), t),
                    _tp(e["topic"], e["p"]),
                    order_key(e["o"]),
                    e["k"],
                    int(e["s"]),
                    str(e.get("m", "")),
                    int(e.get("g", -1)),
                )
            )
        elif ev == "commit":
            begun = None
            offsets = {_tp(topic, p): order_key(nxt) for topic, p, nxt in e["offsets"]}
            h.commits.append(
                Commit(proc, i, e["t0"], max(e["t1"], e["t0"]), e["outcome"], offsets, e.get("err", ""))
            )
            if e["outcome"] == "failed":
                h.signals.append(Signal(proc, i, max(e["t1"], e["t0"]), "failed", frozenset(offsets)))
        elif ev in ("assign", "revoke", "lost"):
            h.signals.append(Signal(proc, i, t, ev, _tps(e["tps"])))
        elif ev in ("start", "stop", "fenced"):
            h.signals.append(Signal(proc, i, t, ev, None))
        elif ev == "pause":
            h.unread.setdefault(proc, set()).update(_tps(e["tps"]))
        elif ev == "seek":
            open_seek = (i, e)
        elif ev == "seek-end" and open_seek is not None:
            h.excuses.append(_seek(proc, *open_seek, t))
            open_seek = None
    if open_seek is not None:  # died inside seek(): it may have taken effect
        h.excuses.append(_seek(proc, *open_seek, events[-1]["t"]))
    if begun is not None:
        # The process died inside commit(): the commit may or may not have taken effect.
        i, e = begun
        offsets = {_tp(topic, p): order_key(nxt) for topic, p, nxt in e["offsets"]}
        h.commits.append(Commit(proc, i, e["t0"], e["t0"], "unknown", offsets, "the process died inside commit()"))


def _seek(proc: str, i: int, e: dict[str, Any], t1: float) -> Excuse:
    tp = _tp(e["topic"], e["p"])
    here, to = order_key(e["from"]), order_key(e["to"])
    if e.get("dir") == "past-end":
        # Out of range: the consumer may refuse it, start over (Kafka's auto_offset_reset) or
        # clamp it to the end, skipping what was stored then; what is appended later must come.
        return Excuse("seek", proc, i, e["t"], t1, {tp: here}, {tp: (here, to)}, until=t1)
    skip = {tp: (here, to)} if to > here else {}
    return Excuse("seek", proc, i, e["t"], t1, {tp: to}, skip)


def _runner(h: History, events: list[dict[str, Any]]) -> None:
    planned: dict[str, Any] | None = None
    for e in events:
        ev = e["ev"]
        if ev == "config":
            h.config = {k: v for k, v in e.items() if k not in ("ev", "t")}
        elif ev == "fault":
            h.faults.append(e)
        elif ev == "resumed":  # the end of a SIGSTOP fault
            h.pauses.setdefault(e["proc"], []).append((e["since"], e["t"]))
        elif ev == "reset":
            planned = e
        elif ev == "reset-end" and planned is not None:
            # What the reset planned is excused whether or not it completed: half a reset is
            # still a reset of the partitions it reached.
            targets = {_tp(planned["topic"], p): order_key(target) for p, target in planned["targets"]}
            # A reset target is the next record read (Kafka's committed offset) for dense integer
            # offsets; with stream IDs it was the last one consumed.
            bound = {tp: target if len(target) == 1 else successor(target) for tp, target in targets.items()}
            skip = {tp: (BEFORE_ALL, b) for tp, b in bound.items()}
            h.excuses.append(Excuse("reset", "runner", -1, planned["t"], e["t"], bound, skip))
            planned = None
        elif ev == "drain":
            lag = {_tp(topic, p): (None if n is None else int(n)) for topic, p, n in e["lag"]}
            h.drain = Drain(e["quiet"], e["deadline"], e.get("drained"), lag)


def load(directory: str | Path) -> History:
    """Read every log of a run directory."""
    h = History()
    for path in log_files(directory):
        events, torn = read_log(path)
        name = proc_name(path)
        if torn:
            h.figures["torn lines"] += 1
        if not events:
            continue
        last = 0.0
        for e in events:  # one clock per machine, but keep each process's own order regardless
            last = e["t"] = max(float(e["t"]), last)
        first = events[0]
        if name == "runner":
            _runner(h, events)
            h.events[name] = events  # a workload's own checks read its events (dead_letters: "dlq")
            continue
        proc = Proc(
            name,
            first.get("role", "?"),
            first.get("mode", "normal"),
            first.get("instance"),
            int(first.get("pid", 0)),
            events[0]["t"],
            events[-1]["t"],
            events[-1]["ev"] == "stop",
            torn,
        )
        h.procs[name] = proc
        h.events[name] = events
        reader = READERS.get(proc.role)
        if reader is not None:
            reader(h, name, events)
    return h


def _producer(h: History, proc: str, events: list[dict[str, Any]]) -> None:
    for e in events:
        if e["ev"] == "ack":
            h.acks.append(Ack(proc, e["t"], _tp(e["topic"], e["p"]), order_key(e["o"]), e["k"], int(e["s"])))
        elif e["ev"] == "fail":
            h.figures["records failed"] += 1
        elif e["ev"] == "stop":
            h.figures["records sent"] += int(e.get("sent", 0))


# A process's ``start`` event names its role; a new kind of worker (a relay, a dead-letter
# consumer) adds its reader here, and its own checks beside those in check.py. Every process's
# raw events stay in History.events for such checks.
READERS: dict[str, Callable[[History, str, list[dict[str, Any]]], None]] = {
    "producer": _producer,
    "member": _member,
}
