"""The checker's vocabulary: the classes of anomaly, and one anomaly as found in a history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .history import TP

CLASSES = ("lost", "order", "duplicate", "split", "zombie", "orphan")


@dataclass(frozen=True)
class Anomaly:
    cls: str
    """One of CLASSES (or a class another workload's checks add)."""
    what: str
    """What happened, in a sentence that names the partition, offsets and processes."""
    t: float
    """When (wall-clock seconds)."""
    procs: tuple[str, ...]
    """The processes involved, the one that misbehaved (or received) first."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Machine-readable particulars (``tp``, offsets, times) for tracing it back."""


def fmt(tp: TP) -> str:
    return f"{tp[0]}[{tp[1]}]"
