"""DeleteGroups (key 42): delete groups with no live member, as `facade groups delete` does
(coordination keys, committed offsets, read positions): GROUP_ID_NOT_FOUND for an unknown
group, NON_EMPTY_GROUP while a member's session is alive."""

from __future__ import annotations

from typing import Any

from .._async.groups import delete_group
from ..errors import GroupError, PermissionDeniedError
from .context import Api, RequestContext
from .coordinator import group_ok, view
from .protocol import ErrorCode, make


async def _delete(ctx: RequestContext, group: str) -> ErrorCode:
    if not group_ok(group):
        return ErrorCode.invalid_group_id
    try:
        g = await view(ctx, group)
    except PermissionDeniedError:
        return ErrorCode.group_authorization_failed
    if not g.exists:
        return ErrorCode.group_id_not_found
    if g.members:
        return ErrorCode.non_empty_group
    try:
        await delete_group(ctx.conn, group)
    except PermissionDeniedError:
        return ErrorCode.group_authorization_failed
    except GroupError as exc:
        return ErrorCode.non_empty_group if "live" in str(exc) else ErrorCode.group_id_not_found
    return ErrorCode.none


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    results = [make(schema.DeletableGroupResult, group_id=g, error_code=await _delete(ctx, g)) for g in request.groups_names]
    return make(schema.DeleteGroupsResponse, results=tuple(results))


API = Api(42, "DeleteGroups", 0, 2, handle)
