# Generated from facade/_async/logs.py by scripts/unasync.py: edit that file, not this one.
"""Partition logs as Kafka lists them: log start and end offsets, offsets for times.

This module is the asyncio source of truth; facade/_sync/logs.py is generated from it.
Used by Admin (list_offsets), Consumer (beginning_offsets, end_offsets, offsets_for_times) and
group descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from .. import codec, keys, offsets, scripts
from ..errors import UnknownTopicError, from_redis
from ..records import Message, OffsetAndTimestamp, TopicPartition
from .client import Connection

__all__ = ["LogOffsets", "delete_before", "log_offsets", "offsets_for_times", "read_records"]


class LogOffsets(NamedTuple):
    """One partition's log: where it starts and ends, and how many records it holds."""

    start: int
    """Offset of the oldest stored record (``end`` when empty)."""
    end: int
    """Offset the next record gets (the high watermark)."""
    length: int
    """Records stored."""


def _field(info: Any, name: str) -> Any:
    value = info.get(name) if isinstance(info, dict) else None
    if value is None and isinstance(info, dict):
        value = info.get(name.encode())
    return value


def parse_stream_info(info: Any) -> LogOffsets:
    """LogOffsets from an XINFO STREAM reply (redis-py's dict)."""
    last = _field(info, "last-generated-id")
    last = last.decode() if isinstance(last, bytes) else (last or "0-0")
    end = 0 if last == "0-0" else offsets.split_id(last)[1] + 1
    first = _field(info, "first-entry")
    start = offsets.offset_of(first[0]) if first else end
    return LogOffsets(start, end, int(_field(info, "length") or 0))


def log_offsets(conn: Connection, tps: Iterable[TopicPartition]) -> dict[TopicPartition, LogOffsets]:
    """Log start, end and length of each partition (one round trip per shard)."""
    tps = list(tps)
    if not tps:
        return {}
    calls = [("XINFO STREAM", keys.stream(tp.topic, tp.partition)) for tp in tps]
    replies = conn.commands(calls, "reading partition offsets")
    out = {}
    for tp, reply in zip(tps, replies):
        if isinstance(reply, Exception):
            if "no such key" in str(reply).lower():
                raise UnknownTopicError(f"partition {tp.topic}[{tp.partition}] does not exist") from reply
            raise from_redis(reply, "reading partition offsets") from reply
        out[tp] = parse_stream_info(reply)
    return out


def offsets_for_times(
    conn: Connection, timestamps: dict[TopicPartition, int]
) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    """For each partition, the first record appended at or after the time (ms), or None."""
    out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    for tp, ms in timestamps.items():
        offsets.validate_timestamp(ms, f"timestamp for {tp.topic}[{tp.partition}]")
    tps = list(timestamps)
    calls = [("XRANGE", keys.stream(tp.topic, tp.partition), f"{timestamps[tp]}-0", "+", "COUNT", 1) for tp in tps]
    for tp, found in zip(tps, conn.commands(calls, "looking up offsets by time")):
        if isinstance(found, Exception):
            raise from_redis(found, "looking up offsets by time") from found
        if found:
            ms, offset = offsets.split_id(found[0][0])
            out[tp] = OffsetAndTimestamp(offset, ms)
        else:
            out[tp] = None
    return out


def delete_before(conn: Connection, tp: TopicPartition, before: int) -> int:
    """Remove the records of ``tp`` below offset ``before`` (-1: all stored), a bounded part per
    script call; returns the new log start offset."""
    while True:
        reply = conn.script(
            *scripts.trim_before(tp, None if before < 0 else before), context=f"deleting records of {tp.topic}[{tp.partition}]"
        )
        if int(reply[1]):
            return int(reply[0])


def read_records(conn: Connection, tp: TopicPartition, start: int, limit: int) -> list[Message]:
    """Up to ``limit`` stored records of ``tp`` from offset ``start`` on (from the log start when
    ``start`` is below it), read with XRANGE: no consumer group, nothing changes. Finding
    ``start`` is a binary search over the ms part of the entry IDs (offsets and ms both only grow
    along the stream), as lua/_lib.lua's find_entry does: at most ~45 single-entry reads."""
    stream = keys.stream(tp.topic, tp.partition)
    context = f"reading {tp.topic}[{tp.partition}]"
    first = conn.read(context, "XRANGE", stream, "-", "+", "COUNT", 1)
    if not first:
        return []
    lo, first_offset = offsets.split_id(_id(first[0][0]))
    begin = "-"
    if start > first_offset:
        last = conn.read(context, "XREVRANGE", stream, "+", "-", "COUNT", 1)
        hi, last_offset = offsets.split_id(_id(last[0][0]))
        if start > last_offset:
            return []
        # The largest ms whose first entry at or after it has an offset <= start: record
        # ``start``, if stored, has that ms.
        while lo < hi:
            mid = (lo + hi + 1) // 2
            probe = conn.read(context, "XRANGE", stream, f"{mid}-0", "+", "COUNT", 1)
            if offsets.split_id(_id(probe[0][0]))[1] <= start:
                lo = mid
            else:
                hi = mid - 1
        begin = f"{lo}-{start}"
    entries = conn.read(context, "XRANGE", stream, begin, "+", "COUNT", limit)
    return [codec.decode(tp.topic, tp.partition, eid, fields) for eid, fields in entries]


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
