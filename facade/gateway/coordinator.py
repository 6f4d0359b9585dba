"""The group coordinator's shared pieces for the consumer-group APIs (join_group.py,
sync_group.py, heartbeat.py, leave_group.py, offset_commit.py, ...).

The gateway keeps no group state: each step of Kafka's classic group protocol is one kafka_*
script on the group's keys (lua/kafka_*.lua; the layout is in lua/_lib.lua, "Kafka-protocol
groups"). JoinGroup and SyncGroup wait by calling their script again every few tens of ms until
it answers (:func:`wait`), so any gateway on the Redis can serve any member of a group, and a
gateway that dies leaves nothing behind but sessions that expire.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .. import keys, scripts
from ..errors import InvalidNameError, PermissionDeniedError, from_redis
from .context import RequestContext
from .protocol import ErrorCode

__all__ = ["INITIAL_REBALANCE_DELAY_MS", "MAX_MEMBERS", "code_of", "group_ok", "register", "run", "wait"]

INITIAL_REBALANCE_DELAY_MS = 3_000
"""A first member joining an empty group waits this long for others before the generation forms
(Kafka's group.initial.rebalance.delay.ms), each newcomer meanwhile restarting it, within the
rebalance timeout."""
MAX_MEMBERS = 1_000
"""Members one group may have (Kafka's group.max.size): bounds each script's walk of a group."""
MIN_SESSION_MS = 1_000
MAX_SESSION_MS = 1_800_000
"""Accepted session timeouts (Kafka's group.min/max.session.timeout.ms are 6 s and 30 min; the
gateway accepts from 1 s)."""
MAX_REBALANCE_MS = 1_800_000
"""Longest rebalance timeout accepted (Kafka's max.poll.interval.ms is 5 min by default); longer
ones are cut to this: a JoinGroup or SyncGroup never waits longer."""
POLL_FIRST_S = 0.01
POLL_MAX_S = 0.1
"""How often a waiting JoinGroup/SyncGroup looks at the group: from 10 ms, doubling up to 100 ms."""


def code_of(reply: Any) -> str:
    """The Kafka error name a kafka_* script answered first."""
    first = reply[0]
    return first.decode() if isinstance(first, bytes) else str(first)


def error(name: str) -> ErrorCode:
    """The ErrorCode of a kafka_* script's answer ("none", "unknown_member_id", ...)."""
    return ErrorCode[name]


def group_ok(group: str | None) -> bool:
    """Whether ``group`` is a group id facade can keep (Kafka's legal topic characters)."""
    try:
        keys.validate_name(group, "group")
    except InvalidNameError:
        return False
    return True


DENIED = [b"group_authorization_failed"]
"""What :func:`run` answers when the session's Redis ACL user may not run the script."""


async def run(ctx: RequestContext, call: scripts.Call, what: str) -> Any:
    """Run a kafka_* script; a refusal by the Redis ACL (a SASL user without the consumer role)
    answers GROUP_AUTHORIZATION_FAILED, like the scripts' own answers."""
    try:
        return await ctx.conn.script(*call, context=what)
    except PermissionDeniedError:
        return DENIED


async def wait(ctx: RequestContext, call: scripts.Call, what: str, bound_s: float) -> Any:
    """Call ``call`` until it answers something other than "wait" (at most ``bound_s`` seconds:
    then the last "wait" answer)."""
    pause = POLL_FIRST_S
    end = time.monotonic() + bound_s
    while True:
        reply = await run(ctx, call, what)
        if code_of(reply) != "wait" or time.monotonic() >= end:
            return reply
        await asyncio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)


async def register(ctx: RequestContext, group: str) -> None:
    """List ``group`` in the group registry (`facade groups list` / describe find it)."""
    await ctx.conn.command(
        f"registering group {group}", "HSETNX", keys.GROUPS, group, json.dumps({"layout": keys.LAYOUT_VERSION})
    )


def ms(value: Any) -> int:
    """Milliseconds of a kio duration (timedelta) or a plain number."""
    seconds = getattr(value, "total_seconds", None)
    return round(seconds() * 1000) if seconds else int(value)


_STATES = {"joining": "PreparingRebalance", "syncing": "CompletingRebalance", "stable": "Stable", "empty": "Empty"}


class GroupView:
    """What DescribeGroups and ListGroups say of a group (read with plain commands)."""

    def __init__(self, group: str, exists: bool) -> None:
        self.group = group
        self.exists = exists
        self.kind = ""
        """ "kafka" (Kafka clients through the gateway) or "facade" (SDK consumers)."""
        self.state = "Dead"
        self.protocol_type = ""
        self.protocol_name = ""
        self.members: list[dict[str, Any]] = []
        """Live members: id, instance, client_id, host, metadata (bytes), assignment (bytes)."""


async def view(ctx: RequestContext, group: str) -> GroupView:
    """The group's kind, Kafka state, protocol and live members (sessions not expired)."""
    import base64

    state_key, members_key, deadlines_key, kafka_key, _ = keys.kafka_group_keys(group)
    replies = await ctx.conn.commands(
        [
            ("HEXISTS", keys.GROUPS, group),
            ("HMGET", state_key, "phase", "protocol", "ptype", "pname", "generation"),
            ("HGETALL", members_key),
            ("HGETALL", kafka_key),
            ("TIME",),
        ],
        f"describing group {group}",
    )
    for r in replies:
        if isinstance(r, Exception):
            raise from_redis(r, f"describing group {group}")
    known, (phase, kind, ptype, pname, _), members, kafka, (sec, usec) = replies
    out = GroupView(group, bool(known))
    if not known:
        return out
    now = int(sec) * 1000 + int(usec) // 1000
    raw = await ctx.conn.command(f"describing group {group}", "ZRANGEBYSCORE", deadlines_key, f"({now}", "+inf")
    live = {_text(m) for m in raw}

    def pairs(d: Any) -> dict[str, Any]:
        items = d.items() if isinstance(d, dict) else zip(d[::2], d[1::2])
        return {_text(k): v for k, v in items}

    members, kafka = pairs(members), pairs(kafka)
    out.kind = _text(kind) if kind else "facade"
    if out.kind == "kafka":
        out.protocol_type = _text(ptype) if ptype else ""
        out.protocol_name = _text(pname) if pname else ""
        out.state = _STATES.get(_text(phase) if phase else "empty", "Empty") if live else "Empty"
    else:
        out.protocol_type = "facade"
        out.state = "Stable" if live else "Empty"
    for m in sorted(live):
        value = members.get(m)
        if value is None:
            continue
        _, _, meta_json = _text(value).partition(" ")
        meta = json.loads(meta_json) if meta_json else {}
        blob = b""
        for name, b64 in meta.get("kafka", {}).get("protocols", []):
            if name == out.protocol_name:
                blob = base64.b64decode(b64)
        instance = kafka.get(f"n:{m}")
        out.members.append({
            "id": m, "instance": _text(instance) if instance else None, "client_id": meta.get("client_id", ""),
            "host": meta.get("host", ""), "metadata": blob, "assignment": bytes(kafka.get(f"a:{m}") or b""),
        })  # fmt: skip
    return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
