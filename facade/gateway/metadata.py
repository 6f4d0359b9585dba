"""Metadata (key 3): the brokers (this gateway alone), and each topic with its partitions.

Every gateway on a Redis answers for every partition: each names itself the only broker, the
leader and only replica of everything, so a client talks to whichever gateway it bootstrapped
from. Unknown topics are created (1 partition) when the request allows it and the gateway was
started with auto-creation on (Kafka's auto.create.topics.enable).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import keys
from ..errors import FacadeError, InvalidNameError
from ..records import TopicConfig
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ZERO_UUID, ErrorCode, make
from .topics import all_topics, some_topics, topic_id

log = logging.getLogger("facade.gateway")


def _topic(schema: Any, node: int, name: str, cfg: TopicConfig) -> Any:
    parts = tuple(
        make(schema.MetadataResponsePartition, error_code=ErrorCode.none, partition_index=p, leader_id=node,
             leader_epoch=0, replica_nodes=(node,), isr_nodes=(node,), offline_replicas=())
        for p in range(cfg.partitions)
    )  # fmt: skip
    return make(schema.MetadataResponseTopic, error_code=ErrorCode.none, name=name, topic_id=topic_id(cfg),
                is_internal=False, partitions=parts)  # fmt: skip


def _missing(schema: Any, name: str | None, code: ErrorCode) -> Any:
    return make(schema.MetadataResponseTopic, error_code=code, name=name, topic_id=ZERO_UUID, partitions=())


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    node = ctx.node_id
    wanted = request.topics
    if ctx.api_version == 0 and wanted == ():
        wanted = None  # v0: an empty list means every topic
    topics = []
    if wanted is None:
        for name, cfg in sorted((await all_topics(ctx.conn)).items()):
            topics.append(_topic(schema, node, name, cfg))
    else:
        names = [t.name for t in wanted if t.name is not None]
        found = await some_topics(ctx.conn, [n for n in names if _legal(n)]) if names else {}
        auto = getattr(request, "allow_auto_topic_creation", True) and ctx.gateway.auto_create_partitions > 0
        for t in wanted:
            if t.name is None:  # asked by topic id only: the gateway's topic ids are not looked up
                topics.append(_missing(schema, None, ErrorCode.unknown_topic_id))
                continue
            if not _legal(t.name):
                topics.append(_missing(schema, t.name, ErrorCode.invalid_topic_exception))
                continue
            cfg = found.get(t.name)
            if cfg is None and auto:
                try:
                    cfg = await ctx.admin.create_topic(
                        t.name, ctx.gateway.auto_create_partitions, exist_ok=True
                    )
                    log.info("created topic %s (%d partitions) on a Metadata request", t.name, cfg.partitions)
                except FacadeError as exc:
                    topics.append(_missing(schema, t.name, kafka_error(exc)))
                    continue
            if cfg is None:
                topics.append(_missing(schema, t.name, ErrorCode.unknown_topic_or_partition))
            else:
                topics.append(_topic(schema, node, t.name, cfg))
    host, port = ctx.gateway.advertised
    broker = make(schema.MetadataResponseBroker, node_id=node, host=host, port=port, rack=None)
    return make(schema.MetadataResponse, brokers=(broker,), cluster_id=ctx.gateway.cluster_id, controller_id=node,
                topics=tuple(topics))  # fmt: skip


def _legal(name: str) -> bool:
    try:
        keys.validate_name(name)
    except InvalidNameError:
        return False
    return True


API = Api(3, "Metadata", 0, 12, handle)
