# Generated from facade/_async/client.py by scripts/unasync.py: edit that file, not this one.
"""One broker connection (a redis-py client with its pool) plus facade's scripts and metadata.

This module is the asyncio source of truth; facade/_sync/client.py is generated from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from .. import keys
from ..connection import BrokerUrl, create_client, resolve_url
from ..errors import ConfigError, FacadeError, UnknownTopicError, from_redis
from ..records import TopicConfig
from ..scripts import Scripts
from . import _backend


def topic_from_json(raw: bytes | str) -> TopicConfig:
    """A TopicConfig from the JSON stored in the topic registry."""
    d = json.loads(raw)
    return TopicConfig(
        name=d["name"],
        partitions=int(d["partitions"]),
        retention_ms=d.get("retention_ms"),
        max_len=d.get("max_len"),
        created_ms=int(d.get("created_ms") or 0),
        layout=int(d.get("layout") or keys.LAYOUT_VERSION),
        ack_retention=bool(d.get("ack_retention", False)),
    )


def topic_to_json(cfg: TopicConfig) -> str:
    """The registry JSON of a TopicConfig."""
    return json.dumps(
        {
            "name": cfg.name,
            "partitions": cfg.partitions,
            "retention_ms": cfg.retention_ms,
            "max_len": cfg.max_len,
            "created_ms": cfg.created_ms,
            "layout": cfg.layout,
            "ack_retention": cfg.ack_retention,
        },
        separators=(",", ":"),
    )


class Connection:
    """A client for one broker URL, with the Lua scripts registered and errors converted."""

    def __init__(self, url: str | None = None) -> None:
        self.url: BrokerUrl = resolve_url(url)
        # One quick reconnect inside redis-py (a pooled connection the server closed); every other
        # retry is facade's own, under the idempotent producer's sequences.
        self.redis = create_client(self.url, is_async=_backend.IS_ASYNC, retry=Retry(ExponentialBackoff(0.2, 0.02), 1))
        self.scripts = Scripts(self.redis)
        # Whether any command ever succeeded: retries ride out failures of a working connection,
        # but a server that was never reached fails fast.
        self.connected = False
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.redis.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ConfigError("this client is closed; create a new one")

    def script(self, name: str, keys_: Sequence[str], args: Sequence[Any], context: str) -> Any:
        """Run one script; redis errors come out as FacadeErrors that lead with ``context``."""
        self._check_open()
        try:
            result = getattr(self.scripts, name)(keys=keys_, args=args)
            self.connected = True
            return result
        except RedisError as exc:
            raise from_redis(exc, context) from exc

    def command(self, context: str, *args: Any) -> Any:
        """Run one command, converting errors."""
        self._check_open()
        try:
            result = self.redis.execute_command(*args)
            self.connected = True
            return result
        except RedisError as exc:
            raise from_redis(exc, context) from exc

    def pipeline(
        self,
        calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
        context: str,
        tail: Sequence[Sequence[Any]] = (),
    ) -> list[Any]:
        """Run several scripts, then the raw commands in ``tail``, in one round trip on one
        connection (no MULTI); one result or FacadeError per call, tail results last.

        A connection failure fails the whole call; a script error only its own slot. ``tail`` is
        how WAIT / WAITAOF follow the writes on the same connection (acks="all").
        """
        self._check_open()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name, keys_, args in calls:
                getattr(self.scripts, name)(keys=keys_, args=args, client=pipe)
            for command in tail:
                pipe.execute_command(*command)
            results = pipe.execute(raise_on_error=False)
            self.connected = True
        except RedisError as exc:
            raise from_redis(exc, context) from exc
        return [from_redis(r, context) if isinstance(r, Exception) else r for r in results]

    def connected_replicas(self) -> int:
        """How many replicas are attached to the primary right now (INFO replication)."""
        info = self.read("reading replication state", "INFO", "replication")
        if isinstance(info, bytes):
            info = info.decode()
        if isinstance(info, str):
            fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            return int(fields.get("connected_slaves", 0))
        return int(info.get("connected_slaves", 0))

    def read(self, context: str, *args: Any, budget_s: float = 10.0) -> Any:
        """Run a read-only command, retrying retriable failures (lost reply, failover) with
        backoff for up to ``budget_s`` seconds; safe because reading twice changes nothing."""
        deadline = _backend.monotonic() + budget_s
        pause = 0.05
        while True:
            try:
                return self.command(context, *args)
            except FacadeError as exc:
                # A server never reached is a wrong URL or a server that is down: say so at once.
                if not exc.retriable or not self.connected or _backend.monotonic() + pause > deadline:
                    raise
            _backend.sleep(pause)
            pause = min(pause * 2, 1.0)

    def topic(self, name: str) -> TopicConfig:
        """The stored config of topic ``name``; UnknownTopicError when it does not exist."""
        keys.validate_name(name)
        raw = self.read(f"reading topic {name}", "HGET", keys.TOPICS, name)
        if raw is None:
            raise UnknownTopicError(
                f"topic {name!r} does not exist; create it with `facade topics create {name} --partitions N` "
                "or Admin().create_topic(), or let the producer create it (auto_create=True / --create)"
            )
        return topic_from_json(raw)


class TopicCache:
    """Topic configs read through a Connection and kept for ``max_age_ms`` (like Kafka's metadata)."""

    def __init__(self, conn: Connection, max_age_ms: int) -> None:
        self._conn = conn
        self._max_age_s = max_age_ms / 1000
        self._topics: dict[str, tuple[TopicConfig, float]] = {}

    def forget(self, name: str) -> None:
        self._topics.pop(name, None)

    def fresh(self, name: str) -> TopicConfig | None:
        """The cached config if still fresh, without I/O (the producer's fast path)."""
        hit = self._topics.get(name)
        if hit is not None and _backend.monotonic() - hit[1] < self._max_age_s:
            return hit[0]
        return None

    def get(self, name: str) -> TopicConfig:
        hit = self._topics.get(name)
        now = _backend.monotonic()
        if hit is not None and now - hit[1] < self._max_age_s:
            return hit[0]
        cfg = self._conn.topic(name)
        self._topics[name] = (cfg, now)
        return cfg

