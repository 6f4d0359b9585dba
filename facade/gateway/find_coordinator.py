"""FindCoordinator (key 10): every gateway coordinates every group (group state lives in Redis),
so each answers with itself: its node id and advertised address. Transactional ids get the same
answer (whatever the gateway supports of transactions is answered by their own APIs)."""

from __future__ import annotations

from typing import Any

from .context import Api, RequestContext
from .protocol import ErrorCode, make


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    host, port = ctx.gateway.advertised
    node = ctx.node_id
    if ctx.api_version < 4:
        return make(schema.FindCoordinatorResponse, error_code=ErrorCode.none, error_message=None, node_id=node,
                    host=host, port=port)  # fmt: skip
    coordinators = tuple(
        make(schema.Coordinator, key=key, node_id=node, host=host, port=port, error_code=ErrorCode.none,
             error_message=None)
        for key in request.coordinator_keys
    )
    return make(schema.FindCoordinatorResponse, coordinators=coordinators)


API = Api(10, "FindCoordinator", 0, 4, handle)
