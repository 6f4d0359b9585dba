"""DescribeCluster (key 60): this gateway as the one broker and controller, and the cluster id
shared by every gateway on the Redis."""

from __future__ import annotations

from typing import Any

from .context import Api, RequestContext
from .protocol import ErrorCode, make

BROKERS = 1


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if getattr(request, "endpoint_type", BROKERS) != BROKERS:
        return make(schema.DescribeClusterResponse, error_code=ErrorCode.unsupported_endpoint_type,
                    error_message="only broker endpoints", cluster_id=ctx.gateway.cluster_id, controller_id=-1)  # fmt: skip
    host, port = ctx.gateway.advertised
    broker = make(schema.DescribeClusterBroker, broker_id=ctx.node_id, host=host, port=port, rack=None)
    return make(schema.DescribeClusterResponse, error_code=ErrorCode.none, endpoint_type=BROKERS,
                cluster_id=ctx.gateway.cluster_id, controller_id=ctx.node_id, brokers=(broker,),
                cluster_authorized_operations=-2147483648)  # fmt: skip


API = Api(60, "DescribeCluster", 0, 1, handle)
