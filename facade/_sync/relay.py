# Generated from facade/_async/relay.py by scripts/unasync.py: edit that file, not this one.
"""Copy records from one topic to another through a consumer group: `facade relay`.

This module is the asyncio source of truth; facade/_sync/relay.py is generated from it.

In every mode an input is committed only after its output is confirmed stored (or, for a record
that cannot be copied, after its dead letter is): a batch with a failed output raises with its
inputs uncommitted, and a restart copies it again.

exactly_once=True (default): with atomic (the default except on Redis Cluster), each input
partition's outputs are appended in the same script that commits their inputs
(Consumer.commit(outputs=...)), so a crash at any moment leaves either both or neither: a restart
neither loses nor doubles anything. This needs all keys on one server (single Redis, Sentinel).
atomic=False instead sends outputs through an idempotent producer with dedup ids derived from the
input position (``<group>/<topic>/<partition>/<offset>``), and commits the inputs only once every
output is confirmed: a replay after a crash re-sends the same dedup ids, which the destination
drops (within the dedup window) — the way to get the same effect where one script cannot reach
both sides. exactly_once=False: at-least-once (outputs confirmed, then inputs committed; a crash
in between doubles).

The producer batches: ``linger_ms`` 5 and the whole poll (up to 500 records) sent before one
flush, so a batch costs about one produce round trip per destination server, not one per record.

A record whose output cannot be stored at all (larger than ``max_message_bytes``, say with
``key_from="value"``) goes to the source's dead-letter topic with an error naming it, and the
relay goes on. A commit refused because a rebalance moved a partition away (CommitFailedError) is
logged and the relay goes on: the new owner copies those records again (atomic: nothing of them
was written; dedup ids: what was written is dropped as a repeat).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import codec, keys
from ..errors import CommitFailedError, ConfigError, MessageTooLargeError, TopicExistsError
from ..records import Message, OutputRecord
from . import _backend
from .consumer import Consumer
from .producer import Producer
from .topics import create_topic

log = logging.getLogger("facade")

__all__ = ["RelayStats", "key_function", "relay"]

# The dead-letter copy of a record must fit whatever the source holds: the producer's own ceiling.
_DEAD_LETTER_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class RelayStats:
    """What a relay run did."""

    copied: int
    """Records written to the destination whose inputs this run committed."""
    elapsed_s: float
    """Run time in seconds."""
    dead_lettered: int = 0
    """Records that could not be copied (an output over ``max_message_bytes``), moved to the
    source's dead-letter topic with the error, and committed."""
    dead_letter_topic: str = ""
    """Where those records go: the source's dead-letter topic (``<source>.dlq``)."""


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


