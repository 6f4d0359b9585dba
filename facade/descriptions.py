"""Frozen records Admin returns about the broker itself and the counters of its streams
(facade/records.py holds Kafka's vocabulary; these have no Kafka counterpart but the metrics
tools show). Read by ``Admin.describe_server``, ``Admin.partition_stats`` and
``Admin.uncommitted_age_ms``; the dashboard and the benchmarks draw them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfiguredReplica", "GroupCursor", "MigrationReport", "PartitionStats", "ReplicaDescription", "ReplicaSet", "ServerDescription"]


@dataclass(frozen=True)
class ReplicaDescription:
    """A replica attached to a primary (INFO replication)."""

    address: str
    """``host:port`` as the primary sees it."""
    state: str
    """"online", "wait_bgsave", "send_bulk", ..."""
    offset_lag: int | None
    """Bytes of replication stream it has not acknowledged yet."""
    lag_s: int | None
    """Seconds since its last acknowledgement."""
    primary: str = ""
    """On a cluster, ``host:port`` of the primary it replicates ("" on one server)."""


@dataclass(frozen=True)
class ServerDescription:
    """The server a URL leads to, or for a cluster its primaries taken together."""

    version: str
    """"valkey 9.1.2", "redis 7.0.15" (a cluster: the first primary's)."""
    role: str
    """"master" or "slave" (as INFO says), or "cluster of N primaries"."""
    used_memory: int
    """Bytes in use (a cluster: summed over the primaries)."""
    maxmemory: int
    """Bytes allowed; 0: no limit (a cluster: the sum, or 0 when any primary has none)."""
    maxmemory_policy: str
    uptime_s: int
    """Seconds since start (a cluster: the youngest primary's)."""
    replicas: tuple[ReplicaDescription, ...] = ()
    """Replicas attached to the primary (a cluster: to every primary)."""
    primary_link: str | None = None
    """For a replica: "host:port up|down"."""
    sentinel_primary: str | None = None
    """With a Sentinel URL: the primary the sentinels report (host:port), or
    "unknown (no sentinel answers)"."""
    config_epoch: int | None = None
    """With a Sentinel URL: the sentinels' config epoch (grows with every failover)."""
    run_id: str = ""
    """INFO's run_id (a cluster: every primary's, joined by ","): changes when a server restarts."""
    primaries: int = 1
    """Servers that take writes: 1, or a cluster's primaries."""


@dataclass(frozen=True)
class GroupCursor:
    """Where one consumer group's stream group stands on one partition (XINFO GROUPS)."""

    group: str
    delivered: int | None
    """Records delivered to the group so far (``entries-read``); None when the server cannot tell."""


@dataclass(frozen=True)
class PartitionStats:
    """Counters of one partition's stream (XINFO STREAM), for rates and trends."""

    topic: str
    partition: int
    length: int
    """Records stored now."""
    first_offset: int | None
    """Offset of the oldest stored record (None: empty)."""
    last_offset: int | None
    """Offset of the newest stored record (None: empty)."""
    appended: int
    """Records ever appended (``entries-added``; servers before Redis 7: the length)."""
    groups: tuple[GroupCursor, ...] = ()
    """The groups reading it, by name."""
    log_start_offset: int = 0
    """Kafka's log start offset: the oldest stored record's (the log end offset when empty)."""
    log_end_offset: int = 0
    """Kafka's log end offset (high watermark): the offset the next record gets."""
    shard: str | None = None
    """On a cluster, ``host:port`` of the primary serving the partition; None on one server."""


@dataclass(frozen=True)
class MigrationReport:
    """What ``Admin.migrate_topic`` did to a topic of the older key layout."""

    topic: str
    partitions: int
    """Partitions carried over by this call (not those an earlier, interrupted call did)."""
    records: int
    """Records copied by this call."""
    groups: tuple[str, ...]
    """Groups whose committed offsets were carried over."""
    already: bool
    """The topic was already at the current layout: nothing was done."""


@dataclass(frozen=True)
class ConfiguredReplica:
    """A replica the deployment is configured with (see ``Admin.describe_replicas``)."""

    address: str
    """``ip:port`` as the primary (or the sentinels, or the cluster) name it."""
    state: str
    """"in sync" (attached, online, acknowledged within 10 s), or what it is instead ("not
    attached", "wait_bgsave, lag 0 s", "failed", ...)."""


@dataclass(frozen=True)
class ReplicaSet:
    """The replicas acks="all" waits for by default: every configured one."""

    replicas: tuple[ConfiguredReplica, ...]
    source: str
    """Where the list comes from: "sentinel" (SENTINEL REPLICAS), "cluster" (CLUSTER NODES; the
    smallest shard's replicas) or "remembered" (one server: every replica seen attached, kept in
    ``facade:{meta}:replicas`` until forgotten)."""

    @property
    def missing(self) -> tuple[ConfiguredReplica, ...]:
        """The configured replicas not in sync now."""
        return tuple(r for r in self.replicas if r.state != "in sync")
