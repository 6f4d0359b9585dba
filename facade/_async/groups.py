"""Reading and changing consumer-group state: describe, lag, offset resets, delete.

This module is the asyncio source of truth; facade/_sync/groups.py is generated from it.
Used by Admin (operators) and Consumer (committed()).
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from .. import keys, offsets
from ..cluster import cluster_error
from ..errors import ConfigError, GroupError
from ..records import GroupDescription, GroupMember, GroupPartitionInfo, OffsetReset, TopicPartition
from .client import Connection

__all__ = ["delete_group", "describe_group", "group_partition_state", "live_members", "reset_offsets"]

# Past this many undelivered records, lag is reported without counting them one by one.
_LAG_SCAN_LIMIT = 100_000


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _group_info(ginfo: Any, group: str) -> dict[str, Any] | None:
    if isinstance(ginfo, Exception):
        return None
    for g in ginfo:
        if _text(g.get("name")) == group:
            return {_text(k): _text(v) for k, v in g.items()}
    return None


async def _execute(pipe: Any, context: str) -> list[Any]:
    try:
        return await pipe.execute(raise_on_error=False)
    except (RedisError, RedisClusterException) as exc:  # the latter: cluster pipelines
        raise cluster_error(exc, context) from exc


async def _partition_states(
    conn: Connection, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, dict[str, Any]]:
    """Progress of ``group`` on each of ``tps`` where the group exists, two round trips in all."""
    pipe = conn.redis.pipeline(transaction=False)
    for tp in tps:
        pipe.xinfo_groups(keys.stream(tp.topic, tp.partition))
    infos = await _execute(pipe, f"describing group {group}")
    present = [(tp, info) for tp, ginfo in zip(tps, infos) if (info := _group_info(ginfo, group))]
    pipe = conn.redis.pipeline(transaction=False)
    for tp, info in present:
        s = keys.stream(tp.topic, tp.partition)
        pipe.hget(keys.owners(tp.topic, tp.partition), group)
        pipe.xpending(s, group)
        pipe.xrevrange(s, count=1)
        last = info.get("last-delivered-id") or "0-0"
        # Only needed when the server cannot give the lag (Redis < 7, or after deletions). Else a
        # cheap keyed placeholder keeps four replies per partition (a cluster pipeline refuses PING).
        if info.get("lag") is None:
            pipe.xrange(s, min=f"({last}", count=_LAG_SCAN_LIMIT)
        else:
            pipe.hexists(keys.owners(tp.topic, tp.partition), group)
    results = await _execute(pipe, f"describing group {group}")
    out: dict[TopicPartition, dict[str, Any]] = {}
    # Committed = the newest stored record before the first pending one (or the last delivered
    # when nothing is pending): everything up to it is done. One more round trip finds those.
    pipe = conn.redis.pipeline(transaction=False)
    for i, (tp, _) in enumerate(present):
        pending = results[4 * i + 1]
        if isinstance(pending, dict) and int(pending["pending"]):
            pipe.xrevrange(keys.stream(tp.topic, tp.partition), max=f"({_text(pending['min'])}", count=1)
    before_pending = iter(await _execute(pipe, f"describing group {group}") if len(pipe) else [])
    for i, (tp, info) in enumerate(present):
        owner, pending, tail, scan = results[4 * i : 4 * i + 4]
        last_delivered = info.get("last-delivered-id")
        pending_count = int(pending["pending"]) if isinstance(pending, dict) else 0
        if pending_count:
            prior = next(before_pending)
            committed = _text(prior[0][0]) if isinstance(prior, list) and prior else None
        else:
            committed = last_delivered
        if committed == "0-0":
            committed = None
        lag = info.get("lag")
        if lag is None and isinstance(scan, list):
            lag = len(scan) if len(scan) < _LAG_SCAN_LIMIT else None
        token = _text(owner) if owner else None
        out[tp] = {
            "owner": token.split("|", 1)[0] if token else None,
            "committed": committed,
            "last_delivered": None if last_delivered == "0-0" else last_delivered,
            "log_end": _text(tail[0][0]) if isinstance(tail, list) and tail else None,
            # Kafka's lag (log end - committed): records not delivered yet plus those delivered
            # and not committed (a consumer's prefetch delivers ahead of what it processed).
            "lag": None if lag is None else int(lag) + pending_count,
            "pending": pending_count,
        }
    return out


async def group_partition_state(conn: Connection, group: str, tp: TopicPartition) -> dict[str, Any]:
    """Progress of ``group`` on one partition (all None/0 when the group never read it)."""
    state = await _partition_states(conn, group, [tp])
    return state.get(tp) or {
        "owner": None, "committed": None, "last_delivered": None, "log_end": None, "lag": None, "pending": 0,
    }  # fmt: skip


async def _all_partitions(conn: Connection, topics: list[str] | None = None) -> list[TopicPartition]:
    if topics is None:
        raw = await conn.command("listing topics", "HGETALL", keys.TOPICS)
        items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        counts = {_text(k): int(json.loads(v)["partitions"]) for k, v in items}
    else:
        counts = {t: (await conn.topic(t)).partitions for t in topics}
    return [TopicPartition(t, p) for t in sorted(counts) for p in range(counts[t])]


async def live_members(conn: Connection, group: str) -> dict[str, int]:
    """Member id -> session deadline (ms) of the members whose session has not expired."""
    deadlines = keys.group_deadlines(group)
    sec, usec = await conn.command(f"reading group {group}", "TIME")
    now = int(sec) * 1000 + int(usec) // 1000
    raw = await conn.command(f"reading group {group}", "ZRANGEBYSCORE", deadlines, f"({now}", "+inf", "WITHSCORES")
    # redis-py gives [member, score] pairs or a flat list depending on protocol and version.
    pairs = raw if raw and isinstance(raw[0], (list, tuple)) else list(zip(raw[::2], raw[1::2]))
    return {_text(m): int(float(score)) for m, score in pairs}


async def describe_group(conn: Connection, group: str) -> GroupDescription:
    """Generation, live members with their assignment, and progress on every partition read."""
    keys.validate_name(group, "group")
    state_key, members_key, _ = keys.group_keys(group)
    known = await conn.command(f"describing group {group}", "HEXISTS", keys.GROUPS, group)
    if not known:
        raise GroupError(f"group {group!r} does not exist; `facade groups list` shows the groups")
    generation, assignment = await conn.command(
        f"describing group {group}", "HMGET", state_key, "generation", "assignment"
    )
    table = json.loads(assignment) if assignment else {}
    metas = await conn.command(f"describing group {group}", "HGETALL", members_key)
    metas_items = metas.items() if isinstance(metas, dict) else zip(metas[::2], metas[1::2])
    subscriptions = {_text(k): tuple(json.loads(v)["topics"]) for k, v in metas_items}
    members = tuple(
        GroupMember(
            m,
            subscriptions.get(m, ()),
            tuple(sorted(TopicPartition(t, p) for t, p in table.get(m, []))),
            deadline,
        )
        for m, deadline in sorted((await live_members(conn, group)).items())
    )
    states = await _partition_states(conn, group, await _all_partitions(conn))
    partitions = tuple(GroupPartitionInfo(tp.topic, tp.partition, **st) for tp, st in sorted(states.items()))
    return GroupDescription(group, int(generation or 0), members, partitions)


async def reset_offsets(
    conn: Connection,
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
    """Plan (and with ``execute=True`` apply) new positions for ``group`` on every partition of
    ``topic``. Exactly one target is given. Refused while the group has live members."""
    keys.validate_name(group, "group")
    chosen = [x for x in (to_earliest or None, to_latest or None, to_datetime_ms, shift_by, to_offset) if x is not None]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of to_earliest, to_latest, to_datetime_ms, shift_by, to_offset "
            "(CLI: --to-earliest, --to-latest, --to-datetime, --by-duration, --shift-by, --to-offset)"
        )
    if to_offset is not None:
        offsets.parse(to_offset)
    if to_datetime_ms is not None and (isinstance(to_datetime_ms, bool) or not isinstance(to_datetime_ms, int)):
        raise ConfigError(f"to_datetime_ms must be milliseconds since the epoch, got {to_datetime_ms!r}")
    if shift_by is not None and (isinstance(shift_by, bool) or not isinstance(shift_by, int)):
        raise ConfigError(f"shift_by must be an integer, got {shift_by!r}")
    live = await live_members(conn, group)
    if live:
        raise GroupError(
            f"group {group!r} has {len(live)} live member(s) ({', '.join(sorted(live))}); offsets can only be "
            "reset while the group is empty (as in Kafka): stop its consumers first"
        )
    tps = await _all_partitions(conn, [topic])
    states = await _partition_states(conn, group, tps)
    plan = []
    for tp in tps:
        s = keys.stream(tp.topic, tp.partition)
        current = (states.get(tp) or {}).get("last_delivered")
        if to_earliest:
            target = "0-0"
        elif to_latest:
            target = "$"
        elif to_datetime_ms is not None:
            target = offsets.before(f"{max(0, to_datetime_ms)}-0")
        elif to_offset is not None:
            target = offsets.before(to_offset)
        else:
            target = await _shifted(conn, s, current or "0-0", int(shift_by or 0))
        plan.append((tp, current, target))
    if execute:
        out = []
        for tp, current, target in plan:
            _, new, _ = await conn.script(
                "set_position",
                [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition)],
                [group, "", target, "0"],
                f"resetting offsets of {group} on {tp.topic}[{tp.partition}]",
            )
            out.append(OffsetReset(tp.topic, tp.partition, current, _text(new)))
        await conn.command(f"resetting offsets of {group}", "HSETNX", keys.GROUPS, group, json.dumps({"layout": 1}))
        return out
    if to_latest:
        ends = await _partition_ends(conn, tps)
        return [OffsetReset(tp.topic, tp.partition, cur, ends[tp]) for tp, cur, _ in plan]
    return [OffsetReset(tp.topic, tp.partition, cur, target) for tp, cur, target in plan]


async def _partition_ends(conn: Connection, tps: list[TopicPartition]) -> dict[TopicPartition, str]:
    pipe = conn.redis.pipeline(transaction=False)
    for tp in tps:
        pipe.xinfo_stream(keys.stream(tp.topic, tp.partition))
    infos = await _execute(pipe, "reading partition ends")
    return {
        tp: (_text(i.get("last-generated-id")) if isinstance(i, dict) else "0-0") or "0-0" for tp, i in zip(tps, infos)
    }


async def _shifted(conn: Connection, stream: str, last: str, n: int) -> str:
    """The last-delivered ID ``n`` records after (n > 0) or before (n < 0) ``last``."""
    if n == 0:
        return last
    if n > 0:
        ahead = await conn.command("shifting offsets", "XRANGE", stream, f"({last}", "+", "COUNT", n)
        return _text(ahead[-1][0]) if ahead else last
    back = await conn.command("shifting offsets", "XREVRANGE", stream, last, "-", "COUNT", -n + 1)
    ids = [_text(e[0]) for e in back]
    # Re-deliver |n| records: ``last`` itself (when stored) and the ones before it.
    earlier = ids[1:] if ids and ids[0] == last else ids
    k = -n - 1 if ids and ids[0] == last else -n
    return earlier[k] if len(earlier) > k else "0-0"


async def delete_group(conn: Connection, group: str) -> int:
    """Delete ``group``: its coordination keys and its stream groups. Refused with live members.

    Returns the number of partitions the group had read."""
    keys.validate_name(group, "group")
    if not await conn.command(f"deleting group {group}", "HEXISTS", keys.GROUPS, group):
        raise GroupError(f"group {group!r} does not exist; `facade groups list` shows the groups")
    await conn.script("group_delete", list(keys.group_keys(group)), [], f"deleting group {group}")
    pipe = conn.redis.pipeline(transaction=False)
    for tp in await _all_partitions(conn):
        pipe.xgroup_destroy(keys.stream(tp.topic, tp.partition), group)
        pipe.hdel(keys.owners(tp.topic, tp.partition), group)
    results = await _execute(pipe, f"deleting group {group}")
    # A stream that vanished meanwhile answers an error: nothing of the group is left there.
    removed = sum(int(r) for r in results[::2] if not isinstance(r, Exception))
    await conn.command(f"deleting group {group}", "HDEL", keys.GROUPS, group)
    return removed
