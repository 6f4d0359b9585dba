"""Keyed records land where Kafka would put them; keyless ones stick, then move on."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka_reference import kafka_murmur2, kafka_partition

from facade.partitioner import StickyPartitioner, murmur2, partition_for_key

# Java's Utils.murmur2 (signed int) for these inputs, from Kafka's UtilsTest.testMurmur2.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# Partition chosen by Kafka's Java DefaultPartitioner among 1000 partitions (kafka-python's
# test_murmur2_java_compatibility).
JAVA_PARTITION_OF_1000 = {
    b"": 681,
    b"a": 524,
    b"ab": 434,
    b"abc": 107,
    b"123456789": 566,
    b"\x00 ": 742,
}


def to_signed(h: int) -> int:
    return h - (1 << 32) if h & 0x80000000 else h


@pytest.mark.parametrize("data,expected", sorted(JAVA_MURMUR2.items()))
def test_murmur2_java_vectors(data, expected):
    assert to_signed(murmur2(data)) == expected


@pytest.mark.parametrize("key,expected", sorted(JAVA_PARTITION_OF_1000.items()))
def test_partition_java_vectors(key, expected):
    assert partition_for_key(key, 1000) == expected


def test_murmur2_is_unsigned_32_bit():
    for data in (b"", b"x", b"21", bytes(range(256))):
        assert 0 <= murmur2(data) < 1 << 32


@given(st.binary(max_size=300))
def test_murmur2_equals_kafka_python(data):
    assert murmur2(data) == kafka_murmur2(data)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1024))
def test_partition_for_key_equals_kafka(key, partitions):
    expected = kafka_partition(key, partitions)
    got = partition_for_key(key, partitions)
    assert got == expected
    assert 0 <= got < partitions


@pytest.mark.parametrize("partitions", [1, 2, 3, 5, 7, 8, 12, 16, 31, 64, 100, 1000, 1024])
def test_partition_for_key_many_counts(partitions):
    for i in range(300):
        key = f"user-{i}".encode()
        assert partition_for_key(key, partitions) == kafka_partition(key, partitions)


def test_keys_spread_over_partitions():
    counts = collections.Counter(partition_for_key(f"key-{i}".encode(), 8) for i in range(8000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 800  # ~1000 each; murmur2 is not lopsided


# --- sticky (keyless) placement --------------------------------------------------------------


def test_sticky_stays_until_batch_sent():
    sp = StickyPartitioner(seed=1)
    first = sp.partition("t", 6)
    assert all(sp.partition("t", 6) == first for _ in range(100))


def test_sticky_moves_to_a_different_partition_after_batch_sent():
    sp = StickyPartitioner(seed=2)
    for _ in range(200):
        before = sp.partition("t", 4)
        sp.batch_sent("t", before, 4)
        after = sp.partition("t", 4)
        assert after != before
        assert 0 <= after < 4


def test_sticky_ignores_batches_of_other_partitions():
    sp = StickyPartitioner(seed=3)
    current = sp.partition("t", 5)
    sp.batch_sent("t", (current + 1) % 5, 5)
    assert sp.partition("t", 5) == current


def test_sticky_one_partition_stays_on_zero():
    sp = StickyPartitioner(seed=4)
    assert sp.partition("t", 1) == 0
    sp.batch_sent("t", 0, 1)
    assert sp.partition("t", 1) == 0


def test_sticky_topics_are_independent():
    sp = StickyPartitioner(seed=5)
    a, b = sp.partition("a", 10), sp.partition("b", 10)
    sp.batch_sent("a", a, 10)
    assert sp.partition("b", 10) == b


def test_sticky_follows_a_shrunk_partition_count():
    sp = StickyPartitioner(seed=6)
    while sp.partition("t", 10) < 3:
        sp.batch_sent("t", sp.partition("t", 10), 10)
    assert 0 <= sp.partition("t", 3) < 3


def test_sticky_spreads_over_all_partitions():
    sp = StickyPartitioner(seed=7)
    seen = collections.Counter()
    for _ in range(2000):
        p = sp.partition("t", 8)
        seen[p] += 1
        sp.batch_sent("t", p, 8)
    assert set(seen) == set(range(8))
    assert min(seen.values()) > 150  # ~250 each


def test_sticky_unseeded_spreads_too():
    seen = {StickyPartitioner().partition("t", 4) for _ in range(200)}
    assert seen == {0, 1, 2, 3}
