"""Topics as the Kafka APIs see them: the registry read in one command, and Kafka topic ids.

A Kafka topic id is a UUID that changes when a topic is deleted and created again. The gateway
derives it from the name and the creation time stored in the registry (no state of its own):
every gateway on one Redis computes the same id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from .. import keys
from .._async.client import Connection, topic_from_json
from ..errors import from_redis
from ..records import TopicConfig

__all__ = ["all_topics", "some_topics", "topic_id"]


def topic_id(cfg: TopicConfig) -> uuid.UUID:
    """The Kafka topic id of ``cfg`` (never the zero UUID, which Kafka reserves)."""
    digest = hashlib.sha256(f"{cfg.name}\0{cfg.created_ms}".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


async def all_topics(conn: Connection) -> dict[str, TopicConfig]:
    """Every topic of the current key layout, by name."""
    raw = await conn.read("listing topics", "HGETALL", keys.TOPICS)
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
    out = {}
    for _, value in items:
        cfg = topic_from_json(value)
        if cfg.layout >= keys.LAYOUT_VERSION:
            out[cfg.name] = cfg
    return out


async def some_topics(conn: Connection, names: Iterable[str]) -> dict[str, TopicConfig | None]:
    """The named topics (None for each that does not exist, or exists only in an older layout)."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    # One HGET per name in one round trip (not HMGET: facade's ACL roles grant HGET and HGETALL).
    raw = await conn.commands([("HGET", keys.TOPICS, name) for name in names], "reading topics")
    out: dict[str, TopicConfig | None] = {}
    for name, value in zip(names, raw):
        if isinstance(value, Exception):
            raise from_redis(value, "reading topics") from value
        cfg = topic_from_json(value) if value is not None else None
        out[name] = cfg if cfg is not None and cfg.layout >= keys.LAYOUT_VERSION else None
    return out
