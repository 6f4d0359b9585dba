"""Fetch (key 1): records from the client's offsets, waiting for new ones without polling.

The partitions of a request are read in one round trip. A consumer at the end of the log (every
partition read on from where this connection's previous answer ended, that read having reached the
end) is read with one plain ``XREAD`` over all its partitions (_read_at_tail); otherwise a
partition this connection's previous answer ended in is read on with a plain ``XRANGE`` after that
entry (log_read.lua gives only the log's bounds), and any other by log_read.lua (bounds, and
records from the offset found by binary search). The raw entries become one uncompressed v2 record batch per partition
(facade/gateway/batches.py) without a Python object per record. When nothing (or less than
``min_bytes``) is there, the request waits on ``XREAD BLOCK`` over the partitions' streams from
the last IDs just read: the server wakes it the moment a record is appended, and the wake-up's
own entries are the answer; ``max_wait_ms`` bounds the wait (capped by
``Limits.max_fetch_wait_ms``). On a Redis Cluster, where one XREAD cannot span slots, the SDK's
wait (Connection.wait_for_records) is used and partitions are always read by log_read.

Fetch sessions (KIP-227) are declined (session id 0): clients then send full fetch requests,
which the gateway, holding no state, answers the same way. The per-connection memory of where
each partition's last answer ended is a cache, checked before it is trusted (the first entry
read must be the offset asked for).
"""

from __future__ import annotations

import struct
import time
from typing import Any

from .. import codec, keys, offsets, scripts
from ..errors import FacadeError
from ..records import LOG_APPEND_TIME, TopicConfig, TopicPartition
from .batches import encode_batch, uvarint
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ErrorCode
from .topics import all_topics, topic_id

BLOCK_SLICE_MS = 5_000
"""Longest single XREAD BLOCK (below the Redis client's 10 s socket timeout); longer waits loop."""
DEFAULT_RECORD_BYTES = 128
TOPIC_IDS_TTL_S = 1.0
BOUNDS_TTL_S = 1.0
"""How long a partition's log start offset, read by log_read, is reused by reads at the end of
the log (_read_at_tail) before it is read again."""
WAKE_COUNT = 1000
"""Entries one XREAD wake-up returns per stream at most; a wake-up that fills it is read again."""


