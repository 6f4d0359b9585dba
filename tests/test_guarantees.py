"""Delivery guarantees, each with a fault that would break it and a count of lost/duplicated."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
from conftest import wait_until

from facade import Admin, CommitFailedError, ConfigError, Consumer, OutputRecord, Producer, keys, relay

FAST = {"heartbeat_interval_ms": 50, "auto_offset_reset": "earliest", "enable_auto_commit": False}


def make(url, topic="t", partitions=2, n=0, nkeys=4):
    with Admin(url) as a:
        a.create_topic(topic, partitions)
    if n:
        with Producer(url) as p:
            for i in range(n):
                p.send(topic, f"k{i % nkeys}:{i}", key=f"k{i % nkeys}")


def take(c, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += c.poll(timeout_ms=50, max_records=max(1, n - len(got)))
    return got


def values(url, topic, partitions):
    r = redis.Redis.from_url(url)
    try:
        return [f[b"value"].decode() for p in range(partitions) for _, f in r.xrange(keys.stream(topic, p))]
    finally:
        r.close()


def test_at_most_once_never_redelivers(url):
    make(url, n=20)
    c = Consumer("t", "g", url, guarantee="at-most-once", **FAST)
    first = take(c, 10)
    assert len(first) == 10
    r = redis.Redis.from_url(url)
    # What was read is committed with the read itself, before the application sees it.
    committed = sum(int(r.hget(keys.committed("t", p), "g") or 0) for p in range(2))
    assert committed >= 10
    c.close()  # "crashes" without committing: nothing comes back
    with Consumer("t", "g", url, guarantee="at-most-once", **FAST) as c2:
        rest = take(c2, 20, timeout=1.5)
    assert len(rest) == 10
    r.close()


def test_at_least_once_redelivers_uncommitted(url):
    make(url, n=10)
    c = Consumer("t", "g", url, **FAST)
    first = take(c, 10)
    c.close()
    with Consumer("t", "g", url, **FAST) as c2:
        again = take(c2, 10)
    assert sorted(m.offset for m in again) == sorted(m.offset for m in first)


def test_exactly_once_consumer_skips_redelivery_storms(url):
    """Replays (offset resets, seeks) into an idempotent consumer: nothing is processed twice."""
    make(url, n=200, nkeys=10)
    processed = Counter()
    with Consumer("t", "g", url, guarantee="exactly-once", **FAST) as c:
        for m in take(c, 120):
            processed[m.value] += 1
        c.commit()
    rng = random.Random(3)
    for storm in range(5):
        with Admin(url) as a:  # rewind the whole group: every committed record is "redelivered"
            a.reset_offsets("g", "t", to_earliest=True, execute=True)
        with Consumer("t", "g", url, guarantee="exactly-once", **FAST) as c:
            got = take(c, rng.randrange(1, 40), timeout=2)
            if rng.random() < 0.5:
                # A record counts as processed when its commit happens (effect and commit together).
                c.commit()
                for m in got:
                    processed[m.value] += 1
            else:
                c.seek_to_beginning()  # a seek back inside the member instead of a commit
                more = take(c, 30, timeout=1)
                c.commit()
                for m in more:
                    processed[m.value] += 1
    with Consumer("t", "g", url, guarantee="exactly-once", **FAST) as c:
        for m in take(c, 200, timeout=3):
            processed[m.value] += 1
        c.commit()
    duplicated = sum(n - 1 for n in processed.values())
    print(f"\nredelivery storms into an idempotent consumer: processed={len(processed)} duplicated={duplicated}")
    assert len(processed) == 200 and duplicated == 0
    # Control: an at-least-once group rewound the same way processes everything again.
    with Consumer("t", "h", url, **FAST) as c:
        assert len(take(c, 200)) == 200
        c.commit()
    with Admin(url) as a:
        a.reset_offsets("h", "t", to_earliest=True, execute=True)
    with Consumer("t", "h", url, **FAST) as c:
        assert len(take(c, 200)) == 200


def test_commit_with_outputs_is_atomic_and_fenced(url):
    make(url, "in", 1, n=5)
    make(url, "out", 3)
    c = Consumer("in", "g", url, guarantee="exactly-once", **FAST)
    try:
        got = take(c, 5)
        outs = [OutputRecord(m, "out", m.value.upper(), key=m.key) for m in got]
        c.commit(outs)
        assert sorted(values(url, "out", 3)) == sorted(m.value.decode().upper() for m in got)
        with Producer(url) as p:
            p.send_and_wait("in", "late", key="k0")
        late = take(c, 1)
        with pytest.raises(ConfigError, match="not handed out"):
            c.commit([OutputRecord(late[0]._replace(offset=99), "out", b"x")])  # not polled yet
        r = redis.Redis.from_url(url)
        r.hset(keys.owners("in", 0), "g", "thief|x")  # taken over before the commit
        with pytest.raises(CommitFailedError):
            c.commit([OutputRecord(late[0], "out", b"must-not-appear")])
        assert "must-not-appear" not in values(url, "out", 3)
        assert r.hget(keys.committed("in", 0), "g") == b"5"  # the late record is not committed
        r.close()
    finally:
        c.close()


def test_transact_retry_after_lost_reply_writes_nothing_twice(url):
    from facade import scripts

    make(url, "in", 1, n=2)
    make(url, "out", 1)
    with Consumer("in", "g", url, **FAST) as c:
        got = take(c, 2)
        token = c._sub.owned[got[0].topic_partition].token
        r = redis.Redis.from_url(url)
        s = scripts.Scripts(r)
        out = [scripts.Output(keys.stream("out", 0), None, None, None, [b"value", b"x"])]
        call = scripts.transact(got[0].topic_partition, "g", token, "txn-1", commit=2, mark=False, dead=[], outputs=out)
        first = s.transact(keys=call.keys, args=call.args)
        again = s.transact(keys=call.keys, args=call.args)  # the same call, as after a lost reply
        assert (len(first[0]), first[1], again) == (1, 0, [[], 1])
        assert r.xlen(keys.stream("out", 0)) == 1
        r.close()


def test_dead_letters_after_max_deliveries_and_replay(url):
    make(url, "orders", 2, n=6)
    with Consumer("orders", "g", url, max_deliveries=2, **FAST) as c:
        bad = None
        handled = []
        deadline = time.monotonic() + 15
        quiet_since = None
        while time.monotonic() < deadline and (quiet_since is None or time.monotonic() - quiet_since < 1):
            failed = set()
            for m in c.poll(timeout_ms=50):
                if m.partition in failed:
                    continue  # comes again after the failed record
                if m.value.endswith(b":3"):
                    bad = m
                    c.fail(m, ValueError("cannot parse order 3"))
                    failed.add(m.partition)
                    continue
                handled.append(m.value)
            c.commit()
            if len(handled) >= 5 and quiet_since is None:
                quiet_since = time.monotonic()  # keep polling a while: the bad record comes back
        assert bad is not None and len(set(handled)) == 5
    with Admin(url) as a:
        dead = a.dlq_list("orders")
        assert [m.value for m in dead] == [bad.value]
        h = dead[0].headers
        assert (h["dlq.topic"], h["dlq.offset"], h["dlq.delivery_count"]) == (b"orders", str(bad.offset).encode(), b"3")
        assert h["dlq.error"] == b"cannot parse order 3"
        assert int(h["dlq.partition"]) == bad.partition
        r = redis.Redis.from_url(url)
        assert a.describe_group("g").lag == 0  # dead-lettered and committed past
        assert a.dlq_replay("orders") == 1
        assert a.dlq_list("orders") == []
        assert a.dlq_replay("orders") == 0
        r.close()
    with Consumer("orders", "g", url, **FAST) as c:
        back = take(c, 1)
        assert back[0].value == bad.value and "dlq.topic" not in back[0].headers


def test_relay_exactly_once_and_with_dedup_outputs(url):
    make(url, "src", 3, n=300, nkeys=12)
    make(url, "dst", 3)
    make(url, "dst2", 3)
    stats = relay("src", "dst", "r", url, idle_timeout_ms=500)
    assert stats.copied == 300
    assert Counter(values(url, "dst", 3)) == Counter(values(url, "src", 3))
    stats = relay("src", "dst2", "r2", url, atomic=False, idle_timeout_ms=500)
    assert Counter(values(url, "dst2", 3)) == Counter(values(url, "src", 3))
    with pytest.raises(ConfigError, match="different"):
        relay("src", "src", "r3", url)


RELAY_CHILD = """
import sys
from facade import relay
relay("src", "dst", "relay", sys.argv[1], atomic=sys.argv[2] == "atomic",
      consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 50})
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["atomic", "dedup"])
def test_relay_survives_kill9_at_random_moments(url, mode):
    total = 3000
    make(url, "src", 4)
    make(url, "dst", 4)
    rng = random.Random(11)
    kills = 0
    with Producer(url) as p:
        sent = 0
        while sent < total:
            for _ in range(300):
                p.send("src", f"k{sent % 20}:{sent}", key=f"k{sent % 20}")
                sent += 1
            p.flush()
            proc = subprocess.Popen([sys.executable, "-c", RELAY_CHILD, url, mode])
            time.sleep(rng.uniform(0.2, 0.9))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    proc = subprocess.Popen([sys.executable, "-c", RELAY_CHILD, url, mode])
    try:
        wait_until(lambda: len(values(url, "dst", 4)) >= total, timeout=120, what="relay caught up")
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait()
    got = Counter(values(url, "dst", 4))
    lost = total - len(got)
    duplicated = sum(n - 1 for n in got.values())
    print(f"\nrelay ({mode}) with {kills} kill -9: lost={lost} duplicated={duplicated}")
    assert (lost, duplicated) == (0, 0)
    # Per-key order in the destination.
    r = redis.Redis.from_url(url)
    for p in range(4):
        last: dict[str, int] = {}
        for _, f in r.xrange(keys.stream("dst", p)):
            k, i = f[b"value"].decode().split(":")
            assert int(i) > last.get(k, -1)
            last[k] = int(i)
    r.close()


def test_ack_aware_retention_never_trims_unacknowledged_records(url):
    with Admin(url) as a:
        assert a.create_topic("keep", 1, max_len=50, ack_retention=True).ack_retention
    with Consumer("keep", "slow", url, **FAST) as c:
        wait_until(lambda: c.poll(timeout_ms=20) == [] and c.assignment(), timeout=10)  # group exists now
        with Producer(url, batch_size=1000) as p:
            for i in range(1000):
                p.send("keep", str(i))
        got = take(c, 1000)
        assert [int(m.value) for m in got] == list(range(1000))  # nothing trimmed under the lagging group
        c.commit()
    with Producer(url) as p:
        p.send_and_wait("keep", b"after")
    r = redis.Redis.from_url(url)
    assert r.xlen(keys.stream("keep", 0)) < 200  # acknowledged: now trimmed toward max_len
    r.close()
