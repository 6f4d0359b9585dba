"""Offsets (Kafka's: dense integers per partition): seek, committed, position, pause/resume,
offsets_for_times, list_offsets, delete_records, describe, reset and delete."""

from __future__ import annotations

import time

import pytest
from conftest import wait_until
from hypothesis import given
from hypothesis import strategies as st

from facade import Admin, ConfigError, Consumer, GroupError, Producer, TopicPartition, offsets

FAST = {"heartbeat_interval_ms": 50, "auto_offset_reset": "earliest", "enable_auto_commit": False}
TP = TopicPartition("t", 0)


def fill(url, n=20, partitions=1):
    with Admin(url) as a:
        a.create_topic("t", partitions)
    with Producer(url) as p:
        return [p.send("t", str(i), partition=i % partitions) for i in range(n)]


def take(c, n, timeout=10):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += c.poll(timeout_ms=50, max_records=n - len(got))
    return got


def test_seek_committed_position(url):
    futs = fill(url)
    assert [f.result().offset for f in futs] == list(range(20))
    with Consumer("t", "g", url, **FAST) as c:
        assert [m.value for m in take(c, 10)] == [str(i).encode() for i in range(10)]
        assert c.position(TP) == 10
        assert c.committed() == {TP: None}
        c.commit()
        assert c.committed() == {TP: 10}
        c.seek(TP, 3)
        assert [m.value for m in take(c, 3)] == [b"3", b"4", b"5"]
        assert c.committed() == {TP: 10}  # a seek commits nothing
        c.seek(TP, 15)  # forward: 6..14 are skipped
        assert [m.value for m in take(c, 5)] == [b"15", b"16", b"17", b"18", b"19"]
        c.commit()
        c.seek_to_beginning()
        assert take(c, 1)[0].value == b"0"
        c.seek_to_end()
        assert c.poll(timeout_ms=100) == [] and c.position(TP) == 20
        with Producer(url) as p:
            p.send_and_wait("t", b"new")
        assert [(m.value, m.offset) for m in take(c, 1)] == [(b"new", 20)]
        with pytest.raises(ConfigError, match="integer"):
            c.seek(TP, "yesterday")
        with pytest.raises(ConfigError, match="not assigned"):
            c.seek(TopicPartition("t", 5), 0)


@pytest.mark.parametrize("policy,lands_on", [("earliest", 0), ("latest", 20)])
def test_a_seek_past_the_end_follows_auto_offset_reset_and_never_stalls(url, policy, lands_on):
    fill(url)
    with Consumer("t", "g", url, **{**FAST, "auto_offset_reset": policy}) as c:
        wait_until(lambda: c.poll(timeout_ms=20) or c.assignment(), timeout=10)
        c.seek(TP, 10_000)
        assert c.position(TP) == lands_on
        with Producer(url) as p:
            p.send_and_wait("t", b"after")
        got = take(c, 21 - lands_on)
        assert got[-1].value == b"after" and got[0].offset == lands_on


def test_offsets_for_times_and_list_offsets(url):
    with Admin(url) as a:
        a.create_topic("t", 1)
    with Producer(url) as p:
        first = p.send_and_wait("t", b"a")
        time.sleep(0.02)
        middle = int(time.time() * 1000)
        time.sleep(0.02)
        later = p.send_and_wait("t", b"b")
    with Consumer("t", "g", url, **FAST) as c:
        found = c.offsets_for_times({TP: middle})
        # offsets_for_times indexes the append time (the entry ID), which is at or after "middle"
        assert found[TP].offset == 1 and middle <= found[TP].timestamp_ms >= later.timestamp_ms
        assert c.offsets_for_times({TP: 0})[TP].offset == first.offset == 0
        appended = found[TP].timestamp_ms
        assert c.offsets_for_times({TP: appended + 60_000})[TP] is None
        with pytest.raises(ConfigError, match="milliseconds"):
            c.offsets_for_times({TP: "now"})
        with pytest.raises(ConfigError, match="year 9999"):
            c.offsets_for_times({TP: 10**18})
    with Admin(url) as a:
        assert a.list_offsets([TP], "earliest") == {TP: 0}
        assert a.list_offsets([TP], "latest") == {TP: 2}
        assert a.list_offsets(TP, middle) == {TP: 1}
        assert a.list_offsets(TP, appended + 1) == {TP: None}


