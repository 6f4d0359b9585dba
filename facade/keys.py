"""The Redis key layout: every key facade uses is named here and nowhere else.

Layout version 2 (see docs/design.md, "Key layout"):

    facade:{meta}:topics            hash   topic name -> JSON TopicConfig
    facade:{meta}:groups            hash   group id -> JSON {"layout": 2}
    facade:{meta}:replicas          hash   "ip:port" -> "1": replicas seen attached to this server
                                           (one server, not Sentinel or Cluster: acks="all" waits
                                           for each of them)
    facade:{meta}:cluster_id        string the Kafka cluster id the gateways report (facade gateway)
    facade:{meta}:producer_ids      string the last Kafka producer id handed out (InitProducerId)
    facade:{T/P}:log                stream partition P of topic T; entry IDs "<append ms>-<offset>"
    facade:{T/P}:own                hash   group id -> owner token "<member id>|<session nonce>"
    facade:{T/P}:off                hash   group id -> committed offset "<offset>[ <metadata>]"
    facade:{T/P}:done               hash   group id -> processed mark (exactly-once groups)
    facade:{T/P}:dlv                hash   group id [+ ":r", ":f", ":t"] -> delivery state
    facade:{T/P}:pid                hash   producer id -> its last 5 batches, oldest first, joined by
                                           ";": each "first_seq last_seq append_ms offsets"
    facade:{T/P}:pidx               zset   producer id -> when its state expires (ms)
    facade:{T/P}:dedup              hash   dedup id -> offset of the record first sent with it
    facade:{T/P}:dedupx             zset   dedup id -> when it expires (ms)
    facade:{T/P}:maxts              string "<timestamp ms> <offset>": the largest record timestamp
                                           appended to the partition and the first offset with it
                                           (ListOffsets MAX_TIMESTAMP); never lowered by trimming
    facade:{T/P}:mig, :old, :layout during `facade topics migrate` only: the dense copy of a
                                           layout-1 stream, the old stream after the swap, and
                                           the marker of a partition already carried over
    facade:{g/G}:members            hash   member id -> "<session nonce> <JSON metadata>"
    facade:{g/G}:deadlines          zset   member id -> session deadline (ms, server clock)
    facade:{g/G}:state              hash   generation, assignment, assignment_generation, previous,
                                           protocol, locked_until; Kafka-protocol groups also
                                           phase, join_deadline, join_cap, initial, rebalance_ms,
                                           leader, ptype, pname, sync_deadline, waiting
    facade:{g/G}:kafka              hash   Kafka-protocol groups (facade gateway), per member:
                                           j:<id> join ("w" or generation), a:<id> assignment
                                           bytes, n:<id> instance id, s:<id> session ms,
                                           p:<id> protocol names, h:<id> their digest, m:<id>
                                           protocols with metadata (never read by a script),
                                           t:<id> latest JoinGroup's token; c:<name> / c ->
                                           members per protocol name / counted;
                                           i:<instance id> -> member id
    facade:{g/G}:pending            zset   member id handed out by JoinGroup (MEMBER_ID_REQUIRED)
                                           -> until when it may join (ms)

Hash tags (the part in braces) decide the Redis Cluster slot. Each partition has its own tag, so
partitions spread over shards, and every key a partition script touches shares that slot. Group
coordination keys share one slot per group; topic and group registries share ``{meta}``.

Names are validated before they reach a key: topic and group names come from Kafka's legal set
``[A-Za-z0-9._-]``, which has no brace and no slash, so a name can neither end a hash tag nor
forge another partition's tag. (Topic ``g`` partition 5 and group ``5`` share the tag ``{g/5}``,
hence a slot, but never a key: partition keys end in :log/:own/:pid..., group keys in
:state/:members/:deadlines.)
"""

from __future__ import annotations

import hashlib
import re

from .errors import ConfigError, InvalidNameError

LAYOUT_VERSION = 2
PREFIX = "facade"
MAX_PARTITIONS = 1024
MAX_NAME_LENGTH = 249
DEAD_LETTER_SUFFIX = ".dlq"
# A new topic's name leaves room for its dead-letter topic, <name>.dlq, within MAX_NAME_LENGTH.
MAX_TOPIC_LENGTH = MAX_NAME_LENGTH - len(DEAD_LETTER_SUFFIX)

_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")

TOPICS = f"{PREFIX}:{{meta}}:topics"
GROUPS = f"{PREFIX}:{{meta}}:groups"
REPLICAS = f"{PREFIX}:{{meta}}:replicas"
CLUSTER_ID = f"{PREFIX}:{{meta}}:cluster_id"
"""The Kafka cluster id every ``facade gateway`` on this Redis reports (set once, by the first)."""
PRODUCER_IDS = f"{PREFIX}:{{meta}}:producer_ids"
"""Counter of Kafka producer ids handed out by the gateways' InitProducerId (INCR)."""

