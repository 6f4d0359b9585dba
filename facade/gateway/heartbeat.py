"""Heartbeat (key 12): keeps a Kafka member's session (kafka_heartbeat.lua), and tells it to
rejoin (REBALANCE_IN_PROGRESS) while a new generation forms; ILLEGAL_GENERATION,
UNKNOWN_MEMBER_ID and FENCED_INSTANCE_ID fence members the group moved past."""

from __future__ import annotations

from typing import Any

from .. import scripts
from .context import Api, RequestContext
from .coordinator import code_of, error, group_ok, run
from .protocol import ErrorCode, make


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if not group_ok(request.group_id):
        return make(schema.HeartbeatResponse, error_code=ErrorCode.invalid_group_id)
    call = scripts.kafka_heartbeat(
        request.group_id, request.member_id, getattr(request, "group_instance_id", None) or "", request.generation_id
    )
    reply = await run(ctx, call, f"heartbeat in group {request.group_id}")
    return make(schema.HeartbeatResponse, error_code=error(code_of(reply)))


API = Api(12, "Heartbeat", 0, 4, handle)
