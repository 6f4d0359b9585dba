"""Validated option groups for producers and consumers.

Each is a frozen dataclass that checks itself when built, so a bad option fails at construction
with a message that says what is allowed, never halfway through sending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from . import serializers
from .errors import ConfigError

__all__ = ["ConsumerConfig", "ProducerConfig", "build"]

Acks = Literal[0, 1, "all"]


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def parse_acks(value: Any) -> Acks:
    """Normalise an acks value: 0, 1 or "all" (also "0", "1", -1 as Kafka spells all)."""
    if type(value) not in (int, str):  # 1.0 == 1 and True == 1, but neither is an acks setting
        raise ConfigError(f"acks must be 0, 1 or 'all', got {value!r}")
    if value in (0, "0") and not isinstance(value, bool):
        return 0
    if value in (1, "1") and not isinstance(value, bool):
        return 1
    if value in ("all", "-1", -1) and not isinstance(value, bool):
        return "all"
    raise ConfigError(f"acks must be 0, 1 or 'all', got {value!r}")


@dataclass(frozen=True)
class ProducerConfig:
    """Producer options."""

    acks: Acks = 1
    """0: do not wait for the write; 1: the primary has it; "all": replicas have it too."""
    linger_ms: int = 5
    """Wait up to this long for more records before sending a batch (0: send at once)."""
    batch_size: int = 256 * 1024
    """Send when this many bytes are buffered, whatever linger_ms says."""
    max_message_bytes: int = 1024 * 1024
    """Refuse a record whose key, value and headers exceed this many bytes (before sending)."""
    auto_create: bool = False
    """Create a missing topic on first send (with ``auto_create_partitions``) instead of failing."""
    auto_create_partitions: int = 1
    """Partition count for topics created by ``auto_create``."""
    metadata_max_age_ms: int = 5000
    """Re-read a topic's partition count and retention at least this often."""
    min_insync_replicas: int | None = None
    """With acks="all": accept a write once this many copies have it, the primary's included
    (Kafka's ``min.insync.replicas``: 2 = the primary and one replica); fewer in sync and the
    write is refused before it is appended (retriable). Default: every configured replica, so
    the primary and all of them (facade/_async/replication.py says which those are)."""
    replica_timeout_ms: int = 5000
    """With acks="all": how long one WAIT for replicas may take before the batch is retried."""
    acks_fsync: bool = False
    """With acks="all": also wait until the primary and those replicas fsynced the write to their
    AOF (WAITAOF; Redis 7.2+ / Valkey 8+)."""
    idempotent: bool = True
    """Give each batch a producer id and sequence, so a retried batch is never appended twice."""
    delivery_timeout_ms: int = 30_000
    """How long a batch may be retried (server unreachable, failover) before its records fail."""
    retry_backoff_ms: int = 100
    """First pause between retries; it doubles up to 1 s."""
    producer_id_expiry_ms: int = 86_400_000
    """The broker forgets this producer's id (its last 5 batches, which a retry is matched against)
    once unused this long. Each producer id keeps its own expiry: another producer's shorter one
    never drops it. (How long ``send(dedup_id=...)`` ids are remembered is the topic's setting,
    ``TopicConfig.dedup_window_ms`` / ``dedup_max_ids``, the same for every producer.)"""
    client_id: str = "facade"
    """Kafka's client.id: names this client in its metrics (``client_id`` label) and spans."""
    metrics: bool = False
    """Count what the producer does (records, bytes, batches, retries, errors, latencies):
    ``producer.metrics()``, and facade.exporter serves them. Off: nothing is counted."""
    tracing: bool = False
    """Put the current trace context in each record's headers (W3C ``traceparent``) under a
    "send" span (OpenTelemetry; needs ``pip install 'facade[otel]'``)."""
    key_serializer: serializers.Serializer = None
    """Turns the ``key`` given to ``send()`` into bytes: "json", "str", "bytes" or a callable
    ``fn(key) -> bytes | str`` (None: keys are bytes or str already). Not applied to a None key."""
    value_serializer: serializers.Serializer = None
    """Turns the ``value`` given to ``send()`` into bytes: "json", "str", "bytes" or a callable
    (None: values are bytes or str already)."""
    partitioner: Literal["sticky", "round-robin"] = "sticky"
    """Where keyless records go (keyed records always go to Kafka's murmur2 partition of their
    key): "sticky" (the default, as Kafka's: one partition per batch, then another) or
    "round-robin" (each record to the next partition in turn: an even spread record by record)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "acks", parse_acks(self.acks))
        _int("linger_ms", self.linger_ms, 0, 60_000)
        _int("batch_size", self.batch_size, 1, 64 * 1024 * 1024)
        _int("max_message_bytes", self.max_message_bytes, 1, 512 * 1024 * 1024)
        _int("auto_create_partitions", self.auto_create_partitions, 1, 1024)
        _int("metadata_max_age_ms", self.metadata_max_age_ms, 0)
        _int("replica_timeout_ms", self.replica_timeout_ms, 1)
        if self.min_insync_replicas is not None:
            _int("min_insync_replicas", self.min_insync_replicas, 1, 100)
        for flag in ("auto_create", "idempotent", "acks_fsync"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        _int("delivery_timeout_ms", self.delivery_timeout_ms, 0)
        _int("retry_backoff_ms", self.retry_backoff_ms, 0, 60_000)
        _int("producer_id_expiry_ms", self.producer_id_expiry_ms, 1000)
        serializers.serializer(self.key_serializer, "key_serializer")
        serializers.serializer(self.value_serializer, "value_serializer")
        if self.partitioner not in ("sticky", "round-robin"):
            raise ConfigError(f"partitioner must be 'sticky' or 'round-robin', got {self.partitioner!r}")
        _client_options(self)


@dataclass(frozen=True)
class ConsumerConfig:
    """Consumer options. Names and defaults are Kafka's where Kafka has the option."""

    auto_offset_reset: Literal["latest", "earliest", "none"] = "latest"
    """Where to start when the group has no committed offset on a partition, or its offset is
    outside the partition's records (trimmed by retention, or past the end): "latest" (only new
    records), "earliest" (all stored) or "none" (raise OffsetOutOfRangeError)."""
    session_timeout_ms: int = 45_000
    """A member whose heartbeats stop for this long is removed and its partitions move. Heartbeats
    come from a background thread (a task under asyncio), not from poll()."""
    heartbeat_interval_ms: int = 3000
    """How often the background heartbeat tells the group this member is alive (and learns of
    rebalances)."""
    max_poll_interval_ms: int = 300_000
    """Longest time between two poll() calls. A member that exceeds it (its handler is stuck or far
    too slow) leaves the group so that its partitions move, and rejoins on its next poll()."""
    enable_auto_commit: bool = True
    """Commit, at each poll() after ``auto_commit_interval_ms``, the offsets of the records earlier
    polls returned (so at-least-once holds), and on rebalance and close."""
    auto_commit_interval_ms: int = 5000
    """How often auto-commit commits."""
    max_poll_records: int = 500
    """Default ``max_records`` for poll()."""
    assignment_strategy: Literal["cooperative-sticky", "range", "roundrobin"] = "cooperative-sticky"
    """How partitions are spread over members. cooperative-sticky moves only what must move."""
    group_instance_id: str | None = None
    """Static membership: a stable id for this member. Restarting within ``session_timeout_ms``
    gets the same partitions back with no rebalance, and fences the previous process for good
    (FencedInstanceIdError in it); closing does not leave the group."""
    metadata_max_age_ms: int = 5000
    """How often partition counts are re-read, so partitions added to a topic (or a topic created
    after the consumer started) are picked up."""
    guarantee: Literal["at-least-once", "at-most-once", "exactly-once"] = "at-least-once"
    """at-least-once: a record is redelivered after a handover unless its offset was committed.
    at-most-once: each read commits what it read, before the application sees it. exactly-once:
    like at-least-once, plus a processed mark that skips any record committed before, even after
    a seek or offset reset; commit(outputs=...) appends outputs atomically with the commit."""
    max_deliveries: int | None = None
    """Move a record that failed this many times (``fail()``, or its consumer crashed while it
    held that record alone) to the dead-letter topic instead of handing it out again (None:
    never). Records read again behind a failed one, prefetched, or held during a clean close or
    revoke never count (docs/guarantees.md, "Dead letters")."""
    reconnect_timeout_ms: int = 30_000
    """How long poll() and commit() ride out a lost connection or a failover (retrying) before
    they raise."""
    client_id: str = "facade"
    """Kafka's client.id: shown with the member in group descriptions, and names this client in
    its metrics (``client_id`` label) and spans."""
    metrics: bool = False
    """Count what the consumer does (records, bytes, poll sizes, end-to-end latency, errors,
    rebalances, fenced commits): ``consumer.metrics()``, and facade.exporter serves them."""
    tracing: bool = False
    """Start a "receive" span per poll() that returns records, linked to each record's trace
    context (OpenTelemetry; needs ``pip install 'facade[otel]'``); facade.tracing.process(msg)
    continues a record's trace."""
    key_deserializer: serializers.Deserializer = None
    """Turns a record's stored key into what ``Message.key`` gives: "json", "str", "bytes" or a
    callable ``fn(data: bytes) -> object`` (None: the bytes). A failure is the record's own error
    (``Message.error``), not poll()'s."""
    value_deserializer: serializers.Deserializer = None
    """Turns a record's stored value into what ``Message.value`` gives (as ``key_deserializer``)."""

    def __post_init__(self) -> None:
        if self.auto_offset_reset not in ("latest", "earliest", "none"):
            raise ConfigError(
                f"auto_offset_reset must be 'latest', 'earliest' or 'none', got {self.auto_offset_reset!r}"
            )
        _int("session_timeout_ms", self.session_timeout_ms, 100, 3_600_000)
        _int("heartbeat_interval_ms", self.heartbeat_interval_ms, 10, self.session_timeout_ms - 1)
        _int("max_poll_interval_ms", self.max_poll_interval_ms, 100)
        if not isinstance(self.enable_auto_commit, bool):
            raise ConfigError(f"enable_auto_commit must be True or False, got {self.enable_auto_commit!r}")
        _int("auto_commit_interval_ms", self.auto_commit_interval_ms, 0)
        _int("max_poll_records", self.max_poll_records, 1, 100_000)
        if self.assignment_strategy not in ("cooperative-sticky", "range", "roundrobin"):
            raise ConfigError(
                "assignment_strategy must be 'cooperative-sticky', 'range' or 'roundrobin', "
                f"got {self.assignment_strategy!r}"
            )
        if self.group_instance_id is not None:
            from .keys import validate_name

            validate_name(self.group_instance_id, "group_instance_id")
        _int("metadata_max_age_ms", self.metadata_max_age_ms, 0)
        _int("reconnect_timeout_ms", self.reconnect_timeout_ms, 0)
        if self.guarantee not in ("at-least-once", "at-most-once", "exactly-once"):
            raise ConfigError(
                f"guarantee must be 'at-least-once', 'at-most-once' or 'exactly-once', got {self.guarantee!r}"
            )
        if self.max_deliveries is not None:
            _int("max_deliveries", self.max_deliveries, 1, 1_000_000)
        serializers.deserializer(self.key_deserializer, "key_deserializer")
        serializers.deserializer(self.value_deserializer, "value_deserializer")
        _client_options(self)


