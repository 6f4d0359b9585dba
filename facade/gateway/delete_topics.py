"""DeleteTopics (key 20): by name (v1-v5) or by name or topic id (v6)."""

from __future__ import annotations

from typing import Any

from ..errors import FacadeError
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ZERO_UUID, ErrorCode, make
from .topics import all_topics, topic_id


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    by_id = {}
    if any(name is None for name, _ in wanted):
        by_id = {topic_id(cfg): name for name, cfg in (await all_topics(ctx.conn)).items()}
    results = []
    for name, tid in wanted:
        if name is None:
            name = by_id.get(tid)
            if name is None:
                results.append(make(schema.DeletableTopicResult, name=None, topic_id=tid,
                                    error_code=ErrorCode.unknown_topic_id, error_message="no topic has this id"))  # fmt: skip
                continue
        try:
            cfg = await ctx.admin.topic(name)
            await ctx.admin.delete_topic(name)
            ctx.topics.forget(name)
            results.append(
                make(
                    schema.DeletableTopicResult, name=name, topic_id=topic_id(cfg), error_code=ErrorCode.none
                )
            )
        except FacadeError as exc:
            results.append(make(schema.DeletableTopicResult, name=name, topic_id=tid or ZERO_UUID,
                                error_code=kafka_error(exc), error_message=str(exc)[:500]))  # fmt: skip
    return make(schema.DeleteTopicsResponse, responses=tuple(results))


API = Api(20, "DeleteTopics", 1, 6, handle)
