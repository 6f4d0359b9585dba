"""Serializers and keyless partitioners, as a Kafka user configures them, on a real server."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
import redis
from conftest import wait_until
from kafka_reference import kafka_partition

import facade.aio
from facade import (
    Admin,
    ConfigError,
    Consumer,
    ConsumerConfig,
    DeserializationError,
    Message,
    Producer,
    ProducerConfig,
    SerializationError,
    keys,
)

FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 200, "auto_offset_reset": "earliest"}


@pytest.fixture
def raw(url):
    r = redis.Redis.from_url(url)
    yield r
    r.close()


def make_topic(url, name="t", partitions=1):
    with Admin(url) as admin:
        admin.create_topic(name, partitions)


def poll_until(consumer, n, timeout=20.0):
    got = []
    wait_until(lambda: got.extend(consumer.poll(timeout_ms=200)) or len(got) >= n, timeout=timeout)
    return got


def test_json_and_str_round_trip_and_are_stored_plainly(url, raw):
    make_topic(url, "t", 3)
    events = [{"user": "u1", "n": 1, "text": "héllo"}, {"user": "u2", "n": 2, "tags": [1, 2]}, None, [1, "x"]]
    with Producer(url, key_serializer="str", value_serializer="json") as p:
        futures = [p.send("t", e, key=f"user-{i}") for i, e in enumerate(events)]
        keyless = p.send("t", {"keyless": True})
        p.flush()
    for i, fut in enumerate(futures):
        # The serialized key picks the partition, exactly as Kafka hashes the key's bytes.
        assert fut.result().partition == kafka_partition(f"user-{i}".encode(), 3)
    stored = {f[b"value"] for p in range(3) for _, f in raw.xrange(keys.stream("t", p))}
    assert b'{"user":"u1","n":1,"text":"h\xc3\xa9llo"}' in stored and b"null" in stored
    keyless_entry = raw.xrange(keys.stream("t", keyless.result().partition))
    assert any(b"key" not in f and f[b"value"] == b'{"keyless":true}' for _, f in keyless_entry)

    with Consumer("t", "g", url, key_deserializer="str", value_deserializer="json", **FAST) as c:
        got = poll_until(c, 5)
    by_key = {m.key: m.value for m in got}
    assert by_key == {**{f"user-{i}": e for i, e in enumerate(events)}, None: {"keyless": True}}
    assert all(m.error is None for m in got)


def test_callables_and_bytes(url):
    make_topic(url)
    with Producer(url, value_serializer=lambda v: v.upper(), key_serializer="bytes") as p:
        p.send_and_wait("t", "shout", key=b"\x00k")
    with Consumer("t", "g", url, value_deserializer=lambda b: b[::-1], key_deserializer="bytes", **FAST) as c:
        (m,) = poll_until(c, 1)
    assert (m.key, m.value) == (b"\x00k", b"TUOHS")


def test_a_serializer_that_fails_sends_nothing(url, raw):
    make_topic(url)
    with Producer(url, value_serializer="json", linger_ms=0) as p:
        with pytest.raises(SerializationError, match=r"value_serializer 'json' failed .* topic 't'.*nothing was sent"):
            p.send("t", {1, 2})
        with Producer(url, value_serializer=lambda v: 42) as bad, pytest.raises(SerializationError, match="must return bytes or str"):
            bad.send("t", "x")
        with Producer(url, key_serializer="str") as bad, pytest.raises(SerializationError, match="key_serializer 'str' failed"):
            bad.send("t", b"v", key=7)
        p.flush()
    assert raw.xlen(keys.stream("t", 0)) == 0
    assert issubclass(SerializationError, ConfigError)


@pytest.mark.parametrize(
    "config,options,says",
    [
        (ProducerConfig, {"value_serializer": "yaml"}, "value_serializer must be one of 'json', 'str', 'bytes'"),
        (ProducerConfig, {"key_serializer": 3}, "key_serializer must be one of .* or a callable, not int"),
        (ConsumerConfig, {"value_deserializer": "avro"}, "value_deserializer must be one of"),
        (ProducerConfig, {"partitioner": "random"}, "partitioner must be 'sticky' or 'round-robin'"),
    ],
)
def test_bad_options_are_refused_when_built(config, options, says):
    with pytest.raises(ConfigError, match=says):
        config(**options)


def test_a_record_that_does_not_deserialize_is_its_own_error_and_can_be_dead_lettered(url):
    """poll() hands the bad record out; reading its value raises DeserializationError, and
    fail() with max_deliveries=1 moves it to the dead-letter topic with its stored bytes."""
    make_topic(url)
    with Producer(url) as p:
        for value in (b'{"n": 1}', b'{"n": 2}', b"not json {", b'{"n": 4}', b'{"n": 5}'):
            p.send("t", value)
    handled, errors = [], []
    with Consumer("t", "g", url, value_deserializer="json", max_deliveries=1, **FAST) as c:

        def step():
            for msg in c.poll(timeout_ms=200):
                try:
                    handled.append(msg.value["n"])
                except DeserializationError as exc:
                    errors.append(exc)
                    assert msg.error is exc and msg.offset == exc.offset == 2
                    c.fail(msg, exc)
                    break  # fail() gives back the rest of this partition's batch too
            c.commit()
            return handled == [1, 2, 4, 5]

        wait_until(step, timeout=20)
    (error,) = errors
    assert (error.topic, error.partition, error.field, error.data) == ("t", 0, "value", b"not json {")
    assert "value_deserializer 'json' failed on t[0] offset 2" in str(error)
    with Admin(url) as admin:
        (dead,) = admin.dlq_list("t")
    assert dead.value == b"not json {" and dead.headers.get("dlq.offset") == b"2"
    assert b"value_deserializer 'json' failed" in dead.headers.get("dlq.error")


def test_a_bad_key_leaves_the_value_readable(url):
    make_topic(url)
    with Producer(url) as p:
        p.send("t", b"fine", key=b"\xff\xfe")
    with Consumer("t", "g", url, key_deserializer="str", value_deserializer="str", **FAST) as c:
        (m,) = poll_until(c, 1)
    assert isinstance(m, Message) and m.value == "fine" and m.offset == 0
    with pytest.raises(DeserializationError, match="key_deserializer 'str' failed"):
        _ = m.key
    assert m.error.field == "key" and m.error.data == b"\xff\xfe"


def test_the_asyncio_twins_take_the_same_options(url):
    make_topic(url)

    async def main():
        async with facade.aio.Producer(url, value_serializer="json") as p:
            await p.send("t", {"a": 1})
        async with facade.aio.Consumer("t", "g", url, value_deserializer="json", **FAST) as c:
            for _ in range(100):
                got = await c.poll(timeout_ms=200)
                if got:
                    return [m.value for m in got]
        return []

    assert asyncio.run(main()) == [{"a": 1}]


# ---------------------------------------------------------------------------------------------
# Keyless placement


def test_round_robin_spreads_keyless_records_evenly_and_leaves_keys_alone(url):
    make_topic(url, "rr", 5)
    with Producer(url, partitioner="round-robin", linger_ms=60_000) as p:  # one batch: sticky would use one partition
        keyless = [p.send("rr", b"x") for _ in range(20)]
        keyed = [p.send("rr", b"k", key=b"user-7") for _ in range(5)]
        p.flush()
    counts = Counter(f.result().partition for f in keyless)
    assert counts == {0: 4, 1: 4, 2: 4, 3: 4, 4: 4}
    assert [f.result().partition for f in keyless[:6]] == [0, 1, 2, 3, 4, 0]
    assert {f.result().partition for f in keyed} == {kafka_partition(b"user-7", 5)}


def test_sticky_stays_the_default(url):
    make_topic(url, "st", 5)
    assert ProducerConfig().partitioner == "sticky"
    with Producer(url, linger_ms=60_000) as p:
        futures = [p.send("st", b"x") for _ in range(20)]
        p.flush()
    assert len({f.result().partition for f in futures}) == 1  # one batch, one partition (KIP-480)
    with Producer(url, linger_ms=0, batch_size=1) as p:
        spread = {p.send_and_wait("st", b"x").partition for _ in range(40)}
    assert len(spread) > 1  # it moves on after each batch


def test_json_records_read_by_the_cli_json_format(url):
    """What a JSON serializer stores is what other tools (the CLI, redis-cli) show."""
    make_topic(url)
    with Producer(url, value_serializer="json") as p:
        p.send_and_wait("t", {"id": 7})
    with Consumer("t", "g", url, **FAST) as c:
        (m,) = poll_until(c, 1)
    assert json.loads(m.value) == {"id": 7} and m.value == b'{"id":7}'
