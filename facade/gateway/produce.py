"""Produce (key 0): record batches appended through the SDK's produce.lua, all partitions of a
request in one pipelined round trip.

Mapping:

- all the batches of one partition of a request are one produce.lua call (the script the SDK's
  producer uses, hence the same ordering, retention and idempotence guarantees): the script checks
  every batch before it writes any, so a partition answered with an error stored none of its
  batches, as Kafka (tests/test_gateway_produce_fetch.py,
  ``test_a_partition_whose_second_batch_is_refused_stores_none_of_its_batches``); batches that do
  not parse (CRC, lengths, decompression) refuse their partition before any call;
- an idempotent batch (producerId >= 0) runs under the facade producer id
  ``kafka-<producerId>-<epoch>`` with the batch's baseSequence as first sequence: produce.lua
  remembers the producer's last 5 batches on the partition (Kafka's NUM_BATCHES_TO_RETAIN), and a
  retry of any of them (same first and last sequence) is answered with that batch's original base
  offset and append time, not appended again; any other sequence but the next (an older batch, a
  gap) answers OUT_OF_ORDER_SEQUENCE_NUMBER, as Kafka's ProducerAppendInfo.checkSequence, nothing
  appended; sequences wrap from 2^31-1 to 0;
- at most ``scripts.MAX_RECORDS_PER_CALL`` records per partition per request (a bound on one
  script call): beyond, MESSAGE_TOO_LARGE (the Java client splits its batch and retries);
- record timestamps are kept (CreateTime topics) or replaced by the append time
  (LogAppendTime topics, whose append time the response carries); a create time above
  ``scripts.MAX_CREATE_TIME_MS`` (2^53-1, what produce.lua stores exactly) refuses the partition
  with INVALID_TIMESTAMP, nothing stored;
- null keys, values and header values stay null (facade/codec.py's markers);
- acks=0 sends no response; acks=-1 (all) waits for every configured replica (WAIT after the
  writes on the same connection) and answers NOT_ENOUGH_REPLICAS(_AFTER_APPEND) as Kafka does.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from .. import codec, scripts
from .._async import replication
from ..errors import FacadeError, UnknownTopicError
from ..records import LOG_APPEND_TIME, TopicConfig, TopicPartition
from .batches import BatchError, ProducedBatch, parse_batches, uvarint
from .context import Api, RequestContext
from .errors import kafka_error
from .protocol import ErrorCode

PRODUCER_ID_EXPIRY_MS = 7 * 24 * 3600 * 1000
"""How long a Kafka producer id's last sequence is remembered per partition after its last batch
(Kafka's transactional.id.expiration.ms / producer id expiry is 7 days)."""
DEDUP_WINDOW_MS = 120_000  # unused by Kafka clients (no dedup ids), required by produce.lua
MAX_BATCH_BYTES = 1_048_588
"""Largest record batch accepted (Kafka's message.max.bytes default); larger: MESSAGE_TOO_LARGE."""
REPLICAS_TTL_S = 10.0


def _script_batch(cfg: TopicConfig, batch: ProducedBatch) -> scripts.ProduceBatch:
    """produce.lua's arguments for one Kafka batch."""
    records = batch.records
    plain = all(k is not None and v is not None and not h for _, k, v, h in records)
    args: list[Any] = []
    if plain:
        for _, k, v, _ in records:
            args += (k, v)
    else:
        for _, k, v, h in records:
            fields: list[bytes] = []
            if k is not None:
                fields += (codec.KEY, k)
            if v is None:
                fields += (codec.NULL_VALUE, b"")
            else:
                fields += (codec.VALUE, v)
            for name, hv in h:
                if hv is None:
                    fields += (codec.NULL_HEADER_PREFIX + name.encode(), b"")
                else:
                    fields += (codec.HEADER_PREFIX + name.encode(), hv)
            args += ("", len(fields), *fields)
    times = ""
    if cfg.timestamp_type != LOG_APPEND_TIME:
        runs = []
        last, count = None, 0
        for ts, _, _, _ in records:
            if ts > scripts.MAX_CREATE_TIME_MS:
                raise BatchError(
                    f"a record timestamp of {ts} ms is above {scripts.MAX_CREATE_TIME_MS}, the largest stored exactly",
                    int(ErrorCode.invalid_timestamp),
                )
            ts = max(ts, 0)
            if ts == last:
                count += 1
            else:
                if count:
                    runs.append(f"{last} {count}")
                last, count = ts, 1
        runs.append(f"{last} {count}")
        times = " ".join(runs)
    idempotent = batch.producer_id >= 0
    return scripts.ProduceBatch(
        producer_id=f"kafka-{batch.producer_id}-{batch.producer_epoch}" if idempotent else "",
        first_seq=batch.base_sequence if idempotent else 0,
        count=len(records),
        plain=plain,
        times=times,
        records=args,
    )


def partition_call(
    tp: TopicPartition, cfg: TopicConfig, batches: list[ProducedBatch], replicas: int
) -> scripts.Call:
    """The one produce.lua call for all of a partition's batches in a request (all or none)."""
    return scripts.produce_batches(
        tp,
        [_script_batch(cfg, b) for b in batches],
        max_len=cfg.max_len,
        retention_ms=cfg.retention_ms,
        acked=cfg.ack_retention,
        producer_id_expiry_ms=PRODUCER_ID_EXPIRY_MS,
        dedup_window_ms=DEDUP_WINDOW_MS,
        dedup_max_ids=cfg.dedup_max_ids,
        replicas=replicas,
    )


def _cached_replicas(ctx: RequestContext) -> int | None:
    """The replica count acks=all waits for, if looked up within REPLICAS_TTL_S (no I/O)."""
    cache = ctx.gateway.extra.get("replicas")
    if cache is not None and time.monotonic() - cache[1] <= REPLICAS_TTL_S:
        return cache[0]
    return None


async def _replicas_needed(ctx: RequestContext) -> int:
    """acks=all: how many replicas must confirm (every configured one, as the SDK's default)."""
    cached = _cached_replicas(ctx)
    if cached is not None:
        return cached
    found = await replication.configured_replicas(ctx.conn)
    ctx.gateway.extra["replicas"] = (len(found.replicas), time.monotonic())
    return len(found.replicas)


class _Plan:
    """One Produce request taken apart: the answers known already, and its produce.lua calls
    (one per partition with batches)."""

    def __init__(self) -> None:
        # (topic index, partition index) -> (error code, message), or (its call's index, config)
        # (None, None) for a partition without batches.
        self.answers: dict[tuple[int, int], Any] = {}
        self.calls: list[scripts.Call] = []
        self.replicas = 0
        self.done: Any = _PENDING  # a whole response already decided (refused request)


_PENDING = object()


async def _plan(ctx: RequestContext, request: Any) -> _Plan:
    plan = _Plan()
    if getattr(request, "transactional_id", None) is not None:
        plan.done = _all_failed(
            ctx.api_version, request, ErrorCode.unsupported_version, "Kafka transactions are not supported"
        )
        return plan
    acks = request.acks
    if acks not in (0, 1, -1):
        plan.done = _all_failed(
            ctx.api_version, request, ErrorCode.invalid_required_acks, f"acks must be 0, 1 or -1, not {acks}"
        )
        return plan
    try:
        plan.replicas = 0 if acks != -1 else _cached_replicas(ctx)
        if plan.replicas is None:
            plan.replicas = await _replicas_needed(ctx)
    except FacadeError as exc:  # e.g. a SASL user whose role may not read INFO
        plan.done = _all_failed(ctx.api_version, request, kafka_error(exc), f"acks=all: {exc}")
        return plan
    for ti, topic in enumerate(request.topic_data):
        try:
            cfg: TopicConfig | None = ctx.topics.fresh(topic.name) or await ctx.topics.get(topic.name)
            error: Exception | None = None
        except FacadeError as exc:
            cfg, error = None, exc
        for pi, part in enumerate(topic.partition_data):
            if cfg is None:
                plan.answers[ti, pi] = (kafka_error(error), str(error))
                continue
            if not 0 <= part.index < cfg.partitions:
                plan.answers[ti, pi] = (
                    ErrorCode.unknown_topic_or_partition,
                    f"{topic.name} has {cfg.partitions} partitions",
                )
                continue
            try:
                batches = parse_batches(part.records or b"", MAX_BATCH_BYTES)
            except BatchError as exc:
                plan.answers[ti, pi] = (ErrorCode(exc.code), str(exc))
                continue
            if any(b.transactional for b in batches):
                plan.answers[ti, pi] = (
                    ErrorCode.unsupported_version,
                    "transactional batches are not supported",
                )
                continue
            if any(b.producer_id >= 0 and b.base_sequence < 0 for b in batches):
                plan.answers[ti, pi] = (
                    ErrorCode.invalid_record,
                    "an idempotent batch (producer id >= 0) needs a base sequence >= 0",
                )
                continue
            if not batches:
                plan.answers[ti, pi] = (None, None)
                continue
            records = sum(len(b.records) for b in batches)
            if records > scripts.MAX_RECORDS_PER_CALL:
                plan.answers[ti, pi] = (
                    ErrorCode.message_too_large,
                    (f"{records} records for one partition in one request: at most "
                     f"{scripts.MAX_RECORDS_PER_CALL} (send smaller batches)"),
                )
                continue
            tp = TopicPartition(topic.name, part.index)
            try:
                call = partition_call(tp, cfg, batches, plan.replicas)
            except BatchError as exc:
                plan.answers[ti, pi] = (ErrorCode(exc.code), str(exc))
                continue
            plan.answers[ti, pi] = (len(plan.calls), cfg)
            plan.calls.append(call)
    return plan


def _respond(
    ctx: RequestContext, request: Any, plan: _Plan, results: list[Any], confirmed: Any
) -> bytes | None:
    if request.acks == 0:
        return None
    if plan.done is not _PENDING:
        return plan.done
    topics_out = []
    for ti, topic in enumerate(request.topic_data):
        parts_out = []
        for pi, part in enumerate(topic.partition_data):
            answer = plan.answers[ti, pi]
            if isinstance(answer[0], ErrorCode):
                parts_out.append(_failed(part.index, *answer))
                continue
            at, cfg = answer
            result = _NO_BATCH if at is None else results[at]
            outcome = _outcome(part.index, result, cfg, plan.replicas, confirmed)
            if outcome[1] == ErrorCode.unknown_topic_or_partition:
                ctx.topics.forget(topic.name)
            parts_out.append(outcome)
        topics_out.append((topic.name, parts_out))
    return encode_response(ctx.api_version, topics_out)


def encode_response(
    version: int, topics: list[tuple[str, list[tuple[int, int, int, int, str | None]]]]
) -> bytes:
    """A ProduceResponse body (v3-v11) written directly: this is the reply to every produce
    request, and kio's general writer cost more than the rest of the request's handling.
    ``topics``: (name, [(partition, error code, base offset, log append time or -1, error
    message or None)]). tests/test_gateway_codec.py checks it against kio's reader, every version."""
    flexible = version >= 9
    out = bytearray()

    def array(n: int) -> None:
        out.extend(uvarint(n + 1) if flexible else struct.pack(">i", n))

    array(len(topics))
    for name, parts in topics:
        raw = name.encode()
        out.extend(uvarint(len(raw) + 1) if flexible else struct.pack(">h", len(raw)))
        out.extend(raw)
        array(len(parts))
        for index, code, base, append, message in parts:
            out.extend(struct.pack(">ihqq", index, code, base, append))
            if version >= 5:
                out.extend(struct.pack(">q", -1))  # log start offset: not reported
            if version >= 8:
                array(0)  # record errors
                if message is None:
                    out.extend(b"\x00" if flexible else b"\xff\xff")
                else:
                    text = message.encode()[:500]
                    out.extend(uvarint(len(text) + 1) if flexible else struct.pack(">h", len(text)))
                    out.extend(text)
            if flexible:
                out.append(0)  # tagged fields
        if flexible:
            out.append(0)
    out.extend(struct.pack(">i", 0))  # throttle time
    if flexible:
        out.append(0)
    return bytes(out)


async def handle_batch(ctxs: list[RequestContext], requests: list[Any]) -> list[Any]:
    """Answer several Produce requests of one connection with one Redis pipeline: their calls in
    request order (so a partition's batches are appended in the order they were sent), then one
    WAIT if any asked for acks=all. Responses in request order (None for acks=0)."""
    plans = [await _plan(ctx, request) for ctx, request in zip(ctxs, requests)]
    calls = [call for plan in plans for call in plan.calls]
    replicas = max(plan.replicas for plan in plans)
    confirmed = None
    replies: list[Any] = []
    if calls:
        timeout_ms = max(int(r.timeout.total_seconds() * 1000) for r in requests)
        tail = [("WAIT", replicas, max(1, timeout_ms))] if replicas else []
        try:
            replies = await ctxs[0].conn.pipeline(calls, "producing (Kafka gateway)", tail)
        except FacadeError as exc:  # the round trip failed as a whole: whether it landed is unknown
            return [
                None if r.acks == 0 else _all_failed(c.api_version, r, kafka_error(exc), str(exc))
                for c, r in zip(ctxs, requests)
            ]
        if tail:
            confirmed = replies[-1]
    out = []
    at = 0
    for ctx, request, plan in zip(ctxs, requests, plans):
        n = len(plan.calls)
        out.append(_respond(ctx, request, plan, replies[at : at + n], confirmed))
        at += n
    return out


async def handle(ctx: RequestContext, request: Any) -> Any:
    return (await handle_batch([ctx], [request]))[0]


_NO_BATCH = object()


def _outcome(
    index: int, result: Any, cfg: TopicConfig | None, replicas: int, confirmed: Any
) -> tuple[int, int, int, int, str | None]:
    """A partition's answer from its produce.lua call's result (all its batches or none)."""
    if result is _NO_BATCH:  # a partition with no batch at all
        return (index, ErrorCode.none, -1, -1, None)
    if isinstance(result, UnknownTopicError):
        return _failed(index, ErrorCode.unknown_topic_or_partition, "the topic was deleted")
    if isinstance(result, Exception):
        return _failed(index, kafka_error(result), str(result))
    if replicas and (isinstance(confirmed, Exception) or int(confirmed) < replicas):
        return _failed(index, ErrorCode.not_enough_replicas_after_append,
                       f"only {confirmed} of {replicas} replicas confirmed the write in time")  # fmt: skip
    first = scripts.Produced.parse(result)  # the base offset is the first batch's
    append = first.append_ms if cfg is not None and cfg.timestamp_type == LOG_APPEND_TIME else -1
    return (index, ErrorCode.none, first.offset(0), append, None)


def _failed(index: int, code: ErrorCode, message: str) -> tuple[int, int, int, int, str | None]:
    return (index, code, -1, -1, message)


def _all_failed(version: int, request: Any, code: ErrorCode, message: str) -> bytes:
    return encode_response(
        version,
        [(t.name, [_failed(p.index, code, message) for p in t.partition_data]) for t in request.topic_data],
    )


API = Api(0, "Produce", 3, 11, handle)
