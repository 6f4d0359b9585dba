"""JoinGroup (key 11): Kafka's classic group protocol, first half.

A member joins (the coordinator hands out member ids: on v4+ a first join answers
MEMBER_ID_REQUIRED with the id to join with), then waits until every known member has rejoined
or the rebalance timeout passed (members that did not rejoin are removed); the generation then
forms: its number grows by one, an assignor every member supports is chosen by vote, and the
leader (the previous one if it rejoined) receives every member's metadata to compute the
assignment it sends in SyncGroup. The wait is the gateway calling kafka_join_wait.lua until it
answers (coordinator.wait), so several gateways can serve one group.

A member's protocol metadata is stored apart ("m:<id>" in the group's kafka hash) and never read
by a script: the leader's answer is built from one HMGET after the generation formed, so no
script's time grows with the metadata sizes. A JoinGroup whose metadata is above
``Limits.max_member_metadata_bytes``, or with more than MAX_PROTOCOLS protocols or a name longer
than MAX_PROTOCOL_NAME_BYTES, is answered INVALID_REQUEST before anything is stored; one into a
group of ``Limits.max_group_members`` members, GROUP_MAX_SIZE_REACHED. A JoinGroup whose client
closes the connection while it waits is withdrawn (kafka_join_cancel.lua): the generation does
not form with a member that will never hear of it.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

from .. import scripts
from .consumer_protocol import CONSUMER, subscription_topics
from .context import Api, RequestContext
from .coordinator import (
    GONE,
    INITIAL_REBALANCE_DELAY_MS,
    MAX_PROTOCOL_NAME_BYTES,
    MAX_PROTOCOLS,
    MAX_REBALANCE_MS,
    MAX_SESSION_MS,
    MIN_SESSION_MS,
    code_of,
    error,
    group_ok,
    member_metadata,
    ms,
    pack_protocols,
    protocols_digest,
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
    limits = ctx.gateway.limits
    size = sum(len(blob) for _, blob in protocols)
    if size > limits.max_member_metadata_bytes:
        log.info("joining group %s refused for %s: %d bytes of protocol metadata, above the limit of %d",
                 group, ctx.session.peer, size, limits.max_member_metadata_bytes)  # fmt: skip
        return answer(ErrorCode.invalid_request, request.member_id)
    if len(protocols) > MAX_PROTOCOLS or any(len(name.encode()) > MAX_PROTOCOL_NAME_BYTES for name, _ in protocols):
        log.info("joining group %s refused for %s: more than %d protocols or a name above %d bytes",
                 group, ctx.session.peer, MAX_PROTOCOLS, MAX_PROTOCOL_NAME_BYTES)  # fmt: skip
        return answer(ErrorCode.invalid_request, request.member_id)
    topics = subscription_topics(protocols[0][1]) if request.protocol_type == CONSUMER else []
    described = {
        "topics": topics,
        "host": ctx.session.peer.rsplit(":", 1)[0],
        "client_id": ctx.client_id or "",
        "kafka": {"session_ms": session_ms, "rebalance_ms": rebalance_ms},
    }
    packed = pack_protocols(protocols)
    minted = f"{ctx.client_id or 'member'}-{uuid.uuid4()}"
    token = secrets.token_hex(8)
    what = f"joining group {group}"
    reply = await run(ctx, scripts.kafka_join(
        group, request.member_id, minted, require_known=version >= 4, instance=instance,
        protocol_type=request.protocol_type, described=described, protocols=[name for name, _ in protocols],
        packed=packed, digest=protocols_digest(packed), token=token, session_ms=session_ms,
        rebalance_ms=rebalance_ms, initial_delay_ms=INITIAL_REBALANCE_DELAY_MS,
        max_members=limits.max_group_members,
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
    if reply is GONE:
        # Nobody will read the answer: withdraw the join, so the generation does not form with
        # (or, as leader, wait for) a member that will never hear of it.
        await run(ctx, scripts.kafka_join_cancel(group, member, token), what)
        log.info("%s: %s closed the connection while waiting; its join is withdrawn", what, ctx.session.peer)
        return None
    code = code_of(reply)
    if code == "wait":
        return answer(ErrorCode.rebalance_in_progress, member)
    if code != "none":
        return answer(error(code), member)
    joined = scripts.KafkaJoined.parse(reply)
    metadata = await member_metadata(ctx, group, [m for m, _ in joined.members], joined.protocol_name)
    members = tuple(
        make(schema.JoinGroupResponseMember, member_id=m, group_instance_id=i or None, metadata=metadata[m])
        for m, i in joined.members
        if m in metadata
    )
    return make(schema.JoinGroupResponse, error_code=ErrorCode.none, generation_id=joined.generation,
                protocol_type=joined.protocol_type, protocol_name=joined.protocol_name, leader=joined.leader,
                skip_assignment=False, member_id=member, members=members)  # fmt: skip


API = Api(11, "JoinGroup", 0, 9, handle)
