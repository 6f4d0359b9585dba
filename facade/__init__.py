"""facade: Kafka's model (topics, partitions, keyed order, consumer groups) on Redis and Valkey.

    from facade import Admin, Producer, Consumer

    Admin().create_topic("posts", partitions=5)
    with Producer() as p:
        p.send("posts", b"hello", key="user-1")
    with Consumer(["posts"], group="notifications") as c:
        for msg in c.poll(timeout_ms=1000):
            ...   # msg.offset is Kafka's: 0, 1, 2, ... per partition

The asyncio twins have the same names in ``facade.aio``. With no URL (argument or
``$FACADE_URL``) every client uses the embedded local broker, started on first use.

Five modules are public too: ``facade.local`` (local servers: the embedded broker, Sentinel
topologies, clusters), ``facade.acl`` (least-privilege ACL rules per role),
``facade.benchmark`` (the workloads and raw redis-py baselines of ``facade bench``),
``facade.exporter`` (Prometheus metrics of a broker and of this process's clients) and
``facade.tracing`` (trace context in record headers, OpenTelemetry spans).
"""

from . import acl, benchmark, exporter, local, tracing
from ._sync.admin import Admin
from ._sync.consumer import Consumer
from ._sync.producer import Producer
from ._sync.relay import RelayStats, relay
from .config import ConsumerConfig, ProducerConfig
from .descriptions import (
    ConfiguredReplica,
    GroupCursor,
    MigrationReport,
    PartitionStats,
    ReplicaDescription,
    ReplicaSet,
    ServerDescription,
)
from .errors import (
    AuthenticationError,
    BrokerError,
    BrokerTimeoutError,
    CommitFailedError,
    ConfigError,
    ConnectionFailedError,
    DeserializationError,
    FacadeError,
    FencedInstanceIdError,
    GroupError,
    InvalidNameError,
    InvalidUrlError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    OffsetOutOfRangeError,
    OutOfMemoryError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ReadOnlyError,
    RebalanceInProgressError,
    SerializationError,
    ServerBusyError,
    ServerError,
    TopicError,
    TopicExistsError,
    UnknownMemberError,
    UnknownTopicError,
    UnsupportedError,
)
from .offsets import parse_datetime_ms, parse_duration_ms
from .partitioner import murmur2, partition_for_key
from .records import (
    GroupDescription,
    GroupMember,
    GroupMetadata,
    GroupPartitionInfo,
    Headers,
    Message,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    OffsetReset,
    OutputRecord,
    PartitionInfo,
    RecordMetadata,
    TopicConfig,
    TopicDescription,
    TopicPartition,
)
from .url import redact as redact_url

__version__ = "0.1.0"

__all__ = [
    "Admin",
    "AuthenticationError",
    "BrokerError",
    "BrokerTimeoutError",
    "CommitFailedError",
    "ConfigError",
    "ConfiguredReplica",
    "ConnectionFailedError",
    "Consumer",
    "ConsumerConfig",
    "DeserializationError",
    "FacadeError",
    "FencedInstanceIdError",
    "GroupCursor",
    "GroupDescription",
    "GroupError",
    "GroupMember",
    "GroupMetadata",
    "GroupPartitionInfo",
    "Headers",
    "InvalidNameError",
    "InvalidUrlError",
    "Message",
    "MessageTooLargeError",
    "MigrationReport",
    "NotEnoughReplicasError",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "OffsetOutOfRangeError",
    "OffsetReset",
    "OutOfMemoryError",
    "OutOfOrderSequenceError",
    "OutputRecord",
    "PartitionInfo",
    "PartitionStats",
    "PermissionDeniedError",
    "Producer",
    "ProducerConfig",
    "ReadOnlyError",
    "RebalanceInProgressError",
    "RecordMetadata",
    "RelayStats",
    "ReplicaDescription",
    "ReplicaSet",
    "SerializationError",
    "ServerBusyError",
    "ServerDescription",
    "ServerError",
    "TopicConfig",
    "TopicDescription",
    "TopicError",
    "TopicExistsError",
    "TopicPartition",
    "UnknownMemberError",
    "UnknownTopicError",
    "UnsupportedError",
    "__version__",
    "acl",
    "benchmark",
    "exporter",
    "local",
    "murmur2",
    "parse_datetime_ms",
    "parse_duration_ms",
    "partition_for_key",
    "redact_url",
    "relay",
    "tracing",
]
