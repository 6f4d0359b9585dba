"""What ``facade dashboard`` shows, gathered from a broker into frozen snapshots.

:class:`Collector` reads the state with the SDK only (``Admin.list_topics``, ``list_groups``,
``describe_group``, ``partition_stats``, ``uncommitted_age_ms``, ``describe_server``), and remembers enough of the previous samples to turn counters into
rates (messages in and out per second) and lag trends. Drawing is cli/dashboard_view.py's job: it
gets a :class:`Snapshot` and nothing else, so it is tested with hand-made snapshots.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from facade import (
    Admin,
    FacadeError,
    GroupDescription,
    PartitionStats,
    ReplicaDescription,
    ServerDescription,
    TopicConfig,
    TopicPartition,
)

__all__ = [
    "Collector",
    "GroupPartitionRow",
    "GroupView",
    "MemberView",
    "Page",
    "PartitionRow",
    "RecordRow",
    "ReplicaView",
    "ServerView",
    "Snapshot",
    "TopicView",
    "offset_for_time",
    "rate",
    "read_page",
]

LAG_WINDOW_S = 10.0
"""A group's lag trend is its change over about this many seconds."""
LAG_HISTORY = 60
"""Samples of each group's lag kept for its sparkline."""
MAX_EVENTS = 5
"""Failovers and restarts remembered for the view."""


@dataclass(frozen=True)
class PartitionRow:
    """One partition of a topic."""

    partition: int
    length: int
    """Records stored."""
    first_offset: int | None
    """Offset of the oldest stored record (None: empty)."""
    last_offset: int | None
    """Offset of the newest stored record (None: empty)."""


@dataclass(frozen=True)
class GroupPartitionRow:
    """Where one group stands on one partition."""

    topic: str
    partition: int
    owner: str | None
    """Member that owns it, None when nobody does."""
    committed: int | None
    lag: int | None
    """Records not committed yet (log end offset - committed offset)."""
    pending: int
    """Read by the owner, not committed yet (its position - committed offset)."""
    oldest_pending_ms: int | None
    """How long ago the oldest record the group has not committed was appended (ms); None: all committed."""


@dataclass(frozen=True)
class TopicView:
    """A topic with its partitions, rates and readers."""

    name: str
    partitions: tuple[PartitionRow, ...]
    groups: tuple[str, ...]
    """Groups that read it."""
    in_rate: float | None = None
    """Records appended per second since the previous sample (None: first sample)."""
    out_rate: float | None = None
    """Records delivered to its groups per second, summed over the groups (None: unknown)."""
    retention_ms: int | None = None
    max_len: int | None = None
    ack_retention: bool = False

    @property
    def messages(self) -> int:
        """Records stored over every partition."""
        return sum(p.length for p in self.partitions)

    @property
    def is_dead_letters(self) -> bool:
        """Whether this is a dead-letter topic (``<topic>.dlq``)."""
        return self.name.endswith(".dlq")


@dataclass(frozen=True)
class MemberView:
    """A live member of a group."""

    member_id: str
    partitions: tuple[str, ...]
    """Its assignment as ``"topic:partition"``."""
    host: str = ""
    """Host name of the client (as the client gave it)."""
    client_id: str = ""
    """The client id it gave (Kafka's client.id; facade's default is "facade")."""


@dataclass(frozen=True)
class GroupView:
    """A consumer group."""

    group: str
    generation: int
    members: tuple[MemberView, ...]
    partitions: tuple[GroupPartitionRow, ...]
    lag: int | None
    """Total records not yet delivered (None: unknown)."""
    lag_delta: int | None = None
    """Change of ``lag`` over the last ~LAG_WINDOW_S seconds (None: not known yet)."""
    lag_history: tuple[int, ...] = ()
    """``lag`` at the last LAG_HISTORY samples, oldest first (the sparkline)."""

    @property
    def busy(self) -> bool:
        """Whether it has members or lag (shown before idle groups)."""
        return bool(self.members) or bool(self.lag) or self.pending > 0

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted({p.topic for p in self.partitions}))

    @property
    def pending(self) -> int:
        return sum(p.pending for p in self.partitions)

    @property
    def oldest_pending_ms(self) -> int | None:
        ages = [p.oldest_pending_ms for p in self.partitions if p.oldest_pending_ms is not None]
        return max(ages) if ages else None


