"""Prometheus metrics: of a broker, under kafka_exporter's names, and of this process's clients.

    facade exporter --listen :9308          # the CLI: the broker's metrics over HTTP

    from prometheus_client import REGISTRY, start_http_server
    REGISTRY.register(facade.exporter.BrokerCollector("redis://..."))   # the same, in your process
    REGISTRY.register(facade.exporter.ClientCollector())   # producers/consumers with metrics=True
    start_http_server(9308)

:class:`BrokerCollector` reads the broker at each scrape through the public SDK only (``Admin``:
``list_topics``, ``partition_stats``, ``list_groups``, ``describe_group``,
``uncommitted_age_ms``, ``describe_server``) into a :class:`Reading`, and :func:`families` turns
that into metric families. Where kafka_exporter has a metric for a figure its name and labels are
used (``kafka_topic_partition_current_offset{topic,partition}``,
``kafka_consumergroup_lag{consumergroup,topic,partition}``, ...), so Kafka dashboards and alerts
work unchanged; what Kafka has no metric for is ``facade_*``. docs/observability.md maps every
metric, with a Grafana dashboard and alert rules beside it.

prometheus_client is imported when a collector collects or a server starts, never by ``import
facade``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics as client_metrics
from ._sync.admin import Admin
from .descriptions import PartitionStats, ServerDescription
from .errors import ConfigError, FacadeError
from .records import GroupDescription

__all__ = [
    "DEFAULT_PORT",
    "BrokerCollector",
    "ClientCollector",
    "Reading",
    "exposition",
    "families",
    "parse_listen",
    "read",
    "serve",
]

log = logging.getLogger("facade")

DEFAULT_PORT = 9308
"""kafka_exporter's port, so scrape configs written for it need no change."""
DLQ_SUFFIX = ".dlq"
SAFE_POLICIES = ("noeviction",)
"""maxmemory policies that never drop a key (a record): any other may."""


@dataclass(frozen=True)
class Reading:
    """What one scrape read from the broker, through the SDK."""

    partitions: tuple[PartitionStats, ...]
    """Every partition of every topic (dead-letter topics included)."""
    groups: tuple[GroupDescription, ...]
    """Every consumer group's description (members, generation, per-partition progress)."""
    lag_ms: dict[tuple[str, str, int], int]
    """(group, topic, partition) -> age of the group's oldest uncommitted record, in ms."""
    server: ServerDescription | None
    """The server (None when it could not be read: an ACL without INFO, say)."""
    topic_partitions: dict[str, int]
    """Topic -> partition count."""


def read(admin: Admin) -> Reading:
    """Read everything the broker metrics show, with ``admin``."""
    configs = admin.list_topics()
    stats = admin.partition_stats(configs)
    groups = []
    for name in admin.list_groups():
        try:
            groups.append(admin.describe_group(name))
        except FacadeError:
            continue  # deleted between the listing and now
    lagging = [(g.group, p.topic, p.partition) for g in groups for p in g.partitions if p.lag]
    lag_ms = admin.uncommitted_age_ms(lagging)
    try:
        server: ServerDescription | None = admin.describe_server()
    except FacadeError as exc:
        log.warning("facade exporter: cannot read the server description: %s", exc)
        server = None
    return Reading(tuple(stats), tuple(groups), lag_ms, server, {c.name: c.partitions for c in configs})


def _prom() -> Any:
    try:
        from prometheus_client import core
    except ImportError as exc:  # pragma: no cover - a dependency of facade
        raise ConfigError("the exporter needs prometheus_client: pip install prometheus_client") from exc
    return core


