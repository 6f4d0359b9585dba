"""Idempotent producer and dedup ids under lost replies: nothing lost, nothing doubled.

A proxy between producer and server drops replies after the server executed the request, so the
producer must retry without knowing whether the batch landed. A control run with idempotence
off shows the duplicates the checker would catch.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis
from conftest import wait_until
from proxy import ReplyDropProxy

from facade import Admin, Producer, keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def values(url, topic, partition=0):
    r = redis.Redis.from_url(url)
    try:
        return [fields[b"value"] for _, fields in r.xrange(keys.stream(topic, partition))]
    finally:
        r.close()


def stored(url, topic, partitions):
    r = redis.Redis.from_url(url)
    try:
        return {p: r.xrange(keys.stream(topic, p)) for p in range(partitions)}
    finally:
        r.close()


def run(url, proxy, idempotent, n=1500, nkeys=30):
    with Admin(url) as a:
        a.create_topic("t", 4)
    with Producer(proxy.url, idempotent=idempotent, batch_size=1500, linger_ms=0, delivery_timeout_ms=60_000,
                  retry_backoff_ms=5) as p:
        futs = [p.send("t", f"k{i % nkeys}:{i}", key=f"k{i % nkeys}") for i in range(n)]
        p.flush()
        metas = [f.result(timeout=60) for f in futs]
    entries = stored(url, "t", 4)
    values = Counter(fields[b"value"].decode() for es in entries.values() for _, fields in es)
    lost = n - len(values)
    duplicated = sum(c - 1 for c in values.values())
    # Per-key order in storage, first occurrences only.
    order_ok = True
    for es in entries.values():
        last: dict[str, int] = {}
        for _, fields in es:
            k, i = fields[b"value"].decode().split(":")
            if int(i) < last.get(k, -1):
                order_ok = False
            last[k] = max(last.get(k, -1), int(i))
    returned = {(m.partition, m.offset) for m in metas}
    actual = {(p, int(eid.decode().split("-")[1])) for p, es in entries.items() for eid, _ in es}
    return lost, duplicated, order_ok, returned <= actual, len(returned) == n


@pytest.mark.parametrize("seed", range(5))
def test_lost_replies_are_retried_without_duplicates(url, redis_server, seed):
    proxy = ReplyDropProxy(redis_server.port, drop_probability=0.15, seed=seed, max_drops=20)
    try:
        lost, duplicated, order_ok, offsets_real, all_distinct = run(url, proxy, idempotent=True)
    finally:
        proxy.close()
    print(f"\nidempotent seed={seed}: replies dropped={proxy.drops} lost={lost} duplicated={duplicated}")
    assert proxy.drops > 0
    assert (lost, duplicated, order_ok) == (0, 0, True)
    assert offsets_real and all_distinct  # the offsets returned after a retry are the originals
    offsets = {p: [int(eid.decode().split("-")[1]) for eid, _ in es] for p, es in stored(url, "t", 4).items()}
    assert all(o == list(range(len(o))) for o in offsets.values())  # dense: retries leave no gap


def test_control_without_idempotence_shows_duplicates(url, redis_server):
    proxy = ReplyDropProxy(redis_server.port, drop_probability=0.15, seed=1, max_drops=20)
    try:
        lost, duplicated, _, _, _ = run(url, proxy, idempotent=False)
    finally:
        proxy.close()
    print(f"\ncontrol (idempotence off): replies dropped={proxy.drops} lost={lost} duplicated={duplicated}")
    assert lost == 0
    assert duplicated > 0  # the checker sees what idempotence prevents


def test_dedup_id_drops_repeats_within_the_window(url):
    with Admin(url) as a:
        a.create_topic("d", 3, dedup_window_ms=60_000)
    with Producer(url) as p:
        first = p.send_and_wait("d", b"order-1", dedup_id="order-1")
        again = p.send_and_wait("d", b"order-1 resent", dedup_id="order-1")
        other = p.send_and_wait("d", b"order-2", dedup_id="order-2")
    where = (first.partition, first.offset)
    assert (again.partition, again.offset) == where and (other.partition, other.offset) != where
    with Producer(url) as p2:  # another producer: dedup ids are the topic's, not the producer's
        repeat = p2.send_and_wait("d", b"x", dedup_id="order-1")
        assert (repeat.partition, repeat.offset) == where
    total = sum(len(es) for es in stored(url, "d", 3).values())
    assert total == 2


def test_dedup_window_and_memory_are_bounded(url):
    with Admin(url) as a:
        # The window and the cap are the topic's: no producer can shorten or lower them.
        a.create_topic("w", 1, dedup_max_ids=50, dedup_window_ms=200)
    with Producer(url) as p:
        a1 = p.send_and_wait("w", b"a", dedup_id="a")
        with Producer(url) as other:  # within the window, from another producer: dropped
            assert other.send_and_wait("w", b"a", dedup_id="a").offset == a1.offset
        time.sleep(0.3)
        a2 = p.send_and_wait("w", b"a", dedup_id="a")  # past the window: stored again
        assert a2.offset != a1.offset
        for i in range(200):
            p.send("w", b"x", dedup_id=f"id-{i}")
    r = redis.Redis.from_url(url)
    assert r.zcard(keys.dedup_index("w", 0)) <= 50
    assert r.hlen(keys.dedup("w", 0)) <= 50
    r.close()


def test_a_topic_stored_before_the_dedup_settings_existed_gets_the_defaults(url):
    import json

    with Admin(url) as a:
        a.create_topic("old", 1)
    r = redis.Redis.from_url(url)
    stored = json.loads(r.hget(keys.TOPICS, "old"))
    del stored["dedup_window_ms"], stored["dedup_max_ids"]  # as an older version wrote it
    r.hset(keys.TOPICS, "old", json.dumps(stored))
    with Admin(url) as a:
        cfg = a.topic("old")
    assert (cfg.dedup_window_ms, cfg.dedup_max_ids) == (120_000, 100_000)
    with Producer(url) as p, Producer(url) as other:
        first = p.send_and_wait("old", b"a", dedup_id="once")
        assert other.send_and_wait("old", b"a", dedup_id="once").offset == first.offset
    assert r.xlen(keys.stream("old", 0)) == 1
    expires = r.zscore(keys.dedup_index("old", 0), "once")
    assert 110_000 < expires - time.time() * 1000 <= 120_000  # the default window
    r.close()


def test_producer_state_is_per_producer_and_bounded(url):
    with Admin(url) as a:
        a.create_topic("s", 1)
    with Producer(url, batch_size=100) as p:
        for i in range(500):
            p.send("s", b"x" * 10)
    r = redis.Redis.from_url(url)
    assert r.hlen(keys.producer_state("s", 0)) == 1  # one entry per producer, not per record
    assert len(r.hget(keys.producer_state("s", 0), p.producer_id)) < 2000
    r.close()


def test_idle_producer_ids_expire(url):
    with Admin(url) as a:
        a.create_topic("e", 1)
    with Producer(url, producer_id_expiry_ms=1000) as old:
        old.send_and_wait("e", b"x")
    time.sleep(1.1)
    with Producer(url, producer_id_expiry_ms=1000) as new:
        new.send_and_wait("e", b"y")
    r = redis.Redis.from_url(url)
    assert r.hkeys(keys.producer_state("e", 0)) == [new.producer_id.encode()]
    r.close()


def test_another_producers_settings_never_shorten_this_ones_idempotence(url, redis_server):
    """Issue 14 item 4. A default producer shares a partition with one whose producer id expires
    after 1 s (the shortest allowed). The default producer's batch whose reply was lost is retried
    only after the other one appended, idled past its 1 s and appended again (its call expires idle
    producer ids): the retry is still recognised, stored once, with its original offset. A dedup id
    the default producer stored is recognised when the other producer sends it, and the other way
    round. Verified to fail when produce.lua expires idle producer ids by the caller's expiry
    (``ZRANGEBYSCORE pidx -inf now - ARGV[6]`` over last-use times: the retry is stored twice)."""
    with Admin(url) as a:
        a.create_topic("x", 1)
    proxy = ReplyDropProxy(redis_server.port)
    try:
        with Producer(proxy.url, linger_ms=0, retry_backoff_ms=20, metadata_max_age_ms=600_000) as default:
            first = default.send_and_wait("x", b"first", dedup_id="order-1")
            pid = default.producer_id
            proxy.p, proxy.max_drops, proxy.refuse_new = 1.0, 1, True  # lose the next reply, stay cut off
            lost = default.send("x", b"lost reply")
            wait_until(lambda: proxy.drops == 1 and b"lost reply" in values(url, "x"), timeout=10)
            with Producer(url, linger_ms=0, producer_id_expiry_ms=1000) as short:
                short.send_and_wait("x", b"other")
                time.sleep(1.2)
                short.send_and_wait("x", b"other again")  # expires the ids idle past *their* expiry
                again = short.send_and_wait("x", b"repeat of order-1", dedup_id="order-1")
                mine = short.send_and_wait("x", b"order-2", dedup_id="order-2")
            assert again.offset == first.offset
            proxy.refuse_new = False  # the retry gets through now
            retried = lost.result(timeout=30)
            assert default.producer_id == pid  # the outcome was known: no new producer id
            assert default.send_and_wait("x", b"repeat of order-2", dedup_id="order-2").offset == mine.offset
    finally:
        proxy.close()
    stored = values(url, "x")
    assert stored == [b"first", b"lost reply", b"other", b"other again", b"order-2"]
    assert retried.offset == 1  # the original offset of the batch whose reply was lost


def test_retried_batch_returns_original_offsets(url):
    """Replay the exact script call a producer made: nothing is appended, same offsets back."""
    from facade import TopicPartition, scripts

    with Admin(url) as a:
        a.create_topic("r", 1)
    r = redis.Redis.from_url(url)
    s = scripts.Scripts(r)

    def call(seq, records):
        c = scripts.produce(TopicPartition("r", 0), max_len=None, retention_ms=None, acked=False, producer_id="pid1",
                            first_seq=seq, producer_id_expiry_ms=86_400_000, dedup_window_ms=120_000, dedup_max_ids=1000,
                            count=len(records), plain=False, times="", records=[x for v in records for x in ("", 2, "value", v)])  # fmt: skip
        return scripts.Produced.parse(s.produce(keys=c.keys, args=c.args))

    first = call(0, ["a", "b"])
    again = call(0, ["a", "b"])
    assert (first.first, first.duplicate, again.first, again.duplicate) == (0, False, 0, True)
    assert r.xlen(keys.stream("r", 0)) == 2
    with pytest.raises(redis.ResponseError, match="OUTOFORDER"):
        call(5, ["c"])
    assert r.xlen(keys.stream("r", 0)) == 2
    r.close()
