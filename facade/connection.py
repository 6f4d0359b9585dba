"""Where the broker is: one URL parser for every deployment shape, and client construction.

Accepted URLs:

    redis://[user:password@]host[:port][/db]       plain TCP
    rediss://[user:password@]host[:port][/db]      TLS
    unix://[user:password@]/path/to/socket[?db=N]  unix socket
    redis+sentinel://host:port[,host:port...]/service_name   (replication issue; parsed, refused)
    redis+cluster://host:port[,host:port...]                 (cluster issue; parsed, refused)

No URL at all (argument, then ``FACADE_URL``) means the embedded local broker (facade.server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import InvalidUrlError, UnsupportedError

__all__ = ["BrokerUrl", "parse_url", "redact", "resolve_url"]

_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
SOCKET_TIMEOUT_S = 10.0
"""Every socket read/write has a deadline; a dead peer cannot hang a client forever."""
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed broker URL."""

    scheme: str
    """One of redis, rediss, unix, redis+sentinel, redis+cluster."""
    hosts: tuple[tuple[str, int], ...] = ()
    """(host, port) pairs; empty for unix sockets."""
    path: str | None = None
    """Unix socket path (unix://)."""
    db: int = 0
    """Database number (single-server URLs)."""
    username: str | None = None
    """ACL user name."""
    password: str | None = field(default=None, repr=False)
    """Password (never printed: see redact())."""
    service: str | None = None
    """Sentinel service (master) name."""
    raw: str = field(default="", repr=False)
    """The URL as given."""

    @property
    def tls(self) -> bool:
        """Whether connections use TLS."""
        return self.scheme == "rediss"

    def redacted(self) -> str:
        """The URL with any password replaced by ``***``."""
        return redact(self.raw)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's Redis / redis.asyncio.Redis constructors."""
        kw: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "health_check_interval": 30,
        }
        if self.scheme == "unix":
            kw["unix_socket_path"] = self.path
            del kw["socket_connect_timeout"]
        elif self.scheme in ("redis", "rediss"):
            kw["host"], kw["port"] = self.hosts[0]
            kw["ssl"] = self.tls
        else:
            raise UnsupportedError(
                f"{self.scheme}:// URLs are not supported yet by this version of facade; "
                "use redis://, rediss:// or unix:// (or no URL for the embedded broker)"
            )
        return kw


def create_client(url: BrokerUrl, *, is_async: bool, retry: Any) -> Any:
    """A redis-py client (``redis.Redis`` or ``redis.asyncio.Redis``) for ``url``.

    The one place that knows how each URL scheme becomes a client; ``retry`` is redis-py's
    Retry object for its own reconnect attempts.
    """
    if is_async:
        from redis import asyncio as redis_io
    else:
        import redis as redis_io  # type: ignore[no-redef]
    return redis_io.Redis(**url.client_kwargs(), retry=retry)


def redact(url: str) -> str:
    """``url`` with the password part of its userinfo replaced by ``***``."""
    if "@" not in url:
        return url
    head, sep, rest = url.partition("://")
    if not sep or "@" in head:  # no scheme ("user:pw@host"): the userinfo still has to go
        head, sep, rest = "", "", url
    lead = head + sep
    userinfo, _, tail = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    return f"{lead}{user}:***@{tail}" if user or ":" in userinfo else f"{lead}***@{tail}"


def _port(text: str, url: str) -> int:
    if not (text.isascii() and text.isdigit()):  # int() would also take " 1", "+1", "6_379", "١٢"
        raise InvalidUrlError(f"bad port {text!r} in {redact(url)}: use a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise InvalidUrlError(f"bad port {port} in {redact(url)}: use a number from 1 to 65535")
    return port


def _hostports(netloc: str, url: str, default_port: int) -> tuple[tuple[str, int], ...]:
    out = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise InvalidUrlError(f"empty host in {redact(url)}: write host:port[,host:port...]")
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = _port(rest[1:], url) if rest.startswith(":") else default_port
        elif part.count(":") == 1:
            host, ptext = part.split(":")
            port = _port(ptext, url)
        else:
            host, port = part, default_port
        if not host:
            raise InvalidUrlError(f"empty host in {redact(url)}: write host:port")
        out.append((host, port))
    return tuple(out)


def parse_url(url: str) -> BrokerUrl:
    """Parse a broker URL, raising InvalidUrlError with a hint when it cannot be used."""
    if not isinstance(url, str):
        raise InvalidUrlError(f"URL must be a string, not {type(url).__name__}")
    url = url.strip()
    if "://" not in url:
        raise InvalidUrlError(
            f"{redact(url)!r} is not a URL: use redis://host:port, rediss://host:port or unix:///path/to.sock"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise InvalidUrlError(
            f"unknown URL scheme {redact(scheme)!r} in {redact(url)}: use one of " + ", ".join(_SCHEMES)
        )
    rest = url.split("://", 1)[1]
    # Userinfo ends at the last "@" before the path: a unix socket path may itself contain "@".
    authority = rest.split("/", 1)[0]
    userinfo, sep, _ = authority.rpartition("@")
    after = rest[len(userinfo) + 1 :] if sep else rest
    if not sep:
        userinfo = ""
    username = password = None
    if userinfo:
        if ":" in userinfo:
            u, p = userinfo.split(":", 1)
            username, password = (unquote(u) or None), unquote(p)
        else:
            # redis://secret@host is redis-py's shorthand for a password with the default user.
            password = unquote(userinfo)
    parts = urlsplit(f"x://{after}")
    query = parse_qs(parts.query, keep_blank_values=True)
    db = 0
    db_text = (query.get("db") or [""])[0]
    if scheme in ("redis", "rediss") and parts.path.strip("/"):
        db_text = parts.path.strip("/")
    if db_text:
        if not (db_text.isascii() and db_text.isdigit()):  # isdigit() alone takes "²"; int() refuses it
            raise InvalidUrlError(f"bad database number {db_text!r} in {redact(url)}: use an integer such as /0")
        db = int(db_text)
    if scheme == "unix":
        path = parts.netloc + parts.path if parts.netloc else parts.path
        if not path:
            raise InvalidUrlError(f"no socket path in {redact(url)}: write unix:///path/to/redis.sock")
        return BrokerUrl(scheme, (), unquote(path), db, username, password, None, url)
    netloc = after.split("/", 1)[0].split("?", 1)[0]
    if not netloc:
        raise InvalidUrlError(f"no host in {redact(url)}: write {scheme}://host:port")
    default_port = 26379 if scheme == "redis+sentinel" else 6379
    hosts = _hostports(netloc, url, default_port)
    service = None
    if scheme == "redis+sentinel":
        service = parts.path.strip("/") or None
        if not service:
            raise InvalidUrlError(
                f"no service name in {redact(url)}: write redis+sentinel://host:port[,host:port]/mymaster"
            )
    elif scheme in ("redis", "rediss") and len(hosts) > 1:
        raise InvalidUrlError(
            f"{scheme}:// takes one host; for several use redis+sentinel:// or redis+cluster:// ({redact(url)})"
        )
    return BrokerUrl(scheme, hosts, None, db, username, password, service, url)


def resolve_url(url: str | None = None) -> BrokerUrl:
    """The broker to use: ``url``, else ``$FACADE_URL``, else the embedded broker (started if needed)."""
    if url is None:
        url = os.environ.get("FACADE_URL") or None
    if url is None:
        from .server import ensure_embedded

        return parse_url(ensure_embedded())
    return parse_url(url)