def _client_options(config: Any) -> None:
    client_id = config.client_id
    if not isinstance(client_id, str) or not 0 < len(client_id) <= 255 or not client_id.isprintable() or " " in client_id:
        raise ConfigError(f"client_id must be 1 to 255 printable characters without spaces, got {client_id!r}")
    for flag in ("metrics", "tracing"):
        if not isinstance(getattr(config, flag), bool):
            raise ConfigError(f"{flag} must be True or False, got {getattr(config, flag)!r}")


_TOPIC_SETTINGS = {
    name: f"{name} is the topic's setting, not a producer's (every producer of a topic shares its dedup "
    f"ids, so one producer's value would cut short the others'): give it when creating the topic, "
    f"Admin().create_topic(name, {name}=...) or `facade topics create NAME --{name.replace('_', '-')} N`"
    for name in ("dedup_window_ms", "dedup_max_ids")
}
"""Options that were, or look like, client options but belong to the topic: the error for each."""


def build(cls: Callable[..., Any], config: Any, options: dict[str, Any]) -> Any:
    """``config`` (or the defaults) with ``options`` applied; unknown option names are refused."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    for name in unknown:
        if name in _TOPIC_SETTINGS:
            raise ConfigError(_TOPIC_SETTINGS[name])
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    if config is None:
        return cls(**options)
    if not isinstance(config, cls):  # type: ignore[arg-type]
        raise ConfigError(f"config must be a {cls.__name__}, not {type(config).__name__}")
    return replace(config, **options) if options else config