ReplicaView = ReplicaDescription
"""A replica attached to the server (the SDK's record, under the name the view uses)."""
ServerView = ServerDescription
"""The server the URL leads to (the SDK's record, under the name the view uses)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything one dashboard frame shows."""

    broker: str
    """The broker, password hidden."""
    taken_ms: int
    """When (epoch ms, this machine's clock)."""
    topics: tuple[TopicView, ...] = ()
    groups: tuple[GroupView, ...] = ()
    server: ServerView | None = None
    events: tuple[str, ...] = ()
    """Recent failovers and restarts seen while watching, newest last ("12:00:03 failover: ...")."""
    error: str | None = None
    """Why (part of) this sample could not be read; the rest is from the last good one."""
    server_error: str | None = None
    """Why the server section is missing (an ACL that forbids INFO, say)."""


def rate(prev: tuple[float, float] | None, cur: tuple[float, float]) -> float | None:
    """Per-second rate between two ``(time_s, counter)`` samples; None without a usable previous
    sample (none yet, no time passed, or the counter went back: a topic was re-created)."""
    if prev is None:
        return None
    dt = cur[0] - prev[0]
    dv = cur[1] - prev[1]
    if dt <= 0 or dv < 0:
        return None
    return dv / dt


class Collector:
    """Reads snapshots of one broker; keeps the previous samples that rates and trends need."""

    def __init__(
        self,
        admin: Admin,
        broker: str,
        topics: Iterable[str] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.admin = admin
        self.broker = broker
        self.only = tuple(topics) if topics else None
        self._clock = clock
        self._counts: dict[tuple[str, str], tuple[float, float]] = {}  # (topic, "in"|"out") -> (t, n)
        self._lags: dict[str, collections.deque[tuple[float, int]]] = {}
        self._history: dict[str, collections.deque[int]] = {}
        self._events: collections.deque[str] = collections.deque(maxlen=MAX_EVENTS)
        self._primary: str | None = None
        self._run_id: str | None = None

    # -- public ---------------------------------------------------------------------------------

    def collect(self) -> Snapshot:
        """One sample. FacadeErrors from the topic and group reads propagate (the caller decides
        whether to show them); server details that cannot be read are left out with a reason."""
        now = self._clock()
        configs = self._topics()
        descriptions = self._groups({c.name for c in configs})
        stats = {(s.topic, s.partition): s for s in self.admin.partition_stats(configs)}
        wanted = [(d.group, p.topic, p.partition) for d in descriptions for p in d.partitions if p.lag]
        pending_age = self.admin.uncommitted_age_ms(wanted)
        readers: dict[str, set[str]] = collections.defaultdict(set)
        for d in descriptions:
            for p in d.partitions:
                readers[p.topic].add(d.group)
        topics = tuple(self._topic_view(c, stats, readers.get(c.name, set()), now) for c in configs)
        groups = tuple(self._group_view(d, pending_age, now) for d in descriptions)
        server, server_error = self._server()
        return Snapshot(
            broker=self.broker,
            taken_ms=int(time.time() * 1000),
            topics=topics,
            groups=groups,
            server=server,
            events=tuple(self._events),
            server_error=server_error,
        )

    # -- topics ---------------------------------------------------------------------------------

    def _topics(self) -> list[TopicConfig]:
        configs = self.admin.list_topics()
        if self.only is None:
            return configs
        wanted = set(self.only) | {f"{t}.dlq" for t in self.only}
        return [c for c in configs if c.name in wanted]

    def _topic_view(
        self,
        cfg: TopicConfig,
        stats: Mapping[tuple[str, int], PartitionStats],
        readers: set[str],
        now: float,
    ) -> TopicView:
        rows = []
        added = 0
        delivered: int | None = 0
        for p in range(cfg.partitions):
            s = stats.get((cfg.name, p)) or PartitionStats(cfg.name, p, 0, None, None, 0)
            rows.append(PartitionRow(p, s.length, s.first_offset, s.last_offset))
            added += s.appended
            for g in s.groups:
                readers.add(g.group)
                delivered = None if g.delivered is None or delivered is None else delivered + g.delivered
        in_rate = self._rate(cfg.name, "in", now, added)
        out_rate = self._rate(cfg.name, "out", now, delivered) if delivered is not None else None
        return TopicView(
            cfg.name,
            tuple(rows),
            tuple(sorted(readers)),
            in_rate,
            out_rate,
            cfg.retention_ms,
            cfg.max_len,
            cfg.ack_retention,
        )

    def _rate(self, topic: str, direction: str, now: float, count: int) -> float | None:
        key = (topic, direction)
        prev = self._counts.get(key)
        self._counts[key] = (now, float(count))
        return rate(prev, (now, float(count)))

    # -- groups ---------------------------------------------------------------------------------

    def _groups(self, shown: set[str]) -> list[GroupDescription]:
        out = []
        for name in self.admin.list_groups():
            try:
                d = self.admin.describe_group(name)
            except FacadeError:
                continue  # deleted between the listing and now
            if self.only is not None:
                subscribed = {t for m in d.members for t in m.topics}
                if not ({p.topic for p in d.partitions} | subscribed) & shown:
                    continue
                d = dataclasses.replace(d, partitions=tuple(p for p in d.partitions if p.topic in shown))
            out.append(d)
        return out

    def _group_view(
        self, d: GroupDescription, ages: Mapping[tuple[str, str, int], int], now: float
    ) -> GroupView:
        lag = d.lag
        delta = None
        history = self._lags.setdefault(d.group, collections.deque())
        if lag is not None:
            history.append((now, lag))
            while len(history) > 2 and now - history[1][0] >= LAG_WINDOW_S:
                history.popleft()
            if len(history) > 1:
                delta = lag - history[0][1]
            self._history.setdefault(d.group, collections.deque(maxlen=LAG_HISTORY)).append(lag)
        return GroupView(
            d.group,
            d.generation,
            tuple(
                MemberView(m.member_id, tuple(f"{tp.topic}:{tp.partition}" for tp in m.partitions), m.host,
                           m.client_id)
                for m in d.members
            ),
            tuple(
                GroupPartitionRow(
                    p.topic,
                    p.partition,
                    p.owner,
                    p.committed,
                    p.lag,
                    max(0, (p.position or 0) - (p.committed if p.committed is not None else p.log_start_offset)),
                    ages.get((d.group, p.topic, p.partition)),
                )
                for p in d.partitions
            ),
            lag,
            delta,
            tuple(self._history.get(d.group, ())),
        )

    # -- server ---------------------------------------------------------------------------------

    def _server(self) -> tuple[ServerView | None, str | None]:
        try:
            server = self.admin.describe_server()
        except FacadeError as exc:
            return None, " ".join(str(exc).split())
        if self._run_id and server.run_id != self._run_id and server.sentinel_primary is None:
            self._event(f"server restarted (uptime {server.uptime_s}s)")
        self._run_id = server.run_id
        primary = server.sentinel_primary
        if primary is not None and not primary.startswith("unknown"):
            if self._primary is not None and primary != self._primary:
                self._event(f"failover: primary {self._primary} -> {primary}")
            self._primary = primary
        return server, None

    def _event(self, text: str) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {text}")


@dataclass(frozen=True)
class RecordRow:
    """One record in the message browser."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Page:
    """A page of the message browser: records of one partition from an offset on."""

    topic: str
    partition: int
    partitions: int
    """The topic's partition count."""
    start: int
    """The offset asked for (the first record shown may be later: trimmed or deleted ones)."""
    log_start: int
    log_end: int
    records: tuple[RecordRow, ...] = ()
    error: str | None = None
    """Why the page could not be read (a bad time, say)."""


def read_page(admin: Admin, topic: str, partition: int, start: int | None, size: int) -> Page:
    """``size`` records of ``topic[partition]`` from offset ``start`` on (None: the last page),
    with the partition's log start and end offsets, through ``Admin.read_records``."""
    cfg = admin.topic(topic)
    partition = max(0, min(partition, cfg.partitions - 1))
    tp = TopicPartition(topic, partition)
    first = admin.list_offsets(tp, "earliest")[tp] or 0
    end = admin.list_offsets(tp, "latest")[tp] or 0
    if start is None:
        start = max(first, end - size)
    start = max(first, min(start, end))
    records = admin.read_records(tp, start, size) if end > start else []
    rows = tuple(RecordRow(m.offset, m.timestamp_ms, m.key, m.value, tuple(m.headers)) for m in records)
    return Page(topic, partition, cfg.partitions, start, first, end, rows)


def offset_for_time(admin: Admin, topic: str, partition: int, ms: int) -> int | None:
    """The first offset of ``topic[partition]`` appended at or after ``ms`` (None: none is)."""
    tp = TopicPartition(topic, partition)
    return admin.list_offsets(tp, ms)[tp]
