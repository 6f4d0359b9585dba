# Generated from facade/_async/groups.py by scripts/unasync.py: edit that file, not this one.
"""Reading and changing consumer-group state: describe, lag, offset resets, delete.

This module is the asyncio source of truth; facade/_sync/groups.py is generated from it.
Used by Admin (operators) and the gateway.

A group's progress on a partition is its committed offset (``facade:{T/P}:off``, Kafka's: the
next record to read); lag is log end offset minus committed offset, exact because offsets are
dense.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from .. import keys, offsets, scripts
from ..errors import ConfigError, GroupError, from_redis
from ..records import GroupDescription, GroupMember, GroupPartitionInfo, OffsetReset, TopicPartition
from .client import Connection
from .logs import parse_stream_info

__all__ = ["delete_group", "describe_group", "group_partition_states", "live_members", "reset_offsets"]


def _text(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _committed(raw: Any) -> int | None:
    return None if raw is None else int(_text(raw).split(" ", 1)[0])


def _position(ginfo: Any, group: str) -> int | None:
    """The group's read position from XINFO GROUPS (None: no stream group)."""
    if isinstance(ginfo, Exception):
        return None
    for g in ginfo:
        if _text(g.get("name")) == group:
            last = _text(g.get("last-delivered-id")) or "0-0"
            return 0 if last == "0-0" else offsets.split_id(last)[1] + 1
    return None


def group_partition_states(
    conn: Connection, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, GroupPartitionInfo]:
    """Where ``group`` stands on each of ``tps`` it has read or committed (one round trip)."""
    commands: list[tuple[Any, ...]] = []
    for tp in tps:
        s = keys.stream(tp.topic, tp.partition)
        commands += [
            ("HGET", keys.owners(tp.topic, tp.partition), group),
            ("HGET", keys.committed(tp.topic, tp.partition), group),
            ("XINFO GROUPS", s),
            ("XINFO STREAM", s),
        ]
    replies = conn.commands(commands, f"describing group {group}")
    out = {}
    for i, tp in enumerate(tps):
        owner, committed, ginfo, sinfo = replies[4 * i : 4 * i + 4]
        for reply in (owner, committed):
            if isinstance(reply, Exception):
                raise from_redis(reply, f"describing group {group}") from reply
        position = _position(ginfo, group)
        done = _committed(committed)
        if position is None and done is None:
            continue
        log = parse_stream_info(sinfo) if not isinstance(sinfo, Exception) else None
        start, end = (log.start, log.end) if log else (0, 0)
        base = done if done is not None else start  # nothing committed: all of it is lag
        token = _text(owner) if owner else None
        out[tp] = GroupPartitionInfo(
            tp.topic, tp.partition, keys.token_member(token) if token else None, done, position, start, end,
            max(0, end - max(base, start)),
        )
    return out


def _all_partitions(conn: Connection, topics: list[str] | None = None) -> list[TopicPartition]:
    if topics is None:
        raw = conn.command("listing topics", "HGETALL", keys.TOPICS)
        items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        counts = {_text(k): int(json.loads(v)["partitions"]) for k, v in items}
    else:
        counts = {t: (conn.topic(t)).partitions for t in topics}
    return [TopicPartition(t, p) for t in sorted(counts) for p in range(counts[t])]


def live_members(conn: Connection, group: str) -> dict[str, int]:
    """Member id -> session deadline (ms) of the members whose session has not expired."""
    deadlines = keys.group_deadlines(group)
    sec, usec = conn.command(f"reading group {group}", "TIME")
    now = int(sec) * 1000 + int(usec) // 1000
    raw = conn.command(f"reading group {group}", "ZRANGEBYSCORE", deadlines, f"({now}", "+inf", "WITHSCORES")
    # redis-py gives [member, score] pairs or a flat list depending on protocol and version.
    pairs = raw if raw and isinstance(raw[0], (list, tuple)) else list(zip(raw[::2], raw[1::2]))
    return {_text(m): int(float(score)) for m, score in pairs}


def describe_group(conn: Connection, group: str) -> GroupDescription:
    """Generation, live members with their assignment, and progress on every partition read."""
    keys.validate_name(group, "group")
    state_key, members_key, _ = keys.group_keys(group)
    known = conn.command(f"describing group {group}", "HEXISTS", keys.GROUPS, group)
    if not known:
        raise GroupError(f"group {group!r} does not exist; `facade groups list` shows the groups")
    generation, assignment, protocol = conn.command(
        f"describing group {group}", "HMGET", state_key, "generation", "assignment", "protocol"
    )
    table = scripts.parse_assignment(assignment) if assignment else {}
    raw = conn.command(f"describing group {group}", "HGETALL", members_key)
    metas: dict[str, dict[str, Any]] = {}
    for k, v in raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2]):
        _, _, meta = _text(v).partition(" ")
        metas[_text(k)] = json.loads(meta) if meta else {}
    members = tuple(
        GroupMember(
            m,
            tuple(metas.get(m, {}).get("topics", ())),
            tuple(sorted(table.get(m, ()))),
            deadline,
            metas.get(m, {}).get("host", ""),
            metas.get(m, {}).get("client_id", ""),
        )
        for m, deadline in sorted((live_members(conn, group)).items())
    )
    states = group_partition_states(conn, group, _all_partitions(conn))
    if _text(protocol) == "kafka":
        # Kafka clients' groups (facade gateway) keep no owner tokens: a partition's owner is the
        # live member the current assignment gives it to.
        live = {m.member_id for m in members}
        owner_of = {tp: m for m, tps in table.items() if m in live for tp in tps}
        states = {tp: dataclasses.replace(st, owner=owner_of.get(tp)) for tp, st in states.items()}
    return GroupDescription(group, int(generation or 0), members, tuple(v for _, v in sorted(states.items())),
                            _text(protocol) or "facade")  # fmt: skip


