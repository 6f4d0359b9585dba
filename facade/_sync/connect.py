# Generated from facade/_async/connect.py by scripts/unasync.py: edit that file, not this one.
"""How each URL scheme becomes a redis-py client: one server, a Sentinel service, a Redis Cluster.

This module is the asyncio source of truth; facade/_sync/connect.py is generated from it. URLs
are parsed in facade/url.py (pure); this is where they meet sockets.

Sentinel clients: the pool asks the sentinels for the primary at every new connection, on every
reconnect inside a command (which redis-py 8 would send back to the old address), and every
``url.PRIMARY_CHECK_INTERVAL_S`` even while its connections work, because a deposed primary that
still runs gives no error at all. Closing the client closes the sentinel connections too.
"""

from __future__ import annotations

import os
from typing import Any

import redis as redis_io
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    RedisClusterException,
    RedisError,
    TimeoutError,
)

from .. import url as urls
from ..errors import from_redis, tls_failure
from ..local import embedded
from ..url import BrokerUrl, parse_url
from . import _backend

__all__ = ["create_client", "node_client", "resolve_url"]


def resolve_url(url: str | None = None) -> BrokerUrl:
    """The broker to use: ``url``, else ``$FACADE_URL``, else the embedded broker (started if needed)."""
    if url is None:
        url = os.environ.get("FACADE_URL") or None
    return parse_url(url if url is not None else embedded.ensure())


def create_client(url: BrokerUrl, *, retry: Any) -> Any:
    """A redis-py client for ``url``; ``retry`` is redis-py's Retry object for its own reconnects.

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
            **url.server_kwargs(),
        )
        client.sentinel_manager = manager
        return client
    return redis_io.Redis(**url.client_kwargs(), retry=retry)


def node_client(url: BrokerUrl, name: str, *, retry: Any) -> Any:
    """A plain client for one cluster node ``"host:port"``: how a pipeline reaches one shard on
    one connection (scripts preloaded there, WAIT on the connection that wrote)."""
    host, _, port = name.rpartition(":")
    return redis_io.Redis(host=host, port=int(port), retry=retry, **url.cluster_kwargs())


class FacadeSentinel(Sentinel):
    """redis-py's Sentinel, except that sentinels refusing our credentials (or our TLS settings)
    is an AuthenticationError (or a TLS ConnectionError), not "no master found", which redis-py
    folds them into and which looks retriable."""

    def discover_master(self, service_name: str) -> Any:
        try:
            return super().discover_master(service_name)
        except MasterNotFoundError as exc:
            refusals = []
            for sentinel in self.sentinels:
                try:
                    sentinel.ping()
                except AuthenticationError as auth:
                    refusals.append(auth)
                except RedisError as error:
                    if tls_failure(error) is None:
                        break  # an unreachable sentinel: not (only) a matter of credentials
                    refusals.append(error)  # TLS refused: the URL's ssl_* options are wrong
            if refusals and len(refusals) == len(self.sentinels):
                # A TLS refusal keeps its ssl.SSLError as the cause (raising here would replace
                # its context), which is how from_redis recognises it.
                raise refusals[0] from (tls_failure(refusals[0]) or exc)
            raise


class PrimaryConnection(SentinelManagedConnection):
    """A SentinelManagedConnection that asks the sentinels on every reconnect.

    redis-py (8.x) reconnects a dropped connection inside a command (its retry, or after a
    READONLY answer) through ``connect_check_health``, which reuses the address it had: the retry
    goes back to the demoted primary. Here that path asks the sentinels too.
    """

    _discovered = False

    def connect_to(self, address: Any) -> None:
        self._discovered = True  # the address was just asked for
        try:
            super().connect_to(address)
        finally:
            self._discovered = False

    def connect_check_health(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_connected and not self._discovered and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(*args, **kwargs)


class PrimarySSLConnection(PrimaryConnection, SSLConnection):
    """PrimaryConnection over TLS."""


class FollowingSentinelPool(SentinelConnectionPool):
    """A SentinelConnectionPool that re-asks the sentinels for the primary every
    ``PRIMARY_CHECK_INTERVAL_S`` and never hands out a connection to another server (redis-py
    alone keeps using them until that server is demoted or dies)."""

    _next_check = 0.0

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        kwargs["connection_class"] = PrimarySSLConnection if kwargs.pop("ssl", False) else PrimaryConnection
        super().__init__(service_name, sentinel_manager, **kwargs)

    def _follow_primary(self) -> None:
        now = _backend.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + urls.PRIMARY_CHECK_INTERVAL_S
        try:
            self.get_master_address()  # if it moved: idle connections are closed
        except (ConnectionError, TimeoutError):
            # No sentinel names a healthy primary (failover under way, or they are down): keep
            # the connections we have; a dead server shows up on its own.
            self._next_check = now + urls.PRIMARY_CHECK_BACKOFF_S

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self._follow_primary()
        connection = super().get_connection(*args, **kwargs)
        if self.master_address is not None and (connection.host, connection.port) != self.master_address:
            try:  # a connection that was in use while the primary moved
                connection.disconnect()
                connection.connect()
            except BaseException:
                self.release(connection)
                raise
        return connection


class SentinelRedis(redis_io.Redis):
    """The client of a Sentinel service; closing it also closes the sentinel clients."""

    sentinel_manager: Any = None

    def close(self, *args: Any) -> None:
        try:
            super().close(*args)
        finally:
            if self.sentinel_manager is not None:
                manager, self.sentinel_manager = self.sentinel_manager, None
                manager.close()
