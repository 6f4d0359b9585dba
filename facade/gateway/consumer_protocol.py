"""Kafka's consumer embedded protocol: what Kafka consumers put in JoinGroup's member metadata
(ConsumerProtocolSubscription) and SyncGroup's assignments (ConsumerProtocolAssignment), read
so that `facade groups describe` shows each Kafka member's topics and partitions.

The gateway stores and forwards these bytes untouched; it only reads them. Both start with an
int16 version; every version is a prefix-compatible extension (later fields appended), non-
flexible: strings are int16-length-prefixed, arrays int32-count-prefixed.

    Subscription: version, topics [string], user_data bytes, (v1+) owned partitions, ...
    Assignment:   version, assigned [topic string, partitions [int32]], user_data bytes
"""

from __future__ import annotations

import struct

from ..records import TopicPartition

__all__ = ["assignment_partitions", "subscription_topics"]

CONSUMER = "consumer"
"""The protocol type of Kafka consumers (other types, e.g. Kafka Connect's, are opaque)."""


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take(">h")
        if n < 0:
            return ""
        if self.pos + n > len(self.buf):
            raise ValueError("string runs past the end")
        out = self.buf[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return out

    def count(self) -> int:
        n = self.take(">i")
        if n > len(self.buf):
            raise ValueError("array count larger than the bytes")
        return max(n, 0)


def subscription_topics(metadata: bytes) -> list[str]:
    """The topics a consumer subscribes to ([] when the bytes are not a subscription)."""
    try:
        r = _Reader(bytes(metadata))
        r.take(">h")
        return [r.string() for _ in range(r.count())]
    except (struct.error, ValueError):
        return []


def assignment_partitions(assignment: bytes) -> list[TopicPartition] | None:
    """The partitions an assignment gives (None when the bytes are not an assignment; an empty
    assignment, b"", gives none)."""
    if not assignment:
        return []
    try:
        r = _Reader(bytes(assignment))
        r.take(">h")
        out = []
        for _ in range(r.count()):
            topic = r.string()
            out += [TopicPartition(topic, r.take(">i")) for _ in range(r.count())]
        return out
    except (struct.error, ValueError):
        return None
