"""Kafka vocabulary as small immutable records.

Offsets are Redis stream entry IDs (``"<ms>-<seq>"``): they order entries within a partition and
carry the append time in milliseconds, so ``timestamp_ms`` is read from the offset itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple


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
    offset: str | None
    """Stream entry ID of the record (``"<ms>-<seq>"``); None with acks=0 (no reply awaited)."""

    @property
    def timestamp_ms(self) -> int:
        """Append time, in milliseconds since the epoch (the first part of the offset); -1 when
        the offset is unknown (acks=0)."""
        return offset_ms(self.offset) if self.offset else -1


_NO_HEADERS: Mapping[str, bytes] = MappingProxyType({})


class Message(NamedTuple):
    """A record delivered to a consumer.

    A NamedTuple rather than a dataclass: consumers build one per record, and a tuple is several
    times cheaper to create.
    """

    topic: str
    partition: int
    offset: str
    key: bytes | None
    value: bytes
    headers: Mapping[str, bytes] = _NO_HEADERS
    delivery_count: int = 1

    @property
    def timestamp_ms(self) -> int:
        """Append time, in milliseconds since the epoch (the first part of the offset)."""
        return offset_ms(self.offset)

    @property
    def topic_partition(self) -> TopicPartition:
        """The (topic, partition) this record came from."""
        return TopicPartition(self.topic, self.partition)


for _name, _doc in {
    "topic": "Topic it was read from.",
    "partition": "Partition it was read from.",
    "offset": 'Stream entry ID ("<ms>-<seq>"); orders records within the partition.',
    "key": "The record key, or None for a keyless record.",
    "value": "The record value (possibly empty).",
    "headers": "Header name -> value.",
    "delivery_count": "How many times this record has been delivered to the group (1 on first delivery).",
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
    """Retention never trims records a consumer group has not acknowledged yet (the topic may
    then grow past max_len / retention_ms while a group lags)."""


@dataclass(frozen=True)
class PartitionInfo:
    """State of one partition, as shown by ``Admin.describe_topic``."""

    partition: int
    """Partition number."""
    stream_key: str
    """The Redis key of the partition's stream."""
    length: int
    """Records currently stored."""
    first_offset: str | None
    """Offset of the oldest stored record, None when empty."""
    last_offset: str | None
    """Offset of the newest stored record, None when empty."""
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
    committed: str | None
    """Offset up to which the group has committed everything (None: nothing yet)."""
    last_delivered: str | None
    """Offset of the last record delivered to the group (its read position)."""
    log_end: str | None
    """Offset of the newest record in the partition (None when empty)."""
    lag: int | None
    """Records not yet delivered to the group (None when the server cannot tell)."""
    pending: int
    """Records delivered but not committed."""


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

    @property
    def lag(self) -> int | None:
        """Total records not yet delivered over all partitions (None if any is unknown)."""
        lags = [p.lag for p in self.partitions]
        return None if any(x is None for x in lags) else sum(lags)  # type: ignore[misc]


@dataclass(frozen=True)
class OffsetReset:
    """One partition of a (planned or executed) offset reset."""

    topic: str
    """Topic name."""
    partition: int
    """Partition number."""
    current: str | None
    """The group's last-delivered offset before the reset (None: never read)."""
    target: str
    """The last-delivered offset after it: the next record delivered is the first after this."""


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
    headers: Mapping[str, bytes | str] | None = None
    """Headers."""
    partition: int | None = None
    """An explicit partition, overriding the key."""


def offset_ms(offset: str) -> int:
    """Milliseconds part of a stream entry ID."""
    return int(offset.split("-", 1)[0])
