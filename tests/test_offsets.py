"""Offsets: seek, committed, position, pause/resume, offsets_for_times, describe and delete."""

from __future__ import annotations

import time

import pytest
from conftest import wait_until
from hypothesis import given
from hypothesis import strategies as st

from facade import Admin, ConfigError, Consumer, GroupError, Producer, TopicPartition, offsets

FAST = {"heartbeat_interval_ms": 50, "auto_offset_reset": "earliest"}
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
    offs = [f.result().offset for f in futs]
    with Consumer("t", "g", url, **FAST) as c:
        assert [m.value for m in take(c, 10)] == [str(i).encode() for i in range(10)]
        assert c.position(TP) == offs[9]
        assert c.committed() == {TP: None}
        c.commit()
        assert c.committed() == {TP: offs[9]}
        c.seek(TP, offs[3])
        assert [m.value for m in take(c, 3)] == [b"3", b"4", b"5"]
        c.seek(TP, offs[15])  # forward: 6..14 are skipped
        assert [m.value for m in take(c, 5)] == [b"15", b"16", b"17", b"18", b"19"]
        c.commit()
        c.seek_to_beginning()
        assert take(c, 1)[0].value == b"0"
        c.seek_to_end()
        assert c.poll(timeout_ms=100) == []
        with Producer(url) as p:
            p.send_and_wait("t", b"new")
        assert [m.value for m in take(c, 1)] == [b"new"]
        with pytest.raises(ConfigError, match="bad offset"):
            c.seek(TP, "yesterday")
        with pytest.raises(ConfigError, match="not assigned"):
            c.seek(TopicPartition("t", 5), offs[0])


def test_seek_acknowledges_skipped_pending_records(url):
    futs = fill(url, 10)
    offs = [f.result().offset for f in futs]
    with Consumer("t", "g", url, **FAST) as c:
        take(c, 10)  # all pending, none committed
        c.seek(TP, offs[8])
        with Admin(url) as a:
            assert a.describe_group("g").partitions[0].pending == 2  # 0..7 count as consumed
        # Delivered again through the group's new position: Redis restarts their count at 1.
        assert [(m.value, m.delivery_count) for m in take(c, 2)] == [(b"8", 1), (b"9", 1)]
        c.commit()
    with Admin(url) as a:
        assert a.describe_group("g").partitions[0].pending == 0
    with Consumer("t", "g", url, **FAST) as c:
        assert c.poll(timeout_ms=200) == []


def test_offsets_for_times(url):
    with Admin(url) as a:
        a.create_topic("t", 1)
    with Producer(url) as p:
        first = p.send_and_wait("t", b"a")
        time.sleep(0.02)
        middle = int(time.time() * 1000)
        time.sleep(0.02)
        later = p.send_and_wait("t", b"b")
    with Consumer("t", "g", url, **FAST) as c:
        found = c.offsets_for_times({TP: first.timestamp_ms, TopicPartition("t", 0): middle})
        assert found[TP] == later.offset
        assert c.offsets_for_times({TP: 0})[TP] == first.offset
        assert c.offsets_for_times({TP: later.timestamp_ms + 60_000})[TP] is None
        with pytest.raises(ConfigError, match="milliseconds"):
            c.offsets_for_times({TP: "now"})


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
            assert [(p.partition, p.owner, p.lag, p.pending) for p in d.partitions] == [
                (p, c.member_id, 0, 0) for p in range(3)
            ]
            assert all(p.committed == p.last_delivered == p.log_end for p in d.partitions)
            with pytest.raises(GroupError, match="live member"):
                a.delete_group("g")
            with pytest.raises(GroupError, match="live member"):
                a.reset_offsets("g", "t", to_earliest=True, execute=True)
    with Producer(url) as p:
        for i in range(5):
            p.send("t", b"x", partition=0)
    with Admin(url) as a:
        d = a.describe_group("g")
        assert d.members == () and d.lag == 5
        plan = a.reset_offsets("g", "t", shift_by=-2)
        assert len(plan) == 3
        assert all(offsets.parse(r.target) < offsets.parse(r.current) for r in plan)
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


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_before_is_the_previous_id(ms, seq):
    prev = offsets.before(f"{ms}-{seq}")
    pms, pseq = offsets.parse(prev)
    if (ms, seq) == (0, 0):
        assert prev == "0-0"
    else:
        assert (pms, pseq) < (ms, seq)
        assert pseq == seq - 1 if seq else (pms == ms - 1 and pseq == 2**64 - 1)


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
