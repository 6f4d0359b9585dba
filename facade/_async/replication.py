"""Which replicas acks="all" waits for: every replica the deployment is configured with.

This module is the asyncio source of truth; facade/_sync/replication.py is generated from it.

"Configured" comes from the deployment's own bookkeeping, never from who happens to be attached
when a client looks (a replica that dropped out must not lower the bar, and a deposed primary
must not pass with the one replica it kept):

- **Sentinel**: the replicas the sentinels know for the service (``SENTINEL REPLICAS``), down
  ones included. After a failover the old primary is one of them: acks="all" waits until it is
  back and in sync, or until the bar is lowered (``min_insync_replicas``).
- **Redis Cluster**: each shard's replicas in the cluster configuration (``CLUSTER NODES``),
  failed ones included; one bar for every shard, the smallest shard's count.
- **One server**: every replica facade clients have seen attached to it, remembered in
  ``facade:{meta}:replicas`` (replicated, so it survives a failover) until an operator forgets one
  (``Admin.forget_replica``, ``facade server replicas --forget ADDR``).

Whether a configured replica is *in sync* is decided by the primary at the append
(``produce.lua``: attached, online, acknowledged within 10 s); this module only names them.
"""

from __future__ import annotations

from typing import Any

from .. import keys
from ..descriptions import ConfiguredReplica, ReplicaSet
from ..errors import ConfigError, FacadeError
from .client import Connection

__all__ = ["configured_replicas", "forget_replica"]

# A replica counts as in sync when it acknowledged within this many seconds (as produce.lua).
MAX_LAG_S = 10


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _attached(info: Any) -> dict[str, str]:
    """``ip:port`` -> "in sync" / the replication state, from the primary's INFO replication."""
    if isinstance(info, (bytes, str)):
        fields = dict(line.split(":", 1) for line in _text(info).splitlines() if ":" in line)
        info = {k: dict(kv.split("=", 1) for kv in v.split(",")) if k.startswith("slave") else v
                for k, v in fields.items()}  # fmt: skip
    out = {}
    for name, replica in info.items():
        if not (str(name).startswith("slave") and isinstance(replica, dict)):
            continue
        address = f"{replica.get('ip')}:{replica.get('port')}"
        state, lag = str(replica.get("state")), int(replica.get("lag", 0) or 0)
        out[address] = "in sync" if state == "online" and lag <= MAX_LAG_S else f"{state}, lag {lag} s"
    return out


async def _sentinel_replicas(conn: Connection) -> list[str] | None:
    manager = getattr(conn.redis, "sentinel_manager", None)
    if not conn.url.sentinel or manager is None:
        return None
    for sentinel in manager.sentinels:
        try:
            replicas = await sentinel.sentinel_slaves(conn.url.service)
        except Exception:  # noqa: BLE001, S112 - ask the next sentinel
            continue
        return [f"{_text(r['ip'])}:{r['port']}" for r in replicas]
    raise FacadeError(
        f"acks='all' needs the sentinels' list of replicas of {conn.url.service!r}, and no sentinel answered"
    )


async def _cluster_replicas(conn: Connection) -> ReplicaSet:
    nodes = await conn.read("reading the cluster's replicas", "CLUSTER", "NODES")
    if isinstance(nodes, (bytes, str)):
        parsed = {}
        for line in _text(nodes).splitlines():
            parts = line.split()
            if len(parts) >= 8:
                parsed[parts[1].split("@")[0]] = {"node_id": parts[0], "flags": parts[2], "master_id": parts[3]}
        nodes = parsed
    shards: dict[str, list[ConfiguredReplica]] = {}
    for address, node in nodes.items():
        flags = _text(node.get("flags", ""))
        if "master" in flags and "fail" not in flags:
            shards.setdefault(_text(node["node_id"]), [])
    for address, node in nodes.items():
        flags = _text(node.get("flags", ""))
        primary = _text(node.get("master_id", "-"))
        if "slave" in flags and primary in shards:
            state = "in sync" if "fail" not in flags and node.get("connected", True) else "failed"
            shards[primary].append(ConfiguredReplica(_text(address), state))
    smallest = min(shards.values(), key=len) if shards else []
    return ReplicaSet(tuple(smallest), "cluster")


async def configured_replicas(conn: Connection, remember: bool = True) -> ReplicaSet:
    """The replicas acks="all" waits for by default, each with its state now. ``remember``: on
    one server, add replicas attached now to the remembered set (producers do; describing does not)."""
    if conn.cluster:
        return await _cluster_replicas(conn)
    info = await conn.read("reading replication state", "INFO", "replication")
    attached = _attached(info)
    named = await _sentinel_replicas(conn)
    source = "sentinel"
    if named is None:
        source = "remembered"
        known = {_text(a) for a in await conn.read("reading the known replicas", "HKEYS", keys.REPLICAS)}
        new = sorted(set(attached) - known)
        if new and remember:
            await conn.command("remembering replicas", "HSET", keys.REPLICAS, *[x for a in new for x in (a, "1")])
        # The server itself, if it was a replica once (a manual failover), is not its own replica.
        named = sorted((known | set(attached)) - {f"{h}:{p}" for h, p in conn.url.hosts})
    replicas = tuple(ConfiguredReplica(a, attached.get(a, "not attached")) for a in sorted(named))
    return ReplicaSet(replicas, source)


async def forget_replica(conn: Connection, address: str) -> bool:
    """Forget a replica removed for good (one server; Sentinel: ``SENTINEL RESET``, Cluster:
    ``CLUSTER FORGET``). Returns whether it was remembered."""
    if conn.url.sentinel or conn.cluster:
        raise ConfigError(
            "the sentinels (SENTINEL RESET <service>) or the cluster (CLUSTER FORGET <node id>) keep the list of "
            "replicas of this deployment; facade only remembers replicas of a single server"
        )
    return bool(await conn.command(f"forgetting replica {address}", "HDEL", keys.REPLICAS, address))
