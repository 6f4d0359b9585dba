# Generated from facade/_async/producer.py by scripts/unasync.py: edit that file, not this one.
"""The producer: partitioning, batching and appending records.

This module is the asyncio source of truth; facade/_sync/producer.py is generated from it.

Records are buffered per partition. When ``batch_size`` bytes are buffered, on ``flush()``, or
``linger_ms`` after the first buffered record, every buffered partition batch goes out in one
round trip: one ``produce`` script call per partition, pipelined. A batch is appended atomically
and in order, so records of one partition keep the order in which ``send()`` was called.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .. import codec, keys
from ..config import ProducerConfig, build
from ..errors import ConfigError, FacadeError, TopicExistsError, UnknownTopicError
from ..partitioner import StickyPartitioner, partition_for_key
from ..records import RecordMetadata, TopicConfig
from . import _backend
from .admin import create_topic
from .client import Connection, TopicCache

log = logging.getLogger("facade")

__all__ = ["Producer"]

# Per-record bookkeeping the batch size counts on top of key/value/header bytes.
_RECORD_OVERHEAD = 16


class _Batch:
    """Records for one partition waiting to be sent: the script's ARGV tail and their futures."""

    __slots__ = ("topic", "args", "futures")

    def __init__(self, topic: TopicConfig) -> None:
        self.topic = topic
        self.args: list[Any] = []
        self.futures: list[Any] = []


class Producer:
    """Send records to topics.

    ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker). Options are those of
    :class:`facade.ProducerConfig` (``acks``, ``linger_ms``, ``batch_size``, ``max_message_bytes``,
    ``auto_create``, ...), given as keywords or as ``config=``.
    """

    def __init__(self, url: str | None = None, *, config: ProducerConfig | None = None, **options: Any) -> None:
        self.config: ProducerConfig = build(ProducerConfig, config, options)
        self._conn = Connection(url)
        self._topics = TopicCache(self._conn, self.config.metadata_max_age_ms)
        self._lock = _backend.Lock()  # guards the buffers
        self._send_lock = _backend.Lock()  # one batch in flight at a time: keeps per-partition order
        self._batches: dict[tuple[str, int], _Batch] = {}
        self._buffered = 0
        self._sticky = StickyPartitioner()
        self._timer: Any = None
        self._closed = False

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
        value: bytes | str,
        key: bytes | str | None = None,
        headers: Mapping[str, bytes | str] | None = None,
        partition: int | None = None,
    ) -> Any:
        """Buffer one record; returns a future that resolves to its :class:`RecordMetadata`.

        The record goes to ``partition`` if given, else to Kafka's murmur2 partition of ``key``,
        else to the current sticky partition. Raises at once (sending nothing) for a bad type, a
        record over ``max_message_bytes``, an unknown topic or partition, or a closed producer.
        """
        if self._closed:
            raise ConfigError("the producer is closed; create a new one")
        fields, size = codec.encode(key, value, headers, self.config.max_message_bytes)
        cfg = self._topic(topic)
        if partition is not None:
            if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < cfg.partitions:
                raise ConfigError(
                    f"partition must be an integer from 0 to {cfg.partitions - 1} for topic {topic!r}, got {partition!r}"
                )
        elif key is not None:
            partition = partition_for_key(fields[1], cfg.partitions)
        else:
            partition = self._sticky.partition(topic, cfg.partitions)
        fut = _backend.new_future()
        with self._lock:
            batch = self._batches.get((topic, partition))
            if batch is None:
                batch = self._batches[(topic, partition)] = _Batch(cfg)
            batch.args.append(len(fields))
            batch.args.extend(fields)
            batch.futures.append(fut)
            self._buffered += size + _RECORD_OVERHEAD
            ready = self._buffered >= self.config.batch_size or self.config.linger_ms == 0
            if not ready and self._timer is None:
                self._timer = _backend.Timer(self.config.linger_ms / 1000, self._linger_expired)
        if ready:
            self._send_buffered()
        return fut

    def send_and_wait(
        self,
        topic: str,
        value: bytes | str,
        key: bytes | str | None = None,
        headers: Mapping[str, bytes | str] | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait until the broker has it; returns where it was stored."""
        fut = self.send(topic, value, key, headers, partition)
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

    def _send_buffered(self) -> None:
        with self._send_lock:
            with self._lock:
                batches, self._batches, self._buffered = self._batches, {}, 0
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if batches:
                self._transmit(batches)

    def _transmit(self, batches: dict[tuple[str, int], _Batch]) -> None:
        calls = []
        for (topic, partition), b in batches.items():
            cfg = b.topic
            head = [cfg.max_len or "", cfg.retention_ms or "", len(b.futures)]
            calls.append(("produce", [keys.stream(topic, partition)], head + b.args))
        try:
            results = self._conn.pipeline(calls, "producing")
        except FacadeError as exc:
            for b in batches.values():
                for fut in b.futures:
                    _backend.fail(fut, exc)
            return
        for ((topic, partition), b), result in zip(batches.items(), results):
            if isinstance(result, UnknownTopicError):
                self._topics.forget(topic)
                result = UnknownTopicError(f"topic {topic!r} was deleted while producing to it")
            if isinstance(result, Exception):
                for fut in b.futures:
                    _backend.fail(fut, result)
            else:
                for fut, entry_id in zip(b.futures, result):
                    _backend.resolve(fut, RecordMetadata(topic, partition, entry_id.decode()))
            self._sticky.batch_sent(topic, partition, b.topic.partitions)
