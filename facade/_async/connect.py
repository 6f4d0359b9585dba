"""How each URL scheme becomes a redis-py client: one server, a Sentinel service, a Redis Cluster.

This module is the asyncio source of truth; facade/_sync/connect.py is generated from it. URLs
are parsed in facade/url.py (pure); this is where they meet sockets.

Sentinel clients: the pool asks the sentinels for the primary at every new connection, on every
reconnect inside a command (which redis-py 8 would send back to the old address), and every
``url.PRIMARY_CHECK_INTERVAL_S`` even while its connections work, because a deposed primary that
still runs gives no error at all. Closing the client closes the sentinel connections too. While a
failover is under way (the sentinels answer but name no primary, or name one that refuses
connections) a new connection waits for the new primary up to the client's ``failover_wait_s``:
nothing was sent on it yet, so any command can wait. When no sentinel answers at all, that is a
wrong URL or stopped sentinels, and it fails at once, in one line (NoSentinelError).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from redis import asyncio as redis_io
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    InvalidResponse,
    RedisClusterException,
    RedisError,
    TimeoutError,
)

from .. import url as urls
from ..errors import from_redis, tls_failure
from ..local import embedded
from ..url import BrokerUrl, parse_url
from . import _backend

__all__ = ["NoSentinelError", "create_client", "diagnose", "node_client", "probe", "resolve_url"]


class NoSentinelError(MasterNotFoundError):
    """No sentinel of a Sentinel URL answered: a wrong URL, or the sentinels are down (not a
    failover, which the sentinels would be reporting)."""


def resolve_url(url: str | None = None) -> BrokerUrl:
    """The broker to use: ``url``, else ``$FACADE_URL``, else the embedded broker (started if needed)."""
    if url is None:
        url = os.environ.get("FACADE_URL") or None
    return parse_url(url if url is not None else embedded.ensure())


def create_client(url: BrokerUrl, *, retry: Any, failover_wait_s: float = 0.0) -> Any:
    """A redis-py client for ``url``; ``retry`` is redis-py's Retry object for its own reconnects.
    ``failover_wait_s``: how long a new connection to a Sentinel-managed primary waits for one
    during a failover (0: fail at once, for callers that retry on their own).

    The one place that knows how each URL scheme becomes a client. A cluster client follows
    MOVED/ASK redirects and refreshes its slot map on its own; the blocking one reads the map now
    (ConnectionFailedError when no node answers), the asyncio one on first use.
    """
    if url.cluster:
        startup = [ClusterNode(host, port) for host, port in url.hosts]
        try:
            return RedisCluster(startup_nodes=startup, retry=retry, **url.cluster_kwargs())
        except (RedisClusterException, RedisError) as exc:
            raise from_redis(exc, f"connecting to the cluster at {url.redacted()}", cluster=True) from exc
    if url.sentinel:
        manager = FacadeSentinel(list(url.hosts), sentinel_kwargs={**url.sentinel_kwargs(), "retry": retry})
        # master_for: a pool of connections that each ask the sentinels for the primary when they
        # connect; on READONLY (a demoted primary) one disconnects and raises ConnectionError, so
        # the retry reconnects to whichever server the sentinels now name.
        client = manager.master_for(
            url.service,
            redis_class=SentinelRedis,
            connection_pool_class=FollowingSentinelPool,
            retry=retry,
            failover_wait_s=failover_wait_s,
            **url.server_kwargs(),
        )
        client.sentinel_manager = manager
        return client
    return redis_io.Redis(**url.client_kwargs(), retry=retry)


def probe(host: str, port: int, timeout: float = 1.0) -> str | None:
    """What listens at ``host:port``, asked in plain text with a line that both a Redis server
    (an inline ``PING`` with an argument) and an HTTP server (a request line) answer: "redis",
    "http", "tls" (a TLS alert, or a TLS handshake that completes), or None (no answer, or one
    of neither kind). Blocking and short: only for the first failure of a client that never
    worked, to say what is wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING HTTP/1.0\r\n\r\n")
            data = sock.recv(64)
    except OSError:
        data = b""
    if data[:1] in (b"+", b"-", b"$"):
        return "redis"
    if data.startswith(b"HTTP/") or data.lstrip()[:1] == b"<":  # a status line, or an HTML page
        return "http"
    if data[:1] == b"\x15":
        return "tls"
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw):
            return "tls"
    except ssl.SSLError as exc:
        # A TLS server that ends the handshake with an alert (it wants a client certificate).
        return "tls" if "ALERT" in str(exc.reason or "") else None
    except (OSError, ValueError):
        return None


