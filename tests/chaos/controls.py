"""Control runs: deliberately broken members the checker must catch, one per class.

A control adds a member slot ``c-<mode>`` running one of :data:`member.CONTROLS`' broken modes
beside the healthy members. Some need a fault aimed at them (a ``swallow`` member only reports a
refused commit as a success if it loses its partitions while it holds a batch, so it is stopped
for longer than the session). A control counts as caught only if an anomaly of its class is
traced to the broken member, not merely present (a bug in the system under test may produce the
same class on its own).
"""

from __future__ import annotations

from typing import Any

from .check import Result
from .history import History
from .member import CONTROLS
from .poison import CONTROLS as POISON_CONTROLS

# Controls of the poison-record workload are workers of that workload (tests/chaos/poison.py).
MODE_FOR = {cls: mode for mode, cls in (*CONTROLS.items(), *POISON_CONTROLS.items())}

SLOT_OPTIONS: dict[str, dict[str, Any]] = {
    "commit-then-crash": {"crash_after": 3},
    "swallow": {"slow": True},
}

# (fraction of the fault phase, fault kind, its options) aimed at the control's member
TARGETED: dict[str, list[tuple[float, str, dict[str, Any]]]] = {
    "swallow": [(0.3, "pause", {"long": True}), (0.6, "pause", {"long": True})],
}

# Controls that can share a run. The phantom reads every record through a group of its own, so
# beside it nothing would ever look lost or late: it runs alone.
GROUPS = (("split",), ("lost", "order", "duplicate", "zombie", "orphan"), ("dlq-innocent", "dlq-missing"))


def groups(classes: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``classes`` split into runs that do not hide each other's anomalies."""
    out = [tuple(c for c in group if c in classes) for group in GROUPS]
    return [g for g in out if g]


def slot_name(cls: str) -> str:
    return f"c-{MODE_FOR[cls]}"


def _from(proc: str, slot: str) -> bool:
    return proc.rpartition(".")[0] == slot


def caught(cls: str, result: Result, history: History) -> bool:
    """Whether an anomaly of ``cls`` is traced to the control member of that class."""
    slot = slot_name(cls)
    found = result.anomalies.get(cls, [])
    if cls == "lost":
        # Committed by the broken member, then never processed by anyone.
        commits = [c for c in history.commits if c.outcome == "ok" and _from(c.proc, slot)]
        for a in found:
            tp, key = tuple(a.detail["tp"]), tuple(a.detail["key"])
            if any(tp in c.offsets and c.offsets[tp] > key for c in commits):
                return True
        return False
    if cls == "orphan":
        paused = {tp for proc, tps in history.unread.items() if _from(proc, slot) for tp in tps}
        return any(tuple(a.detail["tp"]) in paused for a in found)
    if cls in ("duplicate", "zombie"):
        return any(a.procs and _from(a.procs[0], slot) for a in found)
    return any(_from(p, slot) for a in found for p in a.procs)
