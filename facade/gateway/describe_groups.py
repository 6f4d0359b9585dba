"""DescribeGroups (key 15): each group's state (Kafka's names: Empty, PreparingRebalance,
CompletingRebalance, Stable, Dead for an unknown group), protocol and live members with their
metadata and assignment. Groups of facade SDK consumers are described too, with protocol type
"facade" and their members (no Kafka metadata)."""

from __future__ import annotations

from typing import Any

from ..errors import PermissionDeniedError
from .context import Api, RequestContext
from .coordinator import group_ok, view
from .protocol import ErrorCode, make


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    out = []
    for group in request.groups:
        if not group_ok(group):
            out.append(make(schema.DescribedGroup, error_code=ErrorCode.invalid_group_id, group_id=group))
            continue
        try:
            g = await view(ctx, group)
        except PermissionDeniedError:  # a SASL user whose ACL role may not read the group
            out.append(make(schema.DescribedGroup, error_code=ErrorCode.group_authorization_failed, group_id=group))
            continue
        members = tuple(
            make(schema.DescribedGroupMember, member_id=m["id"], group_instance_id=m["instance"],
                 client_id=m["client_id"], client_host=m["host"], member_metadata=m["metadata"],
                 member_assignment=m["assignment"])
            for m in g.members
        )  # fmt: skip
        out.append(make(schema.DescribedGroup, error_code=ErrorCode.none, group_id=group, group_state=g.state,
                        protocol_type=g.protocol_type, protocol_data=g.protocol_name, members=members,
                        authorized_operations=-2147483648))  # fmt: skip
    return make(schema.DescribeGroupsResponse, groups=tuple(out))


API = Api(15, "DescribeGroups", 0, 5, handle)
