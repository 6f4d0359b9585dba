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
import base64
import hashlib
import json
import struct
import time
from collections.abc import Sequence
from typing import Any

from .. import keys, scripts
from ..errors import InvalidNameError, PermissionDeniedError, from_redis
from .context import RequestContext
from .protocol import ErrorCode

__all__ = ["INITIAL_REBALANCE_DELAY_MS", "MAX_PROTOCOLS", "MAX_PROTOCOL_NAME_BYTES", "code_of", "group_ok",
           "member_metadata", "pack_protocols", "register", "run", "unpack_protocols", "wait"]

INITIAL_REBALANCE_DELAY_MS = 3_000
"""A first member joining an empty group waits this long for others before the generation forms
(Kafka's group.initial.rebalance.delay.ms), each newcomer meanwhile restarting it, within the
rebalance timeout."""
MAX_PROTOCOLS = 32
MAX_PROTOCOL_NAME_BYTES = 255
"""Most protocols (assignors) one JoinGroup may offer, and the longest name (UTF-8 bytes) of one
(Kafka clients offer one to three, named "range", "cooperative-sticky", ...): the scripts read
members' protocol names, so these stay small; more is answered INVALID_REQUEST. The metadata
beside each name is bounded by ``Limits.max_member_metadata_bytes`` and never read by a script."""
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


GONE = [b"gone"]
"""What :func:`wait` answers when the client closed its connection while it waited."""


async def wait(ctx: RequestContext, call: scripts.Call, what: str, bound_s: float) -> Any:
    """Call ``call`` until it answers something other than "wait" (at most ``bound_s`` seconds:
    then the last "wait" answer); :data:`GONE` once the client closed its connection (nobody
    would read the answer)."""
    pause = POLL_FIRST_S
    end = time.monotonic() + bound_s
    gone = ctx.session.gone
    while True:
        reply = await run(ctx, call, what)
        if code_of(reply) != "wait" or time.monotonic() >= end:
            return reply
        try:
            await asyncio.wait_for(gone.wait(), pause)
        except asyncio.TimeoutError:
            pass
        if gone.is_set():
            return GONE
        pause = min(pause * 2, POLL_MAX_S)


def pack_protocols(protocols: Sequence[tuple[str, bytes]]) -> bytes:
    """A member's protocols with their metadata as stored in "m:<id>" (opaque to the scripts):
    per protocol, int16 name length, name (UTF-8), int32 metadata length, metadata."""
    out = bytearray()
    for name, blob in protocols:
        raw = name.encode()
        out += struct.pack(">h", len(raw)) + raw + struct.pack(">i", len(blob)) + blob
    return bytes(out)


def unpack_protocols(packed: bytes) -> list[tuple[str, bytes]]:
    """The inverse of :func:`pack_protocols`."""
    out, i = [], 0
    while i < len(packed):
        (n,) = struct.unpack_from(">h", packed, i)
        name = packed[i + 2 : i + 2 + n].decode()
        i += 2 + n
        (m,) = struct.unpack_from(">i", packed, i)
        out.append((name, bytes(packed[i + 4 : i + 4 + m])))
        i += 4 + m
    return out


def protocols_digest(packed: bytes) -> str:
    """What kafka_join compares to tell a static member's unchanged protocols (hex SHA-256)."""
    return hashlib.sha256(packed).hexdigest()


async def member_metadata(ctx: RequestContext, group: str, ids: Sequence[str], protocol: str) -> dict[str, bytes]:
    """Each member's metadata for ``protocol``, read with one HMGET of their "m:<id>" fields
    (outside any script); a member removed meanwhile is left out (a rebalance follows anyway)."""
    if not ids:
        return {}
    kafka_key = keys.group_kafka(group)
    what = f"reading the members' metadata of group {group}"
    raw = await ctx.conn.command(what, "HMGET", kafka_key, *(f"m:{m}" for m in ids))
    out: dict[str, bytes] = {}
    older = [m for m, packed in zip(ids, raw) if packed is None]
    for m, packed in zip(ids, raw):
        if packed is not None:
            out[m] = dict(unpack_protocols(bytes(packed))).get(protocol, b"")
    if older:  # members stored by an older gateway: the protocols were in the members hash
        values = await ctx.conn.command(what, "HMGET", keys.group_members(group), *older)
        for m, value in zip(older, values):
            if value is not None:
                out[m] = _older_metadata(value).get(protocol, b"")
    return out


def _older_metadata(value: Any) -> dict[str, bytes]:
    """The protocols in a members-hash value written by a gateway before "m:<id>" existed."""
    _, _, meta_json = _text(value).partition(" ")
    meta = json.loads(meta_json) if meta_json else {}
    return {name: base64.b64decode(b64) for name, b64 in meta.get("kafka", {}).get("protocols", [])}


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
        packed = kafka.get(f"m:{m}")
        protocols = dict(unpack_protocols(bytes(packed))) if packed is not None else _older_metadata(value)
        blob = protocols.get(out.protocol_name, b"")
        instance = kafka.get(f"n:{m}")
        out.members.append({
            "id": m, "instance": _text(instance) if instance else None, "client_id": meta.get("client_id", ""),
            "host": meta.get("host", ""), "metadata": blob, "assignment": bytes(kafka.get(f"a:{m}") or b""),
        })  # fmt: skip
    return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
