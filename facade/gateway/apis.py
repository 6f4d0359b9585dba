"""The dispatch table: Kafka API key -> the module that answers it.

Every API lives in its own module under facade/gateway/ and exports ``API`` (a
:class:`~facade.gateway.context.Api`). To add one, write the module and add it to
``IMPLEMENTED`` (or replace its ``None`` in ``GROUP_APIS``): the server dispatches to it and
ApiVersions advertises it, nothing else changes.
"""

from __future__ import annotations

import importlib

from . import (
    api_versions,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    fetch,
    find_coordinator,
    init_producer_id,
    list_offsets,
    metadata,
    produce,
    sasl,
)
from .context import Api

IMPLEMENTED: dict[int, Api] = {
    api.key: api
    for api in (
        api_versions.API,
        metadata.API,
        produce.API,
        fetch.API,
        list_offsets.API,
        init_producer_id.API,
        find_coordinator.API,
        create_topics.API,
        delete_topics.API,
        create_partitions.API,
        describe_configs.API,
        delete_records.API,
        describe_cluster.API,
        sasl.HANDSHAKE,
        sasl.AUTHENTICATE,
    )
}

# ---- Consumer-group APIs: placeholders ---------------------------------------------------------
# None: the key is known but not answered yet: a Kafka error in the request's own response shape
# (COORDINATOR_NOT_AVAILABLE), never advertised by ApiVersions. Landing a group API is replacing
# its None with the name of its module under facade/gateway/ (which exports ``API``): one line each.
GROUP_APIS: dict[int, str | None] = {
    11: "join_group",  # JoinGroup
    14: "sync_group",  # SyncGroup
    12: "heartbeat",  # Heartbeat
    13: "leave_group",  # LeaveGroup
    8: "offset_commit",  # OffsetCommit
    9: "offset_fetch",  # OffsetFetch
    15: "describe_groups",  # DescribeGroups
    16: "list_groups",  # ListGroups
    42: "delete_groups",  # DeleteGroups
}
# -------------------------------------------------------------------------------------------------


def _group_api(module: str) -> Api:
    return importlib.import_module(f"{__package__}.{module}").API


TABLE: dict[int, Api] = {**IMPLEMENTED, **{k: _group_api(m) for k, m in GROUP_APIS.items() if m is not None}}
"""API key -> the API answering it."""

PLACEHOLDERS: frozenset[int] = frozenset(k for k, m in GROUP_APIS.items() if m is None)
"""API keys the gateway knows but does not answer yet: COORDINATOR_NOT_AVAILABLE, never a closed
connection. Any other API kio knows and the table lacks (transactions, ACLs, ...) is answered
with UNSUPPORTED_VERSION; a key nobody knows closes the connection, as Kafka does."""
