# Generated from facade/_async/producer.py by scripts/unasync.py: edit that file, not this one.
"""The producer: partitioning, batching and appending records.

This module is the asyncio source of truth; facade/_sync/producer.py is generated from it.

Records are buffered per partition. When ``batch_size`` bytes are buffered, on ``flush()``, or
``linger_ms`` after the first buffered record, every buffered partition batch goes out in one
round trip: one ``produce`` script call per partition, pipelined. A batch is appended atomically
and in order, so records of one partition keep the order in which ``send()`` was called.

A full buffer goes out in the background (a thread, or a task under asyncio), like Kafka's sender
thread: ``send()`` goes on filling the next buffer while the server appends the last one. One
round trip is in flight at a time; the next waits for it, which keeps per-partition order and
bounds memory to two buffers. With ``linger_ms=0`` a record goes out at once unless a round trip
is in flight; then it waits for that one and goes out with every record sent meanwhile, as from
Kafka's sender with linger.ms=0: under load, records batch themselves.

Idempotence (on by default, as in Kafka 3): each producer has a random producer id, and each batch
carries the sequence number of its first record on that partition. ``produce`` appends a batch
only if its sequence follows the last one (int32, wrapping from 2^31-1 to 0 as Kafka's); a retry of
one of its last 5 batches (its reply was lost) appends nothing and returns the original offsets. A failed round trip is retried with the same sequences
until ``delivery_timeout_ms``; if it still fails, the outcome is unknown, the records fail with
that error, and the producer takes a new producer id (sequences start again at 0).

How long the broker keeps that state is never another producer's business: a producer id's state
expires ``producer_id_expiry_ms`` (this producer's own setting) after its last batch, and a dedup
id ``dedup_window_ms`` (the topic's setting, TopicConfig) after it was stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .. import codec, metrics, offsets, scripts, serializers, tracing
from ..accumulator import Batch
from ..config import ProducerConfig, build
from ..descriptions import ReplicaSet
from ..errors import (
    ConfigError,
    FacadeError,
    NotEnoughReplicasError,
    OutOfOrderSequenceError,
    TopicExistsError,
    UnknownTopicError,
    UnsupportedError,
)
from ..partitioner import RoundRobinPartitioner, StickyPartitioner, partition_for_key
from ..records import RecordMetadata, TopicConfig, TopicPartition
from . import _backend, replication
from .client import Connection, TopicCache
from .topics import create_topic

log = logging.getLogger("facade")

__all__ = ["Producer"]

# Per-record bookkeeping the batch size counts on top of key/value/header bytes.
_RECORD_OVERHEAD = 16


class _NoReply:
    """acks=0: one already-resolved outcome per (topic, partition), offset unknown."""

    def get(self, topic: str, partition: int) -> Any:
        fut = _backend.new_future()
        _backend.resolve(fut, (topic, partition, None, None))
        return fut


_NO_REPLY_FUTURE = _NoReply()


class Producer:
    """Send records to topics.

    ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker). Options are those of
    :class:`facade.ProducerConfig` (``acks``, ``linger_ms``, ``batch_size``, ``max_message_bytes``,
    ``auto_create``, ``key_serializer``, ``value_serializer``, ``partitioner``, ...), given as
    keywords or as ``config=``.
    """

    def __init__(self, url: str | None = None, *, config: ProducerConfig | None = None, **options: Any) -> None:
        self.config: ProducerConfig = build(ProducerConfig, config, options)
        self._conn = Connection(url)
        self._topics = TopicCache(self._conn, self.config.metadata_max_age_ms)
        self._lock = _backend.BufferLock()  # guards the buffers (a no-op under asyncio)
        self._send_lock = _backend.Lock()  # one batch in flight at a time: keeps per-partition order
        self._inflight: Any = None  # a background _drain (a full buffer), joined before the next
        # linger_ms=0: a _drain in flight that will also send what is buffered meanwhile.
        self._draining = False
        self._batches: dict[tuple[str, int], Batch] = {}
        self._buffered = 0
        self._keyless = StickyPartitioner() if self.config.partitioner == "sticky" else RoundRobinPartitioner()
        self._key_serializer = serializers.serializer(self.config.key_serializer, "key_serializer")
        self._value_serializer = serializers.serializer(self.config.value_serializer, "value_serializer")
        self._timer: Any = None
        self._closed = False
        self._replicas: ReplicaSet | None = None  # acks="all": the configured replicas, re-read
        self._replicas_checked_at = float("-inf")  # every metadata_max_age_ms
        self._metrics = metrics.ProducerMetrics(self.config.client_id) if self.config.metrics else metrics.OFF
        # None when off: send() then pays one test per record, not two calls.
        self._tracing = tracing.ProducerTracing(self.config.client_id) if self.config.tracing else None
        self._new_producer_id()

    def metrics(self) -> dict[str, Any]:
        """What this producer did (with ``metrics=True``; {} otherwise), as plain data: records
        and bytes stored, retries and errors per topic, batch size and latency histograms."""
        return self._metrics.as_dict() if self._metrics.enabled else {}

    def _new_producer_id(self) -> None:
        self.producer_id = uuid.uuid4().hex[:16] if self.config.idempotent else ""
        self._sequences: dict[tuple[str, int], int] = {}

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _topic(self, name: str) -> TopicConfig:
        try:
            return self._topics.get(name)
        except UnknownTopicError:
            if not self.config.auto_create:
                raise
        try:
            create_topic(self._conn, name, self.config.auto_create_partitions)
        except TopicExistsError:
            pass  # created by someone else meanwhile
        return self._topics.get(name)

    def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Mapping[str, bytes | str] | Sequence[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
        dedup_id: bytes | str | None = None,
        timestamp_ms: int | None = None,
    ) -> Any:
        """Buffer one record; returns a future that resolves to its :class:`RecordMetadata`.

        ``value`` and ``key`` are bytes or str, or whatever ``value_serializer`` /
        ``key_serializer`` turn into bytes. The record goes to ``partition`` if given, else to
        Kafka's murmur2 partition of the (serialized) ``key``, else (with a ``dedup_id``) of the
        dedup id, else where the ``partitioner`` puts keyless records (sticky by default).
        ``dedup_id``: a record sent again with the same id, by any producer, within the topic's
        ``dedup_window_ms`` is not stored twice (its future gives the first one's offset).
        ``timestamp_ms``: the record's create time (default: now; ignored by LogAppendTime topics). Raises at once (sending nothing)
        for a bad type, a serializer that failed, a record over ``max_message_bytes``, an unknown
        topic or partition, or a closed producer.
        """
        if self._closed:
            raise ConfigError("the producer is closed; create a new one")
        if self._value_serializer is not None:
            value = serializers.serialize(self._value_serializer, self.config.value_serializer, value, "value", topic)
        if key is not None and self._key_serializer is not None:
            key = serializers.serialize(self._key_serializer, self.config.key_serializer, key, "key", topic)
        span = None
        if self._tracing is not None:
            headers, span = self._tracing.send(topic, key, headers, partition)
        fields, size = codec.encode(key, value, headers, self.config.max_message_bytes)
        if timestamp_ms is not None:
            offsets.validate_timestamp(timestamp_ms, "timestamp_ms")
        dedup = b""
        if dedup_id is not None:
            dedup = codec.to_bytes(dedup_id, "dedup_id")
            if not 0 < len(dedup) <= 256:
                raise ConfigError(f"dedup_id must be 1 to 256 bytes, got {len(dedup)}")
        cfg = self._topics.fresh(topic) or self._topic(topic)
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < cfg.partitions:
                raise ConfigError(
                    f"partition must be an integer from 0 to {cfg.partitions - 1} for topic {topic!r}, got {partition!r}"
                )
        elif key is not None:
            partition = partition_for_key(fields[1], cfg.partitions)
        elif dedup:
            # A repeat must reach the partition that remembers its dedup id.
            partition = partition_for_key(dedup, cfg.partitions)
        else:
            partition = self._keyless.partition(topic, cfg.partitions)
        with self._lock:
            batch = self._batches.get((topic, partition))
            if batch is None:
                batch = self._batches[(topic, partition)] = Batch(cfg, _backend.new_future())
                self._metrics.batch_opened(batch)
            fut = _backend.RecordFuture(batch.future, batch.add(fields, dedup, timestamp_ms))
            if span is not None:
                self._tracing.sent(span, batch.future, fut._index)  # type: ignore[union-attr]
            self._buffered += size + _RECORD_OVERHEAD
            ready = self._buffered >= self.config.batch_size
            if self.config.linger_ms == 0:
                ready = ready or not self._draining  # else the round trip in flight takes it next
            elif not ready and self._timer is None:
                self._timer = _backend.Timer(self.config.linger_ms / 1000, self._linger_expired)
        if ready:
            self._send_buffered(background=True)
        if self.config.acks == 0:
            # No reply awaited: the record counts as sent once buffered (Kafka's acks=0).
            return _backend.RecordFuture(_NO_REPLY_FUTURE.get(topic, partition), 0)
        return fut

    def send_and_wait(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Mapping[str, bytes | str] | Sequence[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
        dedup_id: bytes | str | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait until the broker has it; returns where it was stored."""
        fut = self.send(topic, value, key, headers, partition, dedup_id, timestamp_ms)
        self._send_buffered()
        return _backend.wait(fut)

    def flush(self) -> None:
        """Send everything buffered and wait until each record is stored or has failed."""
        self._send_buffered()

    def close(self) -> None:
        """Flush, then release the connections. Idempotent."""
        if self._closed:
            return
        try:
            self._send_buffered()
        finally:
            self._closed = True
            self._conn.close()

    def _linger_expired(self) -> None:
        try:
            self._send_buffered()
        except Exception:  # errors are delivered through the records' futures
            log.exception("facade producer: background send failed")

    def _send_buffered(self, background: bool = False) -> None:
        """Send what is buffered, after the transmission in flight; wait for it to be done, or
        (``background``) only for the one before it."""
        with self._send_lock:
            with self._lock:
                self._draining = False  # the round trip in flight ends the drain: this call takes over
            inflight, self._inflight = self._inflight, None
            if inflight is not None:
                _backend.join(inflight)
            with self._lock:
                batches, self._batches, self._buffered = self._batches, {}, 0
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                self._draining = background and bool(batches) and self.config.linger_ms == 0
            if not batches:
                return
            if background:
                self._inflight = _backend.spawn(self._drain, batches)
                _backend.sleep(0)  # let it send its request now
            else:
                self._transmit(batches)

    def _drain(self, batches: dict[tuple[str, int], Batch]) -> None:
        """Send ``batches``; while draining (linger_ms=0), then everything buffered during that
        round trip, and so on until nothing was (Kafka's sender loop). _send_buffered stops it by
        clearing ``_draining``: one round trip in flight at a time."""
        try:
            while True:
                self._transmit(batches)
                with self._lock:
                    if not self._draining:
                        return
                    batches, self._batches, self._buffered = self._batches, {}, 0
                    if not batches:
                        self._draining = False
                        return
        except BaseException:
            with self._lock:
                self._draining = False  # the next send() starts a round trip of its own
            raise

    def _transmit(self, batches: dict[tuple[str, int], Batch]) -> None:
        for tp, b in batches.items():
            b.first_seq = self._sequences.get(tp, 0)
            self._sequences[tp] = (b.first_seq + b.n) % scripts.SEQUENCE_LIMIT  # int32, as Kafka's
        pending = dict(batches)
        deadline = _backend.monotonic() + self.config.delivery_timeout_ms / 1000
        backoff = self.config.retry_backoff_ms / 1000
        unknown = False
        while pending:
            try:
                tail, needed = self._confirmation()
                calls = [self._produce_call(topic, partition, b, needed) for (topic, partition), b in pending.items()]
                started = time.perf_counter()
                results = self._conn.pipeline(calls, "producing", tail)
                self._metrics.request(started, len(calls))
                if tail:
                    results = self._confirmed(results[:-1], results[-1], needed)
            except FacadeError as exc:
                results = [exc] * len(pending)
            retry: dict[tuple[str, int], Batch] = {}
            for (tp, b), result in zip(list(pending.items()), results):
                retriable = isinstance(result, FacadeError) and result.retriable
                if retriable and _backend.monotonic() < deadline:
                    retry[tp] = b  # same producer id and sequence: a batch that did land is not doubled
                    self._metrics.retried(tp[0], b)
                    continue
                unknown = unknown or retriable or isinstance(result, OutOfOrderSequenceError)
                self._complete(tp, b, result)
            pending = retry
            if pending:
                _backend.sleep(min(backoff, max(0.0, deadline - _backend.monotonic())))
                backoff = min(backoff * 2, 1.0)
        if unknown:
            # Whether those batches landed is unknown (or a sequence was refused): later batches
            # must not depend on the old sequences, so continue under a new producer id.
            self._new_producer_id()

    def _confirmation(self) -> tuple[list[tuple[Any, ...]], int]:
        """For acks="all": the command that follows the writes on their connection, and how many
        replicas must be in sync before the append (produce.lua checks) and confirm it after (WAIT).

        By default every configured replica (facade/_async/replication.py); with
        ``min_insync_replicas`` (Kafka's meaning: copies, the primary's included) that many minus one."""
        if self.config.acks != "all":
            return [], 0
        if self.config.min_insync_replicas is not None:
            needed = max(0, self.config.min_insync_replicas - 1)
        else:
            now = _backend.monotonic()
            if self._replicas is None or now >= self._replicas_checked_at + self.config.metadata_max_age_ms / 1000:
                self._replicas = replication.configured_replicas(self._conn)
                self._replicas_checked_at = now
            needed = len(self._replicas.replicas)
        timeout = self.config.replica_timeout_ms
        if self.config.acks_fsync:
            return [("WAITAOF", 1, needed, timeout)], needed
        return [("WAIT", needed, timeout)], needed

    def _bar(self, needed: int) -> str:
        """What acks="all" asked for, and how to ask for less: for NotEnoughReplicasError messages."""
        if self.config.min_insync_replicas is not None:
            return (f"min_insync_replicas={self.config.min_insync_replicas} (the primary and {needed} replica(s)); "
                    "lower min_insync_replicas to accept fewer copies, or check the replicas")  # fmt: skip
        missing = ", ".join(f"{r.address} ({r.state})" for r in self._replicas.missing) if self._replicas else ""
        return (
            f"every configured replica ({needed}, from {self._replicas.source if self._replicas else '?'})"
            + (f"; not in sync: {missing}" if missing else "")
            + f"; to accept fewer copies, set min_insync_replicas (Kafka's meaning: copies including the primary, "
            f"e.g. min_insync_replicas={needed} accepts one missing replica)"
            + ("; forget a replica removed for good with `facade server replicas --forget ADDR`"
               if self._replicas and self._replicas.source == "remembered" else "")
        )  # fmt: skip

    def _confirmed(self, results: list[Any], reply: Any, needed: int) -> list[Any]:
        """Turn writes that too few replicas confirmed into retriable NotEnoughReplicasErrors."""
        results = [self._explained(r, needed) for r in results]
        if isinstance(reply, Exception):
            if not getattr(reply, "retriable", False):
                reply = UnsupportedError(
                    f"acks='all'{' with acks_fsync' if self.config.acks_fsync else ''} is not supported by this "
                    f"server ({reply}); use acks=1, or a server with WAITAOF (Redis 7.2+, Valkey 8+)"
                )
            return [r if isinstance(r, Exception) else reply for r in results]
        local, got = (reply[0], reply[1]) if isinstance(reply, list) else (1, reply)
        if int(got) >= needed and int(local) >= 1:
            return results
        self._replicas_checked_at = float("-inf")  # look at the replicas again before the retry
        error = NotEnoughReplicasError(
            f"only {got} of the {needed} replicas required by acks='all' confirmed the write within "
            f"{self.config.replica_timeout_ms} ms; it is on the primary but could be lost in a failover "
            f"(retried until delivery_timeout_ms). Required: {self._bar(needed)}",
            confirmed=int(got),
            required=needed,
            timeout_ms=self.config.replica_timeout_ms,
        )
        return [r if isinstance(r, Exception) else error for r in results]

    def _explained(self, result: Any, needed: int) -> Any:
        """A refusal by produce.lua (too few replicas in sync, nothing appended), with the bar."""
        if isinstance(result, NotEnoughReplicasError) and "nothing was appended" in str(result):
            self._replicas_checked_at = float("-inf")
            return NotEnoughReplicasError(f"{result}. Required: {self._bar(needed)}")
        return result

    def _produce_call(self, topic: str, partition: int, b: Batch, replicas: int = 0) -> scripts.Call:
        cfg, c = b.topic, self.config
        return scripts.produce(
            TopicPartition(topic, partition),
            max_len=cfg.max_len,
            retention_ms=cfg.retention_ms,
            acked=cfg.ack_retention,
            producer_id=self.producer_id,
            first_seq=b.first_seq,
            producer_id_expiry_ms=c.producer_id_expiry_ms,
            dedup_window_ms=cfg.dedup_window_ms,
            dedup_max_ids=cfg.dedup_max_ids,
            count=b.n,
            plain=b.plain,
            times=b.times(),
            records=b.args,
            replicas=replicas,
        )

    def _complete(self, tp: tuple[str, int], b: Batch, result: Any) -> None:
        topic, partition = tp
        if isinstance(result, UnknownTopicError):
            self._topics.forget(topic)
            result = UnknownTopicError(f"topic {topic!r} was deleted while producing to it")
        if isinstance(result, Exception):
            if self.config.acks == 0:
                log.warning("facade producer (acks=0): %d records to %s[%d] were lost: %s",
                            b.n, topic, partition, result)
            self._metrics.batch_done(topic, b, result)
            _backend.fail(b.future, result)
        else:
            self._metrics.batch_done(topic, b, None)
            _backend.resolve(b.future, (topic, partition, scripts.Produced.parse(result), b))
        self._keyless.batch_sent(topic, partition, b.topic.partitions)
