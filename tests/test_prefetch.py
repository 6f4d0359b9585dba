"""Prefetch: after a non-empty poll the consumer's next fetch runs while the application works.

What it read waits in the consumer until a poll hands it out; on the server those records are
pending (delivered to the group, not acknowledged). These tests pin what that must never change:
order within a partition, no record lost or handed out twice by one member, pause/seek/fail
semantics, and the next owner getting whatever was prefetched but not handed out.
"""

from __future__ import annotations

import asyncio
import time

import redis

from facade import Admin, Consumer, Producer, TopicPartition, aio, keys

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000, "auto_offset_reset": "earliest"}
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


def pending_ids(r: redis.Redis, partition: int = 0) -> set[str]:
    rows = r.xpending_range(keys.stream("t", partition), "g", "-", "+", 10_000)
    return {row["message_id"].decode() for row in rows}


def test_prefetched_records_not_handed_out_go_to_the_next_owner(url):
    expected = setup(url, n=60)
    r = redis.Redis.from_url(url)
    try:
        with Consumer("t", "g", url, **FAST) as c1:
            first = take(c1, 10, per_poll=10)
            c1.commit()
            handed = {m.offset for m in first}
            # The prefetch read past what poll handed out: those records are pending, not acked.
            prefetched = pending_ids(r)
            assert prefetched and not prefetched & handed
        with Consumer("t", "g", url, **FAST) as c2:
            rest = take(c2, 50, per_poll=7)
            c2.commit()
        assert values(first) + values(rest) == expected
        assert pending_ids(r) == set()
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
        again = take(c, 45, per_poll=10)
    assert values(again) == [str(i) for i in range(5, 50)]


def test_fail_redelivers_from_the_failed_record_prefetched_ones_included(url):
    setup(url, n=40)
    with Consumer("t", "g", url, **FAST) as c:
        got = take(c, 10, per_poll=10)
        c.fail(got[3], "boom")
        c.commit()  # commits 0..2 only
        again = take(c, 37, per_poll=10)
        c.commit()
    assert values(again) == [str(i) for i in range(3, 40)]
    assert [m.delivery_count for m in again[:7]] == [2] * 7  # the ones the app saw before


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
            offsets = {m.offset for m in handed}
            still = pending_ids(r)
            assert len(handed) == 160 and not offsets & still
            assert still  # the next prefetch's records: delivered to the group, not acked
    finally:
        r.close()


def test_a_reset_back_over_pending_records_delivers_each_once(url):
    # Records left pending after the position (a crashed reader, or a prefetch) come again through
    # new reads only, not also through the re-read of pending records.
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
    # delivered or acknowledged), exactly what the script's FENCED check guarantees.
    from facade._sync.client import Connection, GuardedReader

    setup(url, n=10)
    stream, own = keys.stream("t", 0), keys.owners("t", 0)
    r = redis.Redis.from_url(url)
    conn = Connection(url)
    reader = GuardedReader(conn)
    try:
        r.xgroup_create(stream, "g", id="0")
        r.hset(own, "g", "me|1|a")
        parts = [(stream, own, "me|1|a", [])]
        (entries, last), = reader.read("g", parts, 100, "test")
        assert [value_of(e) for e in entries] == [b"%d" % i for i in range(10)] and last == entries[-1][0].decode()
        assert r.xpending(stream, "g")["pending"] == 10
        with Producer(url) as p:
            p.send("t", "late", partition=0)
        r.hset(own, "g", "other|2|b")  # another member took the partition
        assert reader.read("g", [(stream, own, "me|1|a", [entries[0][0]])], 100, "test") is None
        assert r.xpending(stream, "g")["pending"] == 10  # nothing read, nothing acked
        assert reader.read("g", parts, 100, "test") is None  # still not ours: not even tried
        r.hset(own, "g", "me|1|a")
        (entries2, _), = reader.read("g", [(stream, own, "me|1|a", [e[0] for e in entries])], 100, "test")
        assert [value_of(e) for e in entries2] == [b"late"]
        assert r.xpending(stream, "g")["pending"] == 1  # the 10 acknowledged with the read
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
            first = take(c, 10, per_poll=10)
            time.sleep(0.2)  # a prefetch, were there one, would have read by now
            assert pending_ids(r) == {m.offset for m in first}
        with Consumer("t", "g", url, max_deliveries=2, **FAST) as c2:
            again = take(c2, 60, per_poll=10)
            c2.commit()
        assert [m.delivery_count for m in again[:10]] == [2] * 10 and {m.delivery_count for m in again[10:]} == {1}
        assert values(again) == [str(i) for i in range(60)]
    finally:
        r.close()
