"""Kafka vocabulary as small immutable records.

Offsets are Kafka's: dense integers per partition (0, 1, 2, ...). Headers are Kafka's: an ordered
sequence of (name, value) pairs in which a name may repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, overload

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"


@dataclass(frozen=True, order=True)
class TopicPartition:
    """One partition of one topic."""

    topic: str
    """Topic name."""
    partition: int
    """Partition number, 0-based."""


@dataclass(frozen=True)
class RecordMetadata:
    """Where the broker stored a produced record."""

    topic: str
    """Topic the record was written to."""
    partition: int
    """Partition the record was written to."""
    offset: int | None
    """The record's offset in the partition; None with acks=0 (no reply awaited)."""
    timestamp_ms: int = -1
    """The record's timestamp: its create time (CreateTime topics) or the broker's append time
    (LogAppendTime topics); -1 when unknown (acks=0)."""


class Headers(tuple):
    """Record headers as Kafka has them: an ordered tuple of ``(name, value)`` pairs, ``name`` a
    str and ``value`` bytes; a name may repeat. ``headers.get(name)`` gives the last value of a
    name, ``headers.get_all(name)`` every value, ``headers[name]`` the last value or KeyError."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:
        """The last value of header ``name``, or ``default``."""
        found = default
        for n, v in self:
            if n == name:
                found = v
        return found

    def get_all(self, name: str) -> list[bytes]:
        """Every value of header ``name``, in order."""
        return [v for n, v in self if n == name]

    def keys(self) -> list[str]:
        """Header names in order (repeats included)."""
        return [n for n, _ in self]

    def items(self) -> list[tuple[str, bytes]]:
        """The ``(name, value)`` pairs."""
        return list(self)

    @overload  # type: ignore[override]
    def __getitem__(self, key: str) -> bytes: ...
    @overload
    def __getitem__(self, key: int) -> tuple[str, bytes]: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[tuple[str, bytes], ...]: ...
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            missing = object()
            value = self.get(key, missing)
            if value is missing:
                raise KeyError(key)
            return value
        return tuple.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return any(n == key for n, _ in self)
        return tuple.__contains__(self, key)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


NO_HEADERS = Headers()


class Message(NamedTuple):
    """A record delivered to a consumer.

    A NamedTuple rather than a dataclass: consumers build one per record, and a tuple is several
    times cheaper to create.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = NO_HEADERS
    delivery_count: int = 1
    timestamp_ms: int = -1
    timestamp_type: str = CREATE_TIME

    @property
    def topic_partition(self) -> TopicPartition:
        """The (topic, partition) this record came from."""
        return TopicPartition(self.topic, self.partition)

    @property
    def error(self) -> Any:
        """None, or the :class:`facade.DeserializationError` of a record whose key or value the
        consumer's deserializer could not read (reading that field raises it too)."""
        return None


for _name, _doc in {
    "topic": "Topic it was read from.",
    "partition": "Partition it was read from.",
    "offset": "Its offset in the partition (dense: 0, 1, 2, ...).",
    "key": "The record key, or None for a keyless record (after key_deserializer, if any).",
    "value": "The record value (after value_deserializer, if any); None for Kafka's null value (a tombstone a Kafka client wrote through facade gateway).",
    "headers": "Headers: an ordered tuple of (name, value) pairs (facade.Headers; names may repeat; a value is None where a Kafka client sent null).",
    "delivery_count": "How many times this record has been handed to the group's application (1 the first time).",
    "timestamp_ms": "Its timestamp in ms since the epoch: create time, or the broker's append time (timestamp_type).",
    "timestamp_type": '"CreateTime" (set by the producer) or "LogAppendTime" (set by the broker).',
}.items():
    getattr(Message, _name).__doc__ = _doc


@dataclass(frozen=True)
class TopicConfig:
    """A topic's settings, stored in Redis so that every client agrees on them."""

    name: str
    """Topic name."""
    partitions: int
    """Number of partitions (1..1024)."""
    retention_ms: int | None = None
    """Drop records older than this many milliseconds as new ones arrive; None keeps them."""
    max_len: int | None = None
    """Keep about this many records per partition (approximate trim); None keeps all."""
    created_ms: int = 0
    """Creation time, in milliseconds since the epoch (server clock)."""
    layout: int = 1
    """Version of the key layout the topic was created with."""
    ack_retention: bool = False
    """Retention never trims records a consumer group has not committed yet (the topic may then
    grow past max_len / retention_ms while a group lags)."""
    timestamp_type: str = CREATE_TIME
    """Record timestamps: "CreateTime" (the producer's, default) or "LogAppendTime" (the broker's)."""
    dedup_max_ids: int = 100_000
    """``send(dedup_id=...)`` ids remembered at most per partition (the oldest are forgotten first)."""
    dedup_window_ms: int = 120_000
    """``send(dedup_id=...)``: how long (ms) a dedup id is remembered after the record first sent
    with it was stored; a repeat within that time, from any producer, is dropped. The topic's, so
    that no producer's settings shorten another's (topics stored without it read as 120 s)."""


