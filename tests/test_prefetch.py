"""Prefetch: after a non-empty poll the consumer's next fetch runs while the application works.

What it read waits in the consumer until a poll hands it out; on the server the group's read
position is past them, but its committed offset is not. These tests pin what that must never
change: order within a partition, no record lost or handed out twice by one member,
pause/seek/fail semantics, the next owner getting whatever was prefetched but not handed out, and
delivery counts that count only what the application was handed.
"""

from __future__ import annotations

import asyncio
import time

import redis

from facade import Admin, Consumer, Producer, TopicPartition, aio, keys

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000, "auto_offset_reset": "earliest", "enable_auto_commit": False}
TP = TopicPartition("t", 0)


def setup(url: str, partitions: int = 1, n: int = 60) -> list[str]:
    with Admin(url) as a:
        a.create_topic("t", partitions)
    with Producer(url) as p:
        for i in range(n):
            p.send("t", f"{i}", partition=i % partitions)
    return [str(i) for i in range(n)]


def take(c: Consumer, n: int, per_poll: int, timeout: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += c.poll(timeout_ms=50, max_records=min(per_poll, n - len(got)))
    return got


def values(messages) -> list[str]:
    return [m.value.decode() for m in messages]


def value_of(entry) -> bytes:
    """The value field of a raw stream entry [id, [field, value, ...]]."""
    flat = entry[1]
    return dict(zip(flat[::2], flat[1::2]))[b"value"]


def read_position(r: redis.Redis, partition: int = 0) -> int:
    """The group's read position on the broker (entries read by its stream group)."""
    return int(r.xinfo_groups(keys.stream("t", partition))[0]["entries-read"])


def committed(r: redis.Redis, partition: int = 0) -> int | None:
    raw = r.hget(keys.committed("t", partition), "g")
    return None if raw is None else int(raw.split()[0])


def test_prefetched_records_not_handed_out_go_to_the_next_owner_uncounted(url):
    expected = setup(url, n=60)
    r = redis.Redis.from_url(url)
    try:
        c1 = Consumer("t", "g", url, **FAST)
        first = take(c1, 10, per_poll=10)
        c1.commit()
        time.sleep(0.2)
        # The prefetch read past what poll handed out; the committed offset is what was handed.
        assert read_position(r) > 10 and committed(r) == 10
        c1.poll(timeout_ms=0, max_records=5)  # 5 more handed out, not committed; then a crash
        c1._membership.stop()  # (its heartbeat stops: the session ends without a close)
        c1._conn.close()
        with Consumer("t", "g", url, **{**FAST, "session_timeout_ms": 3000}) as c2:
            rest = take(c2, 50, per_poll=7, timeout=15)
            c2.commit()
        assert values(first) + values(rest) == expected
        # Only the 5 the application was handed count a second delivery; prefetched ones do not.
        assert [m.delivery_count for m in rest[:5]] == [2] * 5 and {m.delivery_count for m in rest[5:]} == {1}
        assert committed(r) == 60
    finally:
        r.close()


def test_pause_keeps_prefetched_records_until_resume(url):
    setup(url, partitions=2, n=80)
    with Consumer("t", "g", url, **FAST) as c:
        got = take(c, 10, per_poll=10)
        tp0 = TopicPartition("t", 0)
        c.pause([tp0])
        while_paused = take(c, 100, per_poll=10, timeout=1.0)
        assert while_paused and all(m.partition == 1 for m in while_paused)
        c.resume([tp0])
        after = take(c, 80 - len(got) - len(while_paused), per_poll=10)
    all_got = got + while_paused + after
    for p in (0, 1):
        mine = [int(v) for v in values(m for m in all_got if m.partition == p)]
        assert mine == list(range(p, 80, 2))  # each once, in partition order


def test_seek_while_a_prefetch_is_in_flight_starts_exactly_there(url):
    setup(url, n=50)
    with Consumer("t", "g", url, **FAST) as c:
        got = take(c, 10, per_poll=10)
        c.seek(TP, got[5].offset)
        assert c.position(TP) == 5
        again = take(c, 45, per_poll=10)
    assert values(again) == [str(i) for i in range(5, 50)]


def test_fail_redelivers_from_the_failed_record_and_counts_only_it(url):
    setup(url, n=40)
    r = redis.Redis.from_url(url)
    try:
        with Consumer("t", "g", url, **FAST) as c:
            got = take(c, 10, per_poll=10)
            c.fail(got[3], "boom")
            c.commit()  # commits 0..2 only
            assert committed(r) == 3
            again = take(c, 37, per_poll=10)
            c.commit()
        assert values(again) == [str(i) for i in range(3, 40)]
        # Only the failed record counts a second delivery: the application skipped the rest of
        # that batch, it did not process them.
        assert [m.delivery_count for m in again[:7]] == [2, 1, 1, 1, 1, 1, 1]
    finally:
        r.close()


def test_async_commits_riding_on_prefetches_are_all_in_after_a_sync_commit(url):
    setup(url, n=200)
    r = redis.Redis.from_url(url)
    try:
        with Consumer("t", "g", url, **FAST) as c:
            handed = []
            for _ in range(8):
                handed += take(c, 20, per_poll=20)
                c.commit(asynchronous=True)
            c.commit()
            assert len(handed) == 160 and committed(r) == 160
            assert read_position(r) > 160  # the next prefetch read ahead; it is not committed
    finally:
        r.close()


def test_a_reset_back_delivers_each_record_once(url):
    expected = setup(url, n=30)
    with Consumer("t", "g", url, **FAST) as c1:
        take(c1, 10, per_poll=10)  # not committed
    with Admin(url) as a:
        a.reset_offsets("g", "t", to_earliest=True, execute=True)
    with Consumer("t", "g", url, **FAST) as c2:
        got = take(c2, 40, per_poll=8, timeout=2.0)  # asks for more than there is
    assert values(got) == expected


def test_asyncio_consumer_prefetches_the_same_way(url):
    expected = setup(url, n=60)

    async def main() -> tuple[list, list]:
        async with aio.Consumer("t", "g", url, **FAST) as c1:
            first: list = []
            while len(first) < 10:
                first += await c1.poll(timeout_ms=50, max_records=10 - len(first))
            await c1.commit()
        async with aio.Consumer("t", "g", url, **FAST) as c2:
            rest: list = []
            deadline = time.monotonic() + 10
            while len(rest) < 50 and time.monotonic() < deadline:
                rest += await c2.poll(timeout_ms=50, max_records=7)
                await c2.commit(asynchronous=True)
            await c2.commit()
        return first, rest

    first, rest = asyncio.run(main())
    assert values(first) + values(rest) == expected


def test_guarded_reads_happen_only_while_the_member_owns_the_partition(url):
    # New records are read by XREADGROUP inside MULTI/EXEC, WATCHing the owner key, instead of
    # by the fetch script: an owner change between two reads aborts the read (nothing is
    # delivered or committed), exactly what the script's FENCED check guarantees.
    from facade._sync.client import Connection
    from facade._sync.guarded import GuardedReader

    setup(url, n=10)
    stream, own, off = keys.stream("t", 0), keys.owners("t", 0), keys.committed("t", 0)
    r = redis.Redis.from_url(url)
    conn = Connection(url)
    reader = GuardedReader(conn)
    try:
        r.xgroup_create(stream, "g", id="0")
        r.hset(own, "g", "me|a")
        parts = [(stream, own, "me|a")]
        (entries, last), = reader.read("g", parts, [], 100, "test")
        assert [value_of(e) for e in entries] == [b"%d" % i for i in range(10)] and last == entries[-1][0].decode()
        assert r.xpending(stream, "g")["pending"] == 0  # NOACK: no pending list
        with Producer(url) as p:
            p.send("t", "late", partition=0)
        r.hset(own, "g", "other|b")  # another member took the partition
        assert reader.read("g", parts, [("HSET", off, "g", 10)], 100, "test") is None
        assert r.hget(off, "g") is None and read_position(r) == 10  # nothing read, nothing committed
        assert reader.read("g", parts, [], 100, "test") is None  # still not ours: not even tried
        r.hset(own, "g", "me|a")
        (entries2, _), = reader.read("g", parts, [("HSET", off, "g", 10)], 100, "test")
        assert [value_of(e) for e in entries2] == [b"late"] and r.hget(off, "g") == b"10"
        # A part without a stream is only watched (its writes ride along), not read.
        (nothing, _), = reader.read("g", [(None, own, "me|a")], [("HSET", off, "g", 11)], 100, "test")
        assert nothing == [] and r.hget(off, "g") == b"11"
        stats = r.info("commandstats")
        assert stats["cmdstat_exec"]["calls"] >= 3 and stats["cmdstat_watch"]["calls"] >= 3
    finally:
        reader.close()
        conn.close()
        r.close()


def test_consumers_read_new_records_through_the_guarded_reader(url):
    setup(url, partitions=2, n=40)
    r = redis.Redis.from_url(url)
    try:
        r.config_resetstat()
        with Consumer("t", "g", url, **FAST) as c:
            got = take(c, 40, per_poll=10)
            c.commit()
        stats = r.info("commandstats")
        assert len(got) == 40
        assert stats["cmdstat_exec"]["calls"] >= 1  # new records came through MULTI/EXEC
    finally:
        r.close()


def test_no_prefetch_with_max_deliveries_so_only_handed_out_records_count(url):
    setup(url, n=60)
    r = redis.Redis.from_url(url)
    try:
        with Consumer("t", "g", url, max_deliveries=2, **FAST) as c:
            take(c, 10, per_poll=10)
            time.sleep(0.2)  # a prefetch, were there one, would have read by now
            assert read_position(r) == 10
        with Consumer("t", "g", url, max_deliveries=2, **FAST) as c2:
            again = take(c2, 60, per_poll=10)
            c2.commit()
        assert [m.delivery_count for m in again[:10]] == [2] * 10 and {m.delivery_count for m in again[10:]} == {1}
        assert values(again) == [str(i) for i in range(60)]
    finally:
        r.close()
