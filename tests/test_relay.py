"""The relay (facade.relay, `facade relay`) on one server: records it cannot copy, rebalances,
and the round trips it costs. Its crash and fault proofs: test_guarantees.py (kill -9),
test_cluster.py (dedup ids; the destination out of memory), and the chaos relay workload
(tests/chaos/relay_run.py, tests/test_chaos.py).
"""

from __future__ import annotations

import time

import pytest
import redis
from click.testing import CliRunner
from conftest import run_twice
from facade.cli import main

import facade._sync.relay as relay_module
from facade import Admin, Producer, keys, relay

pytestmark = pytest.mark.timeout(90)

MODES = {
    "atomic": {"atomic": True},
    "dedup-ids": {"atomic": False},
    "at-least-once": {"exactly_once": False},
}
FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 2000}


def stored(url: str, topic: str, partitions: int) -> list[tuple[bytes | None, bytes, dict]]:
    """(key, value, headers) of every record of ``topic``, partition after partition."""
    r = redis.Redis.from_url(url)
    try:
        out = []
        for p in range(partitions):
            for _, f in r.xrange(keys.stream(topic, p)):
                headers = {k[2:].decode(): v for k, v in f.items() if k.startswith(b"h:")}
                out.append((f.get(b"key"), f[b"value"], headers))
        return out
    finally:
        r.close()


def committed(url: str, group: str, topic: str) -> dict[int, int | None]:
    with Admin(url) as a:
        return {p.partition: p.committed for p in a.describe_group(group).partitions if p.topic == topic}


@pytest.mark.parametrize("mode", MODES)
def test_an_output_over_the_limit_is_dead_lettered_naming_its_record_and_the_relay_goes_on(url, mode):
    with Admin(url) as a:
        a.create_topic("src", 1)
        a.create_topic("dst", 1)
    big = b"x" * 150_000  # keyed by its value, its output is 300 KB: over the 200 KB limit below
    with Producer(url) as p:
        for value in (b"a", big, b"c", b"d"):
            p.send("src", value, key=b"k")
    stats = relay("src", "dst", "r", url, key_from="value", max_message_bytes=200_000, idle_timeout_ms=500,
                  consumer_options=FAST, **MODES[mode])  # fmt: skip
    assert (stats.copied, stats.dead_lettered) == (3, 1)
    # The records behind it were copied, in order; the input is committed past all four.
    assert [v for _, v, _ in stored(url, "dst", 1)] == [b"a", b"c", b"d"]
    assert committed(url, "r", "src") == {0: 4}
    (dead,) = stored(url, keys.dead_letter_topic("src"), 1)
    assert dead[1] == big and dead[2]["dlq.offset"] == b"1"
    error = dead[2]["dlq.error"].decode()
    assert "src[0] offset 1 cannot be copied to dst" in error and "max_message_bytes=200000" in error, error
    # A restart does not stick on it: nothing more to copy, nothing raised, nothing doubled.
    again = relay("src", "dst", "r", url, key_from="value", max_message_bytes=200_000, idle_timeout_ms=300,
                  consumer_options=FAST, **MODES[mode])  # fmt: skip
    assert (again.copied, again.dead_lettered) == (0, 0)
    assert len(stored(url, keys.dead_letter_topic("src"), 1)) == 1
    assert len(stored(url, "dst", 1)) == 3


@pytest.mark.parametrize("flag", ["--exactly-once", "--at-least-once"])
def test_the_cli_copies_a_600_kb_value_keyed_by_itself(url, flag):
    """The issue's case: an output over 1 MiB (key and value 600 KB each) used to stop the relay
    for good; the relay's limit now follows what the source can hold (16 MiB)."""
    with Admin(url) as a:
        a.create_topic("src", 2)
        a.create_topic("dst", 2)
    big = b"v" * 600_000
    with Producer(url) as p:
        for value in (b"a", big, b"c"):
            p.send("src", value, key=b"k")
    args = ["--url", url, "relay", "src", "dst", "-g", "r", "--key-from", "value", "--idle-timeout-ms", "500", flag]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Relayed 3 records from src to dst" in result.stderr
    assert sorted(stored(url, "dst", 2), key=lambda r: len(r[1])) == [(b"a", b"a", {}), (b"c", b"c", {}), (big, big, {})]
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "Relayed 0 records" in again.stderr


