"""Which partition a record goes to: Kafka's default partitioner.

Keyed records go to ``toPositive(murmur2(key)) % partitions``, exactly as Kafka's Java client (and
kafka-python) choose, so a key lands on the same partition number in facade and in Kafka.
Keyless records use sticky partitioning (KIP-480) by default: they fill a batch on one partition,
then move on; or, with ``partitioner="round-robin"``, each goes to the next partition in turn.
"""

from __future__ import annotations

import random

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as an unsigned int (Java's int bits)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


_CACHE: dict[bytes, int] = {}
_CACHE_MAX = 1 << 16


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``."""
    # Keys repeat (user ids, order ids): remember recent hashes instead of recomputing them in
    # Python. Bounded: the cache is emptied when full.
    h = _CACHE.get(key)
    if h is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        h = _CACHE[key] = murmur2(key) & 0x7FFFFFFF
    return h % partitions


class StickyPartitioner:
    """Keyless placement: stay on one partition per topic until its batch is sent, then switch."""

    __slots__ = ("_current", "_rng")

    def __init__(self, seed: int | None = None) -> None:
        self._current: dict[str, int] = {}
        self._rng = random.Random(seed)

    def partition(self, topic: str, partitions: int) -> int:
        """The partition for the next keyless record of ``topic``."""
        current = self._current.get(topic)
        if current is None or current >= partitions:
            current = self._rng.randrange(partitions)
            self._current[topic] = current
        return current

    def batch_sent(self, topic: str, partition: int, partitions: int) -> None:
        """A batch for ``(topic, partition)`` left: move keyless records to another partition."""
        if self._current.get(topic) != partition:
            return
        if partitions <= 1:
            return
        nxt = self._rng.randrange(partitions - 1)
        self._current[topic] = nxt if nxt < partition else nxt + 1


class RoundRobinPartitioner:
    """Keyless placement, record by record: each record of a topic goes to the next partition in
    turn (0, 1, 2, ..., then 0 again), so keyless records spread evenly whatever the batching.
    Unlike Kafka's RoundRobinPartitioner, keyed records are not affected: they keep going to
    their key's partition, and so stay in order."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def partition(self, topic: str, partitions: int) -> int:
        """The partition for the next keyless record of ``topic``."""
        current = self._next.get(topic, 0) % partitions
        self._next[topic] = current + 1
        return current

    def batch_sent(self, topic: str, partition: int, partitions: int) -> None:
        """Nothing to do: the rotation is per record, not per batch."""
