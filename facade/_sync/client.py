# Generated from facade/_async/client.py by scripts/unasync.py: edit that file, not this one.
"""One broker connection (a redis-py client with its pool) plus facade's scripts and metadata.

This module is the asyncio source of truth; facade/_sync/client.py is generated from it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from typing import Any

from redis.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)

from .. import cluster, keys
from ..errors import (
    BrokerTimeoutError,
    ConfigError,
    ConnectionFailedError,
    FacadeError,
    TopicError,
    UnknownTopicError,
    from_redis,
)
from ..records import CREATE_TIME, TopicConfig
from ..scripts import Scripts
from ..url import BrokerUrl
from . import _backend
from .connect import NoSentinelError, create_client, diagnose, node_client, resolve_url

# A consumer waiting on several partitions of a cluster looks for new records this often (s): one
# XREAD cannot span several slots.
_CLUSTER_WAIT_SLICE_S = 0.02


def topic_from_json(raw: bytes | str) -> TopicConfig:
    """A TopicConfig from the JSON stored in the topic registry."""
    d = json.loads(raw)
    return TopicConfig(
        name=d["name"],
        partitions=int(d["partitions"]),
        retention_ms=d.get("retention_ms"),
        max_len=d.get("max_len"),
        created_ms=int(d.get("created_ms") or 0),
        layout=int(d.get("layout") or 1),
        ack_retention=bool(d.get("ack_retention", False)),
        timestamp_type=d.get("timestamp_type") or CREATE_TIME,
        dedup_max_ids=int(d.get("dedup_max_ids") or 100_000),
        dedup_window_ms=int(d.get("dedup_window_ms") or 120_000),
    )


def topic_to_json(cfg: TopicConfig) -> str:
    """The registry JSON of a TopicConfig."""
    return json.dumps(
        {
            "name": cfg.name,
            "partitions": cfg.partitions,
            "retention_ms": cfg.retention_ms,
            "max_len": cfg.max_len,
            "created_ms": cfg.created_ms,
            "layout": cfg.layout,
            "ack_retention": cfg.ack_retention,
            "timestamp_type": cfg.timestamp_type,
            "dedup_max_ids": cfg.dedup_max_ids,
            "dedup_window_ms": cfg.dedup_window_ms,
        },
        separators=(",", ":"),
    )


class Connection:
    """A client for one broker URL, with the Lua scripts registered and errors converted."""

    def __init__(self, url: str | None = None, *, failover_wait_s: float = 0.0) -> None:
        self.url: BrokerUrl = resolve_url(url)
        # One quick reconnect inside redis-py (a pooled connection the server closed); every other
        # retry is facade's own, under the idempotent producer's sequences.
        self._retry = Retry(ExponentialBackoff(0.2, 0.02), 1)
        # failover_wait_s: a new connection to a Sentinel-managed primary waits this long for one
        # during a failover (connect.py); producers and consumers retry on their own instead.
        self.redis = create_client(self.url, retry=self._retry, failover_wait_s=failover_wait_s)
        self.scripts = Scripts(self.redis)
        self.cluster: bool = cluster.is_cluster(self.redis)
        """Whether the broker is a Redis Cluster (docs/cluster.md)."""
        self._nodes: dict[str, Any] = {}  # cluster: "host:port" -> a client for that node alone
        # Whether any command ever succeeded: retries ride out failures of a working connection,
        # but a server that was never reached fails fast.
        self.connected = False
        self._diagnosed = False  # whether a failure before any success was looked into (_error)
        self.closed = False

    def close(self) -> None:
        self.closed = True
        nodes, self._nodes = self._nodes, {}
        try:
            for client in nodes.values():
                client.close()
        finally:
            self.redis.close()

    def _error(self, exc: BaseException, context: str) -> FacadeError:
        """``exc`` as a FacadeError (errors.from_redis, told whether this is a cluster and whether
        a TLS connection never worked yet). The first failure of a client that never worked asks
        what listens there (connect.diagnose): a server of another kind is one line saying so,
        and not retried."""
        if not self.connected and not self._diagnosed and isinstance(exc, RedisError):
            self._diagnosed = True
            found = diagnose(self.url, exc)
            if found is not None:
                error = ConnectionFailedError(f"{context}: {found}")
                error.retriable = False  # the same port answers the same way
                return error
        return from_redis(exc, context, cluster=self.cluster, tls_hint=self.url.tls and not self.connected)

    def _check_open(self) -> None:
        if self.closed:
            raise ConfigError("this client is closed; create a new one")

    def script(self, name: str, keys_: Sequence[str], args: Sequence[Any], context: str) -> Any:
        """Run one script; redis errors come out as FacadeErrors that lead with ``context``."""
        self._check_open()
        self.check_slots(context, keys_)
        try:
            result = getattr(self.scripts, name)(keys=keys_, args=args)
            self.connected = True
            return result
        except (RedisError, RedisClusterException) as exc:
            raise self._error(exc, context) from exc

    def check_slots(self, context: str, keys_: Sequence[str]) -> None:
        """On a cluster, raise UnsupportedError (saying what to do instead) when a script's keys
        span several hash slots; only ``transact`` (outputs, dead letters) can."""
        if self.cluster and len(keys_) > 1 and len(cluster.slots_of(keys_)) > 1:
            raise cluster.cross_slot_error(context, keys_)

    def command(self, context: str, *args: Any, **options: Any) -> Any:
        """Run one command, converting errors. ``options`` go to redis-py (on a cluster:
        ``target_nodes``)."""
        self._check_open()
        try:
            result = self.redis.execute_command(*args, **options)
            self.connected = True
            return result
        except (RedisError, RedisClusterException) as exc:
            raise self._error(exc, context) from exc

    def commands(self, commands: Sequence[Sequence[Any]], context: str) -> list[Any]:
        """Run plain commands in one round trip (one per shard on a cluster); one reply or
        exception per command (redis-py's own errors, for the caller to read)."""
        self._check_open()
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            replies = pipe.execute(raise_on_error=False)
            self.connected = True
            return replies
        except (RedisError, RedisClusterException) as exc:
            raise self._error(exc, context) from exc

    def pipeline(
        self,
        calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
        context: str,
        tail: Sequence[Sequence[Any]] = (),
    ) -> list[Any]:
        """Run several scripts, then the raw commands in ``tail``, in one round trip on one
        connection (no MULTI); one result or FacadeError per call, tail results last.

        A connection failure fails the whole call; a script error only its own slot. ``tail`` is
        how WAIT / WAITAOF follow the writes on the same connection (acks="all").

        On a cluster: one round trip per shard (concurrent under asyncio), MOVED/ASK/TRYAGAIN
        followed, and the tail sent to every shard that took a call; its result is the weakest
        shard's (cluster.combine_tail).
        """
        self._check_open()
        if self.cluster:
            return self._cluster_pipeline(calls, context, tail)
        try:
            results = self._round(self.redis, calls, tail)
            self.connected = True
        except RedisError as exc:
            raise self._error(exc, context) from exc
        return [self._error(r, context) if isinstance(r, Exception) else r for r in results]

    def _cluster_pipeline(
        self,
        calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
        context: str,
        tail: Sequence[Sequence[Any]],
    ) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        tails: list[list[Any]] = [[] for _ in tail]
        todo = []
        for i, (_, keys_, _) in enumerate(calls):
            if len(keys_) > 1 and len(cluster.slots_of(keys_)) > 1:
                results[i] = cluster.cross_slot_error(context, keys_)
            else:
                todo.append(i)
        asking: dict[int, str] = {}  # call -> the node an ASK sent it to (for one attempt)
        deadline = _backend.monotonic() + cluster.REDIRECT_BUDGET_S
        pause = 0.01
        try:
            _backend.cluster_ready(self.redis)
            while todo:
                route: dict[str, list[int]] = {}
                for i in todo:
                    node = asking.get(i) or cluster.node_of(self.redis, calls[i][1][0])
                    route.setdefault(node, []).append(i)
                rounds = _backend.gather(
                    [self._node_round(node, [(*calls[i], i in asking) for i in idx], tail) for node, idx in route.items()]
                )
                retry: list[int] = []
                moved: list[MovedError] = []
                lost = False
                for (_, idx), replies in zip(route.items(), rounds):
                    if isinstance(replies, BaseException):
                        # The node's connection failed: outcome unknown; the callers retry.
                        lost = True
                        for i in idx:
                            results[i] = replies
                        for t in tails:
                            t.append(replies)
                        continue
                    self.connected = True
                    for i, reply in zip(idx, replies):
                        asking.pop(i, None)
                        if isinstance(reply, cluster.REDIRECTS):
                            # Not run. MOVED/ASK name the node to ask; TRYAGAIN/CLUSTERDOWN: wait.
                            retry.append(i)
                            if isinstance(reply, MovedError):
                                moved.append(reply)
                            elif isinstance(reply, AskError):
                                asking[i] = f"{reply.host}:{reply.port}"
                        else:
                            results[i] = reply
                    for t, reply in zip(tails, replies[len(idx) :]):
                        t.append(reply)
                try:
                    if lost:
                        self.redis.nodes_manager.initialize()
                    for e in moved:
                        self.redis.nodes_manager.move_slot(e)
                except (RedisError, RedisClusterException):
                    pass  # the map could not be read now (failover under way): the next call tries again
                todo = sorted(retry)
                if todo and _backend.monotonic() + pause > deadline:
                    for i in todo:
                        results[i] = BrokerTimeoutError(
                            f"{context}: the cluster kept redirecting for {cluster.REDIRECT_BUDGET_S:.0f} s "
                            "(a resharding or failover is under way); the call did not run and is safe to repeat"
                        )
                    break
                if todo and not all(i in asking for i in todo):
                    _backend.sleep(pause)
                    pause = min(pause * 2, 0.2)
        except (RedisError, RedisClusterException) as exc:
            raise self._error(exc, context) from exc
        out = [self._error(r, context) if isinstance(r, BaseException) else r for r in results]
        for command, replies in zip(tail, tails):
            if not replies:  # nothing was written anywhere: any node can answer
                replies = [self.command(context, *command)]
            combined = cluster.combine_tail(command, replies)
            out.append(self._error(combined, context) if isinstance(combined, BaseException) else combined)
        return out

    def _node_round(
        self, node: str, calls: Sequence[tuple[str, Sequence[str], Sequence[Any], bool]], tail: Sequence[Sequence[Any]]
    ) -> Any:
        """One pipelined round trip to one cluster node: the script calls (each after ASKING when
        an ASK sent it there), then ``tail``. Replies in that order (ASKING's left out), or the
        exception that failed the whole round trip."""
        client = self._nodes.get(node)
        if client is None:  # (creating a client opens no connection: a lost race costs nothing)
            new = node_client(self.url, node, retry=self._retry)
            client = self._nodes.setdefault(node, new)
        try:
            return self._round(client, [call[:3] for call in calls], tail, [call[3] for call in calls])
        except RedisError as exc:
            return exc

    def _round(
        self,
        client: Any,
        calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
        tail: Sequence[Sequence[Any]],
        asking: Sequence[bool] = (),
        reload: bool = True,
    ) -> list[Any]:
        """One pipelined round trip on ``client``: EVALSHA per call (after ASKING where
        ``asking`` says so), then ``tail``; the replies in that order, errors in place.

        EVALSHA goes out directly, without redis-py's SCRIPT EXISTS round trip before each
        pipeline. A call answered NOSCRIPT (server restarted, SCRIPT FLUSH) did not run: the
        scripts it needs are loaded and the NOSCRIPT calls sent again, followed by ``tail`` again
        (so WAIT still follows every write). That can run them after later calls of the same
        round trip; callers never put two calls on one partition with different scripts in one
        round trip, so no partition sees its own calls reordered.
        """
        pipe = client.pipeline(transaction=False)
        for i, (name, keys_, args) in enumerate(calls):
            if asking and asking[i]:
                pipe.execute_command("ASKING")
            pipe.execute_command("EVALSHA", getattr(self.scripts, name).sha, len(keys_), *keys_, *args)
        for command in tail:
            pipe.execute_command(*command)
        replies = pipe.execute(raise_on_error=False)
        if any(asking):
            kept = [keep for flag in asking[: len(calls)] for keep in ((False, True) if flag else (True,))]
            replies = [r for r, keep in zip(replies, kept + [True] * len(tail)) if keep]
        missing = [i for i in range(len(calls)) if isinstance(replies[i], NoScriptError)]
        if not missing or not reload:
            return replies
        for name in sorted({calls[i][0] for i in missing}):
            script = getattr(self.scripts, name)
            script.sha = client.script_load(script.script)
        again = self._round(
            client, [calls[i] for i in missing], tail, [asking[i] for i in missing] if asking else (), reload=False
        )
        for j, i in enumerate(missing):
            replies[i] = again[j]
        replies[len(calls) :] = again[len(missing) :]
        return replies

    def wait_for_records(self, context: str, streams: dict[str, str], seconds: float) -> None:
        """Return when one of ``streams`` (key -> last seen ID) has a newer entry, or after
        ``seconds``; for a cluster, where one XREAD cannot span slots. One stream: XREAD BLOCK.
        Several: every _CLUSTER_WAIT_SLICE_S, one XREVRANGE COUNT 1 per stream for an entry after
        the last seen (one round trip per shard; XREVRANGE rather than XREAD, whose keys redis-py
        would look up with COMMAND GETKEYS, a round trip each). Not a short XREAD BLOCK on one of
        them: servers expire blocked reads on their clock tick, 100 ms at the default hz."""
        if len(streams) == 1:
            ((name, last),) = streams.items()
            self.command(context, "XREAD", "COUNT", 1, "BLOCK", max(1, int(seconds * 1000)), "STREAMS", name, last)
            return
        deadline = _backend.monotonic() + seconds
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for name, last in streams.items():
                    pipe.xrevrange(name, "+", f"({last}", count=1)
                replies = pipe.execute(raise_on_error=False)
            except (RedisError, RedisClusterException) as exc:
                raise self._error(exc, context) from exc
            if any(replies):  # new records, or an error the next fetch will meet and handle
                return
            remaining = deadline - _backend.monotonic()
            if remaining <= 0:
                return
            _backend.sleep(min(remaining, _CLUSTER_WAIT_SLICE_S))

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the server was never reached: nothing listens, no such host, no
        such socket, and no command ever succeeded on this client. A wrong URL or a stopped
        server fails fast; a connection that drops once it worked is retried (restarts,
        failovers, lost replies)."""
        if self.connected:
            return False
        # Behind Sentinel, a primary that refuses connections is a failover under way (the
        # sentinels named it): only sentinels that do not answer mean a wrong URL.
        never = (NoSentinelError,) if self.url.sentinel else (ConnectionRefusedError, FileNotFoundError, socket.gaierror)
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, never):
                return True
            cause = cause.__cause__ or cause.__context__
        return False

    def connected_replicas(self) -> int:
        """How many replicas are attached to the primary right now (INFO replication); on a
        cluster, the fewest any primary has."""
        if self.cluster:
            infos = self.read("reading replication state", "INFO", "replication", target_nodes="primaries")
            if isinstance(infos, dict) and infos and all(isinstance(v, dict) for v in infos.values()):
                return min(int(v.get("connected_slaves", 0)) for v in infos.values())
            return int(infos.get("connected_slaves", 0))
        info = self.read("reading replication state", "INFO", "replication")
        if isinstance(info, bytes):
            info = info.decode()
        if isinstance(info, str):
            fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            return int(fields.get("connected_slaves", 0))
        return int(info.get("connected_slaves", 0))

    def read(self, context: str, *args: Any, budget_s: float = 10.0, **options: Any) -> Any:
        """Run a read-only command, retrying retriable failures (lost reply, failover) with
        backoff for up to ``budget_s`` seconds; safe because reading twice changes nothing."""
        deadline = _backend.monotonic() + budget_s
        pause = 0.05
        while True:
            try:
                return self.command(context, *args, **options)
            except FacadeError as exc:
                # A server never reached is a wrong URL or a server that is down: say so at once.
                if not exc.retriable or self.unreachable(exc) or _backend.monotonic() + pause > deadline:
                    raise
            _backend.sleep(pause)
            pause = min(pause * 2, 1.0)

    def topic(self, name: str, any_layout: bool = False) -> TopicConfig:
        """The stored config of topic ``name``; UnknownTopicError when it does not exist, and
        TopicError for a topic of an older key layout (unless ``any_layout``: listing, migrating)."""
        keys.validate_name(name)
        raw = self.read(f"reading topic {name}", "HGET", keys.TOPICS, name)
        if raw is None:
            raise UnknownTopicError(
                f"topic {name!r} does not exist; create it with Admin().create_topic({name!r}, partitions=N), "
                "or let the producer create it (auto_create=True)",
                topic=name,
            )
        cfg = topic_from_json(raw)
        if cfg.layout < keys.LAYOUT_VERSION and not any_layout:
            raise TopicError(
                f"topic {name!r} was made by an older facade (stream-ID offsets, layout {cfg.layout}); carry its "
                f"records over to dense offsets with `facade topics migrate {name}` (nothing is read or written "
                "until then)"
            )
        return cfg


class TopicCache:
    """Topic configs read through a Connection and kept for ``max_age_ms`` (like Kafka's metadata)."""

    def __init__(self, conn: Connection, max_age_ms: int) -> None:
        self._conn = conn
        self._max_age_s = max_age_ms / 1000
        self._topics: dict[str, tuple[TopicConfig, float]] = {}

    def forget(self, name: str) -> None:
        self._topics.pop(name, None)

    def fresh(self, name: str) -> TopicConfig | None:
        """The cached config if still fresh, without I/O (the producer's fast path)."""
        hit = self._topics.get(name)
        if hit is not None and _backend.monotonic() - hit[1] < self._max_age_s:
            return hit[0]
        return None

    def get(self, name: str) -> TopicConfig:
        hit = self._topics.get(name)
        now = _backend.monotonic()
        if hit is not None and now - hit[1] < self._max_age_s:
            return hit[0]
        try:
            cfg = self._conn.topic(name)
        except FacadeError as exc:
            # A long failover: keep using what we knew rather than fail a send early.
            if hit is not None and exc.retriable:
                return hit[0]
            raise
        self._topics[name] = (cfg, now)
        return cfg
