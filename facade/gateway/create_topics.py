"""CreateTopics (key 19): facade topics, with the configs facade/gateway/configs.py maps.

num_partitions -1 means 1 (the gateway's default); replica assignments are refused (Redis decides
where data lives); any replication factor is accepted and reported as 1 (one copy per Redis
primary; Redis replication is configured on the servers, docs/replication.md).
"""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import ConfigError, FacadeError, InvalidNameError, TopicExistsError
from .configs import create_options, topic_configs
from .context import Api, RequestContext
from .errors import kafka_error
from .produce import MAX_BATCH_BYTES
from .protocol import ErrorCode, make
from .topics import topic_id


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    results = []
    for t in request.topics:
        try:
            results.append(await _create(ctx, schema, t, getattr(request, "validate_only", False)))
        except FacadeError as exc:
            code = kafka_error(exc)
            if code == ErrorCode.invalid_request and not isinstance(exc, InvalidNameError):
                code = ErrorCode.invalid_config
            results.append(make(schema.CreatableTopicResult, name=t.name, error_code=code, error_message=str(exc)[:500],
                                num_partitions=-1, replication_factor=-1, configs=None))  # fmt: skip
    return make(schema.CreateTopicsResponse, topics=tuple(results))


async def _create(ctx: RequestContext, schema: Any, t: Any, validate_only: bool) -> Any:
    keys.validate_name(t.name)
    if t.assignments:
        raise ConfigError("manual replica assignments are not supported: give num_partitions instead")
    partitions = 1 if t.num_partitions == -1 else t.num_partitions
    keys.validate_partitions(partitions)
    if t.replication_factor == 0 or t.replication_factor < -1:
        raise ConfigError(f"replication factor must be -1 or positive, got {t.replication_factor}")
    options = create_options(t.configs)
    if validate_only:
        if await ctx.conn.command("checking a topic", "HEXISTS", keys.TOPICS, t.name):
            raise TopicExistsError(f"topic {t.name!r} already exists")
        return make(schema.CreatableTopicResult, name=t.name, error_code=ErrorCode.none, num_partitions=partitions,
                    replication_factor=1, configs=None)  # fmt: skip
    cfg = await ctx.admin.create_topic(t.name, partitions, **options)
    if not hasattr(schema, "CreatableTopicConfigs"):  # before v5 the result carries no configs
        return make(schema.CreatableTopicResult, name=t.name, error_code=ErrorCode.none)
    configs = tuple(
        make(schema.CreatableTopicConfigs, name=name, value=value, read_only=False, config_source=5 if default else 1,
             is_sensitive=False)
        for name, (value, default) in topic_configs(cfg, MAX_BATCH_BYTES).items()
    )  # fmt: skip
    return make(schema.CreatableTopicResult, name=t.name, topic_id=topic_id(cfg), error_code=ErrorCode.none,
                num_partitions=cfg.partitions, replication_factor=1, configs=configs)  # fmt: skip


API = Api(19, "CreateTopics", 2, 7, handle)
