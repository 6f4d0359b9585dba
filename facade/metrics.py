"""Client metrics: what a producer or consumer did, counted in the process (opt-in, cheap).

Pure (no I/O, no dependency). A client built with ``metrics=True`` keeps a
:class:`ProducerMetrics` or :class:`ConsumerMetrics` and calls it at a few points (a batch
stored or failed, a retry, a round trip; a poll that returned records, an error, a generation,
a fenced commit); without it the client holds :data:`OFF`, whose methods do nothing, and every
hook is one call per batch or per poll, never per record. ``client.metrics()`` returns the
figures as plain data; :mod:`facade.exporter` serves those of every live client to Prometheus
(``ClientCollector``).

The names follow Kafka's client metrics (``record-send-total``, ``record-retry-total``,
``record-error-total``, ``batch-size``, ``request-latency``, ``records-consumed-total``,
``bytes-consumed-total``, ``fetch-size``, ``rebalance-total``, ...; docs/observability.md maps
each one), with histograms where Kafka keeps an average and a maximum.
"""

from __future__ import annotations

import operator
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BYTE_BUCKETS",
    "LATENCY_BUCKETS",
    "OFF",
    "RECORD_BUCKETS",
    "ConsumerMetrics",
    "Histogram",
    "ProducerMetrics",
    "Sample",
    "live",
]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: upper bounds of the latency histograms (produce, request, end-to-end)."""
RECORD_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
"""Records: upper bounds of the batch and fetch size histograms."""
BYTE_BUCKETS = tuple(2**i for i in range(6, 25, 2))  # 64 B .. 16 MiB
"""Bytes: upper bounds of the batch bytes histogram."""

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def live() -> list[Any]:
    """The metrics of every client alive in this process that was built with ``metrics=True``."""
    return list(_live)


class Histogram:
    """Counts of observations per bucket (Prometheus ``le`` buckets: ``counts[i]`` holds those
    <= ``bounds[i]``, the last one those above every bound), their sum and number."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, cumulative count), ..., ("+Inf", count)]``, as Prometheus exposes buckets."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


@dataclass(frozen=True)
class Sample:
    """One metric of one client: a counter's value, a gauge's or a histogram's."""

    name: str
    """Without the ``facade_producer_`` / ``facade_consumer_`` prefix, e.g. "record_send_total"."""
    kind: str
    """"counter", "gauge" or "histogram"."""
    labels: tuple[tuple[str, str], ...]
    value: Any
    """An int or float; for a histogram the :class:`Histogram`."""
    help: str


class _Off:
    """The metrics of a client built without ``metrics=True``: every hook does nothing."""

    __slots__ = ()
    enabled = False

    def batch_opened(self, batch: Any) -> None:
        pass

    def request(self, started: float, batches: int) -> None:
        pass

    def retried(self, topic: str, batch: Any) -> None:
        pass

    def batch_done(self, topic: str, batch: Any, error: BaseException | None) -> None:
        pass

    def consumed(self, records: Sequence[Any]) -> None:
        pass

    def error(self, error: BaseException) -> None:
        pass

    def generation(self, generation: int) -> None:
        pass

    def committed(self) -> None:
        pass

    def fenced(self) -> None:
        pass


OFF: Any = _Off()
"""What clients hold when metrics are off."""


_TOPIC = operator.itemgetter(0)  # Message fields, by position (a NamedTuple): map() runs in C
_VALUE = operator.itemgetter(4)
_TIMESTAMP = operator.itemgetter(7)


def _bytes(records: Sequence[Any]) -> int:
    """Value bytes of Messages (keys are left out: a second pass over every record would take
    the consumer's metrics past their 5 % budget; values are nearly all of a record's bytes)."""
    return sum(map(len, map(_VALUE, records)))


def batch_bytes(batch: Any) -> int:
    """Key, value and header bytes of a producer batch (facade.accumulator.Batch), counted as
    ``max_message_bytes`` counts them."""
    args = batch.args
    if batch.plain:  # key, value, key, value, ...
        return sum(map(len, args))
    total, i, end = 0, 0, len(args)
    while i < end:  # dedup id, field count, then field name / value pairs
        count = args[i + 1]
        for j in range(i + 2, i + 2 + count, 2):
            name = args[j]
            total += len(args[j + 1]) + (len(name) - 2 if name.startswith(b"h:") else 0)
        i += 2 + count
    return total


