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
from proxy import ReplyDropProxy

from facade import Admin, Producer, keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


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
        a.create_topic("d", 3)
    with Producer(url, dedup_window_ms=60_000) as p:
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
        a.create_topic("w", 1, dedup_max_ids=50)  # the cap is the topic's: no producer can lower it
    with Producer(url, dedup_window_ms=200) as p:
        a1 = p.send_and_wait("w", b"a", dedup_id="a")
        time.sleep(0.3)
        a2 = p.send_and_wait("w", b"a", dedup_id="a")  # past the window: stored again
        assert a2.offset != a1.offset
        for i in range(200):
            p.send("w", b"x", dedup_id=f"id-{i}")
    r = redis.Redis.from_url(url)
    assert r.zcard(keys.dedup_index("w", 0)) <= 50
    assert r.hlen(keys.dedup("w", 0)) <= 50
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
    # A default producer's batch whose reply was lost is retried after another producer, with a
    # 1 s expiry, wrote to the same partition: the retry must still be recognised.
    from facade import scripts

    with Admin(url) as a:
        a.create_topic("x", 1, dedup_max_ids=1000)
    r = redis.Redis.from_url(url)
    s = scripts.Scripts(r)
    tp = keys.stream("x", 0)
    with Producer(url) as default:
        default.send_and_wait("x", b"first")
        call = scripts.produce(
            __import__("facade").TopicPartition("x", 0), max_len=None, retention_ms=None, acked=False,
            producer_id=default.producer_id, first_seq=1, producer_id_expiry_ms=default.config.producer_id_expiry_ms,
            dedup_window_ms=120_000, dedup_max_ids=1000, count=1, plain=True, times="", records=[b"k", b"lost reply"],
        )  # fmt: skip
        s.produce(keys=call.keys, args=call.args)  # stored; its reply "lost"
        time.sleep(1.2)
        with Producer(url, producer_id_expiry_ms=1000, dedup_window_ms=1) as short:
            short.send_and_wait("x", b"other", dedup_id="d1")
            time.sleep(1.1)
            short.send_and_wait("x", b"other again", dedup_id="d2")
        again = s.produce(keys=call.keys, args=call.args)  # the retry
        assert int(again[1]) == 1  # recognised as the same batch: not stored twice
    assert [f[b"value"] for _, f in r.xrange(tp)].count(b"lost reply") == 1
    r.close()


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