# Redis consumer name used inside every stream consumer group. Only one member owns a partition
# at a time (the :own record fences the others), so the pending list belongs to the partition, not
# to a member: a new owner inherits the previous owner's unacknowledged records without XCLAIM.
STREAM_CONSUMER = "owner"


def validate_name(name: object, what: str = "topic") -> str:
    """Return ``name`` if it is a legal topic or group name, else raise InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} name must be a string, not {type(name).__name__}")
    if not _NAME.match(name):
        if not name:
            problem = "is empty"
        elif len(name) > MAX_NAME_LENGTH:
            problem = f"is {len(name)} characters long"
        else:
            bad = sorted({c for c in name if not _NAME.match(c)})
            problem = "contains " + ", ".join(repr(c) for c in bad)
        raise InvalidNameError(
            f"invalid {what} name {name[:60]!r}: it {problem}; use 1 to {MAX_NAME_LENGTH} "
            "characters from A-Z a-z 0-9 . _ -"
        )
    if name in (".", ".."):
        raise InvalidNameError(f"invalid {what} name {name!r}: '.' and '..' are reserved (as in Kafka)")
    return name


def validate_new_topic(name: object) -> str:
    """Return ``name`` if a topic may be created with it: a legal name (validate_name) that
    leaves room for its dead-letter topic ``<name>.dlq`` (at most MAX_TOPIC_LENGTH characters),
    or a dead-letter topic's name (ending in ``.dlq``: up to MAX_NAME_LENGTH). Else
    InvalidNameError, decided here rather than at a consumer's first dead letter."""
    topic = validate_name(name)
    if len(topic) > MAX_TOPIC_LENGTH and not is_dead_letter_topic(topic):
        raise InvalidNameError(
            f"invalid topic name {topic[:40]!r}...: it is {len(topic)} characters long; a topic name may have "
            f"at most {MAX_TOPIC_LENGTH} characters, so that its dead-letter topic (the name plus "
            f"{DEAD_LETTER_SUFFIX!r}) fits the {MAX_NAME_LENGTH}-character limit; shorten it by "
            f"{len(topic) - MAX_TOPIC_LENGTH}"
        )
    return topic


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``<topic>.dlq``. For a name too long to take the suffix
    (246-249 characters: a dead-letter topic's own, or a topic created before validate_new_topic
    refused such names) the first 236 characters, 8 hex digits of the whole name's SHA-1 and
    ``.dlq``: 249 characters, still one per topic, so dead-lettering never fails on the name."""
    name = f"{topic}{DEAD_LETTER_SUFFIX}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha1(topic.encode()).hexdigest()[:8]
    return f"{topic[: MAX_NAME_LENGTH - 13]}.{digest}.dlq"


def is_dead_letter_topic(topic: str) -> bool:
    """Whether ``topic`` is named as a dead-letter topic."""
    return topic.endswith(DEAD_LETTER_SUFFIX)


def validate_partitions(count: object) -> int:
    """Return ``count`` if it is a legal partition count (1..1024), else raise ConfigError."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ConfigError(f"partition count must be an integer, not {type(count).__name__}")
    if not 1 <= count <= MAX_PARTITIONS:
        raise ConfigError(f"partition count must be between 1 and {MAX_PARTITIONS}, got {count}")
    return count


def _partition_tag(topic: str, partition: int) -> str:
    return f"{PREFIX}:{{{topic}/{partition}}}"


def stream(topic: str, partition: int) -> str:
    """The stream holding partition ``partition`` of ``topic``."""
    return f"{_partition_tag(topic, partition)}:log"


def owners(topic: str, partition: int) -> str:
    """Hash of group id -> owner token: which member session owns this partition in each group."""
    return f"{_partition_tag(topic, partition)}:own"


def committed(topic: str, partition: int) -> str:
    """Hash of group id -> committed offset (the next offset the group reads after a handover)."""
    return f"{_partition_tag(topic, partition)}:off"


def processed(topic: str, partition: int) -> str:
    """Hash of group id -> the highest offset an exactly-once group ever committed (processed mark)."""
    return f"{_partition_tag(topic, partition)}:done"


def deliveries(topic: str, partition: int) -> str:
    """Hash of per-group delivery state: what was handed out, redelivered, failed (lua/_lib.lua)."""
    return f"{_partition_tag(topic, partition)}:dlv"


