"""The poison-record workload's checks: the dead-letter topic holds exactly the poison records.

A run with the workload (``RunConfig.poison``) has a topic of its own, ``POISON_TOPIC``, fed by a
producer that logs as role ``poison-producer`` (so the group checks in :mod:`check` never see its
records), read by a group of :mod:`poison` workers with ``max_deliveries``. The runner stops the
workload after the main group drained, waits until every acknowledged record was either processed
or dead-lettered, and logs ``dlq`` {topic, records: [[p, offset, value, delivery_count, error],
...]}: the dead-letter topic as ``Admin.dlq_list`` shows it. Which records are poison follows
from their values (:func:`poison.poison`), so the checker needs nothing else:

dlq-innocent
    A record that is not poison is in the dead-letter topic (it was never failed or crashed on by
    a correct consumer: a consumer may dead-letter only what its application failed, or what
    kept crashing it).
dlq-missing
    An acknowledged poison record is not in the dead-letter topic (after the drain).
dlq-twice
    A record is in the dead-letter topic more than once.
dlq-lost
    An acknowledged healthy record of the workload was never processed.

The workers are not targets of the member faults (kill, pause, ...): a consumer killed while it
held one record alone counts that as a crash on the record, which is the documented rule, but would
make an innocent record look poisoned here after ``max_deliveries`` such kills. Poison records that
crash their process, broker restarts and cut connections do reach them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from facade import Admin, FacadeError

from .anomaly import Anomaly, fmt
from .events import read_log
from .history import TP, History
from .poison import poison

POISON_TOPIC, POISON_GROUP = "chaos-poison", "chaos-poison-group"
CLASSES = ("dlq-innocent", "dlq-missing", "dlq-twice", "dlq-lost")

Value = tuple[str, int]  # (key, seq): a record of the workload, by its value


def _value(text: str) -> Value:
    k, _, s = text.rpartition(":")
    return k, int(s)


def _snapshot(h: History) -> dict[str, Any] | None:
    """The runner's ``dlq`` event, or None when the run had no poison workload."""
    events = h.events.get("runner", [])
    return next((e for e in reversed(events) if e["ev"] == "dlq"), None)


def _by_role(h: History, role: str) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(name, h.events[name]) for name, p in sorted(h.procs.items()) if p.role == role]


def check(h: History) -> dict[str, list[Anomaly]]:
    """The dead-letter classes over a run's history ({} when the run had no poison workload)."""
    snap = _snapshot(h)
    if snap is None:
        return {}
    acked: dict[Value, tuple[str, float, TP, int]] = {}
    for name, events in _by_role(h, "poison-producer"):
        for e in events:
            if e["ev"] == "ack":
                acked[(e["k"], int(e["s"]))] = (name, e["t"], (str(e["topic"]), int(e["p"])), int(e["o"]))
    processed: dict[Value, list[str]] = defaultdict(list)
    failed: dict[Value, list[str]] = defaultdict(list)
    for name, events in _by_role(h, "poison"):
        for e in events:
            if e["ev"] in ("d", "fail", "crash"):
                (processed if e["ev"] == "d" else failed)[(e["k"], int(e["s"]))].append(name)
                h.figures[f"poison workload: {e['ev']} events"] += 1
    dead: dict[Value, list[list[Any]]] = defaultdict(list)
    for rec in snap["records"]:
        dead[_value(rec[2])].append(rec)
    t = float(snap["t"])
    out: dict[str, list[Anomaly]] = {cls: [] for cls in CLASSES}
    for v, recs in sorted(dead.items()):
        p, offset, text, count, error = recs[0]
        where = f"{fmt((snap['topic'], p))}@{offset} ({text}, delivery_count {count}, error {error!r})"
        if not poison(text):
            procs = tuple(dict.fromkeys(failed.get(v, [])))
            out["dlq-innocent"].append(Anomaly("dlq-innocent", f"{where} is not poison but was dead-lettered", t,
                                               procs, {"value": list(v), "offset": offset}))  # fmt: skip
        if len(recs) > 1:
            out["dlq-twice"].append(Anomaly("dlq-twice", f"{where} is in the dead letters {len(recs)} times", t, (),
                                            {"value": list(v)}))  # fmt: skip
    for v, (producer, at, tp, offset) in sorted(acked.items()):
        text = f"{v[0]}:{v[1]}"
        if poison(text) and v not in dead:
            procs = tuple(dict.fromkeys(processed.get(v, [])))
            what = "processed as healthy by " + ", ".join(procs) if procs else "never dead-lettered"
            out["dlq-missing"].append(Anomaly("dlq-missing", f"poison {fmt(tp)}@{offset} ({text}): {what}", at,
                                              procs or (producer,), {"tp": list(tp), "offset": offset}))  # fmt: skip
        elif not poison(text) and v not in processed and v not in dead:
            out["dlq-lost"].append(Anomaly("dlq-lost", f"{fmt(tp)}@{offset} ({text}) acknowledged, never processed",
                                           at, (producer,), {"tp": list(tp), "offset": offset}))  # fmt: skip
    h.figures["poison workload: records acknowledged"] = len(acked)
    h.figures["poison workload: poison records acknowledged"] = sum(poison(f"{k}:{s}") for k, s in acked)
    h.figures["poison workload: dead-lettered"] = sum(len(r) for r in dead.values())
    return out


def processed_or_dead(
    url: str, poison_logs: list[Any], acked: set[Value], timeout_s: float, tick: Callable[[], None] = lambda: None
) -> bool:
    """Wait (up to ``timeout_s``, calling ``tick`` meanwhile: restarts) until every value in
    ``acked`` was processed (a ``d`` event in one of the workers' logs) or dead-lettered;
    whether it came to that."""
    deadline = time.monotonic() + timeout_s
    while True:
        tick()
        done = set()
        for path in poison_logs:
            if path.exists():
                done |= {(e["k"], int(e["s"])) for e in read_log(path)[0] if e["ev"] == "d"}
        if acked <= done | {_value(d[2]) for d in snapshot(url)}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def snapshot(url: str) -> list[list[Any]]:
    """The dead letters of the workload's topic, as the ``dlq`` event records them."""
    with Admin(url) as admin:
        try:
            listed = admin.dlq_list(POISON_TOPIC, limit=1_000_000)
        except FacadeError:  # nothing dead-lettered yet: no dead-letter topic
            return []
    return [[int(m.headers["dlq.partition"]), int(m.headers["dlq.offset"]), m.value.decode(),
             int(m.headers["dlq.delivery_count"]), m.headers["dlq.error"].decode()] for m in listed]  # fmt: skip
