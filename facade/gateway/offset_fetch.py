"""OffsetFetch (key 9): a group's committed offsets, read where facade keeps them
(``facade:{T/P}:off``): Kafka clients and facade's SDK see the same offsets, whichever side
committed or reset them. No topics listed (v2+): every partition the group committed on.
v8+ asks for several groups at once."""

from __future__ import annotations

import json
from typing import Any

from .. import keys
from ..errors import PermissionDeniedError, from_redis
from ..records import TopicPartition
from .context import Api, RequestContext
from .coordinator import group_ok
from .protocol import ErrorCode, make


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _every_partition(ctx: RequestContext) -> list[TopicPartition]:
    raw = await ctx.conn.command("listing topics", "HGETALL", keys.TOPICS)
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
    return [TopicPartition(_text(k), p) for k, v in sorted(items) for p in range(int(json.loads(v)["partitions"]))]


async def committed(
    ctx: RequestContext, group: str, wanted: list[tuple[str, list[int]]] | None
) -> dict[str, list[tuple[int, int, str | None]]]:
    """topic -> [(partition, committed offset or -1, metadata)] for the partitions asked (None:
    every partition the group has an offset on)."""
    if wanted is None:
        tps = await _every_partition(ctx)
    else:
        tps = [TopicPartition(t, p) for t, parts in wanted for p in parts]
    replies = await ctx.conn.commands(
        [("HGET", keys.committed(tp.topic, tp.partition), group) for tp in tps], f"fetching offsets of group {group}"
    )
    out: dict[str, list[tuple[int, int, str | None]]] = {t: [] for t, _ in wanted} if wanted is not None else {}
    for reply in replies:
        if isinstance(reply, Exception):
            raise from_redis(reply, f"fetching offsets of group {group}")
    for tp, raw in zip(tps, replies):
        if raw is None:
            if wanted is not None:
                out[tp.topic].append((tp.partition, -1, ""))
            continue
        offset, _, metadata = _text(raw).partition(" ")
        out.setdefault(tp.topic, []).append((tp.partition, int(offset), metadata))
    return out


async def _group(ctx: RequestContext, group: str, topics: Any, cls_topic: Any, cls_part: Any) -> tuple[ErrorCode, tuple[Any, ...]]:
    if not group_ok(group):
        return ErrorCode.invalid_group_id, ()
    wanted = None if topics is None else [(t.name, list(t.partition_indexes)) for t in topics]
    try:
        found = await committed(ctx, group, wanted)
    except PermissionDeniedError:  # a SASL user whose ACL role may not read offsets
        return ErrorCode.group_authorization_failed, ()
    return ErrorCode.none, tuple(
        make(cls_topic, name=topic, partitions=tuple(
            make(cls_part, partition_index=p, committed_offset=off, committed_leader_epoch=-1, metadata=meta,
                 error_code=ErrorCode.none)
            for p, off, meta in parts))
        for topic, parts in found.items()
    )  # fmt: skip


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if ctx.api_version >= 8:
        groups = []
        for g in request.groups:
            code, topics = await _group(ctx, g.group_id, g.topics, schema.OffsetFetchResponseTopics,
                                        schema.OffsetFetchResponsePartitions)  # fmt: skip
            groups.append(make(schema.OffsetFetchResponseGroup, group_id=g.group_id, topics=topics, error_code=code))
        return make(schema.OffsetFetchResponse, groups=tuple(groups))
    code, topics = await _group(ctx, request.group_id, request.topics, schema.OffsetFetchResponseTopic,
                                schema.OffsetFetchResponsePartition)  # fmt: skip
    return make(schema.OffsetFetchResponse, topics=topics, error_code=code)


API = Api(9, "OffsetFetch", 1, 8, handle)
