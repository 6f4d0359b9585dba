"""Dead letters (issue 14, items 1 and 6): only a record the application failed, or one whose
handling keeps crashing its consumer, reaches ``<topic>.dlq``; ``delivery_count`` counts deliveries
to the application; a topic whose dead-letter topic could not exist is refused when created.

A "crash" here is what the broker sees of one: the member's session ends without a release (its
heartbeat stops and its connections close), or it leaves ``with Consumer(...)`` by an exception.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest
import redis
from click.testing import CliRunner
from conftest import run_twice
from facade.cli import main

from facade import Admin, Consumer, Producer, TopicConfig, TopicPartition, keys, scripts
from facade._sync.client import topic_to_json
from facade.errors import InvalidNameError

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 1000, "auto_offset_reset": "earliest",
        "enable_auto_commit": False}  # fmt: skip


def setup(url: str, values: list[str], topic: str = "t") -> None:
    with Admin(url) as a:
        a.create_topic(topic, 1)
    with Producer(url) as p:
        for v in values:
            p.send(topic, v, partition=0)


def take(c: Consumer, n: int, timeout: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += c.poll(timeout_ms=50, max_records=n - len(got))
    return got


def crash(c: Consumer) -> None:
    """As kill -9 looks to the broker: no release, no leave; the session ends at its deadline."""
    c._membership.stop()
    c._conn.close()


def dead_letters(url: str, topic: str = "t") -> list[tuple[int, int, bytes]]:
    """(source offset, delivery count, error) of each dead-lettered record."""
    with Admin(url) as a:
        if keys.dead_letter_topic(topic) not in {t.name for t in a.list_topics()}:
            return []
        return [(int(m.headers["dlq.offset"]), int(m.headers["dlq.delivery_count"]), m.headers["dlq.error"])
                for m in a.dlq_list(topic)]  # fmt: skip


# --- item 1: only failed or crashing records ---------------------------------------------------


def test_fail_dead_letters_the_failed_record_and_never_the_batch_behind_it(url):
    setup(url, [str(i) for i in range(10)])
    seen = []
    with Consumer("t", "g", url, max_deliveries=3, **FAST) as c:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (seen and seen[-1][0] == b"9"):
            for m in c.poll(timeout_ms=50):
                seen.append((m.value, m.delivery_count))
                if m.value == b"3":
                    c.fail(m, "cannot parse 3")
                    break  # the rest of the batch comes again after it
            c.commit()
    # 3 is handed out 3 times and failed each time; the 4th delivery goes to the dead letters.
    assert dead_letters(url) == [(3, 4, b"cannot parse 3")]
    # Records behind it were read again after each fail(), never handed out twice: counted once.
    assert seen == [(str(i).encode(), 1) for i in range(4)] + [(b"3", 2), (b"3", 3)] + [
        (str(i).encode(), 1) for i in range(4, 10)
    ]


def test_a_record_handed_out_alone_to_consumers_that_close_cleanly_is_never_dead_lettered(url):
    setup(url, ["a", "b", "c"])
    first = Consumer("t", "g", url, max_deliveries=2, **FAST)
    assert len(take(first, 3)) == 3
    crash(first)  # with a batch in hand: its records come back one at a time
    for n in range(4):
        with Consumer("t", "g", url, max_deliveries=2, **FAST) as c:
            got = take(c, 1)
            # Handed out alone, then a clean close (no commit): no crash, so no failure.
            assert [(m.offset, m.delivery_count) for m in got] == [(0, 2 + n)]
    assert dead_letters(url) == []


def test_a_record_processed_alone_before_an_unrelated_crash_is_not_a_failure(url):
    setup(url, ["a"])
    first = Consumer("t", "g", url, max_deliveries=1, **FAST)
    assert len(take(first, 1)) == 1
    crash(first)
    second = Consumer("t", "g", url, max_deliveries=1, **FAST)
    assert [m.delivery_count for m in take(second, 1)] == [2]  # handed out alone
    assert second.poll(timeout_ms=300) == []  # processed: the consumer came back for more
    crash(second)  # later, for some other reason
    with Consumer("t", "g", url, max_deliveries=1, **FAST) as third:
        assert [m.delivery_count for m in take(third, 1)] == [3]
    assert dead_letters(url) == []


def test_a_handler_that_keeps_raising_on_a_record_sends_it_to_the_dead_letters(url):
    setup(url, ["poison", "fine"])
    for _ in range(2):
        with pytest.raises(ValueError), Consumer("t", "g", url, max_deliveries=1, **FAST) as c:
            assert [m.value for m in take(c, 1)] == [b"poison"]
            raise ValueError("the handler crashed on it")
    with Consumer("t", "g", url, max_deliveries=1, **FAST) as c:
        assert [m.value for m in take(c, 1)] == [b"fine"]
        c.commit()
    # The first crash came with a batch read at once (which record crashed it is unknown: no
    # failure); the second with the poison handed out alone.
    assert dead_letters(url) == [(0, 3, b"")]


def test_the_broker_refuses_dead_letters_the_client_wrongly_asks_for(url, caplog):
    setup(url, ["a", "poison", "c"])
    with Consumer("t", "g", url, max_deliveries=1, **FAST) as c:
        got = take(c, 3)
        c.fail(got[1], "bad")
        c._sub.owned[got[0].topic_partition].failures[2] = 7  # a client bug: "c" never failed
        again = take(c, 1)
        c.commit()
    # The broker dead-letters only "poison" (failed once); "c" is handed out instead.
    assert [(m.value, m.delivery_count) for m in again] == [(b"c", 1)]
    assert dead_letters(url) == [(1, 2, b"bad")]
    assert "handed out instead of dead-lettered" in caplog.text


def test_a_fail_report_run_twice_after_a_lost_reply_counts_once(url, monkeypatch):
    """redis-py sends a pipeline again when its connection drops after sending it: the read that
    carries a fail() report then runs twice. The failure counts once (fetch.lua skips a report
    whose count is there already); it used to count twice, and max_deliveries=2 dead-lettered a
    record that had failed once."""
    setup(url, ["a", "b", "c"])
    twice = run_twice(monkeypatch, lambda calls: not twice and any(c[0] == "fetch" and c.args[6] for c in calls))
    with Consumer("t", "g", url, max_deliveries=2, **FAST) as c:
        got = take(c, 3)
        c.fail(got[1], "once")
        again = take(c, 2)
    assert twice == [1]
    assert [(m.value, m.delivery_count) for m in again] == [(b"b", 2), (b"c", 1)]
    # The next owner takes the broker's counts: "b" failed once, so it is handed out again.
    with Consumer("t", "g", url, max_deliveries=2, **FAST) as c:
        assert [(m.value, m.delivery_count) for m in take(c, 3)] == [(b"a", 2), (b"b", 3), (b"c", 2)]
        c.commit()
    assert dead_letters(url) == []


def two_partitions(url: str, p0: list[str], p1: list[str]) -> None:
    with Admin(url) as a:
        a.create_topic("t", 2)
    with Producer(url) as p:
        for v in p0:
            p.send("t", v, partition=0)
        for v in p1:
            p.send("t", v, partition=1)


def crash_loop(new_consumer: Callable[[], Consumer], rounds: int = 8) -> list[list[tuple[bytes, int]]]:
    """Consumers in turn, each crashing whenever a poll hands it the record "poison" and
    committing every other hand, until one runs 3 s without crashing. Returns the hands (value,
    delivery count)."""
    hands: list[list[tuple[bytes, int]]] = []
    for _ in range(rounds):
        c = new_consumer()
        crashed = False
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not crashed:
            hand = [(m.value, m.delivery_count) for m in c.poll(timeout_ms=50)]
            if hand:
                hands.append(hand)
            crashed = any(v == b"poison" for v, _ in hand)
            if not crashed:
                c.commit()
        if not crashed:
            c.close()
            break
        crash(c)
    return hands


def owning_both(url: str, **config) -> Consumer:
    """A consumer of the two-partition topic "t" that owns both partitions before its first poll
    hands anything out (each is paused as it is claimed, until both are)."""
    held: list[Consumer] = []
    c = Consumer("t", "g", url, on_assign=lambda won: held[0].pause(won), **FAST, **config)
    held.append(c)
    deadline = time.monotonic() + 5
    while len(c.assignment()) < 2 and time.monotonic() < deadline:
        assert c.poll(timeout_ms=50) == []
    assert len(c.assignment()) == 2
    c.resume(c.assignment())
    return c


def test_a_crash_on_one_partitions_record_is_never_a_failure_of_another_partitions(url):
    # Found by the chaos checker: after a crash each partition's records came back one at a time,
    # so one poll held one of each partition; a crash on the poison of one counted a failure for
    # the healthy record of the other too, and it reached the dead letters.
    two_partitions(url, ["poison"], ["fine"])
    hands = crash_loop(lambda: owning_both(url, max_deliveries=2))
    # The first hand held both (read at once); after it each comes back alone.
    assert sorted(hands[0]) == [(b"fine", 1), (b"poison", 1)]
    assert all(len(h) == 1 for h in hands[1:]), hands
    assert sorted(h[0] for h in hands[1:]) == [(b"fine", 2), (b"poison", 2), (b"poison", 3)]
    assert dead_letters(url) == [(0, 4, b"")]


def test_a_record_handed_out_alone_then_paused_is_not_failed_by_a_crash_on_the_next(url):
    two_partitions(url, ["a"], ["b"])
    first = owning_both(url, max_deliveries=1)
    assert len(take(first, 2)) == 2
    crash(first)  # with both in hand: each comes back alone
    second = owning_both(url, max_deliveries=1)
    [x] = take(second, 1)
    second.pause([x.topic_partition])  # processed; its partition paused, not read again
    [y] = take(second, 1)
    assert y.topic_partition != x.topic_partition
    crash(second)  # on y, held alone: y's failure only
    third = owning_both(url, max_deliveries=1)
    [again] = take(third, 1)
    assert (again.value, again.delivery_count) == (x.value, 3)
    assert third.poll(timeout_ms=300) == []  # y went to the dead letters instead
    third.close()
    assert dead_letters(url) == [(y.offset, 3, b"")]


# --- found by an adversarial pass over the whole-hand rule (2026-11-30) ---------------------------


def test_a_record_trimmed_away_before_its_read_is_never_counted_as_held(url):
    # Retention trims records 0..4 between the claim and the first read: the read that comes
    # back one record at a time starts at the log start, and what it marks as held alone is
    # exactly what poll() hands out. It used to mark record 5, throw it away (a gap) and return
    # nothing; a crash then counted a failure for a record no application had seen.
    setup(url, [str(i) for i in range(10)])
    first = Consumer("t", "g", url, max_deliveries=1, **FAST)
    assert len(take(first, 10)) == 10
    crash(first)

    def trim(_won: object) -> None:
        with Admin(url) as a:
            a.delete_records({TopicPartition("t", 0): 5})

    second = Consumer("t", "g", url, max_deliveries=1, on_assign=trim, **FAST)
    handed: list = []
    deadline = time.monotonic() + 5
    while not second.assignment() and time.monotonic() < deadline:
        handed += second.poll(timeout_ms=0)
        time.sleep(0.01)
    assert [(m.offset, m.delivery_count) for m in handed] in ([], [(5, 2)])
    crash(second)  # holding what it was handed, if anything
    with Consumer("t", "g", url, max_deliveries=1, **FAST) as third:
        first_again = take(third, 1)
    # Dead-lettered only if it was handed out alone when the consumer died.
    assert dead_letters(url) == ([(5, 3, b"")] if handed else [])
    assert [m.offset for m in first_again] == ([6] if handed else [5])


@pytest.mark.parametrize("max_deliveries", [2, None])
def test_records_trimmed_under_a_latest_policy_neither_stall_the_partition_nor_the_others(url, max_deliveries):
    # auto_offset_reset="latest" moves a read from a trimmed offset to the end of the log; the
    # consumer took that for a gap and read from the trimmed offset again, forever (the partition
    # stalled; with max_deliveries the whole consumer did, since the other partition waited).
    two_partitions(url, [str(i) for i in range(10)], ["p1-a", "p1-b"])
    first = owning_both(url, max_deliveries=max_deliveries)
    assert len(take(first, 12)) == 12
    first.commit(offsets={TopicPartition("t", 0): 0, TopicPartition("t", 1): 0})
    crash(first)  # with everything in hand

    held: list[Consumer] = []

    def on_assign(won: set[TopicPartition]) -> None:
        if TopicPartition("t", 0) in won:
            with Admin(url) as a:
                a.delete_records({TopicPartition("t", 0): 5})
        held[0].pause(won)

    c = Consumer("t", "g", url, max_deliveries=max_deliveries, on_assign=on_assign,
                 **{**FAST, "auto_offset_reset": "latest"})  # fmt: skip
    held.append(c)
    deadline = time.monotonic() + 5
    while len(c.assignment()) < 2 and time.monotonic() < deadline:
        assert c.poll(timeout_ms=50) == []
    c.resume(c.assignment())
    got = take(c, 2, timeout=8)
    with Producer(url) as p:
        p.send("t", "new", partition=0)
        p.send("t", "p1-new", partition=1)
    got += take(c, 2, timeout=10)
    c.close()
    assert sorted(m.value for m in got) == [b"new", b"p1-a", b"p1-b", b"p1-new"]


def test_a_partition_whose_suspects_were_all_trimmed_does_not_starve_the_others(url):
    two_partitions(url, [str(i) for i in range(10)], ["p1-a"])
    first = owning_both(url, max_deliveries=2)
    assert len(take(first, 11)) == 11
    first.commit(offsets={TopicPartition("t", 1): 1})
    crash(first)  # with partition 0's records in hand: each comes back alone
    c = owning_both(url, max_deliveries=2)
    assert [(m.partition, m.offset) for m in take(c, 1)] == [(0, 0)]
    c.commit()
    with Admin(url) as a:
        a.delete_records({TopicPartition("t", 0): -1})  # retention takes the rest
    assert c.poll(timeout_ms=300) == []
    with Producer(url) as p:
        p.send("t", "p1-new", partition=1)
    got = take(c, 1, timeout=8)
    c.close()
    assert [m.value for m in got] == [b"p1-new"]


def test_asynchronous_commits_of_other_partitions_are_sent_while_one_hands_out_records_alone(url):
    two_partitions(url, ["a0", "a1", "a2"], ["b0"])
    first = owning_both(url, max_deliveries=5)
    assert len(take(first, 4)) == 4
    crash(first)  # all four come back one at a time
    second = owning_both(url, max_deliveries=5)
    seen = []
    for _ in range(4):
        [m] = take(second, 1)
        seen.append((m.partition, m.offset))
        second.commit(asynchronous=True)  # each processed, committed asynchronously
    assert sorted(seen) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    crash(second)  # the last commit waited for a read that never came; every other one was sent
    third = owning_both(url, max_deliveries=5)
    assert [(m.partition, m.offset) for m in take(third, 4, timeout=1.5)] == [seen[-1]]
    third.close()


def test_a_crash_on_a_poison_record_of_one_topic_never_fails_a_record_of_another(url):
    with Admin(url) as a:
        a.create_topic("t", 1)
        a.create_topic("u", 1)
    with Producer(url) as p:
        p.send("t", "poison", partition=0)
        p.send("u", "fine", partition=0)
    crash_loop(lambda: Consumer(["t", "u"], "g", url, max_deliveries=2, **FAST))
    assert dead_letters(url, "u") == []
    assert [o for o, _, _ in dead_letters(url, "t")] == [0]


_CRASHING_MEMBER = textwrap.dedent("""
    import os, sys, time
    from facade import Consumer
    url, out = sys.argv[1], sys.argv[2]
    c = Consumer("t", "g", url, max_deliveries=2, auto_offset_reset="earliest", session_timeout_ms=500,
                 heartbeat_interval_ms=50, enable_auto_commit=False)
    with open(out, "a", buffering=1) as f:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            for m in c.poll(timeout_ms=100):
                f.write(f"{m.offset} {m.delivery_count}\\n")
                if m.value == b"poison":
                    os._exit(3)  # its handler crashes the process
            c.commit()
    c.close()
