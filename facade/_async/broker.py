"""What Admin reads about the broker itself: the server (or the cluster's primaries), the counters
of each partition's stream, and how long the oldest pending records have waited.

This module is the asyncio source of truth; facade/_sync/broker.py is generated from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from .. import keys, offsets, scripts
from ..cluster import partition_nodes
from ..descriptions import GroupCursor, PartitionStats, ReplicaDescription, ServerDescription
from ..errors import from_redis
from ..records import TopicConfig, TopicPartition
from .client import Connection
from .logs import parse_stream_info

_SECTIONS = ("server", "memory", "replication")


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


async def run_pipeline(conn: Connection, pipe: Any, context: str) -> list[Any]:
    """``pipe``'s replies, errors in place; a failure of the whole pipeline as a FacadeError."""
    try:
        return await pipe.execute(raise_on_error=False)
    except (RedisError, RedisClusterException) as exc:  # the latter: cluster pipelines
        raise from_redis(exc, context, cluster=conn.cluster) from exc


async def _infos(conn: Connection) -> tuple[list[str], list[tuple[dict[str, Any], ...]]]:
    """Names ("host:port"; "" for one server) and (server, memory, replication) INFO sections of
    the server, or of each cluster primary."""
    context = "reading server info"
    if not conn.cluster:
        return [""], [tuple([await conn.command(context, "INFO", section) for section in _SECTIONS])]
    per_node: dict[str, list[dict[str, Any]]] = {}
    for section in _SECTIONS:
        reply = await conn.command(context, "INFO", section, target_nodes="primaries")
        if not (reply and all(isinstance(v, dict) for v in reply.values())):
            reply = {"": reply}  # one primary: redis-py hands back its reply alone
        for node, info in reply.items():
            per_node.setdefault(node, []).append(info)
    ordered = sorted(per_node.items())
    return [node for node, _ in ordered], [tuple(sections) for _, sections in ordered]


async def _sentinel(conn: Connection) -> tuple[str | None, int | None]:
    """The primary the sentinels name now, and their config epoch (None, None: not Sentinel)."""
    manager = getattr(conn.redis, "sentinel_manager", None)
    if not conn.url.sentinel or manager is None:
        return None, None
    try:
        host, port = await manager.discover_master(conn.url.service)
    except Exception:  # noqa: BLE001 - no sentinel answered: shown as unknown
        return "unknown (no sentinel answers)", None
    for sentinel in manager.sentinels:
        try:
            master = await sentinel.sentinel_master(conn.url.service)
            return f"{host}:{port}", _int(master.get("config-epoch"))
        except Exception:  # noqa: BLE001, S112 - ask the next sentinel
            continue
    return f"{host}:{port}", None


async def describe_server(conn: Connection) -> ServerDescription:
    """The server (a cluster: its primaries summed), with the sentinels' view for Sentinel URLs."""
    names, nodes = await _infos(conn)
    server_info, memory, replication = nodes[0]
    if "valkey_version" in server_info:
        version = f"valkey {server_info['valkey_version']}"
    else:
        version = f"{server_info.get('server_name') or 'redis'} {server_info.get('redis_version', '?')}"
    replicas = []
    for node, (_, _, repl) in zip(names, nodes):
        master_offset = int(repl.get("master_repl_offset") or 0)
        for name, value in sorted(repl.items()):
            if name.startswith("slave") and name[5:].isdigit() and isinstance(value, dict):
                offset = value.get("offset")
                replicas.append(
                    ReplicaDescription(
                        f"{value.get('ip')}:{value.get('port')}",
                        str(value.get("state", "?")),
                        None if offset is None else max(0, master_offset - int(offset)),
                        _int(value.get("lag")),
                        node if len(nodes) > 1 else "",
                    )
                )
    role = str(replication.get("role", "?"))
    link = None
    if role == "slave":
        link = f"{replication.get('master_host')}:{replication.get('master_port')} {replication.get('master_link_status', '?')}"
    if len(nodes) > 1:
        role = f"cluster of {len(nodes)} primaries"
    limits = [int(n[1].get("maxmemory") or 0) for n in nodes]
    sentinel_primary, epoch = await _sentinel(conn)
    return ServerDescription(
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
        run_id=",".join(str(n[0].get("run_id") or "") for n in nodes),
        primaries=len(nodes),
    )


async def partition_stats(conn: Connection, configs: Iterable[TopicConfig]) -> list[PartitionStats]:
    """Stream counters of every partition of ``configs``, in one pipelined round trip. A missing
    stream (a partition being created, a topic being deleted) reads as empty."""
    parts = [(c.name, p) for c in configs for p in range(c.partitions)]
    if not parts:
        return []
    pipe = conn.redis.pipeline(transaction=False)
    for t, p in parts:
        pipe.xinfo_stream(keys.stream(t, p))
        pipe.xinfo_groups(keys.stream(t, p))
    results = await run_pipeline(conn, pipe, "reading streams")
    counts: dict[str, int] = {}
    for t, p in parts:
        counts[t] = max(counts.get(t, 0), p + 1)
    shards = {t: partition_nodes(conn, t, n) for t, n in counts.items()}
    out = []
    for i, (topic, partition) in enumerate(parts):
        info, ginfo = results[2 * i], results[2 * i + 1]
        info = info if isinstance(info, dict) else {}
        length = int(info.get("length") or 0)
        added = info.get("entries-added")
        cursors = []
        for g in ginfo if isinstance(ginfo, list) else []:
            g = {_text(k): _text(v) for k, v in g.items()}
            read = g.get("entries-read")
            if read is None and added is not None and g.get("lag") is not None:
                read = int(added) - int(g["lag"])
            cursors.append(GroupCursor(g["name"], _int(read)))
        first, last = info.get("first-entry"), info.get("last-entry")
        log = parse_stream_info(info) if info else None
        out.append(
            PartitionStats(
                topic,
                partition,
                length,
                offsets.offset_of(first[0]) if first else None,
                offsets.offset_of(last[0]) if last else None,
                int(added) if added is not None else length,
                tuple(sorted(cursors, key=lambda c: c.group)),
                log.start if log else 0,
                log.end if log else 0,
                shards[topic].get(partition),
            )
        )
    return out


async def uncommitted_age_ms(
    conn: Connection, wanted: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str, int], int]:
    """For each ``(group, topic, partition)``, how long ago (ms, server clock) the group's oldest
    uncommitted record was appended: how far behind it is in time. Pairs with nothing left to
    commit are left out."""
    if not wanted:
        return {}
    sec, usec = await conn.command("reading the server clock", "TIME")
    now = int(sec) * 1000 + int(usec) // 1000
    calls = [scripts.first_uncommitted(TopicPartition(topic, partition), group) for group, topic, partition in wanted]
    results = await conn.pipeline(calls, "reading uncommitted records")
    return {
        key: max(0, now - int(res[1]))
        for key, res in zip(wanted, results)
        if isinstance(res, list) and len(res) == 2
    }
