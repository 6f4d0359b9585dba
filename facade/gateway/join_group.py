"""JoinGroup (key 11): Kafka's classic group protocol, first half.

A member joins (the coordinator hands out member ids: on v4+ a first join answers
MEMBER_ID_REQUIRED with the id to join with), then waits until every known member has rejoined
or the rebalance timeout passed (members that did not rejoin are removed); the generation then
forms: its number grows by one, an assignor every member supports is chosen by vote, and the
leader (the previous one if it rejoined) receives every member's metadata to compute the
assignment it sends in SyncGroup. The wait is the gateway calling kafka_join_wait.lua until it
answers (coordinator.wait), so several gateways can serve one group.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

from .. import scripts
from .consumer_protocol import CONSUMER, subscription_topics
from .context import Api, RequestContext
from .coordinator import (
    INITIAL_REBALANCE_DELAY_MS,
    MAX_MEMBERS,
    MAX_REBALANCE_MS,
    MAX_SESSION_MS,
    MIN_SESSION_MS,
    code_of,
    error,
    group_ok,
    ms,
    register,
    run,
    wait,
)
from .protocol import ErrorCode, make

log = logging.getLogger("facade.gateway")


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema, version = ctx.schema, ctx.api_version
    group = request.group_id

    def answer(code: ErrorCode, member: str = "", **fields: Any) -> Any:
        return make(schema.JoinGroupResponse, error_code=code, generation_id=-1, member_id=member, **fields)

    if not group_ok(group):
        return answer(ErrorCode.invalid_group_id, request.member_id)
    session_ms = ms(request.session_timeout)
    rebalance_ms = min(ms(request.rebalance_timeout) if version >= 1 else session_ms, MAX_REBALANCE_MS)
    if not MIN_SESSION_MS <= session_ms <= MAX_SESSION_MS:
        return answer(ErrorCode.invalid_session_timeout, request.member_id)
    instance = getattr(request, "group_instance_id", None) or ""
    protocols = [(p.name, bytes(p.metadata)) for p in request.protocols]
    if not protocols or not request.protocol_type:
        return answer(ErrorCode.inconsistent_group_protocol, request.member_id)
    topics = subscription_topics(protocols[0][1]) if request.protocol_type == CONSUMER else []
    metadata = {
        "topics": topics,
        "host": ctx.session.peer.rsplit(":", 1)[0],
        "client_id": ctx.client_id or "",
        "kafka": {
            "protocols": [[name, base64.b64encode(blob).decode()] for name, blob in protocols],
            "session_ms": session_ms,
            "rebalance_ms": rebalance_ms,
        },
    }
    minted = f"{ctx.client_id or 'member'}-{uuid.uuid4()}"
    what = f"joining group {group}"
    reply = await run(ctx, scripts.kafka_join(
        group, request.member_id, minted, require_known=version >= 4, instance=instance,
        protocol_type=request.protocol_type, metadata=metadata, session_ms=session_ms, rebalance_ms=rebalance_ms,
        initial_delay_ms=INITIAL_REBALANCE_DELAY_MS, max_members=MAX_MEMBERS,
    ), what)  # fmt: skip
    code = code_of(reply)
    member = request.member_id if len(reply) < 2 else reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
    if code != "none":
        if code == "inconsistent_group_protocol":
            log.info("%s refused for %s: the group is used by facade SDK consumers or another protocol", what, ctx.session.peer)
        return answer(error(code), member)
    await register(ctx, group)
    bound_s = (rebalance_ms + INITIAL_REBALANCE_DELAY_MS) / 1000 + 5
    reply = await wait(ctx, scripts.kafka_join_wait(group, member), what, bound_s)
    code = code_of(reply)
    if code == "wait":
        return answer(ErrorCode.rebalance_in_progress, member)
    if code != "none":
        return answer(error(code), member)
    joined = scripts.KafkaJoined.parse(reply)
    members = tuple(
        make(schema.JoinGroupResponseMember, member_id=m, group_instance_id=i or None, metadata=base64.b64decode(b))
        for m, i, b in joined.members
    )
    return make(schema.JoinGroupResponse, error_code=ErrorCode.none, generation_id=joined.generation,
                protocol_type=joined.protocol_type, protocol_name=joined.protocol_name, leader=joined.leader,
                skip_assignment=False, member_id=member, members=members)  # fmt: skip


API = Api(11, "JoinGroup", 0, 9, handle)