class _Families:
    """Metric families by name, created on first use, in order."""

    def __init__(self) -> None:
        self.core = _prom()
        self.by_name: dict[str, Any] = {}

    def add(self, kind: str, name: str, help: str, labels: Sequence[str], values: Sequence[str], value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            cls = {
                "gauge": self.core.GaugeMetricFamily,
                "counter": self.core.CounterMetricFamily,
                "info": self.core.GaugeMetricFamily,
            }[kind]
            family = self.by_name[name] = cls(name, help, labels=list(labels))
        family.add_metric(list(values), value)

    def gauge(self, name: str, help: str, labels: Sequence[str] = (), values: Sequence[Any] = (), value: float = 0) -> None:
        self.add("gauge", name, help, labels, [str(v) for v in values], value)

    def counter(self, name: str, help: str, labels: Sequence[str] = (), values: Sequence[Any] = (), value: float = 0) -> None:
        self.add("counter", name, help, labels, [str(v) for v in values], value)


def families(reading: Reading) -> list[Any]:
    """The metric families of a :class:`Reading` (prometheus_client's), kafka_exporter's first."""
    f = _Families()
    server = reading.server
    tp = ("topic", "partition")
    shards = sorted({s.shard for s in reading.partitions if s.shard})
    replicas_of: dict[str, list[Any]] = {}
    for r in server.replicas if server else ():
        replicas_of.setdefault(r.primary, []).append(r)

    # -- brokers and topics (kafka_exporter) --------------------------------------------------
    f.gauge("kafka_brokers", "Servers that take writes: 1, or a Redis Cluster's primaries.",
            value=server.primaries if server else len(shards) or 1)  # fmt: skip
    for topic, count in sorted(reading.topic_partitions.items()):
        f.gauge("kafka_topic_partitions", "Number of partitions for this topic.", ["topic"], [topic], count)
    for s in reading.partitions:
        key = (s.topic, s.partition)
        f.gauge("kafka_topic_partition_current_offset", "Log end offset (the offset the next record gets).", tp, key,
                s.log_end_offset)  # fmt: skip
        f.gauge("kafka_topic_partition_oldest_offset", "Log start offset (the oldest stored record's).", tp, key,
                s.log_start_offset)  # fmt: skip
        attached = replicas_of.get(s.shard or "", [])
        in_sync = 1 + sum(1 for r in attached if r.state == "online")
        f.gauge("kafka_topic_partition_leader", "Index of the primary serving the partition (0 on one server).", tp,
                key, shards.index(s.shard) if s.shard in shards else 0)  # fmt: skip
        f.gauge("kafka_topic_partition_leader_is_preferred", "Always 1: a partition has no preferred leader here.",
                tp, key, 1)  # fmt: skip
        f.gauge("kafka_topic_partition_replicas", "The primary plus the replicas attached to it.", tp, key,
                1 + len(attached))  # fmt: skip
        f.gauge("kafka_topic_partition_in_sync_replica", "The primary plus its replicas whose link is online.", tp,
                key, in_sync)  # fmt: skip
        f.gauge("kafka_topic_partition_under_replicated_partition", "1 when a replica of its primary is not online.",
                tp, key, int(in_sync < 1 + len(attached)))  # fmt: skip

    # -- consumer groups (kafka_exporter) ----------------------------------------------------
    gtp = ("consumergroup", "topic", "partition")
    for g in reading.groups:
        offset_sum: dict[str, int] = {}
        lag_sum: dict[str, int] = {}
        for p in g.partitions:
            key3 = (g.group, p.topic, p.partition)
            committed = -1 if p.committed is None else p.committed
            f.gauge("kafka_consumergroup_current_offset",
                    "Committed offset of the group on the partition (-1: none committed).", gtp, key3, committed)  # fmt: skip
            f.gauge("kafka_consumergroup_lag",
                    "Records not committed yet: log end offset minus committed offset (minus the log start offset "
                    "when none was committed).", gtp, key3, p.lag)  # fmt: skip
            offset_sum[p.topic] = offset_sum.get(p.topic, 0) + max(0, committed)
            lag_sum[p.topic] = lag_sum.get(p.topic, 0) + p.lag
        for topic in sorted(offset_sum):
            f.gauge("kafka_consumergroup_current_offset_sum", "Committed offsets summed over the topic's partitions.",
                    ("consumergroup", "topic"), (g.group, topic), offset_sum[topic])  # fmt: skip
            f.gauge("kafka_consumergroup_lag_sum", "Lag summed over the topic's partitions.",
                    ("consumergroup", "topic"), (g.group, topic), lag_sum[topic])  # fmt: skip
        f.gauge("kafka_consumergroup_members", "Live members of the group.", ["consumergroup"], [g.group],
                len(g.members))  # fmt: skip

    # -- facade: partitions, groups, dead letters ---------------------------------------------
    stored = 0
    dead: dict[str, int] = {}
    for s in reading.partitions:
        key = (s.topic, s.partition)
        stored += s.length
        f.gauge("facade_topic_partition_records", "Records stored in the partition now.", tp, key, s.length)
        f.counter("facade_topic_partition_appended", "Records ever appended to the partition.", tp, key, s.appended)
        if s.shard:
            f.gauge("facade_topic_partition_shard", "The Redis Cluster primary serving the partition (always 1).",
                    (*tp, "shard"), (*key, s.shard), 1)  # fmt: skip
        if s.topic.endswith(DLQ_SUFFIX):
            origin = s.topic[: -len(DLQ_SUFFIX)]
            dead[origin] = dead.get(origin, 0) + s.length
    for origin, depth in sorted(dead.items()):
        f.gauge("facade_dead_letters", "Records in the topic's dead-letter topic (<topic>.dlq).", ["topic"], [origin],
                depth)  # fmt: skip
    for g in reading.groups:
        f.gauge("facade_consumergroup_generation", "The group's generation (grows at every membership change).",
                ["consumergroup"], [g.group], g.generation)  # fmt: skip
        for p in g.partitions:
            key3 = (g.group, p.topic, p.partition)
            base = p.committed if p.committed is not None else p.log_start_offset
            pending = max(0, (p.position if p.position is not None else base) - base)
            f.gauge("facade_consumergroup_pending",
                    "Records read by the partition's owner and not committed yet (its position minus the committed "
                    "offset).", gtp, key3, pending)  # fmt: skip
            f.gauge("facade_consumergroup_lag_seconds",
                    "How long ago the group's oldest uncommitted record was appended (0: nothing to commit).",
                    gtp, key3, reading.lag_ms.get(key3, 0) / 1000)  # fmt: skip
        for m in g.members:
            f.gauge("facade_consumergroup_member_partitions", "Partitions the current assignment gives the member.",
                    ("consumergroup", "member_id", "client_id", "host"), (g.group, m.member_id, m.client_id, m.host),
                    len(m.partitions))  # fmt: skip

    # -- facade: the server ----------------------------------------------------------------
    f.gauge("facade_up", "1: the broker was read at this scrape.", value=1)
    if server is not None:
        f.gauge("facade_server_info", "The server (always 1).", ("version", "role"), (server.version, server.role), 1)
        f.gauge("facade_server_used_memory_bytes", "Memory in use (a cluster: summed over the primaries).",
                value=server.used_memory)  # fmt: skip
        f.gauge("facade_server_maxmemory_bytes", "Memory allowed (0: no limit).", value=server.maxmemory)
        f.gauge("facade_server_memory_per_record_bytes",
                "Memory in use divided by the records stored (0 when none is stored).",
                value=server.used_memory / stored if stored else 0)  # fmt: skip
        f.gauge("facade_server_maxmemory_policy", "The server's maxmemory-policy (always 1).", ["policy"],
                [server.maxmemory_policy], 1)  # fmt: skip
        f.gauge("facade_server_eviction_risk",
                "1 when the maxmemory-policy lets the server evict keys, so records can be dropped.",
                value=int(server.maxmemory_policy not in SAFE_POLICIES))  # fmt: skip
        f.gauge("facade_server_uptime_seconds", "Seconds since the server started (a cluster: its youngest primary).",
                value=server.uptime_s)  # fmt: skip
        f.gauge("facade_server_replicas", "Replicas attached (a cluster: to all primaries).", value=len(server.replicas))
        for r in server.replicas:
            labels = ("replica", "primary")
            f.gauge("facade_replica_up", "1 when the replica's link is online.", labels, (r.address, r.primary),
                    int(r.state == "online"))  # fmt: skip
            f.gauge("facade_replica_info", "The replica's link state (always 1).", (*labels, "state"),
                    (r.address, r.primary, r.state), 1)  # fmt: skip
            if r.offset_lag is not None:
                f.gauge("facade_replica_lag_bytes", "Bytes of replication stream the replica has not acknowledged.",
                        labels, (r.address, r.primary), r.offset_lag)  # fmt: skip
            if r.lag_s is not None:
                f.gauge("facade_replica_last_ack_seconds", "Seconds since the replica's last acknowledgement.",
                        labels, (r.address, r.primary), r.lag_s)  # fmt: skip
        if server.sentinel_primary is not None:
            f.gauge("facade_sentinel_primary_info", "The primary the sentinels name now (always 1).", ["primary"],
                    [server.sentinel_primary], 1)  # fmt: skip
            if server.config_epoch is not None:
                f.gauge("facade_sentinel_config_epoch", "The sentinels' config epoch (grows at every failover).",
                        value=server.config_epoch)  # fmt: skip
    return list(f.by_name.values())


class BrokerCollector:
    """A prometheus_client collector that reads a facade broker at each scrape.

    ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker), or ``admin`` an Admin
    to read with. A scrape that cannot read the broker answers ``facade_up 0`` (and the error is
    logged) rather than failing, as exporters do. A maxmemory policy that can evict records is
    logged as a warning once (and is ``facade_server_eviction_risk 1``)."""

    def __init__(self, url: str | None = None, *, admin: Admin | None = None) -> None:
        self._admin = admin if admin is not None else Admin(url)
        self._lock = threading.Lock()  # one scrape at a time reads the broker
        self._warned_policy: str | None = None

    def describe(self) -> list[Any]:
        return []  # nothing read at registration: the broker may not be up yet

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        f = _Families()
        with self._lock:
            try:
                reading = read(self._admin)
            except FacadeError as exc:
                log.error("facade exporter: cannot read the broker: %s", exc)
                f.gauge("facade_up", "1: the broker was read at this scrape.", value=0)
                yield from f.by_name.values()
                return
        self._warn(reading.server)
        yield from families(reading)
        f.gauge("facade_scrape_duration_seconds", "How long reading the broker took at this scrape.",
                value=time.perf_counter() - started)  # fmt: skip
        yield from f.by_name.values()

    def _warn(self, server: ServerDescription | None) -> None:
        if server is None or server.maxmemory_policy == self._warned_policy:
            return
        self._warned_policy = server.maxmemory_policy
        if server.maxmemory_policy not in SAFE_POLICIES:
            log.warning(
                "facade exporter: the server's maxmemory-policy is %s: when memory is full it evicts keys, so "
                "records (and offsets, group state) can be dropped; set maxmemory-policy noeviction",
                server.maxmemory_policy,
            )

    def close(self) -> None:
        self._admin.close()


class ClientCollector:
    """A prometheus_client collector for the producers and consumers of this process built with
    ``metrics=True`` (``facade_producer_*``, ``facade_consumer_*``, labelled by ``client_id``)."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        core = _prom()
        by_name: dict[str, Any] = {}
        for m in sorted(client_metrics.live(), key=lambda m: (m.kind, m.client_id, m.created)):
            for s in m.samples():
                name = f"facade_{m.kind}_{s.name}"
                labels = [k for k, _ in s.labels]
                values = [v for _, v in s.labels]
                family = by_name.get(name)
                if s.kind == "histogram":
                    if family is None:
                        family = by_name[name] = core.HistogramMetricFamily(name, s.help, labels=labels)
                    family.add_metric(values, s.value.cumulative(), s.value.sum)
                else:
                    if family is None:
                        cls = core.CounterMetricFamily if s.kind == "counter" else core.GaugeMetricFamily
                        family = by_name[name] = cls(name.removesuffix("_total"), s.help, labels=labels)
                    family.add_metric(values, s.value)
        yield from by_name.values()


def parse_listen(text: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"``, ``"PORT"`` or ``"[::1]:PORT"`` -> (host, port); host "" for
    every address. ConfigError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen takes HOST:PORT, :PORT or PORT (port 1-65535), got {text!r}")
    return host, int(port)


def serve(
    url: str | None = None, host: str = "", port: int = DEFAULT_PORT, *, clients: bool = False
) -> tuple[Any, Any, BrokerCollector]:
    """Serve the broker's metrics (and, with ``clients``, this process's client metrics) over
    HTTP on ``host:port`` (any path answers, ``/metrics`` as usual) from a background thread.
    Returns (HTTP server, its thread, the collector): ``server.shutdown()`` stops it."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    collector = BrokerCollector(url)
    registry.register(collector)
    if clients:
        registry.register(ClientCollector())
    server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
    return server, thread, collector


def exposition(collectors: Iterable[Any]) -> str:
    """The text format of ``collectors``' metrics, as a scrape would get it."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    return generate_latest(registry).decode()