def test_a_relay_whose_commit_is_refused_after_a_rebalance_goes_on(url, monkeypatch):
    """A commit refused because the member left the group (here: a batch that took longer than
    max_poll_interval_ms) used to end the relay; now the batch is copied again once the relay is
    back in the group, exactly once."""
    n = 40
    with Admin(url) as a:
        a.create_topic("src", 1)
        a.create_topic("dst", 1)
    with Producer(url) as p:
        for i in range(n):
            p.send("src", f"k:{i}", key="k")
    real, calls = relay_module._copy, []

    def slow_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(2.5)  # past max_poll_interval_ms: the member leaves, its partition moves
        return real(*args, **kwargs)

    monkeypatch.setattr(relay_module, "_copy", slow_first)
    stats = relay("src", "dst", "r", url, idle_timeout_ms=1500, atomic=True,
                  consumer_options={**FAST, "max_poll_interval_ms": 1000})  # fmt: skip
    assert len(calls) >= 2
    assert stats.copied == n
    assert [v for _, v, _ in stored(url, "dst", 1)] == [f"k:{i}".encode() for i in range(n)]


@pytest.mark.parametrize("mode", ["atomic", "dedup-ids", "at-least-once"])
def test_the_relay_batches_its_round_trips(url, mode, monkeypatch):
    """Round trips per record copied: the producer's (each ``_transmit`` is one pipelined round
    trip), and every script call the server ran (INFO commandstats EVALSHA: polls, produces,
    commits, heartbeats). A producer waiting for each record (the old relay's linger_ms=0, before
    it batched) costs at least 1 of each per record."""
    n = 5000
    with Admin(url) as a:
        a.create_topic("src", 4)
        a.create_topic("dst", 4)
    with Producer(url) as p:
        for i in range(n):
            p.send("src", f"k{i % 50}:{i}", key=f"k{i % 50}")
    real, transmits = Producer._transmit, []

    def counted(self, batches):
        transmits.append(sum(b.n for b in batches.values()))
        return real(self, batches)

    monkeypatch.setattr(Producer, "_transmit", counted)
    r = redis.Redis.from_url(url)
    try:
        r.config_resetstat()
        stats = relay("src", "dst", "r", url, idle_timeout_ms=300, consumer_options=FAST, **MODES[mode])
        scripts = r.info("commandstats")["cmdstat_evalsha"]["calls"]
    finally:
        r.close()
    assert stats.copied == n
    print(f"\nrelay ({mode}), {n} records: {len(transmits)} produce round trips, {scripts} script calls "
          f"({scripts / n:.4f} per record)")  # fmt: skip
    assert sum(transmits) == (0 if mode == "atomic" else n)
    assert len(transmits) <= n / 50
    assert scripts / n < 0.1


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
def test_a_read_run_twice_after_a_lost_reply_skips_no_record(url, monkeypatch, guarantee):
    """redis-py sends a pipeline again when its connection drops after sending it, so a read
    whose reply was lost runs twice and the group's position has moved past what the first one
    read. The relay's chaos run found the consumer (auto_offset_reset="earliest") then handing out
    the records after the gap, the ones in it never: a relay committed past records it never
    copied. Here the second read is run twice on purpose."""
    from facade import Consumer

    with Admin(url) as a:
        a.create_topic("t", 1)
    with Producer(url) as p:
        for i in range(10):
            p.send("t", f"v{i}")
    reads = []

    def second_read(calls):
        if all(call[0] == "fetch" for call in calls):
            reads.append(1)
            return len(reads) == 2
        return False

    run_twice(monkeypatch, second_read)
    got = []
    with Consumer("t", "g", url, guarantee=guarantee, auto_offset_reset="earliest", enable_auto_commit=False,
                  **FAST) as c:  # fmt: skip
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            got += [m.offset for m in c.poll(timeout_ms=100, max_records=3)]
    assert got == list(range(10))
    if guarantee == "exactly-once":
        assert len(reads) >= 2  # (at-least-once reads with a guarded MULTI/EXEC, not this script)


