"""Client metrics (``metrics=True``): what producers and consumers count, checked against what
they did; off by default and then nothing is counted."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import wait_until

from facade import Admin, CommitFailedError, ConfigError, Consumer, Producer, TopicPartition, aio
from facade import metrics as client_metrics


def test_histogram_buckets_are_prometheus_le_buckets():
    h = client_metrics.Histogram((1, 5, 10))
    for v in (0.5, 1, 3, 10, 11, 200):
        h.observe(v)
    assert h.counts == [2, 1, 1, 2]
    assert h.cumulative() == [("1.0", 2), ("5.0", 3), ("10.0", 4), ("+Inf", 6)]
    assert h.count == 6 and h.sum == pytest.approx(225.5)


def test_off_by_default_and_options_are_checked(url):
    with Producer(url) as p:
        assert p.metrics() == {} and not p._metrics.enabled
    with pytest.raises(ConfigError, match="client_id"):
        Producer(url, client_id="has space")
    with pytest.raises(ConfigError, match="metrics must be True or False"):
        Producer(url, metrics="yes")
    with pytest.raises(ConfigError, match="tracing must be True or False"):
        Consumer("t", "g", url, tracing=1)


def test_producer_counts_records_bytes_batches_and_errors(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    with Producer(url, metrics=True, client_id="svc-a", linger_ms=50) as p:
        for i in range(10):
            p.send("posts", b"v" * 10, key=f"k{i}")
        p.flush()
        p.send("posts", b"x" * 5, key=None, headers=[("h", b"12")]).result(10)
        m = p.metrics()
    keys_bytes = sum(len(f"k{i}") for i in range(10))
    assert m["record_send_total"] == {"posts": 11}
    assert m["byte_total"] == {"posts": 100 + keys_bytes + 5 + len(b"h") + 2}
    batches = m["batch_size_records"]
    assert batches["sum"] == 11 and 2 <= batches["count"] <= 3  # two partitions, then one batch
    assert m["request_latency_seconds"]["count"] == 2  # two flushes, one round trip each
    assert m["produce_latency_seconds"]["count"] == batches["count"]
    assert m["produce_latency_seconds"]["sum"] >= 0.0
    assert "record_error_total" not in m and "record_retry_total" not in m
    samples = {s.name: s for s in p._metrics.samples()}
    assert samples["record_send_total"].labels == (("client_id", "svc-a"), ("topic", "posts"))

    # A failure: the topic vanished between the metadata read and the append.
    with Admin(url) as admin:
        admin.create_topic("gone", 1)
    with Producer(url, metrics=True, linger_ms=0, metadata_max_age_ms=60_000) as p:
        p.send("gone", b"a").result(10)
        with Admin(url) as admin:
            admin.delete_topic("gone")
        fut = p.send("gone", b"b")
        with pytest.raises(Exception, match="deleted"):
            fut.result(10)
        m = p.metrics()
    assert m["record_send_total"] == {"gone": 1}
    assert m["record_error_total"] == {"gone/UnknownTopicError": 1}


def test_consumer_counts_records_latency_rebalances_and_fenced_commits(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    with Producer(url) as p:
        for i in range(20):
            p.send("posts", b"v" * 8, key=f"k{i % 5}")
    got = []
    with Consumer("posts", "g", url, metrics=True, client_id="reader-1", auto_offset_reset="earliest") as c:
        wait_until(lambda: got.extend(c.poll(timeout_ms=100)) or len(got) >= 20, timeout=20, what="20 records")
        c.commit()
        m = c.metrics()
        assert m["records_consumed_total"] == {"posts": 20}
        assert m["bytes_consumed_total"] == {"posts": 20 * 8}  # value bytes
        assert m["fetch_size_records"]["sum"] == 20
        e2e = m["record_e2e_latency_seconds"]
        assert e2e["count"] == 20
        newest = max(x.timestamp_ms for x in got)
        assert 0 <= e2e["sum"] <= 20 * (time.time() * 1000 - min(x.timestamp_ms for x in got)) / 1000 + 1
        assert newest > 0
        assert m["commit_total"] == 1 and m["commit_fenced_total"] == 0
        assert m["rebalance_total"] == 1  # the first join is one, as in Kafka
        with Consumer("posts", "g", url, auto_offset_reset="earliest") as other:
            # The second member makes a new generation: this one follows it (a rebalance).
            wait_until(
                lambda: (c.poll(timeout_ms=50), other.poll(timeout_ms=50))
                and c.metrics()["rebalance_total"] >= 2 and len(other.assignment()) == 1,
                timeout=30, what="a rebalance",
            )  # fmt: skip
        # A fenced commit: the partition moved away behind this member's back.
        tp = min(c.assignment())
        state = c._sub.owned[tp]
        state.token = state.token + "-stale"
        with pytest.raises(CommitFailedError):
            c.commit(offsets={tp: 1})
        assert c.metrics()["commit_fenced_total"] == 1
    samples = {s.name: s for s in c._metrics.samples()}
    assert samples["rebalance_total"].labels == (("client_id", "reader-1"), ("consumergroup", "g"))


def test_live_clients_are_listed_while_open(url):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    p = Producer(url, metrics=True, client_id="listed")
    try:
        assert any(m.client_id == "listed" for m in client_metrics.live())
    finally:
        p.close()
    del p
    import gc

    gc.collect()
    assert not any(m.client_id == "listed" for m in client_metrics.live())


def test_asyncio_clients_count_too(url):
    async def main():
        async with aio.Admin(url) as admin:
            await admin.create_topic("a", 1)
        async with aio.Producer(url, metrics=True) as p:
            await (await p.send("a", b"v"))
            sent = p.metrics()["record_send_total"]
        async with aio.Consumer("a", "g", url, metrics=True, auto_offset_reset="earliest") as c:
            got = []
            deadline = time.monotonic() + 20
            while not got and time.monotonic() < deadline:
                got = await c.poll(timeout_ms=200)
            return sent, c.metrics()["records_consumed_total"], got

    sent, consumed, got = asyncio.run(main())
    assert sent == {"a": 1} and consumed == {"a": 1} and got[0].topic_partition == TopicPartition("a", 0)


def test_consumed_counts_each_topic_and_buckets_every_latency_exactly():
    from facade import Message

    now = int(time.time() * 1000)
    ages = [3, 15, 40, 700, 1_700, 70_000, 7_000]  # ms before now, none within 1 ms of a bound
    records = [Message("a" if i % 2 else "b", 0, i, b"k" if i % 3 else None, b"v" * i, (), 1, now - age)
               for i, age in enumerate(ages)]  # fmt: skip
    many = client_metrics.ConsumerMetrics("c", "g", ("a", "b"))
    many.consumed(records)
    naive = client_metrics.Histogram(client_metrics.LATENCY_BUCKETS)
    for age in ages:
        naive.observe(age / 1000)
    # The same buckets as one observation per record (a few ms pass between the two: no record
    # sits that close to a bound here).
    assert many.e2e_latency.counts == naive.counts and many.e2e_latency.count == len(ages)
    assert many.e2e_latency.sum == pytest.approx(naive.sum, abs=0.5)
    assert many.records == {"a": 3, "b": 4}
    assert many.bytes == {"a": 1 + 3 + 5, "b": 0 + 2 + 4 + 6}  # value bytes
    one = client_metrics.ConsumerMetrics("c", "g", ("b",))
    one.consumed([r for r in records if r.topic == "b"])
    one.consumed([])
    assert one.records == {"b": 4} and one.fetch_size.count == 1
