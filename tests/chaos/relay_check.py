"""The relay workload's checker: what the destination topic must show after relays under faults.

It reads only the history: what the producers were told about the source topic (``ack``: key,
seq, source partition and offset), and the destination topic as the runner read it back at the
end (the ``sink`` log: one ``out`` {p, o, k, s} per stored record, in offset order), plus the
relay group's lag on the source when the run drained. It knows nothing of how the relay works.
The classes:

lost
    A record acknowledged in the source that is not in the destination.
duplicate
    A record (key, seq) stored more than once in the destination.
order
    Within a destination partition, a record of a key stored after a later record of that key
    (first copies only: a second copy counts as a duplicate, not as disorder).
stuck
    The relay group's lag on a source partition is not 0 by the deadline (session timeout + 20 s
    after the faults stopped): the relays stopped moving.

Controls (deliberately broken relays, :data:`relay.CONTROLS`) log the source spans they
committed, stored or reversed; :func:`caught` traces an anomaly back to them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .anomaly import Anomaly, fmt
from .check import Result
from .history import TP, History
from .relay import CONTROLS

CLASSES = ("lost", "duplicate", "order", "stuck")
SINK = "sink"


def outputs(h: History) -> dict[int, list[tuple[int, str, int]]]:
    """The destination as read back: partition -> [(offset, key, seq), ...] in offset order."""
    out: dict[int, list[tuple[int, str, int]]] = {}
    for e in h.events.get(SINK, []):
        if e["ev"] == "out":
            out.setdefault(int(e["p"]), []).append((int(e["o"]), e["k"], int(e["s"])))
    return {p: sorted(rows) for p, rows in out.items()}


def _sources(h: History) -> dict[tuple[str, int], tuple[TP, int]]:
    """(key, seq) -> (source partition, source offset), from the producers' acknowledgements."""
    return {(a.k, a.s): (a.tp, a.key[0]) for a in h.acks}


def _detail(src: dict[tuple[str, int], tuple[TP, int]], k: str, s: int, **more: Any) -> dict[str, Any]:
    tp, offset = src.get((k, s), (("?", -1), -1))
    return {"tp": list(tp), "offset": offset, "k": k, "s": s, **more}


def check_relay(h: History) -> dict[str, list[Anomaly]]:
    src = _sources(h)
    out = outputs(h)
    t = h.drain.deadline if h.drain else 0.0
    stored = Counter((k, s) for rows in out.values() for _, k, s in rows)
    lost = [
        Anomaly(
            "lost",
            f"{a.k}:{a.s} acknowledged at {fmt(a.tp)}@{a.key[0]}, not in the destination",
            a.t,
            (a.proc,),
            _detail(src, a.k, a.s),
        )
        for a in h.acks
        if (a.k, a.s) not in stored
    ]
    dups = [
        Anomaly("duplicate", f"{k}:{s} stored {n} times in the destination", t, (), _detail(src, k, s, copies=n))
        for (k, s), n in sorted(stored.items())
        if n > 1
    ]
    order = []
    for p, rows in sorted(out.items()):
        seen: set[tuple[str, int]] = set()
        high: dict[str, tuple[int, int]] = {}  # key -> (greatest seq stored so far, at offset)
        for o, k, s in rows:
            if (k, s) in seen:
                continue
            seen.add((k, s))
            top = high.get(k)
            if top is not None and top[0] > s:
                order.append(Anomaly("order", f"{k}:{s} stored at destination[{p}]@{o}, after {k}:{top[0]} (@{top[1]})",
                                     t, (), _detail(src, k, s, later=top[0])))  # fmt: skip
            else:
                high[k] = (s, o)
    stuck = []
    if h.drain is not None:
        for tp, lag in sorted(h.drain.lag.items()):
            if lag != 0:
                stuck.append(Anomaly("stuck", f"{fmt(tp)}: the relay group's lag is {lag} at the deadline, "
                                     f"{h.drain.deadline - h.drain.quiet:.1f} s after the faults stopped", h.drain.deadline,
                                     (), {"tp": list(tp), "lag": lag}))  # fmt: skip
    return {"lost": lost, "duplicate": dups, "order": order, "stuck": stuck}


def check(h: History) -> Result:
    anomalies = check_relay(h)
    out = outputs(h)
    relays = [p for p in h.procs.values() if p.role == "relay"]
    errors = Counter(e["err"].partition(":")[0] for name in h.events for e in h.events[name]
                     if e["ev"] == "error" and h.procs[name].role == "relay")  # fmt: skip
    figures = {
        "records acknowledged": len({(a.k, a.s) for a in h.acks}),
        "records in the destination": sum(len(rows) for rows in out.values()),
        "relay processes": len(relays),
        "relay processes that raised": sum(errors.values()),
        **{f"relay errors {name}": n for name, n in sorted(errors.items())},
        **dict(h.figures),
    }
    return Result(anomalies, figures)


def _within(spans: list[list[Any]], tp: list[Any], offset: int) -> bool:
    return any([t, p] == tp and lo <= offset <= hi for t, p, lo, hi in spans)


def caught(cls: str, result: Result, h: History, slot: str) -> bool:
    """Whether an anomaly of ``cls`` concerns a source record the control relay of slot ``slot``
    committed before storing (lost), stored without committing (duplicate), or sent backwards
    (order)."""
    event = {"lost": "commit", "duplicate": "flushed", "order": "reversed"}[cls]
    spans = [span for name, events in h.events.items() if name.rpartition(".")[0] == slot
             for e in events if e["ev"] == event for span in e["spans"]]  # fmt: skip
    return any(_within(spans, a.detail["tp"], a.detail["offset"]) for a in result.anomalies.get(cls, []))


MODE_FOR = {cls: mode for mode, cls in CONTROLS.items()}
CONTROLLED = tuple(CONTROLS.values())
"""The classes a control relay exists for (``stuck`` has none)."""
