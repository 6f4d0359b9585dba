"""LeaveGroup (key 13): members leave at once (kafka_leave.lua); the others rebalance without
waiting for the leavers' sessions to expire. v0-2 name one member; v3+ a batch, a static member
possibly by its group.instance.id alone."""

from __future__ import annotations

from typing import Any

from .. import scripts
from .context import Api, RequestContext
from .coordinator import DENIED, error, group_ok, run
from .protocol import ErrorCode, make


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema, version = ctx.schema, ctx.api_version
    group = request.group_id
    if not group_ok(group):
        return make(schema.LeaveGroupResponse, error_code=ErrorCode.invalid_group_id)
    if version < 3:
        leaving = [(request.member_id, "")]
    else:
        leaving = [(m.member_id, m.group_instance_id or "") for m in request.members]
    replies = await run(ctx, scripts.kafka_leave(group, leaving), f"leaving group {group}")
    if replies == DENIED:
        replies = [[DENIED[0], member] for member, _ in leaving]
    if version < 3:
        return make(schema.LeaveGroupResponse, error_code=error(_text(replies[0][0])))
    members = tuple(
        make(schema.MemberResponse, member_id=_text(r[1]), group_instance_id=instance or None, error_code=error(_text(r[0])))
        for r, (_, instance) in zip(replies, leaving)
    )
    return make(schema.LeaveGroupResponse, error_code=ErrorCode.none, members=members)


API = Api(13, "LeaveGroup", 0, 5, handle)
