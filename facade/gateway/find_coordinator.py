"""FindCoordinator (key 10): every group's coordinator is the gateway asked (group state lives in
Redis, shared by all gateways). Transaction coordinators are refused (no Kafka transactions)."""

from __future__ import annotations

from typing import Any

from .context import Api, RequestContext
from .protocol import ErrorCode, make

GROUP, TRANSACTION = 0, 1


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    host, port = ctx.gateway.advertised
    key_type = getattr(request, "key_type", GROUP)
    if key_type == GROUP:
        code, message, node, h, p = ErrorCode.none, None, ctx.node_id, host, port
    else:
        code, message, node, h, p = (
            ErrorCode.coordinator_not_available,
            "transactions are not supported",
            -1,
            "",
            -1,
        )
    if ctx.api_version >= 4:
        coordinators = tuple(
            make(
                schema.Coordinator,
                key=k,
                node_id=node,
                host=h,
                port=p,
                error_code=code,
                error_message=message,
            )
            for k in request.coordinator_keys
        )
        return make(schema.FindCoordinatorResponse, coordinators=coordinators)
    return make(
        schema.FindCoordinatorResponse, error_code=code, error_message=message, node_id=node, host=h, port=p
    )


API = Api(10, "FindCoordinator", 0, 4, handle)