@pytest.mark.parametrize("options", [{"guarantee": "exactly-once"}, {"max_deliveries": 50}], ids=["exactly-once", "max_deliveries"])
def test_a_read_run_twice_whose_second_run_finds_nothing_stalls_nothing(url, monkeypatch, options):
    """The same resend, when the second run finds nothing new: the first run's records were read
    into the lost reply, and the group's position was past them. Nothing showed the gap, so the
    partition stalled until another record was appended (an adversarial helper found it). Now a
    read says where the member's reads left the position (fetch.lua, ARGV[10]): the second run
    reads the same records again."""
    from facade import Consumer

    with Admin(url) as a:
        a.create_topic("t", 1)
    with Producer(url) as p:
        for i in range(5):
            p.send("t", f"v{i}")
    armed = []

    def armed_read(calls):
        if armed and all(call[0] == "fetch" for call in calls):
            armed.clear()
            return True
        return False

    run_twice(monkeypatch, armed_read)
    with Consumer("t", "g", url, auto_offset_reset="earliest", enable_auto_commit=False, **options, **FAST) as c:
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            got += [m.offset for m in c.poll(timeout_ms=100)]
        assert got == list(range(5)) and c.poll(timeout_ms=300) == []
        with Producer(url) as p:
            p.send("t", "v5")
            p.send("t", "v6")
        armed.append(1)
        deadline = time.monotonic() + 5
        while len(got) < 7 and time.monotonic() < deadline:
            got += [m.offset for m in c.poll(timeout_ms=100)]
    assert not armed and got == list(range(7))


def test_the_cli_dead_letters_an_output_over_16_mib_and_says_so(url):
    with Admin(url) as a:
        a.create_topic("src", 1)
        a.create_topic("dst", 1)
    huge = b"h" * (9 * 1024 * 1024)  # keyed by itself, its output is 18 MiB
    with Producer(url, max_message_bytes=10 * 1024 * 1024) as p:
        for value in (b"a", huge, b"c"):
            p.send("src", value, key=b"k")
    args = ["--url", url, "relay", "src", "dst", "-g", "r", "--key-from", "value", "--idle-timeout-ms", "500"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Relayed 2 records from src to dst" in result.stderr
    assert "; 1 could not be copied and went to src.dlq." in result.stderr
    assert [v for _, v, _ in stored(url, "dst", 1)] == [b"a", b"c"]
    (dead,) = stored(url, "src.dlq", 1)
    assert dead[1] == huge and b"src[0] offset 1 cannot be copied to dst" in dead[2]["dlq.error"]


def test_a_large_commit_with_outputs_sent_twice_stores_each_output_once(url, monkeypatch):
    """commit(outputs=...) of 800 outputs with headers from one partition needs two transact
    chunks. They used to go in one round trip: sent again after a lost reply (redis-py resends a
    pipeline whose connection dropped; the committer retries a failed round trip), the first
    chunk's id was no longer the partition's last, so both chunks were applied again: 1,600
    outputs. Each round trip now holds one chunk per partition."""
    import facade._sync.client as client_module
    from facade import Consumer, OutputRecord

    n = 800
    with Admin(url) as a:
        a.create_topic("in", 1)
        a.create_topic("out", 1)
    with Producer(url) as p:
        for i in range(n):
            p.send("in", f"v{i}", key="k", headers={"a": "1", "b": "2"})
    real, rounds = client_module.Connection.pipeline, []

    def twice(self, calls, context, tail=()):
        if calls and calls[0][0] == "transact":
            rounds.append(len(calls))
            real(self, calls, context, tail)  # ran, its reply lost: sent again
        return real(self, calls, context, tail)

    monkeypatch.setattr(client_module.Connection, "pipeline", twice)
    with Consumer("in", "g", url, guarantee="exactly-once", auto_offset_reset="earliest", enable_auto_commit=False,
                  **FAST) as c:  # fmt: skip
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            got += c.poll(timeout_ms=200, max_records=n - len(got))
        c.commit([OutputRecord(m, "out", m.value, m.key, m.headers) for m in got])
    assert [v for _, v, _ in stored(url, "out", 1)] == [f"v{i}".encode() for i in range(n)]
    assert len(rounds) == 2  # two chunks, one round trip each
    assert committed(url, "g", "in") == {0: n}