def _error_class(error: BaseException) -> str:
    return type(error).__name__


class _Client:
    kind = ""
    enabled = True

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.created = time.time()
        _live.add(self)

    def _counters(self, name: str, table: dict[Any, int], label: str | tuple[str, ...], help: str) -> Iterator[Sample]:
        names = (label,) if isinstance(label, str) else label
        for key, value in sorted(table.items()):
            values = key if isinstance(key, tuple) else (key,)
            yield Sample(name, "counter", (("client_id", self.client_id), *zip(names, map(str, values))), value, help)

    def _histogram(self, name: str, h: Histogram, help: str) -> Sample:
        return Sample(name, "histogram", (("client_id", self.client_id),), h, help)

    def samples(self) -> list[Sample]:  # pragma: no cover - each client kind says
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data: ``{name: value}`` for unlabelled ones, ``{name: {label
        values: value}}`` for the others; a histogram as ``{"count", "sum", "buckets"}``."""
        out: dict[str, Any] = {}
        for s in self.samples():
            value = s.value
            if isinstance(value, Histogram):
                value = {"count": value.count, "sum": value.sum, "buckets": dict(value.cumulative())}
            labels = [v for k, v in s.labels if k not in ("client_id", "consumergroup")]
            if labels:
                out.setdefault(s.name, {})["/".join(labels)] = value
            else:
                out[s.name] = value
        return out


class ProducerMetrics(_Client):
    """A producer's figures. Hooks are called by the producer's sender, one batch at a time."""

    kind = "producer"

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self.records: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.batch_records = Histogram(RECORD_BUCKETS)
        self.batch_bytes = Histogram(BYTE_BUCKETS)
        self.request_latency = Histogram(LATENCY_BUCKETS)
        self.produce_latency = Histogram(LATENCY_BUCKETS)
        self._opened: dict[int, float] = {}

    def batch_opened(self, batch: Any) -> None:
        """A partition batch got its first record (its records' wait starts)."""
        self._opened[id(batch)] = time.perf_counter()

    def request(self, started: float, batches: int) -> None:
        """One round trip of ``batches`` partition batches, begun at ``started`` (perf_counter)."""
        self.request_latency.observe(time.perf_counter() - started)

    def retried(self, topic: str, batch: Any) -> None:
        """A batch goes out again after a retriable failure."""
        self.retries[topic] = self.retries.get(topic, 0) + batch.n

    def batch_done(self, topic: str, batch: Any, error: BaseException | None) -> None:
        """A batch was stored (``error`` None) or failed for good."""
        opened = self._opened.pop(id(batch), None)
        n = batch.n
        if error is not None:
            key = (topic, _error_class(error))
            self.errors[key] = self.errors.get(key, 0) + n
            return
        size = batch_bytes(batch)
        self.records[topic] = self.records.get(topic, 0) + n
        self.bytes[topic] = self.bytes.get(topic, 0) + size
        self.batch_records.observe(n)
        self.batch_bytes.observe(size)
        if opened is not None:
            self.produce_latency.observe(time.perf_counter() - opened)

    def samples(self) -> list[Sample]:
        return [
            *self._counters("record_send_total", self.records, "topic", "Records stored by the broker."),
            *self._counters("byte_total", self.bytes, "topic", "Key, value and header bytes of the records stored."),
            *self._counters("record_retry_total", self.retries, "topic", "Records sent again after a retriable failure."),
            *self._counters("record_error_total", self.errors, ("topic", "error"), "Records that failed, by error class."),
            self._histogram("batch_size_records", self.batch_records, "Records per partition batch stored."),
            self._histogram("batch_size_bytes", self.batch_bytes, "Bytes per partition batch stored."),
            self._histogram("request_latency_seconds", self.request_latency, "One round trip to the broker."),
            self._histogram(
                "produce_latency_seconds", self.produce_latency,
                "From a batch's first record buffered to the broker's reply (linger included).",
            ),
        ]  # fmt: skip


class ConsumerMetrics(_Client):
    """A consumer's figures. Hooks are called from poll() and commit() (and the heartbeat's
    generation, read in poll())."""

    kind = "consumer"

    def __init__(self, client_id: str, group: str, topics: Sequence[str] = ()) -> None:
        super().__init__(client_id)
        self.group = group
        # A consumer of one topic hands out only its records.
        self._one_topic = topics[0] if len(topics) == 1 else None
        self.records: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.fetch_size = Histogram(RECORD_BUCKETS)
        self.e2e_latency = Histogram(LATENCY_BUCKETS)
        self.rebalances = 0
        self.fenced_commits = 0
        self.commits = 0
        self._generation: int | None = None

    def consumed(self, records: Sequence[Any]) -> None:
        """poll() hands out ``records`` (Messages): counts, bytes, and for each its end-to-end
        latency (now minus its timestamp: its create time, or its append time).

        Each pass over the records runs in C (map, sum, sorted, Counter): a poll of 1000 records
        costs about as much as decoding a few of them. The latency histogram is exact: a record's
        latency is at most a bound when its timestamp is at least now minus that bound, which a
        bisection of the sorted timestamps counts per bucket (no sort when the oldest and the
        newest fall in one bucket: then they all do)."""
        n = len(records)
        if not n:
            return
        now_ms = time.time() * 1000
        stamps = list(map(_TIMESTAMP, records))
        h = self.e2e_latency
        bounds, counts = h.bounds, h.counts
        # Records read together mostly have latencies in one bucket: then no sort is needed.
        oldest = bisect_left(bounds, (now_ms - min(stamps)) / 1000)
        if oldest == bisect_left(bounds, (now_ms - max(stamps)) / 1000):
            counts[oldest] += n
        else:
            stamps.sort()
            below = 0  # records counted in the buckets so far
            for i, bound in enumerate(bounds):
                within = n - bisect_left(stamps, now_ms - bound * 1000)
                counts[i] += within - below
                below = within
            counts[-1] += n - below
        h.sum += (n * now_ms - sum(stamps)) / 1000
        h.count += n
        self.fetch_size.observe(n)
        if self._one_topic is not None:  # the common case: nothing to tell apart
            topic = self._one_topic
            self.records[topic] = self.records.get(topic, 0) + n
            self.bytes[topic] = self.bytes.get(topic, 0) + _bytes(records)
            return
        for topic in sorted(set(map(_TOPIC, records))):
            mine = [m for m in records if m.topic == topic]
            self.records[topic] = self.records.get(topic, 0) + len(mine)
            self.bytes[topic] = self.bytes.get(topic, 0) + _bytes(mine)

    def error(self, error: BaseException) -> None:
        """poll() or commit() met ``error`` (retried or raised)."""
        name = _error_class(error)
        self.errors[name] = self.errors.get(name, 0) + 1

    def generation(self, generation: int) -> None:
        """The generation whose assignment the member follows; each new one is a rebalance."""
        if generation >= 0 and generation != self._generation:
            self.rebalances += 1  # the first join counts too, as in Kafka's rebalance-total
            self._generation = generation

    def committed(self) -> None:
        """A synchronous commit went through."""
        self.commits += 1

    def fenced(self) -> None:
        """A commit was refused: partitions had moved to another member."""
        self.fenced_commits += 1

    def samples(self) -> list[Sample]:
        group = (("client_id", self.client_id), ("consumergroup", self.group))
        return [
            *self._counters("records_consumed_total", self.records, "topic", "Records poll() handed out."),
            *self._counters("bytes_consumed_total", self.bytes, "topic", "Value bytes of the records handed out."),
            *self._counters("errors_total", self.errors, "error", "Errors poll() and commit() met, by class."),
            self._histogram("fetch_size_records", self.fetch_size, "Records per poll() that returned any."),
            self._histogram(
                "record_e2e_latency_seconds", self.e2e_latency,
                "From a record's timestamp (create or append time) to poll() handing it out.",
            ),
            Sample("rebalance_total", "counter", group, self.rebalances, "Generations (assignments) this member followed, its first join included."),
            Sample("commit_total", "counter", group, self.commits, "Synchronous commits that went through."),
            Sample("commit_fenced_total", "counter", group, self.fenced_commits,
                   "Commits refused because partitions had moved to another member."),
        ]  # fmt: skip