# OpenSSL's reasons for a handshake answered by something that does not speak TLS.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
            "UNEXPECTED_RECORD", "UNKNOWN_PROTOCOL"}  # fmt: skip


def diagnose(url: BrokerUrl, exc: BaseException) -> str | None:
    """For the first failure of a client that never worked with a one-server URL: when the other
    end is not the kind of server the URL expects (a plain Redis port for ``rediss://``, an HTTP
    server, a TLS port for ``redis://``), a sentence saying so; else None."""
    if url.scheme not in ("redis", "rediss"):
        return None
    failure = tls_failure(exc)
    if isinstance(failure, ssl.SSLCertVerificationError) or isinstance(exc, AuthenticationError):
        return None  # a TLS server that is not trusted, or a password refused: a server of the right kind
    suspicious = isinstance(exc, (InvalidResponse, ConnectionError, TimeoutError)) or failure is not None
    if not suspicious:
        return None
    host, port = url.hosts[0]
    found = probe(host, port)
    where = f"{host}:{port}"
    if found == "http":
        return f"{where} is an HTTP server, not a Redis server: check the host and port"
    if url.tls and found == "redis":
        return (
            f"{where} is a Redis server without TLS (it answers plain commands, not a TLS handshake): use "
            f"redis://{where}, or the server's TLS port"
        )
    if not url.tls and found == "tls":
        return f"{where} speaks TLS: use rediss://{where}"
    if isinstance(exc, InvalidResponse) or (url.tls and found is None and getattr(failure, "reason", None) in _NOT_TLS):
        what = "a TLS Redis server" if url.tls else "a Redis server"
        return f"{where} is not {what} (it answered with something else: {exc}); check the host and port"
    return None


def node_client(url: BrokerUrl, name: str, *, retry: Any) -> Any:
    """A plain client for one cluster node ``"host:port"``: how a pipeline reaches one shard on
    one connection (scripts preloaded there, WAIT on the connection that wrote)."""
    host, _, port = name.rpartition(":")
    return redis_io.Redis(host=host, port=int(port), retry=retry, **url.cluster_kwargs())


def _address(sentinel: Any) -> str:
    kwargs = sentinel.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