def test_delete_records_moves_the_log_start_and_keeps_offsets(url):
    fill(url, 30)
    with Admin(url) as a:
        assert a.delete_records({TP: 12}) == {TP: 12}
        assert a.list_offsets([TP], "earliest") == {TP: 12} and a.list_offsets([TP], "latest") == {TP: 30}
        d = a.describe_topic("t").partitions[0]
        assert (d.log_start_offset, d.log_end_offset, d.length) == (12, 30, 18)
    with Consumer("t", "g", url, **FAST) as c:
        got = take(c, 18)
        assert [m.offset for m in got] == list(range(12, 30))
    with Admin(url) as a:
        assert a.delete_records({TP: -1}) == {TP: 30}
    with Producer(url) as p:
        assert p.send_and_wait("t", b"next").offset == 30  # the high watermark never goes back


def test_pause_and_resume(url):
    fill(url, 20, partitions=2)
    with Consumer("t", "g", url, **FAST) as c:
        wait_until(lambda: c.poll(timeout_ms=10, max_records=1) or len(c.assignment()) == 2, timeout=10)
        c.seek_to_beginning()
        c.pause([TopicPartition("t", 1)])
        assert c.paused() == {TopicPartition("t", 1)}
        got = take(c, 20, timeout=1)
        assert {m.partition for m in got} == {0} and len(got) == 10
        c.resume([TopicPartition("t", 1)])
        assert {m.partition for m in take(c, 10)} == {1}


def test_describe_group_and_delete(url):
    fill(url, 30, partitions=3)
    with Consumer("t", "g", url, **FAST) as c:
        take(c, 30)
        c.commit()
        with Admin(url) as a:
            d = a.describe_group("g")
            assert [m.member_id for m in d.members] == [c.member_id]
            assert set(d.members[0].partitions) == {TopicPartition("t", p) for p in range(3)}
            assert [(p.partition, p.owner, p.lag, p.committed, p.log_end_offset) for p in d.partitions] == [
                (p, c.member_id, 0, 10, 10) for p in range(3)
            ]
            with pytest.raises(GroupError, match="live member"):
                a.delete_group("g")
            with pytest.raises(GroupError, match="live member"):
                a.reset_offsets("g", "t", to_earliest=True, execute=True)
    with Producer(url) as p:
        for i in range(5):
            p.send("t", b"x", partition=0)
    with Admin(url) as a:
        d = a.describe_group("g")
        assert d.members == () and d.lag == 5  # exact: log end minus committed
        assert [p.lag for p in d.partitions] == [5, 0, 0]
        plan = a.reset_offsets("g", "t", shift_by=-2)
        assert [(r.current, r.target) for r in plan] == [(10, 8)] * 3
        a.delete_group("g")
        assert "g" not in a.list_groups()
        with pytest.raises(GroupError, match="does not exist"):
            a.describe_group("g")
        with pytest.raises(ConfigError, match="exactly one"):
            a.reset_offsets("g", "t", to_earliest=True, to_latest=True)


def test_shift_by_replays_exactly_n(url):
    fill(url, 10)
    with Consumer("t", "g", url, **FAST) as c:
        take(c, 10)
        c.commit()
    with Admin(url) as a:
        a.reset_offsets("g", "t", shift_by=-3, execute=True)
    with Consumer("t", "g", url, **FAST) as c:
        assert [m.value for m in take(c, 3)] == [b"7", b"8", b"9"]
        c.commit()
    with Admin(url) as a:
        a.reset_offsets("g", "t", to_earliest=True, execute=True)
        a.reset_offsets("g", "t", shift_by=4, execute=True)
    with Consumer("t", "g", url, **FAST) as c:
        assert take(c, 1)[0].value == b"4"


@given(st.integers(0, 2**45), st.integers(0, offsets.MAX_OFFSET))
def test_an_offset_and_its_append_time_are_the_entry_id(ms, offset):
    entry = offsets.entry_id(ms, offset)
    assert offsets.split_id(entry) == (ms, offset) == offsets.split_id(entry.encode())
    assert offsets.offset_of(entry) == offset and offsets.next_after(entry) == offset + 1
    assert offsets.parse(str(offset)) == offset


@pytest.mark.parametrize("bad", ["", "-1", "1-2", "abc", "1.5", str(2**60)])
def test_bad_offsets_typed_by_people(bad):
    with pytest.raises(ConfigError):
        offsets.parse(bad)


@pytest.mark.parametrize(
    "text,ms", [("PT15M", 900_000), ("P1DT2H", 93_600_000), ("PT0.5S", 500), ("pt1h30m", 5_400_000)]
)
def test_durations(text, ms):
    assert offsets.parse_duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["", "P", "PT", "15M", "P1H", "PT-1M", "soon"])
def test_bad_durations(bad):
    with pytest.raises(ConfigError, match="ISO 8601"):
        offsets.parse_duration_ms(bad)


