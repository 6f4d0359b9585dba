"""InitProducerId (key 22): a producer id for an idempotent Kafka producer.

Ids come from one Redis counter (``facade:{meta}:producer_ids``), so every gateway on a Redis hands
out distinct ones. A request naming its current id and epoch (KIP-360: the client bumps the epoch
after an error to restart its sequences) gets the same id with the next epoch; facade keeps
sequences per ``kafka-<id>-<epoch>`` (facade/gateway/produce.py), so a new epoch starts afresh.
Transactional ids are refused: facade does not implement Kafka transactions.
"""

from __future__ import annotations

from typing import Any

from .. import keys
from .context import Api, RequestContext
from .protocol import ErrorCode, make

MAX_EPOCH = 32766


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if request.transactional_id is not None:
        return make(schema.InitProducerIdResponse, error_code=ErrorCode.unsupported_version, producer_id=-1,
                    producer_epoch=-1)  # fmt: skip
    current = getattr(request, "producer_id", -1)
    epoch = getattr(request, "producer_epoch", -1)
    if current >= 0 and 0 <= epoch < MAX_EPOCH:
        return make(schema.InitProducerIdResponse, error_code=ErrorCode.none, producer_id=current,
                    producer_epoch=epoch + 1)  # fmt: skip
    pid = int(await ctx.conn.command("allocating a producer id", "INCR", keys.PRODUCER_IDS))
    return make(schema.InitProducerIdResponse, error_code=ErrorCode.none, producer_id=pid, producer_epoch=0)


API = Api(22, "InitProducerId", 0, 4, handle)
