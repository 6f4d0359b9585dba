# Generated from facade/_async/admin.py by scripts/unasync.py: edit that file, not this one.
"""Topic administration: create, list, describe, delete, add partitions.

This module is the asyncio source of truth; facade/_sync/admin.py is generated from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from .. import keys
from ..cluster import partition_nodes
from ..descriptions import PartitionStats, ServerDescription
from ..errors import ConfigError, PermissionDeniedError, from_redis
from ..records import GroupDescription, Message, OffsetReset, PartitionInfo, TopicConfig, TopicDescription
from . import broker, dlq, groups
from .client import Connection, topic_from_json, topic_to_json
from .topics import create_topic, init_partitions

log = logging.getLogger("facade")

__all__ = ["Admin"]


def _text(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


class Admin:
    """Manage topics. ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker)."""

    def __init__(self, url: str | None = None) -> None:
        self._conn = Connection(url)

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._conn.close()

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        retention_ms: int | None = None,
        max_len: int | None = None,
        ack_retention: bool = False,
    ) -> TopicConfig:
        """Create topic ``name`` with ``partitions`` streams (1..1024).

        ``retention_ms`` drops records older than that (checked as records are appended);
        ``max_len`` keeps about that many records per partition; with ``ack_retention`` neither
        drops a record some consumer group has not acknowledged. TopicExistsError if it exists.
        """
        return create_topic(
            self._conn, name, partitions, retention_ms=retention_ms, max_len=max_len, ack_retention=ack_retention
        )

    def topic(self, name: str) -> TopicConfig:
        """The settings of topic ``name`` (UnknownTopicError if missing)."""
        return self._conn.topic(name)

    def list_topics(self) -> list[TopicConfig]:
        """Every topic, sorted by name."""
        raw = self._conn.command("listing topics", "HGETALL", keys.TOPICS)
        items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        return sorted((topic_from_json(v) for _, v in items), key=lambda t: t.name)

    def describe_topic(self, name: str) -> TopicDescription:
        """Settings, per-partition state (length, first/last offset, stream key) and reading groups."""
        cfg = self._conn.topic(name)
        pipe = self._conn.redis.pipeline(transaction=False)
        for p in range(cfg.partitions):
            s = keys.stream(name, p)
            pipe.xlen(s)
            pipe.xrange(s, count=1)
            pipe.xrevrange(s, count=1)
            pipe.xinfo_groups(s)
        results = broker.run_pipeline(self._conn, pipe, f"describing topic {name}")
        parts = []
        readers: set[str] = set()
        shards = partition_nodes(self._conn, name, cfg.partitions)
        for p in range(cfg.partitions):
            length, first, last, ginfo = results[4 * p : 4 * p + 4]
            for r in (length, first, last):
                if isinstance(r, Exception):
                    raise from_redis(r, f"describing topic {name}")
            if isinstance(ginfo, Exception):
                error = from_redis(ginfo, f"describing topic {name}")
                if isinstance(error, PermissionDeniedError):
                    raise error
                ginfo = []  # the stream is missing (a partition being created): no groups yet
            parts.append(
                PartitionInfo(
                    p,
                    keys.stream(name, p),
                    int(length) if not isinstance(length, Exception) else 0,
                    _text(first[0][0]) if first and not isinstance(first, Exception) else None,
                    _text(last[0][0]) if last and not isinstance(last, Exception) else None,
                    shards.get(p),
                )
            )
            readers.update(_text(g["name"]) for g in ginfo)
        return TopicDescription(cfg, tuple(parts), tuple(sorted(readers)))

    def delete_topic(self, name: str) -> None:
        """Delete topic ``name`` and all its keys (records, ownership, producer state)."""
        cfg = self._conn.topic(name)
        # Unregister first: clients stop finding the topic, and appends to its vanishing streams fail.
        self._conn.command(f"deleting topic {name}", "HDEL", keys.TOPICS, name)
        for p in range(cfg.partitions):
            self._conn.command(f"deleting topic {name}", "DEL", *keys.partition_keys(name, p))

    def alter_partitions(self, name: str, partitions: int) -> TopicConfig:
        """Raise topic ``name``'s partition count to ``partitions`` (it can only grow).

        As in Kafka, keys map to different partitions from then on: per-key order holds only
        among records sent after the change.
        """
        keys.validate_partitions(partitions)
        cfg = self._conn.topic(name)
        if partitions <= cfg.partitions:
            raise ConfigError(
                f"topic {name!r} has {cfg.partitions} partitions; the count can only grow (asked for {partitions})"
            )
        init_partitions(self._conn, name, cfg.partitions, partitions)
        new = TopicConfig(name, partitions, cfg.retention_ms, cfg.max_len, cfg.created_ms, cfg.layout, cfg.ack_retention)
        stored = self._conn.script(
            "topic_register", [keys.TOPICS], [name, topic_to_json(new), "alter"], f"altering topic {name}"
        )
        log.warning(
            "topic %s now has %d partitions (was %d): keys map to different partitions from now on",
            name,
            partitions,
            cfg.partitions,
        )
        return topic_from_json(stored)

    def list_groups(self) -> list[str]:
        """Consumer groups that have ever joined, sorted."""
        raw = self._conn.command("listing groups", "HKEYS", keys.GROUPS)
        return sorted(_text(g) or "" for g in raw)

    def describe_group(self, group: str) -> GroupDescription:
        """A group's generation, live members with their partitions, and per-partition committed
        offset, log end, lag and pending count (like ``kafka-consumer-groups --describe``)."""
        return groups.describe_group(self._conn, group)

    def reset_offsets(
        self,
        group: str,
        topic: str,
        *,
        to_earliest: bool = False,
        to_latest: bool = False,
        to_datetime_ms: int | None = None,
        shift_by: int | None = None,
        to_offset: str | None = None,
        execute: bool = False,
    ) -> list[OffsetReset]:
        """Plan new positions for ``group`` on each partition of ``topic`` (one target), and apply
        them when ``execute`` is true. Refused while the group has live members, as in Kafka.

        Pending records at or before a new position count as consumed; the next record delivered
        is the first after ``OffsetReset.target``."""
        return groups.reset_offsets(
            self._conn, group, topic, to_earliest=to_earliest, to_latest=to_latest,
            to_datetime_ms=to_datetime_ms, shift_by=shift_by, to_offset=to_offset, execute=execute,
        )  # fmt: skip

    def dlq_list(self, topic: str, limit: int = 100) -> list[Message]:
        """Dead-lettered records of ``topic`` (from ``<topic>.dlq``), with their ``dlq.*`` headers."""
        return dlq.list_dead(self._conn, topic, limit)

    def dlq_replay(self, topic: str) -> int:
        """Send the dead-lettered records of ``topic`` back to their original partitions and empty
        the dead-letter topic; returns how many moved. Safe to repeat after a crash."""
        return dlq.replay_dead(self._conn, topic)

    def describe_server(self) -> ServerDescription:
        """The server: version, role, memory and its limit, uptime, attached replicas; for a
        Sentinel URL also the primary the sentinels name; for a cluster its primaries summed."""
        return broker.describe_server(self._conn)

    def partition_stats(self, topics: Iterable[TopicConfig]) -> list[PartitionStats]:
        """Stream counters (length, first/last offset, records ever appended, records each group
        was delivered) of every partition of ``topics`` (from :meth:`list_topics`), in one round
        trip: what rates and trends are computed from."""
        return broker.partition_stats(self._conn, topics)

    def oldest_pending_ms(self, partitions: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], int]:
        """For each ``(group, topic, partition)``, how long (ms) its oldest delivered but not
        committed record has waited; those with none pending are left out."""
        return broker.oldest_pending_ms(self._conn, partitions)

    def delete_group(self, group: str) -> None:
        """Delete a consumer group (coordination state and its stream groups). Refused while it
        has live members."""
        groups.delete_group(self._conn, group)
