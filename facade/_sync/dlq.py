# Generated from facade/_async/dlq.py by scripts/unasync.py: edit that file, not this one.
"""Dead-letter topics: list them, and replay them to where they came from.

This module is the asyncio source of truth; facade/_sync/dlq.py is generated from it.

A consumer with ``max_deliveries`` moves a record that failed that many times (``fail()``, or a
crash while its consumer held it alone) to ``<topic>.dlq`` (same partition number; for names too
long for the suffix, keys.dead_letter_topic's hashed name), with headers naming its origin: ``dlq.topic``,
``dlq.partition``, ``dlq.offset``, ``dlq.delivery_count`` and ``dlq.error``.
"""

from __future__ import annotations

from .. import codec, keys
from ..errors import ConfigError
from ..records import Message, TopicPartition
from .client import Connection
from .logs import delete_before
from .producer import Producer

__all__ = ["dlq_name", "list_dead", "replay_dead"]

HEADERS = ("dlq.topic", "dlq.partition", "dlq.offset", "dlq.delivery_count", "dlq.error")


def dlq_name(topic: str) -> str:
    """The dead-letter topic of ``topic`` (keys.dead_letter_topic decides the name)."""
    return keys.dead_letter_topic(keys.validate_name(topic))


def list_dead(conn: Connection, topic: str, limit: int = 100) -> list[Message]:
    """Up to ``limit`` dead-lettered records of ``topic``, oldest first per partition."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    name = dlq_name(topic)
    cfg = conn.topic(name)
    out: list[Message] = []
    for p in range(cfg.partitions):
        if len(out) >= limit:
            break
        entries = conn.read(f"reading {name}", "XRANGE", keys.stream(name, p), "-", "+", "COUNT", limit - len(out))
        out += [codec.decode(name, p, eid, flat) for eid, flat in entries]
    return out


def replay_dead(conn: Connection, topic: str) -> int:
    """Send every dead-lettered record of ``topic`` back to its original topic and partition
    (original key, value and headers), then remove it from the dead-letter topic.

    Safe to repeat after a crash: each is re-sent with the dedup id ``dlq-replay/<dlq offset>``,
    and removed only once stored (the dead-letter topic is trimmed from its start, so the offsets
    of what remains never change)."""
    name = dlq_name(topic)
    cfg = conn.topic(name)
    moved = 0
    producer = Producer(conn.url.raw, linger_ms=0)
    try:
        for p in range(cfg.partitions):
            stream = keys.stream(name, p)
            while True:
                entries = conn.read(f"reading {name}", "XRANGE", stream, "-", "+", "COUNT", 500)
                if not entries:
                    break
                sends = []
                for eid, flat in entries:
                    m = codec.decode(name, p, eid, flat)
                    origin = (m.headers.get("dlq.topic") or b"").decode() or topic
                    partition = int(m.headers.get("dlq.partition") or 0)
                    headers = [(k, v) for k, v in m.headers if k not in HEADERS]
                    fut = producer.send(
                        origin, m.value, m.key, headers, partition, dedup_id=f"dlq-replay/{p}/{m.offset}",
                        timestamp_ms=m.timestamp_ms,
                    )
                    sends.append((m.offset, fut))
                producer.flush()
                for _, fut in sends:
                    if fut.exception() is not None:
                        raise fut.exception()
                delete_before(conn, TopicPartition(name, p), sends[-1][0] + 1)
                moved += len(sends)
    finally:
        producer.close()
    return moved
