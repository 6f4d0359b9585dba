"""Consumer groups against a real server: ownership, rebalancing, at-least-once, fencing."""

from __future__ import annotations

import time

import pytest
import redis
from conftest import wait_until

from facade import (
    Admin,
    CommitFailedError,
    ConfigError,
    Consumer,
    InvalidNameError,
    Producer,
    TopicPartition,
    UnknownTopicError,
)
from facade import keys

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}


def setup_topic(url, name="t", partitions=4, records=0, keys_=8):
    with Admin(url) as a:
        a.create_topic(name, partitions)
    if records:
        produce(url, name, records, keys_)


def produce(url, topic, n, keys_=8, start=0):
    with Producer(url) as p:
        for i in range(start, start + n):
            p.send(topic, f"k{i % keys_}:{i}", key=f"k{i % keys_}")


def drain(consumers, want, timeout=15.0, commit=True):
    """Poll all consumers round-robin until ``want`` records arrived; returns {index: [Message]}."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < want and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            got[i] += c.poll(timeout_ms=20)
            if commit:
                c.commit()
    return got


def settle(consumers, rounds=40):
    for _ in range(rounds):
        for c in consumers:
            c.poll(timeout_ms=10)


def test_earliest_reads_everything_in_partition_order(url):
    setup_topic(url, records=200)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **FAST) as c:
        got = drain([c], 200)[0]
    assert len(got) == 200
    per_key: dict[bytes, list[int]] = {}
    for m in got:
        k, i = m.value.decode().split(":")
        assert m.key == k.encode() and m.delivery_count == 1 and m.timestamp_ms > 0
        per_key.setdefault(m.key, []).append(int(i))
    assert all(v == sorted(v) for v in per_key.values())
    by_partition: dict[int, list[str]] = {}
    for m in got:
        by_partition.setdefault(m.partition, []).append(m.offset)
    for offsets in by_partition.values():
        assert offsets == sorted(offsets, key=lambda o: tuple(map(int, o.split("-"))))


def test_latest_skips_what_was_there_before_the_group(url):
    setup_topic(url, records=50)
    with Consumer("t", "g", url, **FAST) as c:
        settle([c], 10)
        assert c.assignment() == {TopicPartition("t", p) for p in range(4)}
        produce(url, "t", 10, start=1000)
        got = drain([c], 10)[0]
    assert sorted(int(m.value.split(b":")[1]) for m in got) == list(range(1000, 1010))


def test_committed_records_are_not_redelivered_and_uncommitted_are(url):
    setup_topic(url, partitions=2, records=40)
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
    first = drain([c], 40, commit=False)[0]
    assert len(first) == 40
    # Commit only what the first poll returned... by committing before polling the rest.
    c.close()  # nothing committed: everything stays pending
    with Consumer("t", "g", url, **FAST) as c2:
        again = drain([c2], 40)[0]
    assert sorted(m.offset for m in again) == sorted(m.offset for m in first)
    assert all(m.delivery_count == 2 for m in again)
    # Redelivered records come first and in their original order, per partition.
    for p in (0, 1):
        assert [m.offset for m in again if m.partition == p] == [m.offset for m in first if m.partition == p]
    with Consumer("t", "g", url, **FAST) as c3:
        settle([c3], 10)
        assert drain([c3], 1, timeout=0.5)[0] == []


def test_each_partition_has_exactly_one_owner(url):
    setup_topic(url, partitions=7)
    members = [Consumer("t", "g", url, **FAST) for _ in range(3)]
    try:
        def spread():
            settle(members, 2)
            owned = [c.assignment() for c in members]
            everything = set().union(*owned)
            return sum(len(o) for o in owned) == 7 and len(everything) == 7 and all(owned)

        wait_until(spread, timeout=10, what="7 partitions spread over 3 members")
        sizes = sorted(len(c.assignment()) for c in members)
        assert sizes == [2, 2, 3]
        # The owner records in Redis agree with what each member believes.
        r = redis.Redis.from_url(url)
        for c in members:
            for tp in c.assignment():
                token = r.hget(keys.owners(tp.topic, tp.partition), "g").decode()
                assert token.split("|")[0] == c.member_id
        r.close()
    finally:
        for c in members:
            c.close()


def test_rebalance_on_join_and_leave_loses_and_doubles_nothing(url):
    setup_topic(url, partitions=6)
    a = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
    b = None
    seen = []
    try:
        produce(url, "t", 300, keys_=12)
        got = drain([a], 100)[0]
        seen += got
        b = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)

        def split():
            seen.extend(drain([a, b], 10**6, timeout=0.05)[0])  # a keeps reading meanwhile
            return a.assignment() and b.assignment() and len(a.assignment() | b.assignment()) == 6

        wait_until(split, timeout=10, what="6 partitions split between a and b")
        produce(url, "t", 300, keys_=12, start=300)
        got = drain([a, b], 600 - len(seen))
        seen += got[0] + got[1]
        assert got[1], "the new member received records"
        a.close()
        produce(url, "t", 100, keys_=12, start=600)
        seen += drain([b], 700 - len(seen))[0]
    finally:
        a.close()
        if b:
            b.close()
    values = [m.value for m in seen]
    assert len(values) == 700 and len(set(values)) == 700


def test_callbacks_and_commit_in_on_revoke(url):
    setup_topic(url, partitions=2, records=20)
    events = []
    holder = {}

    def on_revoke(parts):
        events.append(("revoke", parts))
        holder["c"].commit()

    c = Consumer(
        "t", "g", url, auto_offset_reset="earliest",
        on_assign=lambda parts: events.append(("assign", parts)), on_revoke=on_revoke, **FAST,
    )  # fmt: skip
    holder["c"] = c
    got = drain([c], 20, commit=False)[0]
    assert len(got) == 20
    assert events[0] == ("assign", {TopicPartition("t", 0), TopicPartition("t", 1)})
    c.close()  # revoke commits the delivered records
    assert events[-1] == ("revoke", {TopicPartition("t", 0), TopicPartition("t", 1)})
    with Consumer("t", "g", url, **FAST) as c2:
        assert drain([c2], 1, timeout=1.0)[0] == []


def test_fenced_member_cannot_commit_or_read(url):
    setup_topic(url, partitions=1, records=10)
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
    try:
        got = drain([c], 10, commit=False)[0]
        assert len(got) == 10
        # Another owner takes the partition over (as after this member's session expired).
        r = redis.Redis.from_url(url)
        r.hset(keys.owners("t", 0), "g", "someone-else|99")
        with pytest.raises(CommitFailedError, match="no longer owns"):
            c.commit()
        produce(url, "t", 5, start=100)
        assert c.poll(timeout_ms=200) == []  # fenced: nothing read for it
        assert TopicPartition("t", 0) not in c.assignment()
        assert r.xpending("facade:{t/0}:log", "g")["pending"] == 10  # nothing was acknowledged
        r.close()
    finally:
        c.close()


def test_multiple_topics_with_different_partition_counts(url):
    setup_topic(url, "a", 3, records=30)
    setup_topic(url, "b", 5, records=50)
    c1 = Consumer(["a", "b"], "g", url, auto_offset_reset="earliest", assignment_strategy="roundrobin", **FAST)
    c2 = Consumer(["a", "b"], "g", url, auto_offset_reset="earliest", assignment_strategy="roundrobin", **FAST)
    try:
        got = drain([c1, c2], 80)
        assert len(got[0]) + len(got[1]) == 80
        assert {m.topic for m in got[0] + got[1]} == {"a", "b"}
        assert len(c1.assignment() | c2.assignment()) == 8
        assert not c1.assignment() & c2.assignment()
    finally:
        c1.close()
        c2.close()


def test_iteration(url):
    setup_topic(url, partitions=1, records=5)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **FAST) as c:
        it = iter(c)
        values = [next(it).value for _ in range(5)]
    assert [v.split(b":")[1] for v in values] == [b"0", b"1", b"2", b"3", b"4"]


def test_missing_topic_and_bad_arguments(url):
    with Consumer("nope", "g", url) as c:
        with pytest.raises(UnknownTopicError, match="nope"):
            c.poll(timeout_ms=10)
    with pytest.raises(InvalidNameError):
        Consumer("t", "bad group", url)
    with pytest.raises(InvalidNameError):
        Consumer(["ok", "bad/topic"], "g", url)
    with pytest.raises(ConfigError, match="at least one topic"):
        Consumer([], "g", url)
    with pytest.raises(ConfigError, match="auto_offset_reset"):
        Consumer("t", "g", url, auto_offset_reset="beginning")
    setup_topic(url, partitions=1)
    with Consumer("t", "g", url) as c:
        with pytest.raises(ConfigError, match="timeout_ms"):
            c.poll(timeout_ms=-1)
        with pytest.raises(ConfigError, match="max_records"):
            c.poll(max_records=0)
    c.close()
    with pytest.raises(ConfigError, match="closed"):
        c.poll()


def test_pending_records_trimmed_by_retention_are_skipped(url):
    setup_topic(url, partitions=1, records=10)
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
    assert len(drain([c], 10, commit=False)[0]) == 10
    c.close()
    r = redis.Redis.from_url(url)
    r.xtrim(keys.stream("t", 0), maxlen=3, approximate=False)  # 7 pending records are gone from the stream
    r.close()
    with Consumer("t", "g", url, **FAST) as c2:
        got = drain([c2], 3)[0]
        assert [m.value.split(b":")[1] for m in got] == [b"7", b"8", b"9"]
        c2.commit()
    r = redis.Redis.from_url(url)
    assert r.xpending(keys.stream("t", 0), "g")["pending"] == 0
    r.close()


def test_asynchronous_commit_rides_with_the_next_poll_and_is_flushed_on_close(url):
    setup_topic(url, partitions=2, records=40)
    r = redis.Redis.from_url(url)

    def pending():
        return sum(r.xpending(keys.stream("t", p), "g")["pending"] for p in range(2))

    c = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
    got = drain([c], 20, commit=False)[0]
    c.commit(asynchronous=True)
    assert pending() == len(got)  # nothing sent yet
    c.poll(timeout_ms=50)  # the next read carries the acknowledgements
    assert pending() <= 40 - len(got)
    rest = drain([c], 40 - len(got), commit=False)[0]
    c.commit(asynchronous=True)
    c.close()  # flushed on close
    assert pending() == 0 and len(got) + len(rest) == 40
    with Consumer("t", "g", url, **FAST) as c2:
        assert drain([c2], 1, timeout=0.5, commit=False)[0] == []
    r.close()


def test_poll_never_returns_more_than_max_records(url):
    setup_topic(url, partitions=8, records=80, keys_=40)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **FAST) as c:
        wait_until(lambda: c.poll(timeout_ms=10, max_records=1) or len(c.assignment()) == 8, timeout=10)
        c.seek_to_beginning()
        sizes = []
        total = 0
        while total < 80:
            batch = c.poll(timeout_ms=200, max_records=3)
            assert batch, "records are left"
            sizes.append(len(batch))
            total += len(batch)
            c.commit()
        assert max(sizes) <= 3 and total == 80


def test_stale_member_never_takes_a_partition_from_a_newer_generation(url):
    setup_topic(url, partitions=2)
    a = Consumer("t", "g", url, **FAST)
    c = Consumer("t", "g", url, **FAST)
    try:
        wait_until(lambda: settle([a, c], 2) or (len(a.assignment()) == 1 and len(c.assignment()) == 1), timeout=10)
        (tp,) = c.assignment()
        r = redis.Redis.from_url(url)
        c_token = r.hget(keys.owners(tp.topic, tp.partition), "g").decode()
        # a as it would be while still following the previous generation, without c in it.
        a._assignment_gen = str(int(a._assignment_gen) - 1)
        a._assignment_members = {a.member_id}
        a._to_claim = {tp}
        a._holders[tp] = c_token
        a._next_claim = 0.0

        a._claim()
        assert r.hget(keys.owners(tp.topic, tp.partition), "g").decode() == c_token
        assert tp not in a.assignment()
        r.close()
    finally:
        a.close()
        c.close()


def test_partition_taken_by_mistake_is_won_back(url):
    setup_topic(url, partitions=2)
    opts = {"heartbeat_interval_ms": 50, "session_timeout_ms": 1000}
    a = Consumer("t", "g", url, **opts)
    c = Consumer("t", "g", url, **opts)
    try:
        wait_until(lambda: settle([a, c], 2) or (len(a.assignment()) == 1 and len(c.assignment()) == 1), timeout=10)
        (tp,) = c.assignment()
        r = redis.Redis.from_url(url)
        # A live member holds c's partition without knowing it (what a stale claim used to do).
        r.hset(keys.owners(tp.topic, tp.partition), "g", f"{a.member_id}|{c._assignment_gen}|stray")

        def back():
            settle([a, c], 1)
            return tp in c.assignment()

        wait_until(lambda: not back(), timeout=10, what="c notices it was fenced")
        wait_until(back, timeout=10, what="c wins its partition back")
        produce(url, "t", 40, keys_=40)
        got = drain([a, c], 40)
        assert len(got[0]) + len(got[1]) == 40
        r.close()
    finally:
        a.close()
        c.close()
