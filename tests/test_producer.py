"""Producer against a real server: placement, order, batching, limits, retention, errors."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from busy import LONG_SCRIPT, refused_as_busy
from conftest import wait_until
from kafka_reference import kafka_partition

from facade import (
    Admin,
    ConfigError,
    ConnectionFailedError,
    MessageTooLargeError,
    Producer,
    RecordMetadata,
    TopicPartition,
    UnknownTopicError,
    keys,
)


@pytest.fixture
def raw(url):
    r = redis.Redis.from_url(url)
    yield r
    r.close()


def make_topic(url, name="t", partitions=4, **kw):
    with Admin(url) as a:
        return a.create_topic(name, partitions, **kw)


def entries(raw, topic, partition):
    return raw.xrange(keys.stream(topic, partition))


def test_keyed_records_land_where_kafka_puts_them(url, raw):
    make_topic(url, "k", 12)
    with Producer(url) as p:
        futs = {f"user-{i}": p.send("k", f"v{i}", key=f"user-{i}") for i in range(200)}
        p.flush()
    for key, fut in futs.items():
        md = fut.result()
        assert md.partition == kafka_partition(key.encode(), 12)
        stored = [e for e in raw.xrange(keys.stream("k", md.partition)) if e[0].endswith(b"-%d" % md.offset)]
        assert stored[0][1][b"key"] == key.encode()


def test_order_within_partition_and_readable_entries(url, raw):
    make_topic(url, "o", 3)
    with Producer(url, batch_size=500) as p:  # small batches: many round trips
        for i in range(300):
            p.send("o", f"{i}", key="same-key", headers={"trace": "t1", "bin": b"\x00\xff"})
    part = kafka_partition(b"same-key", 3)
    stored = entries(raw, "o", part)
    assert [int(e[1][b"value"]) for e in stored] == list(range(300))
    # Plain Redis tools see key, value, the create-time delta and headers, in that order, and
    # the offset in the entry ID.
    assert list(stored[0][1].items()) == [
        (b"key", b"same-key"), (b"value", b"0"), (b"ts", stored[0][1][b"ts"]), (b"h:trace", b"t1"), (b"h:bin", b"\x00\xff")
    ]  # fmt: skip
    assert 0 <= int(stored[0][1][b"ts"]) < 10_000
    assert [int(e[0].split(b"-")[1]) for e in stored] == list(range(300))
    assert sum(raw.xlen(keys.stream("o", i)) for i in range(3)) == 300


def test_keyless_records_stick_to_one_partition_per_batch(url, raw):
    make_topic(url, "s", 6)
    with Producer(url, linger_ms=10_000, batch_size=64 * 1024 * 1024) as p:
        futs = [p.send("s", b"x") for _ in range(50)]
        p.flush()
        assert len({f.result().partition for f in futs}) == 1
        used = set()
        for _ in range(30):
            futs = [p.send("s", b"y") for _ in range(5)]
            p.flush()
            parts = {f.result().partition for f in futs}
            assert len(parts) == 1
            used |= parts
    assert len(used) >= 4  # moves on after each batch, over all partitions in time


def test_explicit_partition_and_bad_partition(url, raw):
    make_topic(url, "e", 2)
    with Producer(url) as p:
        assert p.send_and_wait("e", b"a", key="whatever", partition=1).partition == 1
        for bad in (2, -1, "1", True):
            with pytest.raises(ConfigError, match="partition must be an integer from 0 to 1"):
                p.send("e", b"a", partition=bad)
    assert raw.xlen(keys.stream("e", 0)) + raw.xlen(keys.stream("e", 1)) == 1


def test_value_and_header_types(url, raw):
    make_topic(url, "v", 1)
    with Producer(url) as p:
        md = p.send_and_wait("v", "", key=b"")
        assert isinstance(md, RecordMetadata) and md.timestamp_ms > 0
        for bad_value in (None, 5, {"a": 1}):
            with pytest.raises(ConfigError, match="value must be bytes or str"):
                p.send("v", bad_value)
        with pytest.raises(ConfigError, match="header names"):
            p.send("v", b"x", headers={1: b"x"})
        with pytest.raises(ConfigError, match="header 'h' must be bytes or str"):
            p.send("v", b"x", headers={"h": 3})
    assert raw.xlen(keys.stream("v", 0)) == 1


def test_too_large_refused_before_sending(url, raw):
    make_topic(url, "big", 1)
    with Producer(url, max_message_bytes=1000) as p:
        p.send_and_wait("big", b"x" * 1000)  # exactly at the limit: accepted
        with pytest.raises(MessageTooLargeError, match="exceeds max_message_bytes=1000"):
            p.send("big", b"x" * 998, key=b"k", headers={"h": b"v"})  # 1001 bytes
    assert raw.xlen(keys.stream("big", 0)) == 1
    with Producer(url) as p, pytest.raises(MessageTooLargeError):  # default limit: 1 MiB
        p.send("big", b"x" * (1024 * 1024 + 1))


def test_unknown_topic_error_says_how_to_create(url, raw):
    with Producer(url) as p, pytest.raises(
        UnknownTopicError, match=r"create_topic\('nope', partitions=N\).*auto_create=True"
    ):
        p.send("nope", b"x")
    assert raw.dbsize() == 0


def test_auto_create(url):
    with Producer(url, auto_create=True, auto_create_partitions=3) as p:
        assert p.send_and_wait("fresh", b"x").topic == "fresh"
    with Admin(url) as a:
        assert a.topic("fresh").partitions == 3


def test_linger_sends_without_flush(url):
    make_topic(url, "l", 1)
    with Producer(url, linger_ms=20) as p:
        fut = p.send("l", b"x")
        assert fut.result(timeout=5).partition == 0


def test_max_len_retention_trims_approximately(url, raw):
    make_topic(url, "cap", 1, max_len=100)
    with Producer(url, batch_size=2000) as p:
        for i in range(5000):
            p.send("cap", b"x" * 10)
    length = raw.xlen(keys.stream("cap", 0))
    assert 100 <= length < 1000  # approximate trim (~) keeps whole nodes


def test_age_retention_trims_old_entries(url, raw):
    make_topic(url, "age", 1, retention_ms=60_000)
    stream = keys.stream("age", 0)
    old_ms = int(time.time() * 1000) - 3_600_000
    for i in range(300):  # an hour old: beyond retention
        raw.xadd(stream, {"value": b"old"}, id=f"{old_ms}-{i}")
    with Producer(url) as p:
        p.send_and_wait("age", b"new")
    values = [e[1][b"value"] for e in raw.xrange(stream)]
    assert values[-1] == b"new"
    assert values.count(b"old") < 300  # MINID ~ trims whole old nodes


def test_concurrent_senders_keep_their_order(url, raw):
    make_topic(url, "c", 2)
    with Producer(url, linger_ms=1, batch_size=2048) as p:

        def run(n):
            for i in range(400):
                p.send("c", f"{n}:{i}", key=f"thread-{n}")

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seen: dict[str, list[int]] = {}
    for part in range(2):
        for _, fields in entries(raw, "c", part):
            n, i = fields[b"value"].decode().split(":")
            seen.setdefault(n, []).append(int(i))
    assert {n: len(v) for n, v in seen.items()} == {str(n): 400 for n in range(4)}
    assert all(v == sorted(v) for v in seen.values())


def test_topic_deleted_while_producing(url):
    make_topic(url, "gone", 2)
    with Producer(url, metadata_max_age_ms=60_000) as p:
        p.send_and_wait("gone", b"x")
        with Admin(url) as a:
            a.delete_topic("gone")
        fut = p.send("gone", b"y", partition=0)
        p.flush()
        with pytest.raises(UnknownTopicError, match="deleted"):
            fut.result()
        with pytest.raises(UnknownTopicError):
            p.send("gone", b"z")  # the cache was dropped: the next send asks again


def test_dead_server_fails_futures(server_factory):
    srv = server_factory()
    make_topic(srv.url, "d", 1)
    p = Producer(srv.url, linger_ms=10_000, delivery_timeout_ms=300)
    try:
        fut = p.send("d", b"x")
        srv.kill()
        started = time.monotonic()
        p.flush()
        assert 0.3 <= time.monotonic() - started < 5  # retried until the delivery timeout
        with pytest.raises(ConnectionFailedError, match="cannot reach the server"):
            fut.result()
    finally:
        p.close()  # nothing buffered: closing needs no server


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
def test_records_sent_while_a_long_script_holds_the_server_are_retried_and_stored_once(server_factory, idempotent):
    # Issue 14 item 5. Past busy-reply-threshold a server running a long script answers BUSY to
    # every other command, without running it: the producer retries (ServerBusyError is retriable)
    # until delivery_timeout_ms instead of failing the records, and a retry cannot double a record,
    # with or without idempotence (nothing ran). Verified to fail with BUSY mapped to a plain
    # BrokerError (not retriable): every record sent meanwhile failed.
    srv = server_factory("--busy-reply-threshold", "50")
    make_topic(srv.url, "b", 3)
    with srv.client() as r, srv.client() as probe:
        hold = threading.Thread(target=r.eval, args=(LONG_SCRIPT, 0, 1500))
        with Producer(srv.url, linger_ms=0, idempotent=idempotent, retry_backoff_ms=20, metrics=True) as p:
            p.send_and_wait("b", b"before", key="k0")  # connected, topic known
            pid = p.producer_id
            hold.start()
            try:
                wait_until(lambda: refused_as_busy(probe), timeout=5, what="the server answers BUSY")
                futures = [p.send("b", f"v{i}", key=f"k{i % 7}") for i in range(30)]
                p.flush()
                outcomes = [f.exception(timeout=30) or f.result() for f in futures]
            finally:
                hold.join()
            failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
            assert failed == []  # none failed: each was retried until the script was over
            assert p.metrics()["record_retry_total"]["b"] >= 1  # the records were refused at least once
            assert p.producer_id == pid  # BUSY leaves no doubt about the outcome: same producer id
        busy_replies = r.info("errorstats")["errorstat_BUSY"]["count"]
        stored = [f[b"value"].decode() for q in range(3) for _, f in entries(r, "b", q)]
    assert busy_replies >= 2  # the probe's and the producer's
    assert sorted(stored) == sorted(["before"] + [f"v{i}" for i in range(30)])  # each once
    assert len({(m.partition, m.offset) for m in outcomes}) == 30


def test_closed_producer_refuses(url):
    make_topic(url, "x", 1)
    p = Producer(url)
    p.close()
    p.close()  # idempotent
    with pytest.raises(ConfigError, match="closed"):
        p.send("x", b"v")


def test_unknown_option_refused(url):
    with pytest.raises(ConfigError, match="unknown option"):
        Producer(url, lingerms=5)
    with pytest.raises(ConfigError, match="acks must be 0, 1 or 'all'"):
        Producer(url, acks=2)


def test_acks_all_waits_for_every_configured_replica_and_refuses_before_appending(server_factory):
    from conftest import wait_until

    from facade import Admin, NotEnoughReplicasError

    primary = server_factory()
    replica = server_factory("--replicaof", "127.0.0.1", str(primary.port))
    address = f"127.0.0.1:{replica.port}"
    r = redis.Redis(port=primary.port)
    wait_until(lambda: r.info("replication")["connected_slaves"] == 1 and
               redis.Redis(port=replica.port).info("replication")["master_link_status"] == "up", timeout=15)
    make_topic(primary.url, "a", 1)
    with Producer(primary.url, acks="all") as p:
        md = p.send_and_wait("a", b"replicated")  # the replica confirmed it
    assert md.offset == 0
    rr = redis.Redis(port=replica.port)
    assert wait_until(lambda: rr.xlen(keys.stream("a", 0)) == 1, timeout=5)
    with Admin(primary.url) as admin:
        seen = admin.describe_replicas()
    assert (seen.source, [(x.address, x.state) for x in seen.replicas]) == ("remembered", [(address, "in sync")])

    # Three copies asked for (Kafka's meaning: the primary and two replicas), two exist: refused
    # before the append, retried, then a clear failure; nothing is on the primary.
    with Producer(primary.url, acks="all", min_insync_replicas=3, replica_timeout_ms=50,
                  delivery_timeout_ms=400) as p:  # fmt: skip
        fut = p.send("a", b"under-replicated")
        p.flush()
        with pytest.raises(NotEnoughReplicasError, match=f"needs 2 replica.s. in sync; 1 in sync now .{address}.") as e:
            fut.result()
    assert "nothing was appended" in str(e.value) and "lower min_insync_replicas" in str(e.value)
    assert r.xlen(keys.stream("a", 0)) == 1

    # The replica goes away: the default still waits for it (it is configured), names it, and says
    # how to accept less; nothing is appended meanwhile.
    replica.kill()
    wait_until(lambda: r.info("replication")["connected_slaves"] == 0, timeout=10)
    with Producer(primary.url, acks="all", replica_timeout_ms=50, delivery_timeout_ms=400) as p:
        fut = p.send("a", b"alone")
        p.flush()
        with pytest.raises(NotEnoughReplicasError) as e:
            fut.result()
    message = str(e.value)
    assert f"{address} (not attached)" in message and "min_insync_replicas=1" in message, message
    assert "facade server replicas --forget" in message
    assert r.xlen(keys.stream("a", 0)) == 1
    # min_insync_replicas=1: the primary's copy is enough (as acks=1, but WAIT-free).
    with Producer(primary.url, acks="all", min_insync_replicas=1) as p:
        assert p.send_and_wait("a", b"one copy").offset == 1
    # Forgotten (removed for good): the default needs no replica any more.
    with Admin(primary.url) as admin:
        assert admin.forget_replica(address) is True
        assert admin.describe_replicas().replicas == ()
    with Producer(primary.url, acks="all") as p:
        assert p.send_and_wait("a", b"after forget").offset == 2
    with Producer(primary.url, acks=0) as p:
        assert p.send("a", b"fire-and-forget").result(timeout=1).offset is None
    assert r.xlen(keys.stream("a", 0)) == 4
    r.close()
    rr.close()


def test_one_batch_mixing_plain_records_with_headers_and_dedup_ids_stores_each_as_sent(url, raw):
    # Key-and-value records travel in produce.lua's compact form until the batch meets another
    # kind; then the batch switches to the general form. Either way the entries are the same.
    make_topic(url, partitions=1)
    sent = [
        {"value": b"v0", "key": b"k0"},
        {"value": b"v1", "key": b"k1"},
        {"value": b"v2", "key": b"k2", "headers": {"h": b"x"}},
        {"value": b"v3"},
        {"value": b"v4", "key": b"k4", "dedup_id": b"d4"},
        {"value": b"v5", "key": b"k5"},
    ]
    with Producer(url, linger_ms=60_000, batch_size=1 << 20) as p:
        futs = [p.send("t", **rec) for rec in sent]
        p.flush()
    entries = raw.xrange(keys.stream("t", 0))
    assert [f.result().offset for f in futs] == [int(e[0].split(b"-")[1]) for e in entries] == list(range(6))
    expected = []
    for rec, entry in zip(sent, entries):
        fields = {b"key": rec["key"]} if "key" in rec else {}
        fields[b"value"] = rec["value"]
        fields[b"ts"] = entry[1][b"ts"]
        fields.update({b"h:" + k.encode(): v for k, v in rec.get("headers", {}).items()})
        expected.append(fields)
    assert [e[1] for e in entries] == expected


def test_full_buffers_go_out_in_the_background_in_order(url, raw):
    # Many small batches, each sent while the next fills: per-partition order and every offset
    # as returned.
    make_topic(url, partitions=3)
    with Producer(url, linger_ms=60_000, batch_size=2048) as p:
        futs = [p.send("t", b"%d" % i, key=b"k%d" % (i % 7)) for i in range(3000)]
        p.flush()
    by_offset = {}
    for partition in range(3):
        for entry_id, fields in raw.xrange(keys.stream("t", partition)):
            by_offset[(partition, int(entry_id.split(b"-")[1]))] = fields
    assert len(by_offset) == 3000
    seen: dict[bytes, int] = {}
    for i, f in enumerate(futs):
        md = f.result()
        fields = by_offset[(md.partition, md.offset)]
        assert fields[b"value"] == b"%d" % i
        assert seen.get(fields[b"key"], -1) < i
        seen[fields[b"key"]] = i
    # keyed order within each partition follows send() order
    for partition in range(3):
        values = [int(f[b"value"]) for _, f in raw.xrange(keys.stream("t", partition))]
        assert values == sorted(values)


# ---------------------------------------------------------------------------------------------
# linger_ms=0: records sent while a round trip is in flight go out together in the next one


def produce_calls(raw) -> int:
    return raw.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def test_linger_0_sends_at_once_and_batches_what_arrives_during_a_round_trip(url, raw):
    make_topic(url, "z", 1)
    with Producer(url, linger_ms=0) as p:
        p.send_and_wait("z", b"warm-up")  # topic metadata read, scripts loaded
        raw.config_resetstat()
        raw.execute_command("CLIENT", "PAUSE", 3000, "WRITE")  # the first round trip waits 3 s
        started = time.monotonic()
        futures = [p.send("z", b"%d" % i) for i in range(1000)]
        looped = time.monotonic() - started
        assert not futures[0].done() and looped < 2.5  # send() never waited for the round trip
        # No flush: the sender itself sends what was buffered once the first reply is back.
        wait_until(lambda: all(f.done() for f in futures), timeout=20)
    assert [f.result().offset for f in futures] == list(range(1, 1001))
    assert [f[b"value"] for _, f in raw.xrange(keys.stream("z", 0))][1:] == [b"%d" % i for i in range(1000)]
    assert produce_calls(raw) <= 3  # the first record alone, then the other 999 together


def test_linger_0_from_many_threads_keeps_each_senders_order_and_strands_nothing(url, raw):
    make_topic(url, "m", 3)
    futures: dict[str, list] = {}
    with Producer(url, linger_ms=0) as p:

        def sender(name: str) -> None:
            futures[name] = [p.send("m", f"{name}:{i}", key=name) for i in range(300)]

        threads = [threading.Thread(target=sender, args=(f"s{t}",)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Without flush() every record is stored: none waits for a send() that never comes.
        wait_until(lambda: all(f.done() for fs in futures.values() for f in fs), timeout=30)
        for name, fs in futures.items():
            offsets = [f.result().offset for f in fs]
            assert offsets == sorted(offsets) and len({f.result().partition for f in fs}) == 1
        stored = [f[b"value"].decode() for part in range(3) for _, f in raw.xrange(keys.stream("m", part))]
    assert len(stored) == 2400
    for name in futures:
        assert [int(v.split(":")[1]) for v in stored if v.startswith(f"{name}:")] == list(range(300))


def test_linger_0_under_asyncio_batches_too(url, raw):
    import asyncio

    import facade.aio

    make_topic(url, "a", 1)

    async def main() -> list:
        async with facade.aio.Producer(url, linger_ms=0) as p:
            await p.send_and_wait("a", b"warm-up")
            raw.config_resetstat()
            raw.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
            futures = [await p.send("a", b"%d" % i) for i in range(500)]
            return [md.offset for md in await asyncio.wait_for(asyncio.gather(*futures), 20)]

    assert asyncio.run(main()) == list(range(1, 501))
    assert produce_calls(raw) <= 3


def test_a_timestamp_outside_0_to_year_9999_is_refused_at_send_and_the_largest_is_kept_exactly(url, raw):
    """The SDK's timestamps stay within what produce.lua stores exactly (year 9999 < 2^53 ms): a
    larger one (or a negative one) is a ConfigError at send(), nothing sent; the largest allowed
    reads back exactly."""
    from facade.offsets import MAX_TIMESTAMP_MS
    from facade.scripts import MAX_CREATE_TIME_MS

    assert MAX_TIMESTAMP_MS < MAX_CREATE_TIME_MS
    make_topic(url, partitions=1)
    with Producer(url) as p:
        for bad in (MAX_TIMESTAMP_MS + 1, 2**53, 2**63, -1):
            with pytest.raises(ConfigError, match=r"timestamp_ms must be between 0 and 253402300799999 \(year 9999\)"):
                p.send("t", b"x", timestamp_ms=bad)
        p.send_and_wait("t", b"a", timestamp_ms=MAX_TIMESTAMP_MS)
    (stored,) = Admin(url).read_records(TopicPartition("t", 0))
    assert (stored.value, stored.timestamp_ms) == (b"a", MAX_TIMESTAMP_MS)


def test_the_producers_sequences_wrap_from_int32_max_to_zero(url, raw):
    """As Kafka's, the SDK producer's sequences are int32: after 2147483647 it sends 0, and
    produce.lua takes it as the next one (no new producer id, every record stored once)."""
    make_topic(url, partitions=1)
    with Producer(url, linger_ms=0) as p:
        p._sequences[("t", 0)] = 2**31 - 2  # as if 2^31 - 2 records had gone before (a test-only shortcut)
        first_id = p.producer_id
        for i in range(4):
            p.send_and_wait("t", b"%d" % i, partition=0)
        assert p._sequences[("t", 0)] == 2 and p.producer_id == first_id
    state = raw.hget(keys.producer_state("t", 0), first_id).decode()
    assert [e.split(" ")[:2] for e in state.split(";")] == [["2147483646", "2147483646"], ["2147483647", "2147483647"],
                                                            ["0", "0"], ["1", "1"]]  # fmt: skip
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [
        b"0", b"1", b"2", b"3"]  # fmt: skip
