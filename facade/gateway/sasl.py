"""SaslHandshake (key 17) and SaslAuthenticate (key 36): SASL/PLAIN checked as Redis ACL users.

With ``--sasl-plain`` a client must authenticate before any request but ApiVersions and these
two; the user and password of its PLAIN token are tried as a Redis ACL user (a connection to the
broker URL with those credentials, ``AUTH`` on connect). On success the session runs every later
request as that user: Redis ACLs decide what it may read and write (a refused command comes back
as an authorization error). Without ``--sasl-plain`` the handshake answers
UNSUPPORTED_SASL_MECHANISM with no mechanism. Handshake v0 (the token then comes as a bare frame)
and v1 (SaslAuthenticate) both work. Other mechanisms (SCRAM, OAUTHBEARER, GSSAPI) are refused.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from .._async.admin import Admin
from .._async.client import Connection, TopicCache
from ..errors import FacadeError
from .context import Api, RequestContext, Session
from .packing import raw_stream_replies, use_hiredis_packing
from .protocol import ErrorCode, make

if TYPE_CHECKING:
    from .server import Gateway

log = logging.getLogger("facade.gateway")

PLAIN = "PLAIN"


def _with_credentials(raw: str, user: str, password: str) -> str:
    """The broker URL ``raw`` with this user and password in place of its own."""
    parts = urlsplit(raw)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _plain(token: bytes) -> tuple[str, str] | None:
    """(user, password) of a PLAIN token ``[authzid] NUL user NUL password``, or None."""
    parts = token.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        return None


async def authenticate(gateway: Gateway, session: Session, token: bytes) -> str | None:
    """Check a PLAIN token; on success move ``session`` to that user's connection. Returns None,
    or why authentication failed (told to the client)."""
    creds = _plain(token)
    if creds is None:
        return "malformed SASL/PLAIN token"
    user, password = creds
    key = (user, hashlib.sha256(password.encode()).hexdigest())
    shared = gateway.principals.get(key)
    if shared is not None:
        # Checked again on every login: the user's password may have changed (or the user been
        # disabled) since this connection was made. A refused AUTH leaves the connection as it was.
        try:
            await shared.conn.command("authenticating a Kafka client", "AUTH", user, password)
        except FacadeError as exc:
            log.info("SASL/PLAIN refused for user %r from %s: %s", user, session.peer, exc)
            return f"authentication failed for user {user!r}"
    else:
        assert gateway.conn is not None
        conn = Connection(_with_credentials(gateway.conn.url.raw, user, password))
        use_hiredis_packing(conn.redis)
        raw_stream_replies(conn.redis)
        try:
            await conn.command("authenticating a Kafka client", "PING")
        except FacadeError as exc:
            await conn.close()
            log.info("SASL/PLAIN refused for user %r from %s: %s", user, session.peer, exc)
            return f"authentication failed for user {user!r}"
        shared = gateway.principals.get(key)
        if shared is not None:  # another connection of this user authenticated while we waited
            await conn.close()
        else:
            shared = Session(f"principal {user}", conn, Admin.over(conn), TopicCache(conn, 1_000), principal=user)
            gateway.principals[key] = shared
    session.conn, session.admin, session.topics = shared.conn, shared.admin, shared.topics
    session.principal = user
    session.authenticated = True
    session.sasl_mechanism = None
    return None


async def handshake(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if not ctx.gateway.sasl_plain:
        return make(
            schema.SaslHandshakeResponse, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=()
        )
    if request.mechanism != PLAIN:
        return make(
            schema.SaslHandshakeResponse, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=(PLAIN,)
        )
    ctx.session.sasl_mechanism = PLAIN
    ctx.session.raw_sasl_next = ctx.api_version == 0
    return make(schema.SaslHandshakeResponse, error_code=ErrorCode.none, mechanisms=(PLAIN,))


async def authenticate_request(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    if ctx.session.sasl_mechanism != PLAIN:
        return make(schema.SaslAuthenticateResponse, error_code=ErrorCode.illegal_sasl_state,
                    error_message="SaslHandshake(PLAIN) must come first", auth_bytes=b"")  # fmt: skip
    problem = await authenticate(ctx.gateway, ctx.session, request.auth_bytes)
    if problem is not None:
        ctx.session.close_after_reply = True
        ctx.session.authenticated = False
        return make(schema.SaslAuthenticateResponse, error_code=ErrorCode.sasl_authentication_failed,
                    error_message=problem, auth_bytes=b"")  # fmt: skip
    return make(schema.SaslAuthenticateResponse, error_code=ErrorCode.none, auth_bytes=b"")


async def raw_token(gateway: Gateway, session: Session, buf: bytes) -> Any:
    """After SaslHandshake v0: the frame is a bare PLAIN token; an empty frame answers success, a
    failure closes the connection (Kafka's behaviour for v0)."""
    session.raw_sasl_next = False
    problem = await authenticate(gateway, session, buf)
    if problem is not None:
        from .server import _CLOSE

        return _CLOSE
    return struct.pack(">i", 0)


HANDSHAKE = Api(17, "SaslHandshake", 0, 1, handshake)
AUTHENTICATE = Api(36, "SaslAuthenticate", 0, 2, authenticate_request)
