"""SyncGroup (key 14): Kafka's classic group protocol, second half. The leader sends every
member's assignment (stored per member, and, for Kafka consumers, also as facade's assignment
so `facade groups describe` lists each member's partitions); every member gets its own once the
leader's has arrived (the gateway calls kafka_sync.lua until then)."""

from __future__ import annotations

from typing import Any

from .. import scripts
from ..records import TopicPartition
from .consumer_protocol import CONSUMER, assignment_partitions
from .context import Api, RequestContext
from .coordinator import MAX_REBALANCE_MS, code_of, error, group_ok, wait
from .protocol import ErrorCode, make


def _described(request: Any) -> dict[str, list[TopicPartition]] | None:
    out = {}
    for a in request.assignments:
        parts = assignment_partitions(bytes(a.assignment))
        if parts is None:
            return None
        out[a.member_id] = parts
    return out


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    group = request.group_id
    if not group_ok(group):
        return make(schema.SyncGroupResponse, error_code=ErrorCode.invalid_group_id)
    ptype = getattr(request, "protocol_type", None) or ""
    pname = getattr(request, "protocol_name", None) or ""
    described = _described(request) if request.assignments and ptype in ("", CONSUMER) else None
    call = scripts.kafka_sync(
        group, request.member_id, getattr(request, "group_instance_id", None) or "", request.generation_id,
        ptype, pname, described, [(a.member_id, bytes(a.assignment)) for a in request.assignments],
    )  # fmt: skip
    # The leader's SyncGroup is due within the rebalance timeout (else kafka_expire removes it
    # and the group rebalances): waiting as long as the longest one allowed covers it.
    reply = await wait(ctx, call, f"syncing group {group}", MAX_REBALANCE_MS / 1000)
    code = code_of(reply)
    if code == "wait":
        return make(schema.SyncGroupResponse, error_code=ErrorCode.rebalance_in_progress)
    if code != "none":
        return make(schema.SyncGroupResponse, error_code=error(code))
    blob, rtype, rname = reply[1], reply[2], reply[3]
    return make(schema.SyncGroupResponse, error_code=ErrorCode.none, assignment=bytes(blob),
                protocol_type=rtype.decode() if isinstance(rtype, bytes) else rtype,
                protocol_name=rname.decode() if isinstance(rname, bytes) else rname)  # fmt: skip


API = Api(14, "SyncGroup", 0, 5, handle)