class FacadeSentinel(Sentinel):
    """redis-py's Sentinel, except for what "no master found" hides: sentinels refusing our
    credentials (or our TLS settings) are an AuthenticationError (or a TLS ConnectionError); no
    sentinel answering at all is a NoSentinelError with a one-line message (redis-py's lists
    every client object); sentinels that answer without naming a healthy primary (a failover) are
    a MasterNotFoundError saying so."""

    async def discover_master(self, service_name: str) -> Any:
        answered = 0
        failures: list[BaseException] = []
        for i, sentinel in enumerate(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()
            except (ConnectionError, TimeoutError) as exc:
                failures.append(exc)
                continue
            answered += 1
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                self.sentinels[0], self.sentinels[i] = sentinel, self.sentinels[0]  # ask it first next time
                forced = getattr(self, "_force_master_ip", None)
                return (forced if forced is not None else state["ip"]), state["port"]
        where = ", ".join(_address(s) for s in self.sentinels)
        if not answered:
            refusals = [e for e in failures if isinstance(e, AuthenticationError) or tls_failure(e) is not None]
            if refusals and len(refusals) == len(failures):
                # A TLS refusal keeps its ssl.SSLError as the cause, which is how from_redis
                # recognises it (and names the ssl_* option to check).
                raise refusals[0] from tls_failure(refusals[0])
            reason = str(failures[0]) if failures else "no sentinels"
            raise NoSentinelError(
                f"no sentinel answered at {where} ({reason}); check the URL and that the sentinels run"
            )
        raise MasterNotFoundError(
            f"the sentinels at {where} name no healthy primary for service {service_name!r}: a failover is "
            "under way, or the service name is wrong"
        )


class PrimaryConnection(SentinelManagedConnection):
    """A SentinelManagedConnection that asks the sentinels on every reconnect.

    redis-py (8.x) reconnects a dropped connection inside a command (its retry, or after a
    READONLY answer) through ``connect_check_health``, which reuses the address it had: the retry
    goes back to the demoted primary. Here that path asks the sentinels too.
    """

    _discovered = False

    def __init__(self, **kwargs: Any) -> None:
        self.failover_wait_s: float = kwargs.pop("failover_wait_s", 0.0)
        super().__init__(**kwargs)

    async def connect_to(self, address: Any) -> None:
        self._discovered = True  # the address was just asked for
        try:
            await super().connect_to(address)
        finally:
            self._discovered = False

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_connected and not self._discovered and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        return await super().connect_check_health(*args, **kwargs)

    async def connect(self) -> Any:
        # During a failover the sentinels name no primary, or one that refuses connections:
        # ask them again until failover_wait_s (nothing was sent on this connection yet).
        deadline = _backend.monotonic() + self.failover_wait_s
        pause = 0.1
        while True:
            try:
                return await super().connect()
            except (ConnectionError, TimeoutError) as exc:
                if (
                    isinstance(exc, (NoSentinelError, AuthenticationError))
                    or tls_failure(exc) is not None
                    or not self.connection_pool.is_master
                ):
                    raise
                if _backend.monotonic() + pause > deadline:
                    if not self.failover_wait_s:
                        raise
                    raise type(exc)(f"{exc} (no primary took connections for {self.failover_wait_s:g} s)") from exc
            await _backend.sleep(pause)
            pause = min(pause * 2, 1.0)


class PrimarySSLConnection(PrimaryConnection, SSLConnection):
    """PrimaryConnection over TLS."""


class FollowingSentinelPool(SentinelConnectionPool):
    """A SentinelConnectionPool that re-asks the sentinels for the primary every
    ``PRIMARY_CHECK_INTERVAL_S`` and never hands out a connection to another server (redis-py
    alone keeps using them until that server is demoted or dies)."""

    _next_check = 0.0

    def __init__(self, service_name: str, sentinel_manager: Any, failover_wait_s: float = 0.0, **kwargs: Any) -> None:
        kwargs["connection_class"] = PrimarySSLConnection if kwargs.pop("ssl", False) else PrimaryConnection
        super().__init__(service_name, sentinel_manager, **kwargs)
        # How long a new connection waits for a primary while the sentinels name none that answers.
        self.connection_kwargs["failover_wait_s"] = failover_wait_s

    async def _follow_primary(self) -> None:
        now = _backend.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + urls.PRIMARY_CHECK_INTERVAL_S
        try:
            await self.get_master_address()  # if it moved: idle connections are closed
        except (ConnectionError, TimeoutError):
            # No sentinel names a healthy primary (failover under way, or they are down): keep
            # the connections we have; a dead server shows up on its own.
            self._next_check = now + urls.PRIMARY_CHECK_BACKOFF_S

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        await self._follow_primary()
        connection = await super().get_connection(*args, **kwargs)
        if self.master_address is not None and (connection.host, connection.port) != self.master_address:
            try:  # a connection that was in use while the primary moved
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection


class SentinelRedis(redis_io.Redis):
    """The client of a Sentinel service; closing it also closes the sentinel clients."""

    sentinel_manager: Any = None

    async def aclose(self, *args: Any) -> None:
        try:
            await super().aclose(*args)
        finally:
            if self.sentinel_manager is not None:
                manager, self.sentinel_manager = self.sentinel_manager, None
                await manager.aclose()
