"""Limits that protect the server, each at and one past the limit, on a real server.

Exactly at a limit works; one past fails with a clear error and stores nothing. Also: the server
out of memory (noeviction), scripts flushed under a running client, and the server dying while
a batch is in flight. The limits are listed in docs/bad-input.md ("Limits").
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from facade import (
    Admin,
    ConfigError,
    Consumer,
    FacadeError,
    MessageTooLargeError,
    OutOfMemoryError,
    Producer,
    ProducerConfig,
    TopicPartition,
    keys,
)
from facade.codec import MAX_HEADERS

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}
RECORD_OVERHEAD = 16  # bytes a buffered record counts on top of its data (producer._RECORD_OVERHEAD)


@pytest.fixture
def raw(url):
    with redis.Redis.from_url(url) as r:
        yield r


def snapshot(r: redis.Redis) -> dict[bytes, bytes]:
    return {k: r.dump(k) for k in sorted(r.keys("*"))}


def topic(url: str, name: str = "t", partitions: int = 1, **kw) -> None:
    with Admin(url) as a:
        a.create_topic(name, partitions, **kw)


def poll_all(c: Consumer, want: int, max_records: int | None = None, rounds: int = 200) -> list:
    got: list = []
    for _ in range(rounds):
        got += c.poll(timeout_ms=50, max_records=max_records)
        if len(got) >= want:
            break
    return got


# ---------------------------------------------------------------------------------------------
# Record size: key + value + header names + header values <= max_message_bytes


@pytest.mark.parametrize("limit", [ProducerConfig().max_message_bytes, 1000], ids=["default-1MiB", "1000"])
def test_record_size_at_and_past_max_message_bytes(url, raw, limit):
    topic(url)
    options = {} if limit == ProducerConfig().max_message_bytes else {"max_message_bytes": limit}
    headers = {"h\u00e9": b"12345"}  # a 3-byte name (UTF-8) and a 5-byte value count too
    with Producer(url, linger_ms=0, **options) as p:
        value = b"v" * (limit - 3 - 8)
        md = p.send_and_wait("t", value, key=b"key", headers=headers)
        before = snapshot(raw)
        with pytest.raises(
            MessageTooLargeError, match=f"exceeds max_message_bytes={limit}.*nothing was sent"
        ):
            p.send("t", value + b"v", key=b"key", headers=headers)
        p.flush()
    assert snapshot(raw) == before
    stored = next(f for eid, f in raw.xrange(keys.stream("t", 0)) if int(eid.split(b"-")[1]) == md.offset)
    assert stored[b"value"] == value and stored[b"h:h\xc3\xa9"] == b"12345"


@pytest.mark.parametrize(
    "option,at,past",
    [
        ("max_message_bytes", 512 * 1024 * 1024, 512 * 1024 * 1024 + 1),
        ("max_message_bytes", 1, 0),
        ("batch_size", 64 * 1024 * 1024, 64 * 1024 * 1024 + 1),
        ("batch_size", 1, 0),
        ("auto_create_partitions", 1024, 1025),
        ("producer_id_expiry_ms", 1000, 999),
        ("linger_ms", 60_000, 60_001),
    ],
)
def test_producer_option_bounds(option, at, past):
    assert getattr(ProducerConfig(**{option: at}), option) == at
    with pytest.raises(ConfigError, match=option):
        ProducerConfig(**{option: past})


# ---------------------------------------------------------------------------------------------
# Batches: batch_size bytes buffered sends at once; a big batch still goes in one script call


@pytest.mark.parametrize("extra,sent_at_once", [(0, True), (1, False)], ids=["at-limit", "one-past"])
def test_batch_size_sends_when_reached(url, raw, extra, sent_at_once):
    # A full buffer goes out at once, in the background: send() does not wait for it, and nothing
    # waits for linger_ms (a minute here).
    topic(url)
    limit = 3 * (100 + RECORD_OVERHEAD) + extra
    with Producer(url, linger_ms=60_000, batch_size=limit) as p:
        futs = [p.send("t", b"x" * 100) for _ in range(3)]
        if sent_at_once:
            assert [f.result(timeout=5).offset for f in futs] == [int(e[0].split(b"-")[1]) for e in raw.xrange(keys.stream("t", 0))]
        else:
            time.sleep(0.3)
            assert not any(f.done() for f in futs) and raw.xlen(keys.stream("t", 0)) == 0
        p.flush()
    assert raw.xlen(keys.stream("t", 0)) == 3


def test_a_record_larger_than_batch_size_goes_alone_and_at_once(url, raw):
    topic(url)
    with Producer(url, linger_ms=60_000, batch_size=10) as p:
        assert p.send("t", b"x" * 100).result(timeout=5)
        assert raw.xlen(keys.stream("t", 0)) == 1


def test_a_batch_of_many_records_is_one_script_call(url, raw):
    topic(url)
    n = 20_000  # far past Lua's ~8000-value unpack() limit: records are unpacked one at a time
    with Producer(url, linger_ms=60_000, batch_size=64 * 1024 * 1024) as p:
        futs = [p.send("t", b"%d" % i) for i in range(n)]
        p.flush()
    offsets = [f.result().offset for f in futs]
    assert len(set(offsets)) == n
    assert [e[1][b"value"] for e in raw.xrange(keys.stream("t", 0))] == [b"%d" % i for i in range(n)]


def test_header_count_limit(url, raw):
    """A record's fields reach XADD through one Lua unpack() (about 8000 values): at most 1000
    headers, refused before anything is buffered, so a batch never fails half-appended."""
    topic(url)
    with Producer(url, linger_ms=0) as p:
        many = {f"h{i}": b"" for i in range(MAX_HEADERS)}
        assert p.send_and_wait("t", b"v", headers=many).offset is not None
    before = snapshot(raw)
    with Producer(url, linger_ms=60_000) as p:
        good = p.send("t", b"good")
        with pytest.raises(ConfigError, match=f"at most {MAX_HEADERS} headers"):
            p.send("t", b"bad", headers={f"h{i}": b"" for i in range(MAX_HEADERS + 1)})
        p.flush()
        assert good.result().offset is not None
    assert snapshot(raw) != before  # the good record, and only it, was stored


# ---------------------------------------------------------------------------------------------
# Partitions: 1..1024


def test_partition_count_at_and_past_1024(url, raw):
    assert keys.MAX_PARTITIONS == 1024
    with Admin(url) as a:
        a.create_topic("wide", 1024)
        before = snapshot(raw)
        with pytest.raises(ConfigError, match="between 1 and 1024, got 1025"):
            a.create_topic("wider", 1025)
        with pytest.raises(ConfigError, match="between 1 and 1024, got 1025"):
            a.alter_partitions("wide", 1025)
        assert snapshot(raw) == before
        a.create_topic("grow", 1000)
        assert a.alter_partitions("grow", 1024).partitions == 1024
    with Producer(url, linger_ms=0) as p:
        assert p.send_and_wait("wide", b"x", partition=1023).partition == 1023
        with pytest.raises(ConfigError, match="from 0 to 1023"):
            p.send("wide", b"x", partition=1024)


# ---------------------------------------------------------------------------------------------
# Dedup state: dedup_max_ids per partition, dedup ids of 1..256 bytes


def test_dedup_ids_at_and_past_dedup_max_ids(url, raw):
    with Admin(url) as a:
        a.create_topic("t", 1, dedup_max_ids=5)
    with Producer(url, linger_ms=0) as p:
        first = {i: p.send_and_wait("t", b"x", dedup_id=f"d{i}").offset for i in range(5)}
        assert all(p.send_and_wait("t", b"again", dedup_id=f"d{i}").offset == first[i] for i in range(5))
        assert raw.zcard(keys.dedup_index("t", 0)) == raw.hlen(keys.dedup("t", 0)) == 5
        p.send_and_wait("t", b"x", dedup_id="d5")  # one past: the oldest id is forgotten
        assert raw.zcard(keys.dedup_index("t", 0)) == raw.hlen(keys.dedup("t", 0)) == 5
        assert p.send_and_wait("t", b"again", dedup_id="d0").offset != first[0]  # stored again
        assert p.send_and_wait("t", b"again", dedup_id="d4").offset == first[4]  # still remembered
    assert raw.xlen(keys.stream("t", 0)) == 7


@pytest.mark.parametrize(
    "option,at,past",
    [
        ("dedup_max_ids", 10_000_000, 10_000_001),
        ("dedup_max_ids", 1, 0),
        ("dedup_window_ms", 10 * 365 * 86_400_000, 10 * 365 * 86_400_000 + 1),
        ("dedup_window_ms", 1, 0),
    ],
)
def test_topic_dedup_setting_bounds(url, raw, option, at, past):
    with Admin(url) as a:
        assert getattr(a.create_topic("at", 1, **{option: at}), option) == at
        assert getattr(a.topic("at"), option) == at
        with pytest.raises(ConfigError, match=f"{option} must be an integer between"):
            a.create_topic("past", 1, **{option: past})
    assert raw.hkeys(keys.TOPICS) == [b"at"]  # the refused topic left nothing behind


@pytest.mark.parametrize("option", ["dedup_window_ms", "dedup_max_ids"])
def test_dedup_settings_are_the_topics_not_a_producers(url, option):
    # A producer's own dedup window or cap would cut short every other producer's dedup ids.
    with pytest.raises(ConfigError, match=f"{option} is the topic's setting.*create_topic"):
        Producer(url, **{option: 1})


def test_dedup_id_length(url, raw):
    topic(url)
    with Producer(url, linger_ms=0) as p:
        assert p.send_and_wait("t", b"x", dedup_id="d" * 256).offset == 0
        before = snapshot(raw)
        for bad in ("d" * 257, "", "\u00e9" * 129):
            with pytest.raises(ConfigError, match="dedup_id must be 1 to 256 bytes"):
                p.send("t", b"x", dedup_id=bad)
    assert snapshot(raw) == before


# ---------------------------------------------------------------------------------------------
# Commits: one offset per partition, however many records it covers


@pytest.mark.parametrize("asynchronous", [False, True], ids=["commit", "commit-async"])
@pytest.mark.parametrize("n", [1, 9000])
def test_a_commit_is_one_offset_however_many_records_it_covers(url, raw, n, asynchronous):
    topic(url)
    with Producer(url, linger_ms=60_000, batch_size=64 * 1024 * 1024) as p:
        for i in range(n):
            p.send("t", b"%d" % i)
    with Consumer("t", "g", url, auto_offset_reset="earliest", max_poll_records=n, **FAST) as c:
        got = poll_all(c, n)
        assert len(got) == n and raw.hget(keys.committed("t", 0), "g") is None
        raw.config_resetstat()
        c.commit(asynchronous=asynchronous)
        if asynchronous:  # the commit rides with the next read
            assert raw.hget(keys.committed("t", 0), "g") is None
            c.poll(timeout_ms=0)
        assert raw.hget(keys.committed("t", 0), "g") == b"%d" % n
        assert c.committed()[TopicPartition("t", 0)] == got[-1].offset + 1 == n
        stats = raw.info("commandstats")
        assert stats.get("cmdstat_xack") is None  # nothing to acknowledge record by record


def test_a_new_owner_whose_committed_records_were_all_trimmed_starts_at_the_log_start(url, raw):
    topic(url)
    n = 9000
    with Producer(url, linger_ms=60_000, batch_size=64 * 1024 * 1024) as p:
        for i in range(n):
            p.send("t", b"%d" % i)
    with Consumer("t", "g", url, auto_offset_reset="earliest", max_poll_records=n, **FAST) as c:
        assert len(poll_all(c, n)) == n
        c.commit(offsets={TopicPartition("t", 0): 10})
    raw.xtrim(keys.stream("t", 0), maxlen=0)  # retention removes them all
    with Producer(url, linger_ms=0) as p:
        p.send_and_wait("t", b"new")
    with Consumer("t", "g", url, auto_offset_reset="earliest", max_poll_records=n, reconnect_timeout_ms=0, **FAST) as c:
        got = poll_all(c, 1, rounds=40)
        assert [(m.value, m.offset) for m in got] == [(b"new", n)]


# ---------------------------------------------------------------------------------------------
# Out of memory (maxmemory + noeviction)


def test_out_of_memory_is_retried_then_reported_and_recovers(server_factory):
    server = server_factory("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    topic(server.url)
    with Producer(server.url, linger_ms=0) as p:
        stored = [p.send_and_wait("t", b"before-%d" % i) for i in range(10)]
    with server.client() as r:
        n = 0
        with pytest.raises(redis.OutOfMemoryError):
            while n < 10_000:
                r.set(f"scratch:{n}", b"x" * 10_000)
                n += 1
        # Freed query buffers can leave a few bytes of room: make sure the server stays full.
        r.config_set("maxmemory", r.info("memory")["used_memory"] - 64 * 1024)
        before = r.xrange(keys.stream("t", 0))
        with Producer(server.url, linger_ms=0, delivery_timeout_ms=300) as p:
            started = time.monotonic()
            with pytest.raises(
                OutOfMemoryError, match="out of memory.*raise maxmemory, trim topics or add capacity"
            ):
                p.send_and_wait("t", b"during")
            assert time.monotonic() - started >= 0.3  # retried until delivery_timeout_ms
        assert OutOfMemoryError.retriable
        assert r.xrange(keys.stream("t", 0)) == before  # stored records intact, nothing added
        assert [int(e[0].split(b"-")[1]) for e in before] == [md.offset for md in stored]
        r.delete(*[f"scratch:{i}" for i in range(n)])
        with Producer(server.url, linger_ms=0, delivery_timeout_ms=300) as p:
            after = p.send_and_wait("t", b"after")
        last_id, fields = r.xrange(keys.stream("t", 0))[-1]
        assert (int(last_id.split(b"-")[1]), fields[b"value"]) == (after.offset, b"after")


# ---------------------------------------------------------------------------------------------
# SCRIPT FLUSH (or a restart without persistence of scripts) under running clients


def test_flushed_scripts_are_reloaded_transparently(url, raw):
    raw.script_flush()
    topic(url, "t", 2)
    with Producer(url, linger_ms=0) as p, Consumer("t", "g", url, auto_offset_reset="earliest", **FAST) as c:
        p.send_and_wait("t", b"a", key=b"1")
        raw.script_flush()
        p.send_and_wait("t", b"b", key=b"1")  # produce: pipelined (SCRIPT EXISTS, SCRIPT LOAD)
        raw.script_flush()
        got = poll_all(c, 2)  # join, heartbeat, sync, claim (direct), fetch (pipelined)
        raw.script_flush()
        c.commit()
        raw.script_flush()
        tp = next(iter(c.assignment()))
        c.seek_to_beginning([tp])  # set_position
        assert [m.value for m in got] == [b"a", b"b"]
        raw.script_flush()
    assert raw.hget(keys.committed("t", got[0].partition), "g") is not None
    raw.script_flush()
    with Admin(url) as a:
        a.alter_partitions("t", 3)  # partition_init, topic_register
        a.delete_group("g")  # group_delete


def test_a_pipeline_half_of_whose_scripts_were_flushed_runs_each_call_once(url, raw):
    # Pipelines send EVALSHA without asking SCRIPT EXISTS first. After a flush that another client
    # partly repaired (one script loaded again), the NOSCRIPT calls are sent again after loading,
    # the others are not, and the tail still comes last, once.
    from facade import scripts
    from facade._sync.client import Connection

    topic(url, "t", 2)
    own0, own1 = keys.owners("t", 0), keys.owners("t", 1)
    raw.hset(own0, "g", "m|a")
    raw.hset(own1, "g", "m|b")
    raw.script_flush()
    raw.script_load(scripts.source("release"))
    conn = Connection(url)
    try:
        calls = [
            scripts.commit("g", [(TopicPartition("t", 0), "m|x", 1, False, "")]),  # not the owner: FENCED
            scripts.release(TopicPartition("t", 1), "g", "m|b"),  # loaded: runs in the first round trip
            scripts.release(TopicPartition("t", 0), "g", "m|a"),
        ]
        out = conn.pipeline(calls, "testing", tail=[("HLEN", own0), ("HLEN", own1)])
    finally:
        conn.close()
    assert isinstance(out[0], list) and isinstance(out[0][0], Exception) and "FENCED" in str(out[0][0])
    assert out[1:] == [1, 1, 0, 0]
    assert raw.script_exists(scripts.Scripts(raw).commit.sha) == [True]


# ---------------------------------------------------------------------------------------------
# The server dies while batches are in flight


@pytest.mark.parametrize("restart", [True, False], ids=["restarted-in-time", "stays-down"])
def test_server_death_mid_batch_never_reports_a_record_that_is_not_stored(server_factory, restart):
    # appendfsync always: whatever the server acknowledged survives the kill.
    server = server_factory("--appendonly", "yes", "--appendfsync", "always")
    topic(server.url, "t", 4)
    killed = threading.Event()

    def kill_soon() -> None:
        time.sleep(0.01)
        server.kill()
        killed.set()
        if restart:
            time.sleep(0.3)
            server.start()

    # The kill lands while records are being sent: started once some are out, and sending goes on
    # for a while after it (until a batch fails for good, when the server stays down).
    killer = threading.Thread(target=kill_soon)
    futs = []
    after_kill = 0
    deadline = time.monotonic() + 20
    try:
        with Producer(
            server.url, linger_ms=2, batch_size=2048, delivery_timeout_ms=2000 if restart else 300
        ) as p:
            i = 0
            while after_kill < 1000 and time.monotonic() < deadline:
                if i == 500:
                    killer.start()
                try:
                    fut = p.send("t", b"%d" % i, key=b"%d" % (i % 16))
                except FacadeError:
                    break  # the topic lookup itself can fail while the server is down
                futs.append((b"%d" % i, fut))
                i += 1
                after_kill += killed.is_set()
                if fut.done() and fut.exception() is not None:
                    break  # a batch failed for good: the server is gone
            p.flush()
    finally:
        if killer.is_alive():
            killer.join()
    assert killed.is_set()
    if not server.running:
        server.start()
    with server.client() as r:
        stored = {}
        for part in range(4):
            for eid, fields in r.xrange(keys.stream("t", part)):
                assert fields[b"value"] not in stored, "a record was stored twice"
                stored[fields[b"value"]] = (part, int(eid.split(b"-")[1]))
    failed = 0
    for value, fut in futs:
        assert fut.done()
        if fut.exception() is not None:
            assert isinstance(fut.exception(), FacadeError)
            failed += 1
            continue
        md = fut.result()
        assert stored.get(value) == (md.partition, md.offset), f"record {value!r} reported stored but is not"
    assert failed or restart
