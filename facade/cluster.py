"""Redis Cluster support: the client for ``redis+cluster://`` URLs, and where keys live.

A partition's keys share one hash slot (``facade:{T/P}:...``, see facade/keys.py), so the
partitions of a topic spread over the shards and every partition script runs on one node. The
Connection (facade/_async/client.py) uses these helpers to send a pipeline as one round trip per
shard, to follow MOVED/ASK redirects and to wait for records without a multi-stream XREAD.
What holds across slots is in docs/cluster.md.

URL: ``redis+cluster://[user:password@]host:port[,host:port...]`` — any reachable nodes of the
cluster; the client reads the slot map from them (``CLUSTER SLOTS``) and follows it.
``rediss+cluster://...[?ssl_ca_certs=...]`` is the same over TLS (docs/tls.md): every node
connection, the per-node clients of :func:`node_client` included, uses the URL's TLS options.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from redis.crc import key_slot as _crc_key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)

from . import keys
from .connection import CONNECT_TIMEOUT_S, SOCKET_TIMEOUT_S, BrokerUrl
from .errors import (
    AuthenticationError,
    BrokerTimeoutError,
    ConnectionFailedError,
    FacadeError,
    InvalidUrlError,
    PermissionDeniedError,
    UnsupportedError,
    from_redis,
    tls_failure,
)

__all__ = [
    "REDIRECTS",
    "create_cluster_client",
    "is_cluster",
    "key_slot",
    "node_client",
    "node_of",
    "partition_nodes",
    "partition_slot",
]

REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError)
"""Replies that mean "not here, not now": the command did not run and may be sent again (to the
node a MOVED/ASK names, or after a pause for TRYAGAIN/CLUSTERDOWN)."""

REDIRECT_BUDGET_S = 2.0
"""How long one pipeline keeps following redirects before it hands a retriable error back to its
caller (whose own retry loop, e.g. the producer's ``delivery_timeout_ms``, then takes over)."""


def client_kwargs(url: BrokerUrl) -> dict[str, Any]:
    """Keyword arguments for every connection to a cluster node: the URL's user, password and TLS
    options and facade's socket deadlines, as BrokerUrl.client_kwargs gives a single server (a
    cluster has no database number but 0). The same keys suit redis.Redis (one node) and both
    RedisCluster classes (the asyncio one has no ``ssl_ca_path``, so facade offers none)."""
    if url.db:
        raise InvalidUrlError(f"a Redis Cluster has only database 0 ({url.redacted()}); remove the db")
    return {
        "username": url.username,
        "password": url.password,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": 30,
        **url.tls_kwargs(),
    }


def create_cluster_client(url: BrokerUrl, *, is_async: bool, retry: Any) -> Any:
    """A ``redis.cluster.RedisCluster`` (or ``redis.asyncio.cluster.RedisCluster``) for ``url``.

    The client follows MOVED/ASK redirects and refreshes its slot map on its own. The blocking
    client reads the slot map now (ConnectionFailedError when no node answers); the asyncio one on
    first use.
    """
    if is_async:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
    else:
        from redis.cluster import ClusterNode, RedisCluster  # type: ignore[assignment]
    startup = [ClusterNode(host, port) for host, port in url.hosts]
    try:
        return RedisCluster(startup_nodes=startup, retry=retry, **client_kwargs(url))
    except (RedisClusterException, RedisError) as exc:
        raise cluster_error(exc, f"connecting to the cluster at {url.redacted()}") from exc


def node_client(url: BrokerUrl, name: str, *, is_async: bool, retry: Any) -> Any:
    """A plain client for one node ``"host:port"``: how a pipeline reaches one shard on one
    connection (scripts preloaded there, WAIT on the connection that wrote)."""
    if is_async:
        from redis import asyncio as redis_io
    else:
        import redis as redis_io  # type: ignore[no-redef]
    host, _, port = name.rpartition(":")
    return redis_io.Redis(host=host, port=int(port), retry=retry, **client_kwargs(url))


def is_cluster(client: Any) -> bool:
    """Whether ``client`` (a redis-py client, or a facade Connection) talks to a Redis Cluster."""
    client = getattr(client, "redis", client)
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster

    return isinstance(client, (RedisCluster, AsyncRedisCluster))


def key_slot(key: str | bytes) -> int:
    """The hash slot of ``key`` (CRC16 of its hash tag, modulo 16384), computed locally."""
    return _crc_key_slot(key.encode() if isinstance(key, str) else key)


def slots_of(keys_: Iterable[str | bytes]) -> set[int]:
    """The distinct hash slots of some keys."""
    return {key_slot(k) for k in keys_}


def partition_slot(topic: str, partition: int) -> int:
    """The hash slot holding every key of one partition."""
    return key_slot(keys.stream(topic, partition))


def node_of(client: Any, key: str) -> str:
    """``"host:port"`` of the primary that serves ``key``'s slot, from the client's slot map
    (no I/O; the asyncio client must have been used once so that it has read the map)."""
    node = client.get_node_from_key(key)
    if node is None:
        raise SlotNotCoveredError(f"no node serves the slot of {key} (slot {key_slot(key)})")
    return node.name


def partition_nodes(conn_or_client: Any, topic: str, partitions: int | Iterable[int]) -> dict[int, str | None]:
    """For each partition of ``topic``, ``"host:port"`` of the primary serving it (None for all of
    them when the broker is a single server). ``partitions``: a count or the partition numbers.

    Pure lookup in the client's slot map, for ``topics describe`` (the asyncio client must have
    been used once). A map made stale by resharding is corrected by the client's next redirect.
    """
    numbers = range(partitions) if isinstance(partitions, int) else list(partitions)
    client = getattr(conn_or_client, "redis", conn_or_client)
    if not is_cluster(client):
        return dict.fromkeys(numbers)
    return {p: node_of(client, keys.stream(topic, p)) for p in numbers}


def cross_slot_error(what: str, keys_: Sequence[str]) -> UnsupportedError:
    """The error for a script whose keys span several slots (only ``transact`` can)."""
    slots = sorted(slots_of(keys_))
    return UnsupportedError(
        f"{what}: on a Redis Cluster one script cannot touch several hash slots, and its keys are in "
        f"slots {', '.join(map(str, slots[:6]))}. Atomic consume-transform-produce (commit(outputs=...)) "
        "and dead-lettering need all keys on one server; on a cluster use facade.relay(..., atomic=False), "
        "or send outputs with an idempotent Producer and dedup ids derived from the input position "
        "('<group>/<topic>/<partition>/<offset>'), then commit() (docs/cluster.md)"
    )


def cluster_error(exc: BaseException, context: str) -> FacadeError:
    """Convert a redis-py cluster exception (or any redis error) into a FacadeError.

    Redirects and a cluster that is down or has an uncovered slot are retriable: a resharding or a
    failover is under way and the same call may succeed shortly.
    """
    if isinstance(exc, FacadeError):
        return exc
    lead = f"{context}: " if context else ""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, (*REDIRECTS, SlotNotCoveredError, ClusterError)):
        return BrokerTimeoutError(
            f"{lead}the cluster did not settle in time ({text}): a resharding or failover is under way; "
            "the call is safe to repeat"
        )
    if isinstance(exc, RedisClusterException):
        # redis-py raises this one class for client-side cluster problems; only its text tells them apart.
        if "same key slot" in text or "CROSSSLOT" in text:
            return UnsupportedError(f"{lead}{text}; on a Redis Cluster one command cannot touch several slots")
        if "not enabled" in text:
            return UnsupportedError(f"{lead}the server is not in cluster mode ({text}); use redis:// for a single server")
        if isinstance(exc.__cause__, RedisError):  # e.g. a wrong password, reported by every node
            cause = from_redis(exc.__cause__, context)
            if isinstance(cause, (AuthenticationError, PermissionDeniedError)) or tls_failure(exc.__cause__):
                return cause  # a TLS refusal: the hint names the ssl_* option to check
        if "cannot be connected" in text:
            return ConnectionFailedError(f"{lead}no cluster node answered ({text}); check the URL and that the nodes run")
        return BrokerTimeoutError(
            f"{lead}the cluster's slot map is incomplete or changing ({text}): a failover or resharding is "
            "under way; the call is safe to repeat"
        )
    return from_redis(exc, context)


