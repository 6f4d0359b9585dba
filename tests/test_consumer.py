"""Consumer groups against a real server: ownership, rebalancing, Kafka's committed offsets, fencing."""

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
    OffsetAndMetadata,
    OffsetOutOfRangeError,
    Producer,
    TopicPartition,
    keys,
    scripts,
)

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}
MANUAL = {**FAST, "enable_auto_commit": False}


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


def committed_offsets(url, group, topic, partitions):
    with redis.Redis.from_url(url) as r:
        raw = [r.hget(keys.committed(topic, p), group) for p in range(partitions)]
    return [None if v is None else int(v.split()[0]) for v in raw]


def test_earliest_reads_everything_in_partition_order_with_dense_offsets(url):
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
    by_partition: dict[int, list[int]] = {}
    for m in got:
        by_partition.setdefault(m.partition, []).append(m.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # 0, 1, 2, ... with no gap


def test_latest_skips_what_was_there_before_the_group(url):
    setup_topic(url, records=50)
    with Consumer("t", "g", url, **FAST) as c:
        settle([c], 10)
        assert c.assignment() == {TopicPartition("t", p) for p in range(4)}
        produce(url, "t", 10, start=1000)
        got = drain([c], 10)[0]
    assert sorted(int(m.value.split(b":")[1]) for m in got) == list(range(1000, 1010))


def test_uncommitted_records_are_redelivered_from_the_committed_offset_in_order(url):
    setup_topic(url, partitions=2, records=40)
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL)
    first = drain([c], 40, commit=False)[0]
    assert len(first) == 40
    c.commit(offsets={TopicPartition("t", 0): 3})  # partition 0: the first 3 are done
    c.close()  # nothing else committed
    with Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL) as c2:
        again = drain([c2], 40 - 3)[0]
    for p, skip in ((0, 3), (1, 0)):
        before = [m.offset for m in first if m.partition == p]
        assert [m.offset for m in again if m.partition == p] == before[skip:]
    assert all(m.delivery_count == 2 for m in again)  # handed to the application once before
    with Consumer("t", "g", url, **MANUAL) as c3:
        settle([c3], 10)
        assert drain([c3], 1, timeout=0.5)[0] == []


def test_auto_commit_commits_at_poll_what_earlier_polls_returned(url):
    setup_topic(url, partitions=1, records=20)
    with Consumer("t", "g", url, auto_offset_reset="earliest", auto_commit_interval_ms=0, **FAST) as c:
        batch = []
        while not batch:
            batch = c.poll(timeout_ms=200, max_records=5)
        # nothing past what was handed out is committed before the application processed it
        assert committed_offsets(url, "g", "t", 1) in ([None], [0])
        c.poll(timeout_ms=50, max_records=5)  # the next poll commits the first batch (with its read)
        wait_until(lambda: (committed_offsets(url, "g", "t", 1)[0] or 0) >= 5, timeout=5)
    assert committed_offsets(url, "g", "t", 1) == [10]  # close commits what was handed out


def test_commit_is_cumulative_and_takes_kafka_offsets_with_metadata(url):
    setup_topic(url, partitions=2, records=20)
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL) as c:
        drain([c], 20, commit=False)
        c.commit(offsets={tp0: OffsetAndMetadata(2, "checkpoint-7"), tp1: 1})
        assert c.committed() == {tp0: 2, tp1: 1}
        with redis.Redis.from_url(url) as r:
            assert r.hget(keys.committed("t", 0), "g") == b"2 checkpoint-7"
        c.commit()
        assert c.committed() == {tp0: c.position(tp0), tp1: c.position(tp1)}
        with pytest.raises(CommitFailedError, match="not assigned"):
            c.commit(offsets={TopicPartition("t", 9): 1})
        with pytest.raises(ConfigError):
            c.commit(offsets={tp0: -1})


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
        with redis.Redis.from_url(url) as r:
            for c in members:
                for tp in c.assignment():
                    token = r.hget(keys.owners(tp.topic, tp.partition), "g").decode()
                    assert keys.token_member(token) == c.member_id
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
        on_assign=lambda parts: events.append(("assign", parts)), on_revoke=on_revoke, **MANUAL,
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
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL)
    try:
        got = drain([c], 10, commit=False)[0]
        assert len(got) == 10
        # A live session of another member took the partition over (as after this member's
        # session expired): it is in the group, so its token is not a dead one to take back.
        with redis.Redis.from_url(url) as r:
            s = scripts.Scripts(r)
            call = scripts.group_join("g", "someone-else", "99", {"topics": ["t"]}, 60_000, "", "facade")
            s.group_join(keys=call.keys, args=call.args)
            r.hset(keys.owners("t", 0), "g", "someone-else|99")
            with pytest.raises(CommitFailedError, match="no longer owns"):
                c.commit()
            produce(url, "t", 5, start=100)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert c.poll(timeout_ms=50) == []  # fenced: nothing read for it
            assert TopicPartition("t", 0) not in c.assignment()
            assert r.hget(keys.committed("t", 0), "g") is None  # nothing was committed
            assert r.hget(keys.owners("t", 0), "g") == b"someone-else|99"
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


