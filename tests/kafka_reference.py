"""Kafka's own partitioning, as the reference the partitioner tests compare facade with.

kafka-python's pure-Python murmur2 is the implementation its Java-compatibility tests pin; only
it is imported (the rest of kafka-python is never used).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # kafka-python's package import calls importlib.resources.read_text, deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_murmur2

__all__ = ["kafka_murmur2", "kafka_partition"]


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``: murmur2, toPositive, modulo."""
    return (kafka_murmur2(key) & 0x7FFFFFFF) % partitions
