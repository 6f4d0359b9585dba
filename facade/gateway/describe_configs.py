"""DescribeConfigs (key 32): a topic's configs as facade/gateway/configs.py maps them, and a few
broker configs of the gateway itself."""

from __future__ import annotations

from typing import Any

from ..errors import FacadeError
from .configs import topic_configs
from .context import Api, RequestContext
from .errors import kafka_error
from .produce import MAX_BATCH_BYTES
from .protocol import ErrorCode, make

TOPIC, BROKER = 2, 4
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
STRING = 2


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    results = []
    for res in request.resources:
        try:
            if res.resource_type == TOPIC:
                cfg = await ctx.admin.topic(res.resource_name)
                found = {
                    n: (v, DEFAULT_CONFIG if d else TOPIC_CONFIG)
                    for n, (v, d) in topic_configs(cfg, MAX_BATCH_BYTES).items()
                }
            elif res.resource_type == BROKER:
                host, port = ctx.gateway.advertised
                found = {
                    "advertised.listeners": (f"PLAINTEXT://{host}:{port}", STATIC_BROKER_CONFIG),
                    "auto.create.topics.enable": (
                        str(ctx.gateway.auto_create_partitions > 0).lower(),
                        STATIC_BROKER_CONFIG,
                    ),
                    "num.partitions": (str(max(1, ctx.gateway.auto_create_partitions)), STATIC_BROKER_CONFIG),
                    "message.max.bytes": (str(MAX_BATCH_BYTES), DEFAULT_CONFIG),
                }
            else:
                results.append(make(schema.DescribeConfigsResult, error_code=ErrorCode.invalid_request,
                                    error_message=f"resource type {res.resource_type} is not described by facade gateway",
                                    resource_type=res.resource_type, resource_name=res.resource_name))  # fmt: skip
                continue
        except FacadeError as exc:
            results.append(make(schema.DescribeConfigsResult, error_code=kafka_error(exc), error_message=str(exc)[:500],
                                resource_type=res.resource_type, resource_name=res.resource_name))  # fmt: skip
            continue
        wanted = res.configuration_keys
        configs = tuple(
            make(schema.DescribeConfigsResourceResult, name=name, value=value, read_only=res.resource_type == BROKER,
                 config_source=source, is_default=source == DEFAULT_CONFIG, is_sensitive=False, synonyms=(),
                 config_type=STRING, documentation=None)
            for name, (value, source) in sorted(found.items())
            if wanted is None or name in wanted
        )  # fmt: skip
        results.append(make(schema.DescribeConfigsResult, error_code=ErrorCode.none, resource_type=res.resource_type,
                            resource_name=res.resource_name, configs=configs))  # fmt: skip
    return make(schema.DescribeConfigsResponse, results=tuple(results))


API = Api(32, "DescribeConfigs", 1, 4, handle)