def relay(
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
    max_message_bytes: int = 16 * 1024 * 1024,
    producer_options: dict[str, Any] | None = None,
) -> RelayStats:
    """Copy ``source`` to ``destination`` as consumer group ``group`` until ``idle_timeout_ms``
    passes with nothing new, or ``max_messages`` were copied (None: run forever).

    ``max_message_bytes``: the largest output (key, value and headers, in bytes); a record whose
    output is larger is dead-lettered. ``consumer_options`` / ``producer_options``: options of
    the relay's Consumer and Producer (e.g. ``session_timeout_ms``, ``delivery_timeout_ms``).
    ``on_batch(copied)`` is called after each committed batch. Raises the error of an output that
    could not be stored (its input stays uncommitted: run again to copy it)."""
    if source == destination:
        raise ConfigError("source and destination must be different topics")
    pick_key = key_function(key_from)
    options = {"auto_offset_reset": "earliest", "enable_auto_commit": False, **(consumer_options or {})}
    if exactly_once:
        options["guarantee"] = "exactly-once"
    started = _backend.monotonic()
    copied = 0
    idle_since = _backend.monotonic()
    consumer = Consumer(source, group, url, **options)
    if atomic is None:
        # One script spanning input and output partitions is impossible on a cluster.
        atomic = not consumer._conn.cluster
    # Outputs may be larger than a producer's default limit (a key taken from a large value):
    # the relay's limit follows its source's records, not the 1 MiB default.
    consumer._committer.max_output_bytes = max_message_bytes
    # Outputs are checked against max_message_bytes before they are sent; the producer's own
    # ceiling only bounds the dead-letter copies, which must fit any record the source holds.
    producer = Producer(url, **{"linger_ms": 5, **(producer_options or {}), "max_message_bytes": _DEAD_LETTER_MAX_BYTES})
    dead_lettered = 0
    try:
        while max_messages is None or copied < max_messages:
            want = 500 if max_messages is None else min(500, max_messages - copied)
            batch = consumer.poll(timeout_ms=200, max_records=want)
            if not batch:
                if idle_timeout_ms is not None and (_backend.monotonic() - idle_since) * 1000 >= idle_timeout_ms:
                    break
                continue
            idle_since = _backend.monotonic()
            fitting, oversized = [], []
            for m in batch:
                try:
                    codec.encode(pick_key(m), m.value, m.headers, max_message_bytes)
                    fitting.append(m)
                except MessageTooLargeError as exc:
                    oversized.append((m, MessageTooLargeError(
                        f"{m.topic}[{m.partition}] offset {m.offset} cannot be copied to {destination}: its output "
                        f"is {exc.size} bytes, over the relay's max_message_bytes={max_message_bytes}",
                        size=exc.size, limit=max_message_bytes)))  # fmt: skip
            if oversized:
                _dead_letter(producer, group, oversized)
            try:
                _copy(consumer, producer, destination, group, fitting, pick_key, atomic and exactly_once, exactly_once)
            except CommitFailedError as exc:
                # A rebalance moved partitions away: their records go to the new owner, which
                # copies them again (nothing of them was written, or only under their dedup ids).
                log.warning("facade relay: %s; going on with the partitions still assigned", exc)
                continue
            copied += len(fitting)
            dead_lettered += len(oversized)
            if on_batch is not None:
                on_batch(copied)
    finally:
        try:
            consumer.close()
        finally:
            producer.close()
    return RelayStats(copied, _backend.monotonic() - started, dead_lettered, keys.dead_letter_topic(source))


def _copy(
    consumer: Consumer,
    producer: Producer,
    destination: str,
    group: str,
    batch: list[Message],
    pick_key: Callable[[Message], bytes | None],
    atomic: bool,
    exactly_once: bool,
) -> None:
    """Store the outputs of ``batch`` and commit its inputs: in one script per input partition
    (``atomic``), or produce, wait until every output is confirmed, then commit."""
    if atomic:
        outputs = [OutputRecord(m, destination, m.value, pick_key(m), m.headers) for m in batch]
        consumer.commit(outputs) if outputs else consumer.commit()
        return
    futures = []
    for m in batch:
        dedup = f"{group}/{m.topic}/{m.partition}/{m.offset}" if exactly_once else None
        futures.append(
            producer.send(destination, m.value, pick_key(m), m.headers, dedup_id=dedup,
                                timestamp_ms=m.timestamp_ms)
        )  # fmt: skip
    producer.flush()
    for fut in futures:  # every output stored, or the inputs stay uncommitted
        error = fut.exception()
        if error is not None:
            raise error
    consumer.commit()


def _dead_letter(producer: Producer, group: str, records: list[tuple[Message, Exception]]) -> None:
    """Send records whose output cannot be stored to the source's dead-letter topic, with the
    error, before their inputs are committed (dedup ids make a replay store each once)."""
    dlqs = {keys.dead_letter_topic(m.topic): m.topic for m, _ in records}
    for name, topic in dlqs.items():
        cfg = producer._conn.topic(topic)
        try:
            create_topic(producer._conn, name, cfg.partitions)
        except TopicExistsError:
            pass
    futures = []
    for m, exc in records:
        log.warning("facade relay: %s[%d] offset %d cannot be copied (%s); moved to %s", m.topic, m.partition,
                    m.offset, exc, keys.dead_letter_topic(m.topic))  # fmt: skip
        headers = [*m.headers, ("dlq.topic", m.topic), ("dlq.partition", str(m.partition)), ("dlq.offset", str(m.offset)),
                   ("dlq.delivery_count", str(m.delivery_count)), ("dlq.error", str(exc)[:500])]  # fmt: skip
        futures.append(
            producer.send(keys.dead_letter_topic(m.topic), m.value, m.key, headers,
                                dedup_id=f"relay-dlq/{group}/{m.topic}/{m.partition}/{m.offset}")
        )  # fmt: skip
    producer.flush()
    for fut in futures:
        error = fut.exception()
        if error is not None:
            raise error
