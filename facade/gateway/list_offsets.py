"""ListOffsets (key 2): a partition's earliest or latest offset, or the first at or after a time.

Timestamps -2 (earliest) and -4 (earliest local: the same here, nothing is tiered) answer the log
start offset; -1 (latest) the high watermark; -3 (max timestamp, KIP-734) the record with the
largest timestamp (its create time, or its append time on LogAppendTime topics: there the last
record), kept by produce.lua in the partition's :maxts key. Once that record is gone (retention,
DeleteRecords) or for records appended before produce.lua kept it, -3 answers the partition's last
record, its offset and timestamp, until a record with a still larger timestamp is appended (Kafka
answers the largest among the remaining records: that would take a scan of the partition). A time
(ms) answers the first record appended at or after it, found by the append time kept in each
stream entry ID (the SDK's offsets_for_times); offset -1 when there is none.
"""

from __future__ import annotations

from typing import Any

from .. import codec, keys
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
            return await _max_timestamp(ctx, schema, tp, lo.start, lo.end)
        return _answer(schema, tp.partition, ErrorCode.none, lo.end if ts == LATEST else lo.start, -1)
    if ts < 0:
        return _answer(schema, tp.partition, ErrorCode.invalid_request)
    found = (await logs.offsets_for_times(ctx.conn, {tp: ts}))[tp]
    if found is None:
        return _answer(schema, tp.partition, ErrorCode.none, -1, -1)
    return _answer(schema, tp.partition, ErrorCode.none, found.offset, found.timestamp_ms)


async def _max_timestamp(ctx: RequestContext, schema: Any, tp: TopicPartition, start: int, end: int) -> Any:
    if end == start:
        return _answer(schema, tp.partition, ErrorCode.none, -1, -1)
    kept = await ctx.conn.read("reading the max timestamp", "GET", keys.max_timestamp(tp.topic, tp.partition))
    if kept:
        timestamp, offset = (int(x) for x in kept.split())
        if start <= offset < end:
            return _answer(schema, tp.partition, ErrorCode.none, offset, timestamp)
    # That record is gone (or was appended before :maxts was kept): the last record.
    last = await ctx.conn.read("reading the last record", "XREVRANGE", keys.stream(tp.topic, tp.partition),
                               "+", "-", "COUNT", 1)  # fmt: skip
    if not last:
        return _answer(schema, tp.partition, ErrorCode.none, -1, -1)
    record = codec.decode(tp.topic, tp.partition, last[0][0], last[0][1])
    return _answer(schema, tp.partition, ErrorCode.none, record.offset, record.timestamp_ms)


def _answer(schema: Any, index: int, code: ErrorCode, offset: int = -1, timestamp: int = -1) -> Any:
    return make(schema.ListOffsetsPartitionResponse, partition_index=index, error_code=code, offset=offset,
                timestamp=timestamp, leader_epoch=0, old_style_offsets=(offset,) if offset >= 0 else ())  # fmt: skip


API = Api(2, "ListOffsets", 1, 8, handle)
