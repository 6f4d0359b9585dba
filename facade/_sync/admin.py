# Generated from facade/_async/admin.py by scripts/unasync.py: edit that file, not this one.
"""Topic administration: create, list, describe, delete, add partitions.

This module is the asyncio source of truth; facade/_sync/admin.py is generated from it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

from .. import keys, offsets, scripts
from ..cluster import partition_nodes
from ..descriptions import MigrationReport, PartitionStats, ReplicaSet, ServerDescription
from ..errors import ConfigError, PermissionDeniedError, TopicExistsError, from_redis
from ..records import (
    GroupDescription,
    Message,
    OffsetReset,
    PartitionInfo,
    TopicConfig,
    TopicDescription,
    TopicPartition,
)
from . import broker, dlq, groups, logs, migrate, replication
from .client import Connection, topic_from_json, topic_to_json
from .topics import create_topic, init_partitions

log = logging.getLogger("facade")

__all__ = ["Admin"]


def _text(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


class Admin:
    """Manage topics. ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker).

    ``reconnect_timeout_ms``: with a Sentinel URL, how long a call waits for the new primary
    during a failover (the sentinels answer, but name no primary yet or one that is down) before
    it fails, as a consumer's ``reconnect_timeout_ms``."""

    def __init__(self, url: str | None = None, *, reconnect_timeout_ms: int = 30_000) -> None:
        if isinstance(reconnect_timeout_ms, bool) or not isinstance(reconnect_timeout_ms, int) or reconnect_timeout_ms < 0:
            raise ConfigError(f"reconnect_timeout_ms must be an integer >= 0, got {reconnect_timeout_ms!r}")
        self._conn = Connection(url, failover_wait_s=reconnect_timeout_ms / 1000)

    @classmethod
    def over(cls, conn: Connection) -> Admin:
        """An Admin using an open facade connection (the Kafka gateway: one per authenticated
        principal); closing it closes ``conn``."""
        admin = cls.__new__(cls)
        admin._conn = conn
        return admin

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
        timestamp_type: str = "CreateTime",
        dedup_max_ids: int = 100_000,
        dedup_window_ms: int = 120_000,
        exist_ok: bool = False,
    ) -> TopicConfig:
        """Create topic ``name`` with ``partitions`` streams (1..1024).

        ``retention_ms`` drops records older than that (checked as records are appended);
        ``max_len`` keeps about that many records per partition; with ``ack_retention`` neither
        drops a record some consumer group has not committed. ``timestamp_type``: "CreateTime"
        (records keep the producer's timestamp) or "LogAppendTime" (the broker's append time).
        ``dedup_max_ids`` (1 to 10,000,000): ``send(dedup_id=...)`` ids remembered per partition;
        ``dedup_window_ms`` (1 ms to 10 years): how long each is remembered. Both are the topic's:
        every producer's repeats are judged by them. TopicExistsError if it exists, unless
        ``exist_ok`` (then the existing topic's settings are returned).
        """
        try:
            return create_topic(
                self._conn, name, partitions, retention_ms=retention_ms, max_len=max_len, ack_retention=ack_retention,
                timestamp_type=timestamp_type, dedup_max_ids=dedup_max_ids, dedup_window_ms=dedup_window_ms,
            )  # fmt: skip
        except TopicExistsError:
            if not exist_ok:
                raise
            return self._conn.topic(name, any_layout=True)

    def topic(self, name: str) -> TopicConfig:
        """The settings of topic ``name`` (UnknownTopicError if missing)."""
        return self._conn.topic(name, any_layout=True)

    def list_topics(self) -> list[TopicConfig]:
        """Every topic, sorted by name."""
        raw = self._conn.command("listing topics", "HGETALL", keys.TOPICS)
        items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        return sorted((topic_from_json(v) for _, v in items), key=lambda t: t.name)

    def describe_topic(self, name: str) -> TopicDescription:
        """Settings, per-partition state (length, log start and end offsets, stream key, shard) and
        the groups reading it."""
        cfg = self._conn.topic(name)
        tps = [TopicPartition(name, p) for p in range(cfg.partitions)]
        ends = logs.log_offsets(self._conn, tps)
        ginfos = self._conn.commands([("XINFO GROUPS", keys.stream(name, p)) for p in range(cfg.partitions)],
                                           f"describing topic {name}")  # fmt: skip
        readers: set[str] = set()
        for ginfo in ginfos:
            if isinstance(ginfo, Exception):
                error = from_redis(ginfo, f"describing topic {name}")
                if isinstance(error, PermissionDeniedError):
                    raise error
                continue  # the stream is missing (a partition being created): no groups yet
            readers.update(_text(g["name"]) or "" for g in ginfo)
        shards = partition_nodes(self._conn, name, cfg.partitions)
        parts = tuple(
            PartitionInfo(tp.partition, keys.stream(name, tp.partition), ends[tp].length, ends[tp].start, ends[tp].end,
                          shards.get(tp.partition))
            for tp in tps
        )
        return TopicDescription(cfg, parts, tuple(sorted(readers)))

    def list_offsets(
        self, partitions: list[TopicPartition] | TopicPartition, spec: str | int = "latest"
    ) -> dict[TopicPartition, int | None]:
        """Kafka's ListOffsets: for each partition, the log start offset (``spec="earliest"``),
        the log end offset (``"latest"``), or the first offset appended at or after a time
        (``spec`` an int, ms since the epoch; None when there is none)."""
        tps = [partitions] if isinstance(partitions, TopicPartition) else list(partitions)
        if isinstance(spec, int) and not isinstance(spec, bool):
            found = logs.offsets_for_times(self._conn, {tp: spec for tp in tps})
            return {tp: (hit.offset if hit else None) for tp, hit in found.items()}
        if spec not in ("earliest", "latest"):
            raise ConfigError(f"spec must be 'earliest', 'latest' or a time in ms since the epoch, got {spec!r}")
        ends = logs.log_offsets(self._conn, tps)
        return {tp: (lo.start if spec == "earliest" else lo.end) for tp, lo in ends.items()}

    def migrate_topic(self, name: str) -> MigrationReport:
        """Carry a topic made by an older facade (key layout 1, stream-ID offsets) over to dense
        offsets, keeping its records (key, value, headers, append time) in order and each group's
        committed position (its first unacknowledged record). The groups reading it must have no
        live members. Safe to run again after an interruption; a topic already at the current
        layout is left alone (``already``). Idempotent-producer and dedup windows restart."""
        return migrate.migrate_topic(self._conn, name)


    def read_records(self, partition: TopicPartition, offset: int = 0, max_records: int = 100) -> list[Message]:
        """Up to ``max_records`` stored records of ``partition`` from ``offset`` on (the log start
        when ``offset`` is below it), without a consumer group: nothing is committed or changes
        (what a message browser shows; ``list_offsets`` finds the offset for a time)."""
        if not isinstance(partition, TopicPartition):
            raise ConfigError(f"partition must be a TopicPartition, got {type(partition).__name__}")
        offsets.validate(offset, "offset")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or not 1 <= max_records <= 10_000:
            raise ConfigError(f"max_records must be an integer from 1 to 10000, got {max_records!r}")
        cfg = self._conn.topic(partition.topic)
        if not 0 <= partition.partition < cfg.partitions:
            raise ConfigError(
                f"topic {partition.topic!r} has partitions 0 to {cfg.partitions - 1}, not {partition.partition}"
            )
        return logs.read_records(self._conn, partition, offset, max_records)

    def delete_records(self, offsets_before: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Kafka's DeleteRecords: remove each partition's records before the given offset (-1: all
        stored); returns each partition's new log start offset. Offsets of the remaining records
        do not change; consumer groups positioned before it continue at the new log start."""
        out = {}
        for tp, before in offsets_before.items():
            if isinstance(before, bool) or not isinstance(before, int) or before < -1:
                raise ConfigError(f"delete_records offset for {tp.topic}[{tp.partition}] must be -1 or >= 0, got {before!r}")
            self._conn.topic(tp.topic)
            out[tp] = logs.delete_before(self._conn, tp, before)
        return out

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
        new = dataclasses.replace(cfg, partitions=partitions)
        stored = self._conn.script(*scripts.topic_register(name, topic_to_json(new), "alter"), context=f"altering topic {name}")
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
        to_offset: int | None = None,
        execute: bool = False,
    ) -> list[OffsetReset]:
        """Plan new committed offsets for ``group`` on each partition of ``topic`` (one target),
        and apply them when ``execute`` is true: the next record the group reads there is
        ``OffsetReset.target``. Refused while the group has live members, as in Kafka (members
        whose session expired do not count); all partitions or none."""
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

    def describe_replicas(self) -> ReplicaSet:
        """The replicas ``acks="all"`` waits for by default (every configured one: the sentinels'
        list, the cluster's, or on one server every replica seen attached), each with its state."""
        return replication.configured_replicas(self._conn, remember=False)

    def forget_replica(self, address: str) -> bool:
        """One server: forget replica ``address`` ("ip:port"), removed for good, so that
        ``acks="all"`` stops waiting for it. Returns whether it was remembered."""
        return replication.forget_replica(self._conn, address)

    def describe_server(self) -> ServerDescription:
        """The server: version, role, memory and its limit, uptime, attached replicas; for a
        Sentinel URL also the primary the sentinels name; for a cluster its primaries summed."""
        return broker.describe_server(self._conn)

    def partition_stats(self, topics: Iterable[TopicConfig]) -> list[PartitionStats]:
        """Stream counters (length, first/last offset, records ever appended, records each group
        was delivered) of every partition of ``topics`` (from :meth:`list_topics`), in one round
        trip: what rates and trends are computed from."""
        return broker.partition_stats(self._conn, topics)

    def uncommitted_age_ms(self, partitions: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], int]:
        """For each ``(group, topic, partition)``, how long ago (ms) the group's oldest uncommitted
        record was appended: its lag in time. Those with nothing left to commit are left out."""
        return broker.uncommitted_age_ms(self._conn, partitions)

    def delete_group(self, group: str) -> None:
        """Delete a consumer group (coordination state and its stream groups). Refused while it
        has live members."""
        groups.delete_group(self._conn, group)