def test_datetimes():
    assert offsets.parse_datetime_ms("1970-01-01T00:00:01Z") == 1000
    assert offsets.parse_datetime_ms("1970-01-01T01:00:01+01:00") == 1000
    assert offsets.parse_datetime_ms("1970-01-01T00:00:01") == 1000  # UTC when no offset
    with pytest.raises(ConfigError, match="ISO 8601"):
        offsets.parse_datetime_ms("last tuesday")


def test_record_timestamps_follow_the_topics_timestamp_type(url):
    from click.testing import CliRunner
    from facade.cli import main

    result = CliRunner().invoke(main, ["--url", url, "topics", "create", "appended", "-p", "1",
                                       "--timestamp-type", "LogAppendTime"])  # fmt: skip
    assert result.exit_code == 0, result.output
    described = CliRunner().invoke(main, ["--url", url, "topics", "describe", "appended"])
    assert "Timestamps: LogAppendTime" in described.output
    with Admin(url) as a:
        a.create_topic("created", 1)
    given_ms = 1_000_000_000_000  # 2001: a producer's own time, kept only by CreateTime topics
    with Producer(url) as p:
        kept = p.send("created", "x", timestamp_ms=given_ms).get(timeout=5)
        stamped = p.send("appended", "x", timestamp_ms=given_ms).get(timeout=5)
        now = p.send("created", "y").get(timeout=5)
    assert kept.timestamp_ms == given_ms
    assert stamped.timestamp_ms > given_ms + 10**11  # the broker's append time
    assert abs(now.timestamp_ms - time.time() * 1000) < 60_000  # send()'s time by default
    with Consumer(["created", "appended"], "g", url, **FAST) as c:
        got = {(m.topic, m.offset): m for m in take(c, 3)}
    assert (got["created", 0].timestamp_ms, got["created", 0].timestamp_type) == (given_ms, "CreateTime")
    assert got["created", 1].timestamp_ms == now.timestamp_ms
    appended = got["appended", 0]
    assert (appended.timestamp_ms, appended.timestamp_type) == (stamped.timestamp_ms, "LogAppendTime")
    # offsets_for_times indexes the append time on both kinds
    with Admin(url) as a:
        assert a.list_offsets(TopicPartition("created", 0), given_ms)[TopicPartition("created", 0)] == 0


@pytest.mark.parametrize("rewrite", [False, True], ids=["aof-log", "aof-rewritten"])
def test_the_next_offset_survives_a_crash_and_restart_from_the_aof(server_factory, rewrite):
    import redis as redis_py

    from facade import keys

    server = server_factory("--appendonly", "yes", "--appendfsync", "always")
    tp = TopicPartition("t", 0)
    with Admin(server.url) as a:
        a.create_topic("t", 1)
    with Producer(server.url) as p:
        for i in range(10):
            p.send("t", str(i)).get(timeout=5)
    with Admin(server.url) as a:
        assert a.delete_records({tp: -1}) == {tp: 10}  # trimmed empty
    with Producer(server.url) as p:
        assert [p.send("t", s).get(timeout=5).offset for s in ("a", "b")] == [10, 11]
    with redis_py.Redis.from_url(server.url) as r:
        r.xdel(keys.stream("t", 0), r.xrevrange(keys.stream("t", 0), count=1)[0][0])  # the newest record
        if rewrite:
            r.bgrewriteaof()
            wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, timeout=10)
    server.kill()
    server.start()
    with Admin(server.url) as a:
        assert a.list_offsets(tp, "earliest") == {tp: 10}
        assert a.list_offsets(tp, "latest") == {tp: 12}  # offset 11 was deleted, never reused
    with Producer(server.url) as p:
        assert p.send("t", "c").get(timeout=5).offset == 12
    with Consumer("t", "g", server.url, **FAST) as c:
        assert [(m.offset, m.value) for m in take(c, 2)] == [(10, b"a"), (12, b"c")]


def test_offsets_are_dense_and_gap_free_under_concurrent_producers(url):
    import threading

    with Admin(url) as a:
        a.create_topic("t", 2)
    got: list[list[tuple[int, int]]] = [[] for _ in range(4)]

    def produce(i: int) -> None:
        with Producer(url, linger_ms=1) as p:
            futs = [p.send("t", f"{i}:{n}", partition=n % 2) for n in range(500)]
            p.flush()
            got[i] = [(f.result().partition, f.result().offset) for f in futs]

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    acked = sorted(x for each in got for x in each)
    assert acked == sorted((p, o) for p in range(2) for o in range(1000))  # each offset once, no gap
    # Each producer's records keep their order within a partition.
    for each in got:
        for p in range(2):
            mine = [o for q, o in each if q == p]
            assert mine == sorted(mine)
    with Consumer("t", "g", url, **FAST) as c:
        read = take(c, 2000, timeout=30)
    assert sorted((m.partition, m.offset) for m in read) == acked