def combine_tail(command: Sequence[Any], replies: list[Any]) -> Any:
    """One reply for a tail command (WAIT / WAITAOF) that ran on every shard that took writes: the
    weakest confirmation (fewest replicas; for WAITAOF also fewest local fsyncs), or the first
    error. Any other command: the list of per-shard replies."""
    for r in replies:
        if isinstance(r, Exception):
            return r
    name = str(command[0]).upper()
    if not replies:
        return [] if name not in ("WAIT", "WAITAOF") else (0 if name == "WAIT" else [0, 0])
    if name == "WAIT":
        return min(int(r) for r in replies)
    if name == "WAITAOF":
        return [min(int(r[0]) for r in replies), min(int(r[1]) for r in replies)]
    return replies


async def gather_async(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run the per-shard round trips of an asyncio Connection concurrently."""
    return list(await asyncio.gather(*awaitables))


def gather_sync(results: Iterable[Any]) -> list[Any]:
    """The blocking twin of gather_async: the round trips already ran, one shard after another."""
    return list(results)


async def ready_async(client: Any) -> None:
    """Make the asyncio cluster client read its slot map (it does so lazily, on first use)."""
    await client.initialize()


def ready_sync(client: Any) -> None:
    """The blocking cluster client read its slot map when it was created: nothing to do."""
