"""What ``facade dashboard`` shows, gathered from a broker into frozen snapshots.

:class:`Collector` reads the state with the SDK (``Admin.list_topics``, ``list_groups``,
``describe_group``) plus a few raw ``XINFO STREAM`` / ``XINFO GROUPS`` / ``XPENDING`` / ``INFO``
calls on one SDK connection, and remembers enough of the previous samples to turn counters into
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

from redis.exceptions import RedisClusterException, RedisError

from facade import Admin, BrokerError, FacadeError, GroupDescription, TopicConfig, keys
from facade._sync.client import Connection
from facade.errors import from_redis

__all__ = [
    "Collector",
    "GroupPartitionRow",
    "GroupView",
    "MemberView",
    "PartitionRow",
    "ReplicaView",
    "ServerView",
    "Snapshot",
    "TopicView",
    "rate",
]

LAG_WINDOW_S = 10.0
"""A group's lag trend is its change over about this many seconds."""
MAX_EVENTS = 5
"""Failovers and restarts remembered for the view."""


@dataclass(frozen=True)
class PartitionRow:
    """One partition of a topic."""

    partition: int
    length: int
    """Records stored."""
    first_offset: str | None
    """Offset of the oldest stored record (None: empty)."""
    last_offset: str | None
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
    """Reserved: how long the oldest read-but-uncommitted record has waited (not tracked: None)."""


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


@dataclass(frozen=True)
class ReplicaView:
    """A replica attached to the server (INFO replication)."""

    address: str
    state: str
    """"online", "wait_bgsave", "send_bulk", ..."""
    offset_lag: int | None
    """Bytes of replication stream it has not acknowledged yet."""
    lag_s: int | None
    """Seconds since its last acknowledgement."""


@dataclass(frozen=True)
class ServerView:
    """The server the URL leads to."""

    version: str
    """"valkey 9.1.2", "redis 7.0.15"."""
    role: str
    """"master" or "slave" (as INFO says)."""
    used_memory: int
    maxmemory: int
    """0: no limit."""
    maxmemory_policy: str
    uptime_s: int
    replicas: tuple[ReplicaView, ...] = ()
    primary_link: str | None = None
    """For a replica: "host:port up|down"."""
    sentinel_primary: str | None = None
    """With a Sentinel URL: the primary the sentinels report (host:port)."""
    config_epoch: int | None = None
    """With a Sentinel URL: the sentinels' config epoch (grows with every failover)."""


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


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _entry_id(entry: Any) -> str | None:
    """The offset of an XINFO STREAM first/last entry, as text (None: no entry)."""
    if not entry:
        return None
    return _text(entry[0]).rsplit("-", 1)[-1]


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