""")


@pytest.mark.timeout(120)
def test_a_record_that_keeps_crashing_its_consumer_process_reaches_the_dead_letters(url, tmp_path):
    setup(url, ["poison" if i == 3 else str(i) for i in range(10)])
    out = tmp_path / "deliveries"
    codes = []
    for _ in range(6):
        done = subprocess.run([sys.executable, "-c", _CRASHING_MEMBER, url, str(out)], timeout=60, check=False)
        codes.append(done.returncode)
        if done.returncode == 0:
            break
    # One crash with the batch in hand, then two with the poison alone: max_deliveries=2.
    assert codes == [3, 3, 3, 0]
    assert [o for o, _, _ in dead_letters(url)] == [3]
    lines = [tuple(map(int, line.split())) for line in out.read_text().splitlines()]
    assert {o for o, _ in lines} == set(range(10))  # every healthy record was handled
    assert (3, 3) in lines and all(o != 3 or n <= 3 for o, n in lines)


# --- item 6: a topic whose dead-letter topic cannot exist ---------------------------------------


def test_a_topic_name_too_long_for_its_dead_letter_topic_is_refused_at_creation(url):
    with Admin(url) as a:
        for n in (246, 249):
            with pytest.raises(InvalidNameError, match="at most 245 characters"):
                a.create_topic("x" * n, 1)
        assert a.list_topics() == []
        a.create_topic("x" * 245, 1)  # its dead-letter topic has 249 characters: fine
        a.create_topic("x" * 245 + ".dlq", 1)  # that dead-letter topic itself
        assert sorted(len(t.name) for t in a.list_topics()) == [245, 249]
    with Producer(url, auto_create=True) as p, pytest.raises(InvalidNameError, match="at most 245 characters"):
        p.send("w" * 246, "v")  # a topic the producer would create is checked the same way
    with Admin(url) as a:
        assert sorted(len(t.name) for t in a.list_topics()) == [245, 249]


def test_the_cli_refuses_such_a_name_in_one_line_saying_the_limit(url):
    result = CliRunner().invoke(main, ["--url", url, "topics", "create", "z" * 247, "-p", "1"], catch_exceptions=False)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: invalid topic name"), result.stderr
    assert "247 characters long" in lines[0] and "at most 245 characters" in lines[0] and "shorten it by 2" in lines[0]


def legacy_topic(url: str, name: str) -> None:
    """A topic as created before names had to leave room for ".dlq" (its scripts run directly)."""
    r = redis.Redis.from_url(url)
    try:
        run = scripts.Scripts(r)
        call = scripts.partition_init(name, 0)
        run.partition_init(keys=call.keys, args=call.args)
        cfg = TopicConfig(name, 1, layout=keys.LAYOUT_VERSION)
        call = scripts.topic_register(name, topic_to_json(cfg), "create")
        run.topic_register(keys=call.keys, args=call.args)
    finally:
        r.close()


def test_dead_letters_of_an_existing_topic_too_long_for_dlq_go_to_a_hashed_name(url):
    long = "y" * 247
    legacy_topic(url, long)
    with Producer(url) as p:
        for v in ("poison", "fine"):
            p.send(long, v, partition=0)
    dlq = keys.dead_letter_topic(long)
    assert len(dlq) == 249 and dlq.startswith("y" * 236 + ".") and dlq.endswith(".dlq")
    handled = []
    with Consumer(long, "g", url, max_deliveries=1, **FAST) as c:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"fine" not in handled:
            for m in c.poll(timeout_ms=50):  # poll() never raises on the name
                if m.value == b"poison":
                    c.fail(m, "bad")
                    break
                handled.append(m.value)
            c.commit()
    with Admin(url) as a:
        dead = a.dlq_list(long)
        assert [(m.topic, m.value, m.headers["dlq.topic"]) for m in dead] == [(dlq, b"poison", long.encode())]
