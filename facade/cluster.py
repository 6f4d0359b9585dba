"""Redis Cluster support: where keys live, and how a pipeline is split over shards.

A partition's keys share one hash slot (``facade:{T/P}:...``, see facade/keys.py), so the
partitions of a topic spread over the shards and every partition script runs on one node. The
Connection (facade/_async/client.py) uses these helpers (no I/O here) to send a pipeline as one
round trip per shard, to follow MOVED/ASK redirects and to wait for records without a
multi-stream XREAD. Cluster clients are built in facade/_async/connect.py; cluster errors are
converted by errors.from_redis.
What holds across slots is in docs/cluster.md.

URL: ``redis+cluster://[user:password@]host:port[,host:port...]`` — any reachable nodes of the
cluster; the client reads the slot map from them (``CLUSTER SLOTS``) and follows it.
``rediss+cluster://...[?ssl_ca_certs=...]`` is the same over TLS (docs/tls.md): every node
connection, the per-node clients included, uses the URL's TLS options.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.crc import key_slot as _crc_key_slot
from redis.exceptions import SlotNotCoveredError

from . import keys
from .errors import REDIRECT_ERRORS, FacadeError, UnsupportedError, from_redis

__all__ = [
    "REDIRECTS",
    "is_cluster",
    "key_slot",
    "node_of",
    "partition_nodes",
    "partition_slot",
]

REDIRECTS = REDIRECT_ERRORS
"""Replies that mean "not here, not now": the command did not run and may be sent again (to the
node a MOVED/ASK names, or after a pause for TRYAGAIN/CLUSTERDOWN)."""

REDIRECT_BUDGET_S = 2.0
"""How long one pipeline keeps following redirects before it hands a retriable error back to its
caller (whose own retry loop, e.g. the producer's ``delivery_timeout_ms``, then takes over)."""


def is_cluster(client: Any) -> bool:
    """Whether ``client`` (a redis-py client, or a facade Connection) talks to a Redis Cluster."""
    client = getattr(client, "redis", client)
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
    """errors.from_redis for an error from a cluster client (kept for facade/_async/groups.py)."""
    return from_redis(exc, context, cluster=True)


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
