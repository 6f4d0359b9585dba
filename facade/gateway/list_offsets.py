"""ListOffsets (key 2): a partition's earliest or latest offset, or the first at or after a time.

Timestamps -2 (earliest) and -4 (earliest local: the same here, nothing is tiered) answer the log
start offset; -1 (latest) the high watermark; -3 (max timestamp) the last record. A time (ms)
answers the first record appended at or after it, found by the append time kept in each stream
entry ID (the SDK's offsets_for_times); offset -1 when there is none.
"""

from __future__ import annotations

from typing import Any

from .. import keys
from .._async import logs
from ..errors import FacadeError
from ..records import TopicPartition
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ErrorCode, make

EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -2, -1, -3, -4


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    topics_out = []
    for topic in request.topics:
        parts_out = []
        try:
            cfg = await ctx.topics.get(topic.name)
        except FacadeError as exc:
            code = kafka_error(exc)
            parts_out = [_answer(schema, p.partition_index, code) for p in topic.partitions]
            topics_out.append(
                make(schema.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts_out))
            )
            continue
        for p in topic.partitions:
            tp = TopicPartition(topic.name, p.partition_index)
            if not 0 <= tp.partition < cfg.partitions:
                parts_out.append(_answer(schema, tp.partition, ErrorCode.unknown_topic_or_partition))
                continue
            try:
                parts_out.append(await _one(ctx, schema, tp, p.timestamp))
            except FacadeError as exc:
                ctx.topics.forget(topic.name)
                parts_out.append(_answer(schema, tp.partition, kafka_error(exc)))
        topics_out.append(make(schema.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts_out)))
    return make(schema.ListOffsetsResponse, topics=tuple(topics_out))


async def _one(ctx: RequestContext, schema: Any, tp: TopicPartition, ts: int) -> Any:
    if ts in (EARLIEST, LATEST, EARLIEST_LOCAL, MAX_TIMESTAMP):
        lo = (await logs.log_offsets(ctx.conn, [tp]))[tp]
        if ts == MAX_TIMESTAMP:
            if lo.end == lo.start:
                return _answer(schema, tp.partition, ErrorCode.none, -1, -1)
            last = await ctx.conn.read("reading the last record", "XREVRANGE", keys.stream(tp.topic, tp.partition),
                                       "+", "-", "COUNT", 1)  # fmt: skip
            eid = last[0][0].decode() if last else f"-1-{lo.end - 1}"
            ms, _, offset = eid.rpartition("-")
            return _answer(schema, tp.partition, ErrorCode.none, int(offset), int(ms))
        return _answer(schema, tp.partition, ErrorCode.none, lo.end if ts == LATEST else lo.start, -1)
    if ts < 0:
        return _answer(schema, tp.partition, ErrorCode.invalid_request)
    found = (await logs.offsets_for_times(ctx.conn, {tp: ts}))[tp]
    if found is None:
        return _answer(schema, tp.partition, ErrorCode.none, -1, -1)
    return _answer(schema, tp.partition, ErrorCode.none, found.offset, found.timestamp_ms)


def _answer(schema: Any, index: int, code: ErrorCode, offset: int = -1, timestamp: int = -1) -> Any:
    return make(schema.ListOffsetsPartitionResponse, partition_index=index, error_code=code, offset=offset,
                timestamp=timestamp, leader_epoch=0, old_style_offsets=(offset,) if offset >= 0 else ())  # fmt: skip


API = Api(2, "ListOffsets", 1, 8, handle)