@dataclass(frozen=True)
class PartitionInfo:
    """State of one partition, as shown by ``Admin.describe_topic``."""

    partition: int
    """Partition number."""
    stream_key: str
    """The Redis key of the partition's stream."""
    length: int
    """Records currently stored."""
    log_start_offset: int
    """Offset of the oldest stored record (the log end offset when empty)."""
    log_end_offset: int
    """Offset the next record will get (Kafka's high watermark)."""
    shard: str | None = None
    """``"host:port"`` of the Redis Cluster primary serving the partition; None on one server."""


@dataclass(frozen=True)
class GroupPartitionInfo:
    """Where one consumer group stands on one partition (``kafka-consumer-groups --describe``)."""

    topic: str
    """Topic name."""
    partition: int
    """Partition number."""
    owner: str | None
    """Member id that currently owns the partition, None when unowned."""
    committed: int | None
    """Committed offset: the next offset the group reads after a handover (None: none yet)."""
    position: int | None
    """Where the current owner's reads have got to (None: the group never read the partition)."""
    log_start_offset: int
    """Offset of the oldest stored record."""
    log_end_offset: int
    """Offset the next record will get (the high watermark)."""
    lag: int
    """Records not committed yet: log end offset minus committed offset (or minus log start
    offset when nothing was committed)."""


@dataclass(frozen=True)
class GroupMember:
    """A live member of a consumer group."""

    member_id: str
    """The member's id (its group_instance_id for static members)."""
    topics: tuple[str, ...]
    """Topics it subscribes to."""
    partitions: tuple[TopicPartition, ...]
    """Partitions the current assignment gives it."""
    session_deadline_ms: int
    """When it is removed unless it heartbeats (ms since the epoch, server clock)."""
    host: str = ""
    """Host name the member runs on."""
    client_id: str = ""
    """The client id it gave (facade consumers: "facade"; Kafka clients: their client.id)."""


@dataclass(frozen=True)
class GroupDescription:
    """A consumer group: generation, members and per-partition progress."""

    group: str
    """The group id."""
    generation: int
    """Current generation (grows at every membership change)."""
    members: tuple[GroupMember, ...]
    """Live members, by id."""
    partitions: tuple[GroupPartitionInfo, ...]
    """Every partition the group has read, by topic and partition."""

    protocol: str = "facade"
    """Who the members are: "facade" (SDK consumers) or "kafka" (Kafka clients via the gateway)."""

    @property
    def lag(self) -> int:
        """Records not committed yet, over all partitions."""
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class OffsetReset:
    """One partition of a (planned or executed) offset reset."""

    topic: str
    """Topic name."""
    partition: int
    """Partition number."""
    current: int | None
    """The group's committed offset before the reset (None: nothing committed)."""
    target: int
    """The committed offset after it: the next record the group reads."""


@dataclass(frozen=True)
class TopicDescription:
    """A topic with its partitions and the groups reading it."""

    config: TopicConfig
    """The topic's settings."""
    partitions: tuple[PartitionInfo, ...]
    """Per-partition state, in partition order."""
    groups: tuple[str, ...] = ()
    """Consumer groups that have read from the topic."""


@dataclass(frozen=True)
class OutputRecord:
    """A record to produce as part of a consumer's commit (consume-transform-produce)."""

    source: Message
    """The consumed record it was made from: it is committed together with this output."""
    topic: str
    """Topic to write to."""
    value: bytes | str
    """The value."""
    key: bytes | str | None = None
    """The key (decides the partition, as for Producer.send)."""
    headers: Any = None
    """Headers: a mapping, or a sequence of (name, value) pairs (a name may repeat)."""
    partition: int | None = None
    """An explicit partition, overriding the key."""
    timestamp_ms: int | None = None
    """Create time to give the output (default: the source record's timestamp)."""


@dataclass(frozen=True)
class GroupMetadata:
    """Who this consumer is in its group (Kafka's ``ConsumerGroupMetadata``)."""

    group_id: str
    """The group."""
    generation_id: int
    """The generation whose assignment this member follows (-1 before it has one)."""
    member_id: str
    """This member session's id."""
    group_instance_id: str | None
    """The static member id, if any."""


@dataclass(frozen=True)
class OffsetAndMetadata:
    """An offset to commit, with Kafka's optional metadata string."""

    offset: int
    """The committed offset: the next record to read."""
    metadata: str = ""
    """Free text stored with the commit (at most 4096 characters)."""


@dataclass(frozen=True)
class OffsetAndTimestamp:
    """The answer of ``offsets_for_times`` for one partition."""

    offset: int
    """Offset of the first record appended at or after the time asked for."""
    timestamp_ms: int
    """That record's append time (ms since the epoch)."""


def headers_from(value: Any) -> Headers:
    """Headers from a mapping, a sequence of (name, value) pairs, or Headers (as is)."""
    if value is None:
        return NO_HEADERS
    if isinstance(value, Headers):
        return value
    items = value.items() if hasattr(value, "items") and not isinstance(value, (list, tuple)) else value
    return Headers(tuple(items))

