"""CreatePartitions (key 37): raise a topic's partition count (Admin.alter_partitions)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, FacadeError, UnknownTopicError
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ErrorCode, make


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    results = []
    for t in request.topics:
        try:
            if t.assignments:
                raise ConfigError("manual replica assignments are not supported: give the count only")
            cfg = await ctx.admin.topic(t.name)
            if t.count <= cfg.partitions:
                code = ErrorCode.invalid_partitions
                message = f"topic {t.name!r} has {cfg.partitions} partitions; the count can only grow"
                results.append(
                    make(
                        schema.CreatePartitionsTopicResult,
                        name=t.name,
                        error_code=code,
                        error_message=message,
                    )
                )
                continue
            if not request.validate_only:
                await ctx.admin.alter_partitions(t.name, t.count)
                ctx.topics.forget(t.name)
            results.append(make(schema.CreatePartitionsTopicResult, name=t.name, error_code=ErrorCode.none))
        except FacadeError as exc:
            code = kafka_error(exc)
            if isinstance(exc, ConfigError) and not isinstance(exc, UnknownTopicError):
                code = ErrorCode.invalid_partitions if "partition" in str(exc) else ErrorCode.invalid_request
            results.append(
                make(
                    schema.CreatePartitionsTopicResult,
                    name=t.name,
                    error_code=code,
                    error_message=str(exc)[:500],
                )
            )
    return make(schema.CreatePartitionsResponse, results=tuple(results))


API = Api(37, "CreatePartitions", 0, 3, handle)
