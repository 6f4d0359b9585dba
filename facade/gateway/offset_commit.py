"""OffsetCommit (key 8): a Kafka client's committed offsets, fenced by generation and member id
(kafka_commit.lua), stored where facade's SDK keeps them (``facade:{T/P}:off``), so
`facade groups describe` shows the group's lag and `facade groups reset-offsets` moves it.

A commit with generation -1 and no member id (a consumer using assign(), or a tool) is accepted
while the group has no member. On one server the check and the writes are one script; on a Redis
Cluster (partitions on other slots) the check runs first, then each partition's write."""

from __future__ import annotations

from typing import Any

from .. import offsets as facade_offsets
from .. import scripts
from ..records import TopicPartition
from .context import Api, RequestContext
from .coordinator import code_of, error, group_ok, register, run
from .protocol import ErrorCode, make

MAX_METADATA_BYTES = 4096
"""Longest commit metadata accepted (Kafka's offset.metadata.max.bytes); longer:
OFFSET_METADATA_TOO_LARGE for that partition, nothing stored for it."""


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    group = request.group_id
    generation = getattr(request, "generation_id_or_member_epoch", None)
    if generation is None:
        generation = getattr(request, "generation_id", -1)
    member = getattr(request, "member_id", "") or ""
    instance = getattr(request, "group_instance_id", None) or ""
    codes: dict[tuple[str, int], ErrorCode] = {}
    good: list[tuple[TopicPartition, int, str]] = []
    if not group_ok(group):
        default = ErrorCode.invalid_group_id
    else:
        default = ErrorCode.none
        for t in request.topics:
            try:
                cfg = await ctx.topics.get(t.name)
            except Exception:  # noqa: BLE001 - unknown topic, bad name: that topic's error
                cfg = None
            for p in t.partitions:
                if cfg is None or not 0 <= p.partition_index < cfg.partitions:
                    codes[(t.name, p.partition_index)] = ErrorCode.unknown_topic_or_partition
                elif not 0 <= p.committed_offset <= facade_offsets.MAX_OFFSET:
                    codes[(t.name, p.partition_index)] = ErrorCode.invalid_commit_offset_size
                elif len((p.committed_metadata or "").encode()) > MAX_METADATA_BYTES:
                    codes[(t.name, p.partition_index)] = ErrorCode.offset_metadata_too_large
                else:
                    good.append((TopicPartition(t.name, p.partition_index), p.committed_offset, p.committed_metadata or ""))
        what = f"committing offsets of group {group}"
        if ctx.conn.cluster:
            reply = await run(ctx, scripts.kafka_commit(group, member, instance, generation, []), what)
            if code_of(reply) == "none" and good:
                calls = [scripts.commit(group, [(tp, "", off, False, meta)]) for tp, off, meta in good]
                results = await ctx.conn.pipeline(calls, what)
                for (tp, _, _), r in zip(good, results):
                    if isinstance(r, Exception) or isinstance(r[0], Exception):
                        codes[(tp.topic, tp.partition)] = ErrorCode.unknown_server_error
        else:
            reply = await run(ctx, scripts.kafka_commit(group, member, instance, generation, good), what)
        default = error(code_of(reply))
        if default == ErrorCode.none:
            await register(ctx, group)
    topics = tuple(
        make(schema.OffsetCommitResponseTopic, name=t.name, partitions=tuple(
            make(schema.OffsetCommitResponsePartition, partition_index=p.partition_index,
                 error_code=codes.get((t.name, p.partition_index), default))
            for p in t.partitions))
        for t in request.topics
    )  # fmt: skip
    return make(schema.OffsetCommitResponse, topics=topics)


API = Api(8, "OffsetCommit", 2, 8, handle)
