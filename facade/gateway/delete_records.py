"""DeleteRecords (key 21): remove a partition's records below an offset (Admin.delete_records:
trim_before.lua in bounded steps); offset -1 means the high watermark (every stored record)."""

from __future__ import annotations

from typing import Any

from .._async import logs
from ..errors import FacadeError
from ..records import TopicPartition
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ErrorCode, make


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    topics_out = []
    for topic in request.topics:
        parts = []
        try:
            cfg = await ctx.topics.get(topic.name)
        except FacadeError as exc:
            code = kafka_error(exc)
            parts = [make(schema.DeleteRecordsPartitionResult, partition_index=p.partition_index, low_watermark=-1,
                          error_code=code) for p in topic.partitions]  # fmt: skip
            topics_out.append(make(schema.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(parts)))
            continue
        for p in topic.partitions:
            tp = TopicPartition(topic.name, p.partition_index)
            low, code = -1, ErrorCode.none
            try:
                if not 0 <= tp.partition < cfg.partitions:
                    code = ErrorCode.unknown_topic_or_partition
                else:
                    bounds = (await logs.log_offsets(ctx.conn, [tp]))[tp]
                    if p.offset < -1 or p.offset > bounds.end:
                        code = ErrorCode.offset_out_of_range
                    else:
                        low = await logs.delete_before(ctx.conn, tp, p.offset)
            except FacadeError as exc:
                code = kafka_error(exc)
            parts.append(make(schema.DeleteRecordsPartitionResult, partition_index=tp.partition, low_watermark=low,
                              error_code=code))  # fmt: skip
        topics_out.append(make(schema.DeleteRecordsTopicResult, name=topic.name, partitions=tuple(parts)))
    return make(schema.DeleteRecordsResponse, topics=tuple(topics_out))


API = Api(21, "DeleteRecords", 0, 2, handle)
