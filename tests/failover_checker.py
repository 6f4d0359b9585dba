"""Counting what a fault did to a topic: lost, duplicated and reordered records.

A fault test sends keyed records whose value is ``<key>:<seq>`` (seq counts up per key) and
records every acknowledged one in a :class:`Ledger`. After the run, :func:`read_topic` reads every
partition from the current primary and :func:`check` compares:

- lost: acknowledged, but not stored anywhere;
- duplicated: stored more than once;
- reordered: within its partition, a key's seqs are not increasing.

Records stored but never acknowledged (the producer gave up, or acks=0) are counted as
``unacknowledged_stored``, not as an error. A consumer's view is checked the same way by
:func:`check_consumed`: every stored record delivered at least once (nothing skipped), with
redeliveries counted.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import facade.keys
from facade._sync.connect import create_client
from facade.url import parse_url


def value_of(key: str, seq: int) -> str:
    """The value a fault test sends for the ``seq``-th record of ``key``."""
    return f"{key}:{seq}"


def parse_value(value: bytes | str) -> tuple[str, int]:
    text = value.decode() if isinstance(value, bytes) else value
    key, _, seq = text.rpartition(":")
    return key, int(seq)


class Ledger:
    """What the producer was told: every acknowledged (key, seq) with where it was stored, and
    when acknowledgements arrived (to measure how long a fault stopped them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[tuple[str, int], tuple[int, int | None]] = {}
        self.failed: dict[tuple[str, int], BaseException] = {}
        self.ack_times: list[float] = []

    def acknowledge(self, key: str, seq: int, partition: int, offset: int | None) -> None:
        with self._lock:
            self.acked[(key, seq)] = (partition, offset)
            self.ack_times.append(time.monotonic())

    def fail(self, key: str, seq: int, error: BaseException) -> None:
        with self._lock:
            self.failed[(key, seq)] = error

    def __len__(self) -> int:
        return len(self.acked)

    def longest_gap(self, start: float | None = None, end: float | None = None) -> float:
        """The longest time between two acknowledgements (s), within [start, end] if given: when
        a fault struck during steady production, how long nothing was acknowledged."""
        with self._lock:
            times = sorted(t for t in self.ack_times if (start is None or t >= start) and (end is None or t <= end))
        if start is not None and times:
            times.insert(0, start)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass(frozen=True)
class Stored:
    """One stored record: where, and what."""

    partition: int
    offset: int
    key: str
    seq: int


def read_topic(url: str, topic: str, partitions: int) -> list[Stored]:
    """Every record of ``topic``, partition by partition in offset order, read from the primary
    ``url`` names (through the sentinels for a Sentinel URL)."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    client = create_client(parse_url(url), retry=Retry(ExponentialBackoff(0.5, 0.05), 20))
    try:
        out = []
        for p in range(partitions):
            for entry_id, fields in client.xrange(facade.keys.stream(topic, p), "-", "+"):
                key, seq = parse_value(fields[b"value"])
                assert fields[b"key"].decode() == key, f"record {entry_id!r}: key and value disagree"
                out.append(Stored(p, int(entry_id.split(b"-")[1]), key, seq))
        return out
    finally:
        client.close()


@dataclass
class Report:
    """What :func:`check` found."""

    acknowledged: int
    stored: int
    lost: list[tuple[str, int]] = field(default_factory=list)
    duplicated: list[tuple[str, int]] = field(default_factory=list)
    reordered: list[tuple[int, str, int, int]] = field(default_factory=list)
    """(partition, key, seq, the seq stored before it)."""
    unacknowledged_stored: int = 0
    misplaced: list[tuple[str, int]] = field(default_factory=list)
    """Stored in another partition (or at another offset) than the acknowledgement said."""

    def summary(self) -> str:
        return (
            f"acknowledged={self.acknowledged} stored={self.stored} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} reordered={len(self.reordered)} "
            f"misplaced={len(self.misplaced)} stored-but-unacknowledged={self.unacknowledged_stored}"
        )


def check(ledger: Ledger, stored: list[Stored]) -> Report:
    """Compare what was acknowledged with what is stored."""
    report = Report(acknowledged=len(ledger.acked), stored=len(stored))
    copies = Counter((s.key, s.seq) for s in stored)
    report.duplicated = sorted(k for k, n in copies.items() if n > 1)
    report.lost = sorted(k for k in ledger.acked if k not in copies)
    report.unacknowledged_stored = sum(1 for k in copies if k not in ledger.acked)
    where = {(s.key, s.seq): (s.partition, s.offset) for s in stored}
    for k, (partition, offset) in ledger.acked.items():
        if k in where and (where[k][0] != partition or (offset is not None and where[k][1] != offset)):
            report.misplaced.append(k)
    last: dict[tuple[int, str], int] = {}
    for s in stored:  # read in offset order per partition
        before = last.get((s.partition, s.key))
        if before is not None and s.seq <= before:
            report.reordered.append((s.partition, s.key, s.seq, before))
        last[(s.partition, s.key)] = s.seq
    return report


@dataclass
class ConsumedReport:
    """What :func:`check_consumed` found."""

    stored: int
    delivered: int
    skipped: list[tuple[str, int]] = field(default_factory=list)
    redelivered: int = 0
    """Deliveries beyond the first of a record."""
    max_delivery_count: int = 0
    counted_redeliveries: int = 0
    """Deliveries that said so themselves (``delivery_count`` > 1)."""

    def summary(self) -> str:
        return (
            f"stored={self.stored} delivered={self.delivered} skipped={len(self.skipped)} "
            f"redelivered={self.redelivered} (with delivery_count>1: {self.counted_redeliveries}, "
            f"max delivery_count={self.max_delivery_count})"
        )


def check_consumed(stored: list[Stored], deliveries: list[Any]) -> ConsumedReport:
    """``deliveries``: every Message a consumer group received, in order (repeats included)."""
    seen = Counter(parse_value(m.value) for m in deliveries)
    report = ConsumedReport(stored=len(stored), delivered=len(deliveries))
    report.skipped = sorted((s.key, s.seq) for s in stored if (s.key, s.seq) not in seen)
    report.redelivered = sum(n - 1 for n in seen.values())
    report.counted_redeliveries = sum(1 for m in deliveries if m.delivery_count > 1)
    report.max_delivery_count = max((m.delivery_count for m in deliveries), default=0)
    return report


class KeyedSequences:
    """The next seq per key, for a producer cycling over ``keys`` keys."""

    def __init__(self, keys: int) -> None:
        self.keys = [f"k{i}" for i in range(keys)]
        self._next: dict[str, int] = defaultdict(int)
        self._i = 0

    def next(self) -> tuple[str, int]:
        key = self.keys[self._i % len(self.keys)]
        self._i += 1
        seq = self._next[key]
        self._next[key] = seq + 1
        return key, seq
