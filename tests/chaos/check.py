"""The checker: what a run's history must never show, one class of anomaly at a time.

It reads only the history (:mod:`history`): what producers were told, what applications were
handed, what commits reported, which seeks and resets happened, what the runner measured while
the group drained. It knows nothing of how facade works. The classes:

lost
    Acknowledged by the broker, never delivered to anyone. A record inside the range a forward
    seek or an offset reset skipped is excused; for a seek past the end, only records stored
    before it (a consumer may clamp such a seek to the end, but must not stall there).
order
    Within one tenure (a process's unbroken run of deliveries of a partition) offsets only go up
    and skip no uncommitted record; a new tenure starts at or before the committed position (the
    greatest position committed, or set by a seek or reset, so far; a synchronous commit counts
    from its call, since its answer may be logged long after it landed); a record is never delivered
    after a later record of its key was committed, unless a seek or reset came in between.
duplicate
    A record delivered after a successful commit covering it, with no seek or reset in between.

For ``order`` and ``duplicate`` the documented double-processing window is excused, and counted
(figure ``zombie_deliveries_in_window``): a process whose run of a partition another process
took over may still hand out records it read while it owned the partition, continuing its own
run (offsets going up from its last, no callback, fencing or refused commit in between), for
up to the window of running time (``window_s``, as for ``split``; time stopped by SIGSTOP does not
count) after the takeover. Such deliveries change nothing in the partition's judged history.
Beyond the window, or not continuing its own run, they are judged as any other.
split
    Two processes receiving one partition's records at overlapping times, for longer than the
    window (``window_s``: session timeout plus one batch's processing time), not counting time a
    process spent stopped (SIGSTOP); or an older process of a static member still receiving
    records longer than the window after a newer one with its ``group_instance_id`` began to.
zombie
    A commit that reported success although, when it started, another process had begun a newer
    tenure of one of its partitions.
orphan
    After the faults stopped, the group's lag is not 0 by the deadline (session timeout + 10 s),
    or records are first delivered only after it.

For ``order`` and ``duplicate`` a tenure ends when the process logs a rebalance callback or a
fencing for the partition, a refused commit of it, a seek of it, when it starts or stops, or when
another process delivers the partition; ``split`` and ``zombie`` (in :mod:`ownership`) also end it
where its offsets go back or jump. The rebalance callbacks matter: a consumer that starts over
from the committed position without telling the application (``on_revoke``/``on_lost``) shows as
going back within one tenure.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .anomaly import CLASSES, Anomaly, fmt
from .history import TP, Commit, Delivery, Excuse, History, Records, Signal
from .offsets import BEFORE_ALL, Key, show
from .ownership import _running, check_split, check_static, check_zombie, tenures

__all__ = ["CLASSES", "Anomaly", "Result", "check"]


@dataclass
class Result:
    anomalies: dict[str, list[Anomaly]]
    figures: dict[str, Any]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.anomalies.values())


def check_lost(h: History, known: dict[TP, Records]) -> list[Anomaly]:
    delivered: dict[tuple[TP, Key], tuple[str, int]] = {}
    for d in h.deliveries:
        delivered.setdefault((d.tp, d.key), (d.k, d.s))
    out = []
    for a in h.acks:
        got = delivered.get((a.tp, a.key))
        if got == (a.k, a.s) or known[a.tp].excused(a.key):
            continue
        what = "never delivered" if got is None else f"its offset was delivered holding {got[0]}:{got[1]}"
        out.append(
            Anomaly(
                "lost",
                f"{a.k}:{a.s} at {fmt(a.tp)}@{show(a.key)} acknowledged, {what}",
                a.t,
                (a.proc,),
                {"tp": list(a.tp), "key": list(a.key)},
            )
        )
    return out


def _timeline(h: History, tp: TP) -> Iterator[tuple[str, Any]]:
    """Everything that happened to ``tp``, in time order (each process's own events in log order)."""
    per_proc: dict[str, list[tuple[float, int, int, str, Any]]] = defaultdict(list)
    for d in h.deliveries:
        if d.tp == tp:
            per_proc[d.proc].append((d.t, 2, d.i, "deliver", d))
    for c in h.commits:
        if tp in c.offsets:
            if c.outcome != "async":  # it may have landed from t0 on (an async one: after t1)
                per_proc[c.proc].append((c.t0, 3, c.i, "commit_sent", c))
            per_proc[c.proc].append((c.t1, 3, c.i, "commit", c))
    for s in h.signals:
        if s.tps is None or tp in s.tps:
            per_proc[s.proc].append((s.t, 1, s.i, "signal", s))
    for e in h.excuses:
        if tp in e.bound:
            per_proc[e.proc].append((e.t0, 0, e.i, "excuse", e))
    lists = [sorted(v, key=lambda x: (x[0], x[2], x[1])) for v in per_proc.values()]
    for item in heapq.merge(*lists, key=lambda x: (x[0], x[1])):
        yield item[3], item[4]


class _Sweep:
    """One partition's history in time order, judged for ``order`` and ``duplicate``."""

    def __init__(self, tp: TP, kn: Records, window_s: float = 0.0,
                 pauses: dict[str, list[tuple[float, float]]] | None = None) -> None:  # fmt: skip
        self.tp, self.kn = tp, kn
        self.window_s, self.pauses = window_s, pauses or {}
        self.superseded: dict[str, float] = {}  # process -> when another took its run over
        self.last_of: dict[str, Key] = {}  # each process's last offset delivered
        self.signalled: set[str] = set()  # processes with a callback/fencing since their last delivery
        self.in_window = 0
        self.order: list[Anomaly] = []
        self.dups: list[Anomaly] = []
        self.handovers = 0
        self.owner: str | None = None  # whose run of deliveries this is
        self.broken = True  # the owner's run ended (a callback, a seek, a refused commit)
        self.last = self.high = BEFORE_ALL  # the run's last offset, and its greatest
        self.allowed: Key = BEFORE_ALL  # the greatest position committed, or set by a seek/reset, so far
        self.committed: Key = BEFORE_ALL  # the greatest position committed since the last seek/reset
        self.by: Commit | None = None  # the commit that stored it
        self.excuse_end = float("-inf")
        self.key_max: dict[str, tuple[int, Commit]] = {}  # greatest committed seq per key, same span
        self.covered = 0  # kn.keys[:covered] lie below `committed`
        self.seen: dict[Key, tuple[str, float]] = {}  # each offset's last delivery: process, time
        self.recent: list[Commit] = []  # the last commits of this partition (for the report)

    def excuse(self, e: Excuse) -> None:
        self.allowed = max(self.allowed, e.bound[self.tp])
        self.committed, self.by, self.key_max, self.covered = BEFORE_ALL, None, {}, 0
        self.excuse_end = max(self.excuse_end, e.t1)
        self.broken = True

    def signal(self, s: Signal) -> None:
        self.signalled.add(s.proc)
        if s.proc == self.owner:
            self.broken = True

    def commit_sent(self, c: Commit) -> None:
        """A commit call began: from now on it may have landed (its answer may come much later:
        a process stopped or starved after the commit landed logs its end late, while the next
        owner already started from it)."""
        if c.outcome == "ok" or c.proc == self.owner:
            self.allowed = max(self.allowed, c.offsets[self.tp])

    def commit(self, c: Commit) -> None:
        nxt = c.offsets[self.tp]
        self.recent = [*self.recent[-2:], c]
        if (
            c.outcome == "ok" or c.proc == self.owner
        ):  # a refused or unanswered commit may still have moved it
            self.allowed = max(self.allowed, nxt)
        # A commit that overlapped a seek or reset may have landed before it: it proves nothing.
        if c.outcome == "ok" and c.t0 >= self.excuse_end and nxt > self.committed:
            self.committed, self.by = nxt, c
            keys = self.kn.keys
            while self.covered < len(keys) and keys[self.covered] < nxt:
                k, seq, _ = self.kn.records[keys[self.covered]]
                if seq > self.key_max.get(k, (-1, c))[0]:
                    self.key_max[k] = (seq, c)
                self.covered += 1
        if c.outcome == "failed":
            self.signalled.add(c.proc)
            if c.proc == self.owner:
                self.broken = True

    def _order(self, d: Delivery, what: str, procs: tuple[str, ...], **detail: Any) -> None:
        where = f"{fmt(self.tp)}@{show(d.key)} ({d.k}:{d.s}) to {d.proc}"
        self.order.append(Anomaly("order", f"{where}: {what}", d.t, procs, {"tp": list(self.tp), **detail}))

    def _context(self, d: Delivery, skipped: Key) -> str:
        """What the report adds to a skip: who last had the first skipped record, and the last
        commits of the partition (times before this delivery)."""
        out = []
        if skipped in self.seen:
            proc, t = self.seen[skipped]
            out.append(f"{show(skipped)} was delivered to {proc} {d.t - t:.3f} s before")
        out += [
            f"{c.proc} committed {show(c.offsets[self.tp])} ({c.outcome}, {d.t - c.t0:.3f}..{d.t - c.t1:.3f} s before)"
            for c in self.recent
        ]
        return "; " + "; ".join(out) if out else ""

    def _zombie_in_window(self, d: Delivery) -> bool:
        """A superseded process continuing its own run within the window (see the module doc)."""
        since = self.superseded.get(d.proc)
        if since is None or d.proc == self.owner or d.proc in self.signalled:
            return False
        if d.key <= self.last_of.get(d.proc, BEFORE_ALL):
            return False
        return _running(since, d.t, sorted(self.pauses.get(d.proc, []))) <= self.window_s

    def deliver(self, d: Delivery) -> None:
        if self._zombie_in_window(d):
            self.in_window += 1
            self.last_of[d.proc] = d.key
            self.seen[d.key] = (d.proc, d.t)
            return
        if self.owner is not None and self.owner != d.proc:
            self.superseded[self.owner] = d.t
        self.superseded.pop(d.proc, None)
        self.signalled.discard(d.proc)
        self.last_of[d.proc] = d.key
        fresh = self.owner != d.proc or self.broken
        if fresh:
            self.handovers += self.owner is not None and self.owner != d.proc
            gap = self.kn.between(self.allowed, d.key, inclusive_lo=True) if d.key > self.allowed else []
            if gap:
                self._order(
                    d,
                    f"a tenure began after the committed position {show(self.allowed)}, skipping "
                    f"{len(gap)} record(s) from {show(gap[0])}{self._context(d, gap[0])}",
                    (d.proc,),
                    skipped=[show(k) for k in gap[:5]],
                )
        elif d.key <= self.last:
            self._order(d, f"went back from {show(self.last)} within one tenure", (d.proc,))
        elif d.key > self.high:
            gap = [k for k in self.kn.between(self.high, d.key, inclusive_lo=False) if k >= self.allowed]
            if gap:
                self._order(
                    d,
                    f"skipped {len(gap)} uncommitted record(s) after {show(self.last)} within one tenure",
                    (d.proc,),
                    skipped=[show(k) for k in gap[:5]],
                )
        later = self.key_max.get(d.k)
        if later is not None and later[0] > d.s:
            self._order(
                d,
                f"delivered after {d.k}:{later[0]} was committed by {later[1].proc}",
                (d.proc, later[1].proc),
                commit_t1=later[1].t1,
            )
        if d.key < self.committed and self.by is not None:
            by = self.by
            self.dups.append(
                Anomaly(
                    "duplicate",
                    f"{fmt(self.tp)}@{show(d.key)} ({d.k}:{d.s}) to {d.proc}: delivered again after "
                    f"{by.proc}'s commit up to {show(self.committed)} succeeded ({d.t - by.t1:.3f} s before)",
                    d.t,
                    (d.proc, by.proc),
                    {"tp": list(self.tp), "commit_t0": by.t0, "commit_t1": by.t1},
                )
            )
        self.owner, self.last, self.broken = d.proc, d.key, False
        self.seen[d.key] = (d.proc, d.t)
        self.high = d.key if fresh else max(self.high, d.key)


def check_order_and_duplicates(
    h: History, known: dict[TP, Records], window_s: float = 0.0
) -> tuple[list[Anomaly], list[Anomaly], int, int]:
    """One pass per partition: order (tenures, restarts, per-key) and duplicate after commit;
    also the zombie deliveries excused as inside the window."""
    order: list[Anomaly] = []
    dups: list[Anomaly] = []
    handovers = in_window = 0
    for tp in sorted({d.tp for d in h.deliveries}):
        sweep = _Sweep(tp, known[tp], window_s, h.pauses)
        for kind, x in _timeline(h, tp):
            getattr(sweep, kind)(x)
        order += sweep.order
        dups += sweep.dups
        handovers += sweep.handovers
        in_window += sweep.in_window
    return order, dups, handovers, in_window


def check_orphan(h: History) -> list[Anomaly]:
    if h.drain is None:
        return []
    dr = h.drain
    out = []
    for tp, lag in sorted(dr.lag.items()):
        if lag != 0:
            out.append(
                Anomaly(
                    "orphan",
                    f"{fmt(tp)}: lag {lag} at the deadline, {dr.deadline - dr.quiet:.1f} s "
                    "after the faults stopped",
                    dr.deadline,
                    (),
                    {"tp": list(tp), "lag": lag},
                )
            )
    first: dict[tuple[TP, Key], float] = {}
    for d in h.deliveries:
        first[(d.tp, d.key)] = min(first.get((d.tp, d.key), d.t), d.t)
    late: dict[TP, list[float]] = defaultdict(list)
    for a in h.acks:
        t = first.get((a.tp, a.key))
        if t is not None and t > dr.deadline:
            late[a.tp].append(t)
    for tp, ts in sorted(late.items()):
        out.append(
            Anomaly(
                "orphan",
                f"{fmt(tp)}: {len(ts)} acknowledged record(s) first delivered after the "
                f"deadline, the last {max(ts) - dr.quiet:.1f} s after the faults stopped",
                min(ts),
                (),
                {"tp": list(tp), "late": len(ts)},
            )
        )
    return out


Check = Callable[[History], dict[str, list[Anomaly]]]


def check(h: History, window_s: float, extra: tuple[Check, ...] = ()) -> Result:
    """Every check over one history; ``extra`` checks (of other workloads) add their classes."""
    known = Records.of(h)
    order, dups, handovers, in_window = check_order_and_duplicates(h, known, window_s)
    tens = tenures(h, known)
    anomalies = {
        "lost": check_lost(h, known),
        "order": order,
        "duplicate": dups,
        "split": check_split(h, tens, window_s) + check_static(h, window_s),
        "zombie": check_zombie(h, tens),
        "orphan": check_orphan(h),
    }
    for more in extra:
        for cls, found in more(h).items():
            anomalies.setdefault(cls, []).extend(found)
    acked = {(a.tp, a.key) for a in h.acks}
    delivered = {(d.tp, d.key) for d in h.deliveries}
    commits = defaultdict(int)
    for c in h.commits:
        commits[c.outcome] += 1
    figures = {
        "records acknowledged": len(acked),
        "records delivered (distinct)": len(delivered & acked),
        "deliveries": len(h.deliveries),
        "redeliveries": len(h.deliveries) - len({(d.tp, d.key) for d in h.deliveries}),
        "commits ok": commits["ok"],
        "commits refused (CommitFailedError)": commits["failed"],
        "commits failed otherwise": commits["error"],
        "commits asynchronous (outcome unknown)": commits["async"],
        "handovers": handovers,
        "zombie deliveries within the window (excused)": in_window,
        "tenures": sum(len(v) for v in tens.values()),
        "seeks": sum(1 for e in h.excuses if e.kind == "seek"),
        "offset resets": sum(1 for e in h.excuses if e.kind == "reset"),
        **dict(h.figures),
    }
    return Result(anomalies, figures)
