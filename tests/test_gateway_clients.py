"""facade gateway with kafka-python and aiokafka, and keys landing on the same partition from every
client (Kafka's murmur2: kafka-python's default, librdkafka's ``murmur2_random``, facade's)."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import consume_assigned, running_gateway
from kafka_reference import kafka_partition

from facade import Admin, Producer, TopicPartition

kafka = pytest.importorskip("kafka", reason="kafka-python is in the test extras")
aiokafka = pytest.importorskip("aiokafka", reason="aiokafka is in the test extras")
ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")

pytestmark = pytest.mark.timeout(90)
KEYS = [f"user-{i}".encode() for i in range(40)]


def _partitions_by_key(url: str) -> dict[bytes, int]:
    admin = Admin(url)
    return {m.key: p for p in range(8) for m in admin.read_records(TopicPartition("t", p), 0, 10_000)}


def test_kafka_python_produce_and_consume_with_headers_and_idempotence(url):
    Admin(url).create_topic("t", 2)
    with running_gateway(url) as gw:
        producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap, acks="all", enable_idempotence=True,
                                       compression_type="gzip")  # fmt: skip
        futures = [producer.send("t", key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("n", str(i).encode())])
                   for i in range(100)]  # fmt: skip
        producer.flush(20)
        metas = [f.get(timeout=20) for f in futures]
        producer.close()
        consumer = kafka.KafkaConsumer(bootstrap_servers=gw.bootstrap, enable_auto_commit=False,
                                       consumer_timeout_ms=5000)  # fmt: skip
        consumer.assign([kafka.TopicPartition("t", 0), kafka.TopicPartition("t", 1)])
        consumer.seek_to_beginning()
        got = []
        for msg in consumer:
            got.append(msg)
            if len(got) == 100:
                break
        consumer.close()
    assert len(got) == 100
    assert {(m.partition, m.offset) for m in got} == {(m.partition, m.offset) for m in metas}
    by_key = {m.key: m for m in got}
    assert by_key[b"k7"].value == b"v7" and by_key[b"k7"].headers == [("n", b"7")]


def test_aiokafka_produce_and_consume(url):
    Admin(url).create_topic("t", 3)

    async def scenario(bootstrap: str) -> list:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                             compression_type="lz4")  # fmt: skip
        await producer.start()
        try:
            for i in range(60):
                await producer.send_and_wait("t", key=f"k{i}".encode(), value=f"v{i}".encode())
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                             auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            consumer.assign([aiokafka.TopicPartition("t", p) for p in range(3)])
            got: list = []
            async with asyncio.timeout(20):
                while len(got) < 60:
                    batch = await consumer.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        got += msgs
            return got
        finally:
            await consumer.stop()

    with running_gateway(url) as gw:
        got = asyncio.run(scenario(gw.bootstrap))
    assert sorted(m.value for m in got) == sorted(f"v{i}".encode() for i in range(60))
    stored = {
        m.value: (p, m.offset)
        for p in range(3)
        for m in Admin(url).read_records(TopicPartition("t", p), 0, 100)
    }
    assert all(stored[m.value] == (m.partition, m.offset) for m in got)


@pytest.mark.parametrize("client", ["facade", "kafka-python", "confluent-murmur2"])
def test_a_key_goes_to_the_same_partition_from_every_client(url, client):
    Admin(url).create_topic("t", 8)
    with running_gateway(url) as gw:
        if client == "facade":
            with Producer(url) as producer:
                for key in KEYS:
                    producer.send("t", value=b"x", key=key)
        elif client == "kafka-python":
            producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap)
            for key in KEYS:
                producer.send("t", key=key, value=b"x")
            producer.flush(20)
            producer.close()
        else:
            producer = ck.Producer({"bootstrap.servers": gw.bootstrap, "partitioner": "murmur2_random"})
            for key in KEYS:
                producer.produce("t", key=key, value=b"x")
            assert producer.flush(20) == 0
    placed = _partitions_by_key(url)
    # Kafka's reference murmur2 (tests/kafka_reference.py) decides for all three.
    expected = {key: kafka_partition(key, 8) for key in KEYS}
    assert placed == expected
    assert len(set(placed.values())) > 4


def test_consumer_reads_what_kafka_python_wrote_through_another_gateway(url):
    """Two gateways on one Redis: records produced through one are fetched through the other."""
    Admin(url).create_topic("t", 1)
    with running_gateway(url) as a, running_gateway(url) as b:
        producer = kafka.KafkaProducer(bootstrap_servers=a.bootstrap)
        for i in range(10):
            producer.send("t", value=str(i).encode())
        producer.flush(20)
        producer.close()
        msgs = consume_assigned(b.bootstrap, [("t", 0, 0)], 10)
    assert [m.value() for m in msgs] == [str(i).encode() for i in range(10)]