def owner_token(member_id: str, nonce: str) -> str:
    """The owner token of one member session: ``"<member id>|<session nonce>"``. Member ids come
    from validated names or facade's own ids, which never contain "|"."""
    return f"{member_id}|{nonce}"


def token_member(token: str) -> str:
    """The member id of an owner token."""
    return token.rsplit("|", 1)[0]


def producer_state(topic: str, partition: int) -> str:
    """Hash of idempotent-producer state for this partition."""
    return f"{_partition_tag(topic, partition)}:pid"


def producer_index(topic: str, partition: int) -> str:
    """Sorted set of producer id -> last append time (ms), for expiring idle producer ids."""
    return f"{_partition_tag(topic, partition)}:pidx"


def dedup(topic: str, partition: int) -> str:
    """Hash of application dedup id -> offset of the record first sent with it."""
    return f"{_partition_tag(topic, partition)}:dedup"


def dedup_index(topic: str, partition: int) -> str:
    """Sorted set of dedup id -> append time (ms), for expiring old dedup ids."""
    return f"{_partition_tag(topic, partition)}:dedupx"


def max_timestamp(topic: str, partition: int) -> str:
    """String "<timestamp ms> <offset>": the partition's largest record timestamp and its offset."""
    return f"{_partition_tag(topic, partition)}:maxts"


def produce_keys(topic: str, partition: int) -> list[str]:
    """The keys the produce script takes, in its KEYS order."""
    return [
        stream(topic, partition),
        producer_state(topic, partition),
        producer_index(topic, partition),
        dedup(topic, partition),
        dedup_index(topic, partition),
        committed(topic, partition),
        max_timestamp(topic, partition),
    ]


def migration_copy(topic: str, partition: int) -> str:
    """While a layout-1 partition is migrated: the copy of its stream with dense offsets."""
    return f"{_partition_tag(topic, partition)}:mig"


def migration_old(topic: str, partition: int) -> str:
    """While a layout-1 partition is migrated: its old stream, after the copy took its place."""
    return f"{_partition_tag(topic, partition)}:old"


def migration_marker(topic: str, partition: int) -> str:
    """While a layout-1 topic is migrated: set on each partition already carried over."""
    return f"{_partition_tag(topic, partition)}:layout"


def migrate_keys(topic: str, partition: int) -> list[str]:
    """The keys the topic_migrate script takes, in its KEYS order."""
    return [
        stream(topic, partition),
        migration_copy(topic, partition),
        migration_old(topic, partition),
        migration_marker(topic, partition),
        committed(topic, partition),
        processed(topic, partition),
        owners(topic, partition),
        deliveries(topic, partition),
        producer_state(topic, partition),
        producer_index(topic, partition),
        dedup(topic, partition),
        dedup_index(topic, partition),
    ]


def partition_keys(topic: str, partition: int) -> tuple[str, ...]:
    """Every key that belongs to one partition (what deleting a topic removes)."""
    return (
        *produce_keys(topic, partition),
        owners(topic, partition),
        processed(topic, partition),
        deliveries(topic, partition),
        migration_copy(topic, partition),
        migration_old(topic, partition),
        migration_marker(topic, partition),
    )


def group_partition_keys(topic: str, partition: int) -> tuple[str, str, str, str]:
    """Per-partition hashes holding a group's state there (what deleting a group clears)."""
    return (owners(topic, partition), committed(topic, partition), processed(topic, partition), deliveries(topic, partition))


def _group_tag(group: str) -> str:
    return f"{PREFIX}:{{g/{group}}}"


def group_members(group: str) -> str:
    """Hash of member id -> JSON metadata for a consumer group."""
    return f"{_group_tag(group)}:members"


def group_deadlines(group: str) -> str:
    """Sorted set of member id -> session deadline (ms) for a consumer group."""
    return f"{_group_tag(group)}:deadlines"


def group_state(group: str) -> str:
    """Hash holding a group's generation and current assignment."""
    return f"{_group_tag(group)}:state"


def group_keys(group: str) -> tuple[str, str, str]:
    """The coordination keys of a group, in the order the group scripts take them."""
    return (group_state(group), group_members(group), group_deadlines(group))


def group_kafka(group: str) -> str:
    """Hash of a Kafka-protocol group's per-member state (joins, assignments, instance ids)."""
    return f"{_group_tag(group)}:kafka"


def group_pending(group: str) -> str:
    """Sorted set of member ids handed out by JoinGroup, not joined yet -> their expiry (ms)."""
    return f"{_group_tag(group)}:pending"


def kafka_group_keys(group: str) -> tuple[str, str, str, str, str]:
    """The keys of a Kafka-protocol group, in the order the kafka_* scripts take them."""
    return (*group_keys(group), group_kafka(group), group_pending(group))
