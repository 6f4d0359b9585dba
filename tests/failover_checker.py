"""Counting what a fault did to a topic: lost, duplicated and reordered records.

A fault test (tests/test_failover.py, and the measuring runs of tests/failover_runs.py) sends keyed records whose value is ``<key>:<seq>`` (seq counts up per key) and
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

import facade.keys
from facade import FacadeError, Producer
from facade._sync.connect import create_client
from facade.local import sentinel as topology
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


# ---------------------------------------------------------------------------------------------
# Producing in the background while a topology is struck


def info(port: int) -> dict[str, Any]:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True) as r:
        return r.info("replication")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "") -> Any:
    """Call ``predicate`` until it returns something truthy, and return that; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting until {what or predicate}")
        time.sleep(interval)


def new_primary(data_dir: Path, old_port: int, timeout: float = 30) -> topology.TopologyStatus:
    """Wait until the sentinels name another primary than ``old_port``."""
    return wait_until(
        lambda: (st := topology.status(data_dir)).primary.port != old_port and st,
        timeout=timeout,
        interval=0.05,
        what=f"sentinels promote a replica instead of port {old_port}",
    )


class Background:
    """Run ``fn(stop_event)`` on a thread; ``finish()`` stops it and re-raises what it raised."""

    def __init__(self, fn: Callable[[threading.Event], Any]) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[threading.Event], Any]) -> None:
        try:
            self.result = fn(self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread by finish()
            self.error = exc

    def finish(self, timeout: float = 90) -> Any:
        self.stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background worker did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def producing(target: str, topic: str, ledger: Ledger, seqs: KeyedSequences, config: dict[str, Any], chunk: int = 20):
    """A Background body: send ``chunk`` records, flush, record their outcome, until stopped."""

    def run(stop: threading.Event) -> None:
        with Producer(target, **config) as producer:
            while not stop.is_set():
                sent = []
                for _ in range(chunk):
                    key, seq = seqs.next()
                    sent.append((key, seq, producer.send(topic, value_of(key, seq), key=key)))
                producer.flush()
                for key, seq, fut in sent:
                    try:
                        md = fut.result(timeout=120)
                    except FacadeError as exc:
                        ledger.fail(key, seq, exc)
                    else:
                        ledger.acknowledge(key, seq, md.partition, md.offset)

    return run


def wait_for_acks(ledger: Ledger, more: int, timeout: float = 60) -> None:
    target = len(ledger) + more
    wait_until(lambda: len(ledger) >= target, timeout=timeout, interval=0.02, what=f"{more} more acknowledgements")
