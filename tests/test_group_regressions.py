"""The consumer-group failures an adversary found (issue #13), each reproduced as it was seen and
now held: slow handlers, orphaned partitions, stale claims, two processes of one static member,
lost asynchronous commits, resets of crashed groups, polls while the broker is down, and long
seeks of exactly-once consumers. Real servers, real processes where the fault needs one.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from conftest import wait_until, whole_lines

from facade import (
    Admin,
    BrokerError,
    CommitFailedError,
    Consumer,
    Producer,
    TopicPartition,
    keys,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MEMBER = str(Path(__file__).with_name("member.py"))
QUICK = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 100, "auto_offset_reset": "earliest"}


def produce(url, topic, n, start=0, nkeys=8):
    with Producer(url) as p:
        for i in range(start, start + n):
            p.send(topic, f"k{i % nkeys}:{i}", key=f"k{i % nkeys}")


def spawn(url, group, topic, out: Path, *extra) -> subprocess.Popen:
    with open(out.with_suffix(".err"), "wb") as err:
        return subprocess.Popen([sys.executable, MEMBER, url, group, topic, str(out), *extra],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip


def lines(out: Path, kind: str) -> list[list[str]]:
    return [ln.split(" ") for ln in whole_lines(out) if ln.startswith(kind + " ")]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_slow_handler_stays_in_its_group(url, caplog):
    # Each batch takes 2.5 s to handle, more than twice the 1 s session: heartbeats come from the
    # background, so the member is never expired and the partitions never bounce.
    with Admin(url) as a:
        a.create_topic("t", 2)
    produce(url, "t", 40)
    caplog.set_level(logging.WARNING, logger="facade")
    with Consumer("t", "g", url, max_poll_records=10, enable_auto_commit=False, **QUICK) as c:
        got = []
        while len(got) < 10:
            got += c.poll(timeout_ms=200)
        with Admin(url) as a:
            before = a.describe_group("g")
        for _ in range(3):
            time.sleep(2.5)  # the "handler"
            with Admin(url) as a:
                during = a.describe_group("g")
            assert [m.member_id for m in during.members] == [c.member_id]
            c.commit()
            got += c.poll(timeout_ms=200)
    assert during.generation == before.generation
    assert not [r for r in caplog.records if "expired" in r.getMessage() or "session ended" in r.getMessage()]


def test_a_member_past_max_poll_interval_leaves_and_says_which_option(url, caplog):
    with Admin(url) as a:
        a.create_topic("t", 1)
    produce(url, "t", 10)
    caplog.set_level(logging.WARNING, logger="facade")
    with Consumer("t", "g", url, max_poll_interval_ms=800, enable_auto_commit=False, **QUICK) as c:
        got = []
        while not got:
            got += c.poll(timeout_ms=200)
        time.sleep(1.5)  # stuck between two polls
        with Admin(url) as a:
            assert a.describe_group("g").members == ()  # it left: its partitions can move
        with pytest.raises(CommitFailedError):
            c.commit()
        assert any("max_poll_interval_ms=800" in r.getMessage() for r in caplog.records)
        again = []
        deadline = time.monotonic() + 10
        while len(again) < 10 and time.monotonic() < deadline:
            again += c.poll(timeout_ms=200)  # it rejoins and reads from the committed offset
    assert [m.offset for m in again] == list(range(10))


def test_a_static_members_return_never_orphans_a_dead_members_partitions(url, tmp_path):
    # A static member comes back with unchanged metadata in the same join that removes an
    # expired member: the assignment naming the dead one must not survive.
    with Admin(url) as a:
        a.create_topic("t", 4)
    s1 = Consumer("t", "g", url, group_instance_id="s", enable_auto_commit=False, **QUICK)
    dead = spawn(url, "g", "t", tmp_path / "d.log", "--session-timeout-ms", "1000")
    try:
        wait_until(lambda: s1.poll(timeout_ms=20) or len(s1.assignment()) == 2, timeout=20, what="2 + 2")
        s1.close()  # a static member stays in the group
        dead.kill()
        dead.wait()
        time.sleep(1.3)  # the dead member's session is over; nobody heartbeats to notice
        produce(url, "t", 80, nkeys=16)
        with Consumer("t", "g", url, group_instance_id="s", **QUICK) as s2:
            got = []
            deadline = time.monotonic() + 15
            while len(got) < 80 and time.monotonic() < deadline:
                got += s2.poll(timeout_ms=100)
            assert len(s2.assignment()) == 4 and len({m.value for m in got}) == 80
            s2.commit()
        with Admin(url) as a:
            assert a.describe_group("g").lag == 0
    finally:
        stop(dead)


def test_a_partition_moves_only_when_its_live_holder_gives_it_up(url):
    # The holder is busy (handler longer than its session, heartbeats alive) when the group
    # rebalances the partition to a newcomer: the newcomer waits for the release, never takes it
    # from a live holder, and nothing is delivered to both.
    with Admin(url) as a:
        a.create_topic("t", 2)
    produce(url, "t", 40)
    seen: dict[str, list] = {"a": [], "b": []}
    revoke_commits = []
    holder: dict[str, Consumer] = {}

    def on_revoke(parts):
        holder["a"].commit()  # must succeed: nobody took the partitions from under it
        revoke_commits.append(parts)

    a = Consumer("t", "g", url, on_revoke=on_revoke, enable_auto_commit=False, **QUICK)
    holder["a"] = a
    b = None
    try:
        while len(a.assignment()) < 2 or len(seen["a"]) < 10:
            seen["a"] += a.poll(timeout_ms=50, max_records=5)
        b = Consumer("t", "g", url, enable_auto_commit=False, **QUICK)
        stop_b = threading.Event()

        def run_b():
            while not stop_b.is_set():
                seen["b"].extend(b.poll(timeout_ms=50))
                b.commit()

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(2.5)  # a's "handler": past its session, while the group moves a partition to b
        assert b.assignment() == set()  # b waited: a is alive and has not released
        a.commit()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen["a"]) + len(seen["b"]) < 40:
            seen["a"] += a.poll(timeout_ms=50)
            a.commit()
        stop_b.set()
        t.join(10)
    finally:
        a.close()
        if b is not None:
            b.close()
    assert revoke_commits, "a gave the partition up through on_revoke"
    values_a, values_b = {m.value for m in seen["a"]}, {m.value for m in seen["b"]}
    assert not values_a & values_b and len(values_a | values_b) == 40


def test_a_second_process_with_the_same_instance_id_fences_the_first_for_good(url, tmp_path):
    with Admin(url) as a:
        a.create_topic("t", 2)
    first = spawn(url, "g", "t", tmp_path / "first.log", "--session-timeout-ms", "1500", "--instance-id", "w1")
    second = None
    try:
        wait_until(lambda: len(lines(tmp_path / "first.log", "A")) > 0, timeout=20, what="first owns")
        produce(url, "t", 50)
        wait_until(lambda: len(lines(tmp_path / "first.log", "R")) >= 50, timeout=20, what="first read")
        second = spawn(url, "g", "t", tmp_path / "second.log", "--session-timeout-ms", "1500", "--instance-id", "w1")
        wait_until(lambda: lines(tmp_path / "first.log", "E"), timeout=20, what="the first process is fenced")
        assert "group_instance_id w1" in " ".join(lines(tmp_path / "first.log", "E")[0])
        first.wait(20)  # it stops: no ping-pong
        produce(url, "t", 50, start=50)
        wait_until(lambda: len(lines(tmp_path / "second.log", "R")) >= 50, timeout=20, what="second reads")
        time.sleep(0.5)
        late = [r for r in lines(tmp_path / "first.log", "R") if int(r[1].split(":")[1]) >= 50]
        assert late == []  # nothing produced after the takeover reached the fenced process
        assert first.returncode == 0
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_reset_offsets_on_a_group_whose_members_all_crashed_is_all_or_nothing(url, tmp_path):
    with Admin(url) as a:
        a.create_topic("t", 4)
    produce(url, "t", 40)
    procs = [spawn(url, "g", "t", tmp_path / f"m{i}.log", "--session-timeout-ms", "800") for i in range(2)]
    wait_until(lambda: sum(len(lines(tmp_path / f"m{i}.log", "R")) for i in range(2)) >= 40, timeout=20, what="read")
    for p in procs:
        p.kill()
        p.wait()
    with Admin(url) as a:
        time.sleep(1.0)  # never closed: their sessions end only at their deadlines
        done = a.reset_offsets("g", "t", to_earliest=True, execute=True)
        assert [r.target for r in done] == [0, 0, 0, 0]
        assert a.describe_group("g").lag == 40
    with Consumer("t", "g", url, **QUICK) as c:
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 40 and time.monotonic() < deadline:
            got += c.poll(timeout_ms=100)
    assert len({m.value for m in got}) == 40


def test_poll_while_the_broker_is_down_keeps_its_timeout(server_factory):
    server = server_factory()
    with Admin(server.url) as a:
        a.create_topic("t", 1)
    with Consumer("t", "g", server.url, reconnect_timeout_ms=3000, **QUICK) as c:
        wait_until(lambda: c.poll(timeout_ms=20) == [] and c.assignment(), timeout=10, what="owns")
        server.kill()
        started = time.monotonic()
        assert c.poll(timeout_ms=200) == []
        assert time.monotonic() - started < 1.5  # not reconnect_timeout_ms
        with pytest.raises(BrokerError):  # once the outage has lasted reconnect_timeout_ms
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                c.poll(timeout_ms=200)
        server.start()


def test_an_exactly_once_seek_back_over_many_records_is_bounded_work(url):
    n = 300_000
    with Admin(url) as a:
        a.create_topic("t", 1)
    stream = keys.stream("t", 0)
    base = int(time.time() * 1000) - 1_000_000
    with redis.Redis.from_url(url) as r:
        for chunk in range(0, n, 10_000):
            pipe = r.pipeline(transaction=False)
            for i in range(chunk, chunk + 10_000):
                pipe.xadd(stream, {"value": "x"}, id=f"{base + i // 50}-{i}")
            pipe.execute()
        tp = TopicPartition("t", 0)
        with Consumer("t", "g", url, guarantee="exactly-once", **QUICK) as c:
            wait_until(lambda: c.poll(timeout_ms=20, max_records=1) or c.assignment(), timeout=10)
            c.commit(offsets={tp: n})  # all processed
            r.config_set("slowlog-log-slower-than", 10_000)  # 10 ms
            r.slowlog_reset()
            c.seek_to_beginning()  # a replay: the processed mark keeps it from reprocessing
            assert c.position(tp) == n and c.poll(timeout_ms=100) == []
            slow = [e for e in r.slowlog_get(128) if b"EVALSHA" in (e.get("command") or b"").upper()]
            assert slow == [], slow  # no script held the server
            c.seek(tp, 123_456)
            assert c.position(tp) == n
        with Consumer("t", "h", url, **QUICK) as c:  # at-least-once: a seek back replays
            wait_until(lambda: c.poll(timeout_ms=20, max_records=1) or c.assignment(), timeout=10)
            c.seek(tp, 123_456)
            assert [m.offset for m in c.poll(timeout_ms=1000, max_records=3)] == [123_456, 123_457, 123_458]
            slow = [e for e in r.slowlog_get(128) if b"EVALSHA" in (e.get("command") or b"").upper()]
            assert slow == [], slow


def test_records_of_one_key_never_come_after_a_later_one_was_committed(url):
    # A lost asynchronous commit used to leave a hole: older records redelivered after newer ones
    # of the same key were committed. Commits are cumulative now: the next one covers it.
    with Admin(url) as a:
        a.create_topic("t", 1)
    produce(url, "t", 30, nkeys=1)
    delivered = []
    with Consumer("t", "g", url, enable_auto_commit=False, **QUICK) as c:
        while len(delivered) < 10:
            delivered += c.poll(timeout_ms=100, max_records=5)
            c.commit(asynchronous=True)
            with redis.Redis.from_url(url) as r:
                r.client_kill_filter(_type="normal", skipme=True)  # the reads carrying them fail
        c.commit()
        committed = c.committed()[TopicPartition("t", 0)]
    with Consumer("t", "g", url, **QUICK) as c2:
        rest = []
        deadline = time.monotonic() + 10
        while len(delivered) + len(rest) < 30 and time.monotonic() < deadline:
            rest += c2.poll(timeout_ms=100)
    assert committed == len(delivered)
    assert [m.offset for m in rest] == list(range(committed, 30))  # nothing older comes back
    counts = Counter(m.value for m in delivered + rest)
    assert len(counts) == 30 and max(counts.values()) == 1


def test_records_read_before_a_freeze_past_the_session_are_not_handed_out_after_it(url):
    """Chaos seed 31: a member stopped (SIGSTOP) while its read was in flight resumed after its
    session ended and handed out what it had read, although another member had taken the
    partition and committed past it. Now poll asks the group first and hands out nothing."""
    with Admin(url) as a:
        a.create_topic("t", 1)
    produce(url, "t", 10)
    with Consumer("t", "g", url, **QUICK, enable_auto_commit=False) as c:
        wait_until(lambda: c.poll(timeout_ms=50, max_records=1) or c.assignment(), timeout=10)
        c.seek_to_beginning()
        m, fetcher = c._membership, c._fetcher
        real = fetcher.fetch

        def read_then_freeze(limit):
            taken = real(limit)
            m._closed = True  # no heartbeats: as if the whole process were stopped
            time.sleep(1.6)  # past the 1 s session
            m._closed = False
            return taken

        fetcher.fetch = read_then_freeze
        got = c.poll(timeout_ms=200)
        fetcher.fetch = real
        assert got == []  # the session ended while frozen: nothing read then is handed out
        # It rejoins and gets the partition back, from the committed offset (none: the start).
        again = []
        deadline = time.monotonic() + 15
        while len(again) < 10 and time.monotonic() < deadline:
            again += c.poll(timeout_ms=100)
        assert [x.offset for x in again] == list(range(10))