async def handle(ctx: RequestContext, request: Any) -> Any:
    limits = ctx.gateway.limits
    wait_ms = min(max(0, int(request.max_wait.total_seconds() * 1000)), limits.max_fetch_wait_ms)
    deadline = time.monotonic() + wait_ms / 1000
    hints: dict[TopicPartition, tuple[int, bytes, int]] = ctx.session.extra.setdefault("fetch_hints", {})

    # What to read: (topic name, partition entry, config or an error code). From v13 topics come
    # by id: the name is looked up (ids: topics.topic_id).
    by_id = await _names_by_id(ctx) if ctx.api_version >= 13 else {}
    if any(t.topic_id not in by_id for t in request.topics if ctx.api_version >= 13):
        by_id = await _names_by_id(ctx, refresh=True)  # a topic created within the cache's life
    ids: dict[str, Any] = {}
    plan: list[tuple[str, Any, TopicConfig | None, ErrorCode]] = []
    for topic in request.topics:
        if ctx.api_version >= 13:
            name = by_id.get(topic.topic_id)
            if name is None:
                name = f"<unknown topic id {topic.topic_id}>"
                ids[name] = topic.topic_id
                plan += [(name, part, None, ErrorCode.unknown_topic_id) for part in topic.partitions]
                continue
            ids[name] = topic.topic_id
        else:
            name = topic.topic
        try:
            cfg: TopicConfig | None = ctx.topics.fresh(name) or await ctx.topics.get(name)
            code = ErrorCode.none
        except FacadeError as exc:
            cfg, code = None, kafka_error(exc)
        for part in topic.partitions:
            if cfg is not None and not 0 <= part.partition < cfg.partitions:
                plan.append((name, part, None, ErrorCode.unknown_topic_or_partition))
            else:
                plan.append((name, part, cfg, code))

    reads = await _read(ctx, plan, hints)
    while True:
        budget = request.max_bytes if request.max_bytes > 0 else 2**31 - 1
        total = 0
        waits: dict[str, bytes] = {}
        out: dict[str, list[Any]] = {}
        failed = False
        r = 0
        for name, part, cfg, code in plan:
            parts = out.setdefault(name, [])
            if cfg is None:
                parts.append((part.partition, code, -1, -1, b""))
                failed = True
                continue
            got = reads[r]
            r += 1
            if isinstance(got, Exception):
                ctx.topics.forget(name)
                parts.append((part.partition, kafka_error(got), -1, -1, b""))
                failed = True
                continue
            offset = part.fetch_offset
            if not got.log_start <= offset <= got.high_watermark:
                parts.append((part.partition, ErrorCode.offset_out_of_range, got.high_watermark, got.log_start, b""))
                failed = True
                continue
            records = b""
            if got.entries and (budget - total > 0 or total == 0):
                room = min(part.partition_max_bytes, budget - total) if total else part.partition_max_bytes
                records, packed, last = encode_batch(
                    got.entries, cfg.timestamp_type == LOG_APPEND_TIME, max(room, 1)
                )
                total += len(records)
                tp = TopicPartition(name, part.partition)
                last_entry = got.entries[packed - 1][0]
                hints[tp] = (last + 1, last_entry, max(16, len(records) // packed))
            elif not got.entries:
                waits[keys.stream(name, part.partition)] = got.last_id
            parts.append(
                (part.partition, ErrorCode.none, got.high_watermark, got.log_start, records)
            )
        remaining = deadline - time.monotonic()
        if total >= max(1, request.min_bytes) or failed or remaining <= 0 or not waits:
            break
        woke = await _wait(ctx, waits, remaining)
        # What the wait returned is the new records themselves: answer with them when it holds
        # everything needed, else read again (and answer then if the wait timed out).
        reads = _from_wake(plan, reads, woke, request.min_bytes) or await _read(ctx, plan, hints)
    return encode_response(ctx.api_version, [(ids.get(name) if ctx.api_version >= 13 else name, parts)
                                             for name, parts in out.items()])  # fmt: skip


async def _read(
    ctx: RequestContext, plan: list[tuple[str, Any, TopicConfig | None, ErrorCode]], hints: dict
) -> list[Any]:
    """One LogRead (or exception) per partition of ``plan`` that has a config, in one round trip.

    A partition read on from where this connection's last answer ended (its hint) is read with a
    plain ``XRANGE`` after that entry, plus log_read for the bounds only: a script returning
    thousands of entries costs the server about fifteen times what XRANGE does (each entry
    becomes a Lua table and back). Other partitions, and every partition on a cluster (where a
    pipeline's plain commands go to every shard), are read by log_read, which finds the offset.
    The XRANGE runs after the bounds were read, so the high watermark is raised to cover what it
    returned. A first entry that is not the offset asked for (the topic was recreated) is read
    again by log_read."""
    limits = ctx.gateway.limits
    bounds: dict[TopicPartition, tuple[int, float]] = ctx.session.extra.setdefault("fetch_bounds", {})
    at_tail = await _read_at_tail(ctx, plan, hints, bounds)
    if at_tail is not None:
        return at_tail
    calls: list[scripts.Call] = []
    tail: list[tuple[Any, ...]] = []
    how: list[tuple[TopicPartition, int, int, int]] = []  # tp, offset, count, tail index or -1
    for name, part, cfg, _ in plan:
        if cfg is None:
            continue
        tp = TopicPartition(name, part.partition)
        hint = hints.get(tp)
        avg = hint[2] if hint is not None else DEFAULT_RECORD_BYTES
        count = max(1, min(limits.max_records_per_read, part.partition_max_bytes // max(avg, 16) + 1))
        if hint is not None and hint[0] == part.fetch_offset and not ctx.conn.cluster:
            calls.append(scripts.log_read(tp, part.fetch_offset, 0))
            how.append((tp, part.fetch_offset, count, len(tail)))
            tail.append(("XRANGE", keys.stream(name, part.partition), b"(" + hint[1], "+", "COUNT", count))
        else:
            calls.append(scripts.log_read(tp, part.fetch_offset, count))
            how.append((tp, part.fetch_offset, count, -1))
    if not calls:
        return []
    replies = await ctx.conn.pipeline(calls, "fetching (Kafka gateway)", tail)
    out: list[Any] = []
    again: list[int] = []
    for i, (tp, offset, count, t) in enumerate(how):
        reply = replies[i]
        if isinstance(reply, Exception):
            out.append(reply)
            continue
        got = scripts.LogRead.parse(reply)
        if t >= 0:
            entries = replies[len(calls) + t]
            if isinstance(entries, Exception):
                out.append(entries)
                continue
            if entries:
                if offsets.offset_of(entries[0][0]) != offset:
                    hints.pop(tp, None)
                    again.append(i)
                hw = max(got.high_watermark, offsets.offset_of(entries[-1][0]) + 1)
                got = got._replace(high_watermark=hw, entries=entries)
        if len(got.entries) < count:  # read to the end: the next fetch may read at the tail
            bounds[tp] = (got.log_start, time.monotonic())
        out.append(got)
    if again:
        retry = [scripts.log_read(how[i][0], how[i][1], how[i][2]) for i in again]
        for i, reply in zip(again, await ctx.conn.pipeline(retry, "fetching (Kafka gateway)")):
            out[i] = reply if isinstance(reply, Exception) else scripts.LogRead.parse(reply)
    return out


async def _read_at_tail(ctx: RequestContext, plan: list[tuple[str, Any, TopicConfig | None, ErrorCode]],
                        hints: dict, bounds: dict) -> list[Any] | None:  # fmt: skip
    """The reads of ``plan`` with one plain ``XREAD``, when every partition is read on from where
    this connection's last answer ended and its log start was read within BOUNDS_TTL_S; None
    otherwise (nothing read), or when the reply does not settle every partition.

    A consumer at the end of the log sends a fetch per answer; instead of log_read's bounds and an
    ``XRANGE`` per partition (two commands each), one command reads them all: what it returns
    after each partition's last entry is everything there is, so the high watermark is the last
    entry's offset + 1 (the fetch offset when nothing came), and the log start is the one read
    within the TTL (it only moves by trimming, which cannot pass a reader at the end). A partition
    whose reply is full (there may be more: the high watermark is unknown) has its bounds read
    (log_read, in one more round trip); one whose reply does not start at the offset asked for
    (the topic was recreated) leaves the whole read to _read's usual way."""
    if ctx.conn.cluster:
        return None  # one XREAD cannot span a cluster's slots
    now = time.monotonic()
    limits = ctx.gateway.limits
    wanted: list[tuple[TopicPartition, int, str, bytes, int]] = []
    count = 1
    for name, part, cfg, _ in plan:
        if cfg is None:
            continue
        tp = TopicPartition(name, part.partition)
        hint, known = hints.get(tp), bounds.get(tp)
        if hint is None or hint[0] != part.fetch_offset or known is None or now - known[1] > BOUNDS_TTL_S:
            return None
        wanted.append((tp, part.fetch_offset, keys.stream(name, part.partition), hint[1], known[0]))
        count = max(count, min(limits.max_records_per_read, part.partition_max_bytes // max(hint[2], 16) + 1))
    # One command for every partition: at most max_records_per_read entries in all.
    count = max(1, min(count, limits.max_records_per_read // max(1, len(wanted))))
    if not wanted or len({w[2] for w in wanted}) != len(wanted):
        return None

    reply = await ctx.conn.command("fetching (Kafka gateway)", "XREAD", "COUNT", count, "STREAMS",
                                   *(w[2] for w in wanted), *(w[3] for w in wanted))  # fmt: skip
    new = {(k.decode() if isinstance(k, bytes) else k): e for k, e in codec.stream_replies(reply)}
    out: list[Any] = []
    full: list[int] = []  # partitions whose reply may not reach the end: bounds read again
    for tp, offset, key, last_id, log_start in wanted:
        entries = new.get(key) or []
        if entries and offsets.offset_of(entries[0][0]) != offset:
            return None
        if len(entries) >= count:
            full.append(len(out))
        hw = offsets.offset_of(entries[-1][0]) + 1 if entries else offset
        out.append(scripts.LogRead(log_start, hw, entries[-1][0] if entries else last_id, entries))
    if full:
        calls = [scripts.log_read(wanted[i][0], wanted[i][1], 0) for i in full]
        for i, raw in zip(full, await ctx.conn.pipeline(calls, "fetching (Kafka gateway)")):
            if isinstance(raw, Exception):
                out[i] = raw
                continue
            got = scripts.LogRead.parse(raw)
            bounds.pop(wanted[i][0], None)  # behind the end: read the usual way until it is reached
            out[i] = out[i]._replace(log_start=got.log_start, high_watermark=max(got.high_watermark,
                                                                                 out[i].high_watermark))  # fmt: skip
    return out


async def _names_by_id(ctx: RequestContext, refresh: bool = False) -> dict[Any, str]:
    """Topic id -> name for every topic, read at most once per TOPIC_IDS_TTL_S per gateway
    (``refresh``: read now)."""
    cached = ctx.gateway.extra.get("topic_ids")
    now = time.monotonic()
    if cached is not None and now - cached[1] < TOPIC_IDS_TTL_S and not refresh:
        return cached[0]
    names = {topic_id(cfg): name for name, cfg in (await all_topics(ctx.conn)).items()}
    ctx.gateway.extra["topic_ids"] = (names, now)
    return names


def encode_response(version: int, topics: list[tuple[Any, list[tuple[int, int, int, int, bytes]]]]) -> bytes:
    """A FetchResponse body (v4-v16) written directly, as Produce's: kio's general writer cost
    about as much as reading the records from Redis. ``topics``: (name, or topic id from v13,
    [(partition, error code, high watermark, log start offset, records)]). No session, no
    aborted transactions, no preferred replica; the last stable offset is the high watermark.
    tests/test_gateway_codec.py checks it byte for byte against kio's writer, every version."""
    flexible = version >= 12
    out = bytearray(_I32.pack(0))  # throttle time
    if version >= 7:
        out += _I16_I32.pack(0, 0)  # error code, session id
    out += uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics))
    for topic, parts in topics:
        if version >= 13:
            out += topic.bytes
        else:
            raw = topic.encode()
            out += uvarint(len(raw) + 1) if flexible else _I16.pack(len(raw))
            out += raw
        out += uvarint(len(parts) + 1) if flexible else _I32.pack(len(parts))
        for index, code, hw, start, records in parts:
            out += _PARTITION.pack(index, code, hw, hw)
            if version >= 5:
                out += _I64.pack(start)
            out += b"\x00" if flexible else b"\xff\xff\xff\xff"  # aborted transactions: null
            if version >= 11:
                out += _I32.pack(-1)  # preferred read replica: none
            out += uvarint(len(records) + 1) if flexible else _I32.pack(len(records))
            out += records
            if flexible:
                out += b"\x00"  # tagged fields
        if flexible:
            out += b"\x00"
    if flexible:
        out += b"\x00"
    return bytes(out)


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_I16_I32 = struct.Struct(">hi")
_PARTITION = struct.Struct(">ihqq")


async def _wait(ctx: RequestContext, streams: dict[str, bytes], seconds: float) -> Any:
    """Until one of ``streams`` (key -> last ID read) gets a newer entry, or ``seconds`` pass.
    One server: XREAD BLOCK, whose reply (the new entries, at most WAKE_COUNT per stream) is
    returned; a cluster: the SDK's wait, None."""
    conn = ctx.conn
    if conn.cluster:
        await conn.wait_for_records(
            "waiting for records (Kafka gateway)", {k: v.decode() for k, v in streams.items()}, seconds
        )
        return None
    block = max(1, min(BLOCK_SLICE_MS, int(seconds * 1000)))
    return await conn.command("waiting for records (Kafka gateway)", "XREAD", "COUNT", WAKE_COUNT, "BLOCK", block,
                              "STREAMS", *streams.keys(), *streams.values())  # fmt: skip


def _from_wake(plan: list[tuple[str, Any, TopicConfig | None, ErrorCode]], reads: list[Any], woke: Any,
               min_bytes: int) -> list[Any] | None:  # fmt: skip
    """The reads after an XREAD wake-up, built from its reply, or None when a fresh read is needed:
    ``min_bytes`` above 1, a stream that returned WAKE_COUNT entries (there may be more, and the
    high watermark is unknown), or entries that do not start at the offset asked for."""
    if not woke or min_bytes > 1:
        return None
    new = {}
    for key, entries in codec.stream_replies(woke):
        if len(entries) >= WAKE_COUNT:
            return None
        new[key.decode() if isinstance(key, bytes) else key] = entries
    out = list(reads)
    r = 0
    for name, part, cfg, _ in plan:
        if cfg is None:
            continue
        entries = new.get(keys.stream(name, part.partition))
        got = out[r]
        if entries and not isinstance(got, Exception):
            if offsets.offset_of(entries[0][0]) != part.fetch_offset:
                return None
            out[r] = got._replace(high_watermark=offsets.offset_of(entries[-1][0]) + 1, entries=entries,
                                  last_id=entries[-1][0])  # fmt: skip
        r += 1
    return out


API = Api(1, "Fetch", 4, 16, handle)
