"""ListGroups (key 16): every group in facade's registry, Kafka clients' and SDK consumers'
(protocol type "facade"), with its state (v4+) and filters by state (v4+) and type (v5+:
"classic" for both kinds)."""

from __future__ import annotations

from typing import Any

from .. import keys
from ..errors import PermissionDeniedError
from .context import Api, RequestContext
from .coordinator import view
from .protocol import ErrorCode, make


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    try:
        names = sorted(_text(g) for g in await ctx.conn.command("listing groups", "HKEYS", keys.GROUPS))
    except PermissionDeniedError:  # a SASL user whose ACL role may not list groups (admin may)
        return make(schema.ListGroupsResponse, error_code=ErrorCode.cluster_authorization_failed, groups=())
    states = {s.lower() for s in getattr(request, "states_filter", ()) or ()}
    types = {t.lower() for t in getattr(request, "types_filter", ()) or ()}
    out = []
    for name in names:
        g = await view(ctx, name)
        if not g.exists or (states and g.state.lower() not in states) or (types and "classic" not in types):
            continue
        out.append(make(schema.ListedGroup, group_id=name, protocol_type=g.protocol_type, group_state=g.state,
                        group_type="classic"))  # fmt: skip
    return make(schema.ListGroupsResponse, error_code=ErrorCode.none, groups=tuple(out))


API = Api(16, "ListGroups", 0, 5, handle)
