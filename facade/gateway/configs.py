"""Kafka topic configs <-> facade topic settings (CreateTopics, DescribeConfigs).

=========================  ===========================================================
Kafka config               facade
=========================  ===========================================================
retention.ms               TopicConfig.retention_ms (-1: keep forever)
message.timestamp.type     TopicConfig.timestamp_type (CreateTime / LogAppendTime)
cleanup.policy             "delete" only (facade has no compaction)
max.message.bytes          reported: the gateway's batch limit (not settable per topic)
=========================  ===========================================================

Other configs a client may set at creation that change nothing observable here (replication and
segment tuning; facade's replication is the Redis server's) are accepted and ignored; anything
else is refused with INVALID_CONFIG naming it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..records import CREATE_TIME, LOG_APPEND_TIME, TopicConfig

ACCEPTED_AND_IGNORED = frozenset(
    {
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "segment.jitter.ms",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
        "preallocate",
        "compression.type",
        "retention.bytes",
        "file.delete.delay.ms",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "message.downconversion.enable",
        "message.timestamp.difference.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
    }
)
SETTABLE = ("retention.ms", "message.timestamp.type", "cleanup.policy")


def create_options(configs: Any) -> dict[str, Any]:
    """Admin.create_topic keyword arguments for Kafka's (name, value) configs; ConfigError for a
    config facade cannot honour."""
    options: dict[str, Any] = {}
    for item in configs:
        name, value = item.name, item.value
        if name == "retention.ms":
            try:
                ms = int(value) if value is not None else -1
            except ValueError:
                raise ConfigError(f"retention.ms must be an integer (ms), got {value!r}") from None
            options["retention_ms"] = None if ms < 0 else ms
        elif name == "message.timestamp.type":
            if value not in (CREATE_TIME, LOG_APPEND_TIME):
                raise ConfigError(
                    f"message.timestamp.type must be CreateTime or LogAppendTime, got {value!r}"
                )
            options["timestamp_type"] = value
        elif name == "cleanup.policy":
            if value != "delete":
                raise ConfigError(
                    f"cleanup.policy={value!r} is not supported: facade has no log compaction (use delete)"
                )
        elif name not in ACCEPTED_AND_IGNORED:
            raise ConfigError(
                f"topic config {name!r} is not supported by facade gateway (settable: {', '.join(SETTABLE)})"
            )
    return options


def topic_configs(cfg: TopicConfig, max_message_bytes: int) -> dict[str, tuple[str, bool]]:
    """name -> (value, is the default) of a topic, as DescribeConfigs reports it."""
    return {
        "retention.ms": (
            "-1" if cfg.retention_ms is None else str(cfg.retention_ms),
            cfg.retention_ms is None,
        ),
        "message.timestamp.type": (cfg.timestamp_type, cfg.timestamp_type == CREATE_TIME),
        "cleanup.policy": ("delete", True),
        "max.message.bytes": (str(max_message_bytes), True),
        "min.insync.replicas": ("1", True),
    }
