"""Copy records from one topic to another through a consumer group: `facade relay`.

This module is the asyncio source of truth; facade/_sync/relay.py is generated from it.

exactly_once=True (default): with atomic (the default except on Redis Cluster), each input
partition's outputs are appended in the same script that commits their inputs (Consumer.commit(outputs=...)), so a crash at any moment leaves either
both or neither: a restart neither loses nor doubles anything. This needs all keys on one server
(single Redis, Sentinel). atomic=False instead sends outputs through an idempotent producer with
dedup ids derived from the input position (``<group>/<topic>/<partition>/<offset>``), then commits:
a replay after a crash re-sends the same dedup ids, which the destination drops (within the dedup
window) — the way to get the same effect where one script cannot reach both sides.
exactly_once=False: at-least-once (outputs sent, then inputs committed; a crash in between doubles).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..records import Message, OutputRecord
from . import _backend
from .consumer import Consumer
from .producer import Producer

__all__ = ["RelayStats", "key_function", "relay"]


@dataclass(frozen=True)
class RelayStats:
    """What a relay run did."""

    copied: int
    """Records written to the destination."""
    elapsed_s: float
    """Run time in seconds."""


def key_function(key_from: str | None) -> Callable[[Message], bytes | None]:
    """How an output's key is chosen: None keeps the input key; "value" uses the value;
    "header:NAME" uses that header (keyless when missing)."""
    if key_from is None or key_from == "key":
        return lambda m: m.key
    if key_from == "value":
        return lambda m: m.value
    if key_from.startswith("header:") and len(key_from) > 7:
        name = key_from[7:]
        return lambda m: m.headers.get(name)
    raise ConfigError(f"key_from must be 'key', 'value' or 'header:NAME', got {key_from!r}")


async def relay(
    source: str,
    destination: str,
    group: str,
    url: str | None = None,
    *,
    exactly_once: bool = True,
    atomic: bool | None = None,
    key_from: str | None = None,
    idle_timeout_ms: int | None = None,
    max_messages: int | None = None,
    on_batch: Callable[[int], Any] | None = None,
    consumer_options: dict[str, Any] | None = None,
) -> RelayStats:
    """Copy ``source`` to ``destination`` as consumer group ``group`` until ``idle_timeout_ms``
    passes with nothing new, or ``max_messages`` were copied (None: run forever)."""
    if source == destination:
        raise ConfigError("source and destination must be different topics")
    pick_key = key_function(key_from)
    options = {"auto_offset_reset": "earliest", **(consumer_options or {})}
    if exactly_once:
        options["guarantee"] = "exactly-once"
    started = _backend.monotonic()
    copied = 0
    idle_since = _backend.monotonic()
    consumer = Consumer(source, group, url, **options)
    if atomic is None:
        # One script spanning input and output partitions is impossible on a cluster.
        atomic = not consumer._conn.cluster
    producer = None if exactly_once and atomic else Producer(url, linger_ms=0)
    try:
        while max_messages is None or copied < max_messages:
            want = 500 if max_messages is None else min(500, max_messages - copied)
            batch = await consumer.poll(timeout_ms=200, max_records=want)
            if not batch:
                if idle_timeout_ms is not None and (_backend.monotonic() - idle_since) * 1000 >= idle_timeout_ms:
                    break
                continue
            idle_since = _backend.monotonic()
            if producer is None:
                outputs = [OutputRecord(m, destination, m.value, pick_key(m), m.headers) for m in batch]
                await consumer.commit(outputs)
            else:
                for m in batch:
                    dedup = f"{group}/{m.topic}/{m.partition}/{m.offset}" if exactly_once else None
                    await producer.send(destination, m.value, pick_key(m), m.headers, dedup_id=dedup)
                await producer.flush()  # raises nothing: failures are in the futures
                await consumer.commit()
            copied += len(batch)
            if on_batch is not None:
                on_batch(copied)
    finally:
        await consumer.close()
        if producer is not None:
            await producer.close()
    return RelayStats(copied, _backend.monotonic() - started)
