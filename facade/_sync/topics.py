# Generated from facade/_async/topics.py by scripts/unasync.py: edit that file, not this one.
"""Creating topics and their partitions (used by Admin, and by producers and consumers that create
dead-letter or auto-created topics).

This module is the asyncio source of truth; facade/_sync/topics.py is generated from it.
"""

from __future__ import annotations

from typing import Any

from .. import keys, scripts
from ..errors import ConfigError, TopicExistsError
from ..records import CREATE_TIME, LOG_APPEND_TIME, TopicConfig
from .client import Connection, topic_from_json, topic_to_json

__all__ = ["create_topic", "init_partitions"]


# Upper bounds of the idempotence settings: memory per partition, and a window whose expiry
# times (server ms + window) stay exact integers in Lua's doubles.
MAX_DEDUP_IDS = 10_000_000
MAX_DEDUP_WINDOW_MS = 10 * 365 * 86_400_000  # 10 years


def _opt_int(name: str, value: Any, low: int, high: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name} must be an integer {bound} or None, got {value!r}")
    return value


def init_partitions(conn: Connection, name: str, first: int, last: int) -> None:
    calls = [scripts.partition_init(name, p) for p in range(first, last)]
    for result in conn.pipeline(calls, f"creating partitions of {name}"):
        if isinstance(result, Exception):
            raise result


def create_topic(
    conn: Connection,
    name: str,
    partitions: int,
    *,
    retention_ms: int | None = None,
    max_len: int | None = None,
    ack_retention: bool = False,
    timestamp_type: str = CREATE_TIME,
    dedup_max_ids: int = 100_000,
    dedup_window_ms: int = 120_000,
) -> TopicConfig:
    """Create a topic through ``conn`` (Admin.create_topic, producers with auto_create, relays,
    consumers creating a dead-letter topic). The name must leave room for ``<name>.dlq``
    (keys.validate_new_topic)."""
    keys.validate_new_topic(name)
    keys.validate_partitions(partitions)
    if not isinstance(ack_retention, bool):
        raise ConfigError(f"ack_retention must be True or False, got {ack_retention!r}")
    if timestamp_type not in (CREATE_TIME, LOG_APPEND_TIME):
        raise ConfigError(f"timestamp_type must be {CREATE_TIME!r} or {LOG_APPEND_TIME!r}, got {timestamp_type!r}")
    cfg = TopicConfig(
        name,
        partitions,
        _opt_int("retention_ms", retention_ms, 1),
        _opt_int("max_len", max_len, 1),
        0,
        keys.LAYOUT_VERSION,
        ack_retention,
        timestamp_type,
        _opt_int("dedup_max_ids", dedup_max_ids, 1, MAX_DEDUP_IDS) or 100_000,
        _opt_int("dedup_window_ms", dedup_window_ms, 1, MAX_DEDUP_WINDOW_MS) or 120_000,
    )
    if conn.command(f"creating topic {name}", "HEXISTS", keys.TOPICS, name):
        raise TopicExistsError(f"topic {name!r} already exists; see `facade topics describe {name}`")
    # Streams first, registry last: a topic is visible only once all its partitions exist.
    init_partitions(conn, name, 0, partitions)
    stored = conn.script(*scripts.topic_register(name, topic_to_json(cfg), "create"), context=f"creating topic {name}")
    return topic_from_json(stored)