def test_a_consumer_started_before_its_topic_waits_for_it(url):
    # Kafka's consumer has no partitions until the topic appears: start-up order must not matter.
    with Consumer("later", "g", url, auto_offset_reset="earliest", metadata_max_age_ms=100, **FAST) as c:
        assert c.poll(timeout_ms=300) == [] and c.assignment() == set()
        setup_topic(url, "later", partitions=2, records=6)
        got = drain([c], 6, timeout=10)[0]
    assert sorted(int(m.value.split(b":")[1]) for m in got) == list(range(6))


def test_bad_arguments(url):
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


def test_a_committed_offset_trimmed_by_retention_follows_auto_offset_reset(url):
    setup_topic(url, partitions=1, records=10)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL) as c:
        drain([c], 10, commit=False)
        c.commit(offsets={TopicPartition("t", 0): 2})
    with redis.Redis.from_url(url) as r:
        r.xtrim(keys.stream("t", 0), maxlen=3, approximate=False)  # offsets 2..6 are gone
    with Consumer("t", "g", url, auto_offset_reset="earliest", **FAST) as c2:
        got = drain([c2], 3)[0]
        assert [m.offset for m in got] == [7, 8, 9]
    produce(url, "t", 2, start=50)
    with redis.Redis.from_url(url) as r:
        r.hset(keys.committed("t", 0), "g2", 1)
    with Consumer("t", "g2", url, auto_offset_reset="latest", **FAST) as c3:
        settle([c3], 5)
        assert c3.position(TopicPartition("t", 0)) == 12  # out of range: latest
        produce(url, "t", 1, start=60)
        assert [m.offset for m in drain([c3], 1)[0]] == [12]
    with redis.Redis.from_url(url) as r:
        r.hset(keys.committed("t", 0), "g3", 1)
    with Consumer("t", "g3", url, auto_offset_reset="none", **FAST) as c4, pytest.raises(OffsetOutOfRangeError):
        for _ in range(50):
            c4.poll(timeout_ms=20)


def test_asynchronous_commits_ride_on_reads_and_a_lost_one_is_covered_by_the_next(url):
    setup_topic(url, partitions=2, records=40)
    c = Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL)
    got = drain([c], 20, commit=False)[0]
    c.commit(asynchronous=True)
    assert committed_offsets(url, "g", "t", 2) == [None, None]  # nothing sent yet
    # The read carrying it fails (the server closes the connection): the commit is not lost.
    with redis.Redis.from_url(url) as r:
        r.client_kill_filter(_type="normal", skipme=True)
    c.poll(timeout_ms=100)
    rest = drain([c], 40 - len(got), commit=False)[0]
    c.commit(asynchronous=True)
    c.close()  # flushed on close
    assert len(got) + len(rest) == 40
    assert sum(committed_offsets(url, "g", "t", 2)) == 40  # both partitions committed to their end
    with Consumer("t", "g", url, **MANUAL) as c2:
        assert drain([c2], 1, timeout=0.5, commit=False)[0] == []


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


def test_group_metadata_and_positions(url):
    setup_topic(url, partitions=1, records=5)
    with Consumer("t", "g", url, auto_offset_reset="earliest", **MANUAL) as c:
        drain([c], 5, commit=False)
        meta = c.group_metadata()
        assert (meta.group_id, meta.member_id, meta.group_instance_id) == ("g", c.member_id, None)
        assert meta.generation_id >= 1
        tp = TopicPartition("t", 0)
        assert c.position(tp) == 5 and c.committed() == {tp: None}
        assert c.beginning_offsets([tp]) == {tp: 0} and c.end_offsets([tp]) == {tp: 5}


def test_the_url_comes_first_as_in_producer_and_admin_and_the_old_orders_still_work(url):
    setup_topic(url, "t", 1)
    with Producer(url) as p:
        p.send("t", b"hello")
    forms = [
        lambda: Consumer(url, "t", "g1", auto_offset_reset="earliest", **FAST),
        lambda: Consumer(url, ["t"], group="g2", auto_offset_reset="earliest", **FAST),
        lambda: Consumer("t", "g3", url, auto_offset_reset="earliest", **FAST),
        lambda: Consumer(["t"], group="g4", url=url, auto_offset_reset="earliest", **FAST),
        lambda: Consumer(topics="t", group="g5", url=url, auto_offset_reset="earliest", **FAST),
    ]
    for make in forms:
        with make() as c:
            assert c.topics == ("t",) and c.group.startswith("g")
            got = []
            wait_until(lambda: got.extend(c.poll(timeout_ms=100)) or got, timeout=15)  # noqa: B023
            assert [m.value for m in got] == [b"hello"]
    with pytest.raises(TypeError, match="multiple values for argument 'group'"):
        Consumer("t", "g", url, group="g")
    with pytest.raises(TypeError, match=r"missing group: Consumer\(url, topics, group\)"):
        Consumer(url, "t")
    with pytest.raises(TypeError, match="at most 3 positional"):
        Consumer(url, "t", "g", "extra")


def test_none_first_means_the_embedded_broker(facade_home):
    with Consumer(None, "t", "g", **FAST) as c:
        assert (c.topics, c.group) == (("t",), "g")
    assert (facade_home / "server.pid").exists()
