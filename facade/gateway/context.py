"""What an API handler is given: the gateway (shared by every connection), the session (one client
connection) and the request (one frame).

A handler reaches Redis only through facade's SDK pieces: ``ctx.conn`` (the facade
:class:`~facade._async.client.Connection` of the session's principal: scripts, pipelines,
commands, topic lookups) and ``ctx.admin`` (an :class:`facade.aio.Admin` over the same
connection). Everything else it needs about the gateway (node id, advertised address, cluster id,
limits) is on ``ctx.gateway``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from .._async.admin import Admin
from .._async.client import Connection, TopicCache
from ..errors import ConfigError

if TYPE_CHECKING:
    from .server import Gateway

__all__ = ["Api", "Limits", "RequestContext", "Session", "node_id_for"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client may ask of the gateway."""

    max_request_bytes: int = 100 * 1024 * 1024
    """Largest request frame accepted (Kafka's socket.request.max.bytes); a larger size prefix
    closes the connection before anything is read."""
    max_fetch_wait_ms: int = 30_000
    """A Fetch waits at most this long for data, whatever its max_wait_ms."""
    max_fetch_records: int = 50_000
    """Records read for one partition of one Fetch, at most (a bound on each Redis read)."""
    max_records_per_read: int = 10_000
    """Records one Redis read (one Lua call) returns at most."""
    max_group_members: int = 1_000
    """Members one consumer group may have (Kafka's group.max.size); a JoinGroup beyond it is
    answered GROUP_MAX_SIZE_REACHED. Bounds each group script's walk of the members."""
    max_member_metadata_bytes: int = 1024 * 1024
    """Largest protocol metadata one JoinGroup may carry (its protocols' metadata together: a
    consumer's subscription, or a Kafka Connect worker's config state); a larger one is answered
    INVALID_REQUEST and the group is left as it was. The leader's JoinGroup answer carries every
    member's, so it is at most ``max_group_members`` times this."""

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_fetch_wait_ms", "max_fetch_records", "max_records_per_read",
                     "max_group_members", "max_member_metadata_bytes"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Limits.{name} must be a positive int, got {value!r}")


def node_id_for(host: str, port: int) -> int:
    """The broker id a gateway advertising ``host:port`` gives itself: a stable hash of the
    address, so that several gateways on one Redis name themselves differently with no state."""
    return zlib.crc32(f"{host}:{port}".encode()) & 0x7FFFFFFF


@dataclass(eq=False)
class Session:
    """One client connection: who it authenticated as and which Redis connection it uses."""

    peer: str
    """``host:port`` of the client."""
    conn: Connection
    """The facade connection requests of this session use: the gateway's own, or after
    SASL/PLAIN one authenticated as the client's Redis ACL user."""
    admin: Admin
    topics: TopicCache
    principal: str | None = None
    """The authenticated user (SASL/PLAIN), None before authentication or without SASL."""
    authenticated: bool = False
    """Whether requests other than ApiVersions and the SASL ones may run (always, without SASL)."""
    sasl_mechanism: str | None = None
    """The mechanism a SaslHandshake chose, until SaslAuthenticate (or the raw v0 token) ends it."""
    raw_sasl_next: bool = False
    """SaslHandshake v0 was answered: the next frame is a bare SASL token, not a request."""
    close_after_reply: bool = False
    """The connection ends once the reply being written is sent (a refused SaslAuthenticate, as
    Kafka: no further attempt, and no earlier login kept, on that connection)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Per-connection state an API module keeps for itself (its own key, e.g. its module name)."""
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the client closed the connection (or it broke): a request that waits (JoinGroup)
    stops waiting and withdraws what it left in Redis."""


@dataclass(eq=False)
class RequestContext:
    """One request, as a handler sees it."""

    gateway: Gateway
    session: Session
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None

    @property
    def conn(self) -> Connection:
        """The facade connection to use for this request (the session's principal)."""
        return self.session.conn

    @property
    def admin(self) -> Admin:
        """A facade Admin over :attr:`conn`."""
        return self.session.admin

    @property
    def topics(self) -> TopicCache:
        """Topic configs, cached for a short while (the session's connection)."""
        return self.session.topics

    @property
    def principal(self) -> str | None:
        return self.session.principal

    @property
    def node_id(self) -> int:
        return self.gateway.node_id

    @property
    def schema(self) -> ModuleType:
        """kio's response module for this API at this request's version: build the reply from its
        classes with :func:`facade.gateway.protocol.make`."""
        from .protocol import response_module

        return response_module(self.api_key, self.api_version)


Handler = Callable[[RequestContext, Any], Awaitable[Any]]


class Api(NamedTuple):
    """One Kafka API as an API module offers it (its module-level ``API``)."""

    key: int
    """The Kafka API key (ApiVersions is 18)."""
    name: str
    min_version: int
    max_version: int
    """The versions the gateway answers (and advertises in ApiVersions)."""
    handle: Handler
    """``await handle(ctx, request)``: the kio request entity of ``ctx.api_version`` in; out the
    response entity of the same version, or already-encoded body bytes, or None for no response
    at all (Produce with acks=0)."""