def reset_offsets(
    conn: Connection,
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
    """Plan (and with ``execute=True`` apply) new committed offsets for ``group`` on every
    partition of ``topic``; exactly one target is given. Targets outside a partition's records
    are clamped to its log start or end (as kafka-consumer-groups does). Refused while the group
    has live members; members whose session expired (crashed) do not count. All or nothing: the
    group is locked against joins while the partitions are set."""
    keys.validate_name(group, "group")
    chosen = [x for x in (to_earliest or None, to_latest or None, to_datetime_ms, shift_by, to_offset) if x is not None]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of to_earliest, to_latest, to_datetime_ms, shift_by, to_offset "
            "(CLI: --to-earliest, --to-latest, --to-datetime, --by-duration, --shift-by, --to-offset)"
        )
    if to_offset is not None:
        offsets.validate(to_offset, "to_offset")
    if to_datetime_ms is not None:
        offsets.validate_timestamp(to_datetime_ms, "to_datetime_ms")
    if shift_by is not None and (isinstance(shift_by, bool) or not isinstance(shift_by, int)):
        raise ConfigError(f"shift_by must be an integer, got {shift_by!r}")
    live = live_members(conn, group)
    if live:  # a dry run says so too, as kafka-consumer-groups does
        raise GroupError(
            f"group {group!r} has {len(live)} live member(s) ({', '.join(sorted(live)[:5])}); offsets can only be "
            "reset while the group is empty (as in Kafka): stop its consumers first"
        )
    tps = _all_partitions(conn, [topic])
    states = group_partition_states(conn, group, tps)
    ends = {tp: (_log(conn, tp)) for tp in tps}
    plan = []
    for tp in tps:
        st = states.get(tp)
        current = st.committed if st else None
        start, end = ends[tp]
        if to_earliest:
            target = start
        elif to_latest:
            target = end
        elif to_datetime_ms is not None:
            target = _offset_at(conn, tp, to_datetime_ms, end)
        elif to_offset is not None:
            target = to_offset
        else:
            base = current if current is not None else (st.position if st and st.position is not None else start)
            target = base + int(shift_by or 0)
        plan.append((tp, current, min(max(target, start), end)))
    if not execute:
        return [OffsetReset(tp.topic, tp.partition, cur, target) for tp, cur, target in plan]
    conn.script(*scripts.group_lock(group, True), context=f"resetting offsets of group {group}")
    try:
        calls = [scripts.set_position(tp, group, "", target, "clamp", commit=True, exactly_once=False) for tp, _, target in plan]
        results = conn.pipeline(calls, f"resetting offsets of group {group}")
        for r in results:
            if isinstance(r, Exception):
                raise r
        out = [
            OffsetReset(tp.topic, tp.partition, cur, scripts.Positioned.parse(r).position)
            for (tp, cur, _), r in zip(plan, results)
        ]
        conn.command(f"resetting offsets of {group}", "HSETNX", keys.GROUPS, group, json.dumps({"layout": keys.LAYOUT_VERSION}))
        return out
    finally:
        conn.script(*scripts.group_lock(group, False), context=f"resetting offsets of group {group}")


def _log(conn: Connection, tp: TopicPartition) -> tuple[int, int]:
    info = conn.command("reading partition offsets", "XINFO STREAM", keys.stream(tp.topic, tp.partition))
    log = parse_stream_info(info)
    return log.start, log.end


def _offset_at(conn: Connection, tp: TopicPartition, ms: int, end: int) -> int:
    found = conn.command("looking up offsets by time", "XRANGE", keys.stream(tp.topic, tp.partition), f"{ms}-0", "+", "COUNT", 1)
    return offsets.split_id(found[0][0])[1] if found else end


def now_ms() -> int:
    """The local clock in ms (for --by-duration, which is relative to now)."""
    return int(time.time() * 1000)


def delete_group(conn: Connection, group: str) -> int:
    """Delete ``group``: its coordination keys, committed offsets and stream groups. Refused with
    live members. Returns the number of partitions the group had state on."""
    keys.validate_name(group, "group")
    if not conn.command(f"deleting group {group}", "HEXISTS", keys.GROUPS, group):
        raise GroupError(f"group {group!r} does not exist; `facade groups list` shows the groups")
    conn.script(*scripts.group_delete(group), context=f"deleting group {group}")
    commands: list[tuple[Any, ...]] = []
    for tp in _all_partitions(conn):
        own, off, done, dlv = keys.group_partition_keys(tp.topic, tp.partition)
        commands += [
            ("XGROUP", "DESTROY", keys.stream(tp.topic, tp.partition), group),
            ("HDEL", off, group),
            ("HDEL", own, group),
            ("HDEL", done, group),
            ("HDEL", dlv, group, f"{group}:r", f"{group}:f", f"{group}:t"),
        ]
    results = conn.commands(commands, f"deleting group {group}") if commands else []
    # A stream that vanished meanwhile answers an error: nothing of the group is left there.
    removed = sum(
        1 for i in range(0, len(results), 5)
        if any(not isinstance(r, Exception) and int(r) for r in results[i : i + 2])
    )  # fmt: skip
    conn.command(f"deleting group {group}", "HDEL", keys.GROUPS, group)
    return removed