class Collector:
    """Reads snapshots of one broker; keeps the previous samples that rates and trends need."""

    def __init__(
        self,
        admin: Admin,
        conn: Connection,
        broker: str,
        topics: Iterable[str] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.admin = admin
        self.conn = conn
        self.broker = broker
        self.only = tuple(topics) if topics else None
        self._clock = clock
        self._counts: dict[tuple[str, str], tuple[float, float]] = {}  # (topic, "in"|"out") -> (t, n)
        self._lags: dict[str, collections.deque[tuple[float, int]]] = {}
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
        streams, ginfos = self._stream_info(configs)
        pending_age: dict[tuple[str, str, int], int] = {}
        readers: dict[str, set[str]] = collections.defaultdict(set)
        for d in descriptions:
            for p in d.partitions:
                readers[p.topic].add(d.group)
        topics = tuple(self._topic_view(c, streams, ginfos, readers.get(c.name, set()), now) for c in configs)
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

    def _pipeline(self, fill: Any, context: str) -> list[Any]:
        try:
            pipe = self.conn.redis.pipeline(transaction=False)
            fill(pipe)
            return pipe.execute(raise_on_error=False)
        except RedisError as exc:
            raise from_redis(exc, context) from exc
        except RedisClusterException as exc:  # a cluster pipeline that cannot be routed
            raise BrokerError(f"{context}: {exc}") from exc

    def _stream_info(
        self, configs: list[TopicConfig]
    ) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[tuple[str, int], list[dict[str, Any]]]]:
        parts = [(c.name, p) for c in configs for p in range(c.partitions)]

        def fill(pipe: Any) -> None:
            for t, p in parts:
                pipe.xinfo_stream(keys.stream(t, p))
                pipe.xinfo_groups(keys.stream(t, p))

        results = self._pipeline(fill, "reading streams") if parts else []
        streams: dict[tuple[str, int], dict[str, Any]] = {}
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for i, tp in enumerate(parts):
            info, ginfo = results[2 * i], results[2 * i + 1]
            # A missing stream (a partition being created, a topic being deleted) reads as empty.
            streams[tp] = info if isinstance(info, dict) else {}
            groups[tp] = (
                [{_text(k): _text(v) for k, v in g.items()} for g in ginfo] if isinstance(ginfo, list) else []
            )
        return streams, groups

    def _topic_view(
        self,
        cfg: TopicConfig,
        streams: Mapping[tuple[str, int], dict[str, Any]],
        ginfos: Mapping[tuple[str, int], list[dict[str, Any]]],
        readers: set[str],
        now: float,
    ) -> TopicView:
        rows = []
        added = 0
        delivered: int | None = 0
        for p in range(cfg.partitions):
            info = streams.get((cfg.name, p), {})
            length = int(info.get("length") or 0)
            rows.append(
                PartitionRow(p, length, _entry_id(info.get("first-entry")), _entry_id(info.get("last-entry")))
            )
            entries_added = info.get("entries-added")
            # Servers before Redis 7 have no entries-added: the length is the best counter there.
            added += int(entries_added) if entries_added is not None else length
            for g in ginfos.get((cfg.name, p), []):
                readers.add(g["name"])
                read = g.get("entries-read")
                if read is None and entries_added is not None and g.get("lag") is not None:
                    read = int(entries_added) - int(g["lag"])
                if read is None or delivered is None:
                    delivered = None
                else:
                    delivered += int(read)
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
        return GroupView(
            d.group,
            d.generation,
            tuple(
                MemberView(m.member_id, tuple(f"{tp.topic}:{tp.partition}" for tp in m.partitions))
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
        )

    # -- server ---------------------------------------------------------------------------------

    def _info(self) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
        """(server, memory, replication) INFO sections of the server, or of each primary of a
        cluster (where INFO goes to one node at a time, outside pipelines)."""
        redis = self.conn.redis
        try:
            if self.conn.url.cluster:
                return [
                    tuple(
                        redis.info(section, target_nodes=node)
                        for section in ("server", "memory", "replication")
                    )  # type: ignore[misc]
                    for node in redis.get_primaries()
                ]
            replies = self._pipeline(
                lambda pipe: [pipe.info(section) for section in ("server", "memory", "replication")],
                "reading server info",
            )
        except RedisError as exc:
            raise from_redis(exc, "reading server info") from exc
        except RedisClusterException as exc:
            raise BrokerError(f"reading server info: {exc}") from exc
        for r in replies:
            if isinstance(r, Exception):
                raise (
                    from_redis(r, "reading server info") if isinstance(r, RedisError) else BrokerError(str(r))
                )
        return [tuple(replies)]  # type: ignore[list-item]

    def _server(self) -> tuple[ServerView | None, str | None]:
        try:
            nodes = self._info()
        except FacadeError as exc:
            return None, " ".join(str(exc).split())
        server_info, memory, replication = nodes[0]
        if "valkey_version" in server_info:
            version = f"valkey {server_info['valkey_version']}"
        else:
            version = f"{server_info.get('server_name') or 'redis'} {server_info.get('redis_version', '?')}"
        run_id = ",".join(str(n[0].get("run_id") or "") for n in nodes)
        if self._run_id and run_id != self._run_id and not self.conn.url.sentinel:
            self._event(f"server restarted (uptime {server_info.get('uptime_in_seconds')}s)")
        self._run_id = run_id
        replicas = []
        for _, _, repl in nodes:
            master_offset = int(repl.get("master_repl_offset") or 0)
            for name, value in sorted(repl.items()):
                if name.startswith("slave") and name[5:].isdigit() and isinstance(value, dict):
                    offset = value.get("offset")
                    replicas.append(
                        ReplicaView(
                            f"{value.get('ip')}:{value.get('port')}",
                            str(value.get("state", "?")),
                            None if offset is None else max(0, master_offset - int(offset)),
                            _int(value.get("lag")),
                        )
                    )
        link = None
        role = str(replication.get("role", "?"))
        if role == "slave":
            link = f"{replication.get('master_host')}:{replication.get('master_port')} {replication.get('master_link_status', '?')}"
        if len(nodes) > 1:
            role = f"cluster of {len(nodes)} primaries"
        limits = [int(n[1].get("maxmemory") or 0) for n in nodes]
        sentinel_primary, epoch = self._sentinel()
        return (
            ServerView(
                version=version,
                role=role,
                used_memory=sum(int(n[1].get("used_memory") or 0) for n in nodes),
                # Summed only when every node has a limit: one unlimited node makes the total unlimited.
                maxmemory=sum(limits) if all(limits) else 0,
                maxmemory_policy=str(memory.get("maxmemory_policy", "?")),
                uptime_s=min(int(n[0].get("uptime_in_seconds") or 0) for n in nodes),
                replicas=tuple(replicas),
                primary_link=link,
                sentinel_primary=sentinel_primary,
                config_epoch=epoch,
            ),
            None,
        )

    def _sentinel(self) -> tuple[str | None, int | None]:
        url = self.conn.url
        manager = getattr(self.conn.redis, "sentinel_manager", None)
        if not url.sentinel or manager is None:
            return None, None
        try:
            host, port = manager.discover_master(url.service)
        except Exception:  # noqa: BLE001 - no sentinel answered: shown as unknown
            return "unknown (no sentinel answers)", None
        primary = f"{host}:{port}"
        if self._primary is not None and primary != self._primary:
            self._event(f"failover: primary {self._primary} -> {primary}")
        self._primary = primary
        epoch = None
        for sentinel in manager.sentinels:
            try:
                epoch = _int(sentinel.sentinel_master(url.service).get("config-epoch"))
                break
            except Exception:  # noqa: BLE001, S112 - ask the next sentinel
                continue
        return primary, epoch

    def _event(self, text: str) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {text}")
