"""facade gateway: topic administration, offsets and record deletion from Kafka admin clients."""

from __future__ import annotations

import time

import pytest
from gateway_helpers import consume_assigned, running_gateway

from facade import Admin, Producer, TopicPartition

ck_admin = pytest.importorskip("confluent_kafka.admin", reason="confluent-kafka is in the test extras")
ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")
kafka = pytest.importorskip("kafka", reason="kafka-python is in the test extras")

pytestmark = pytest.mark.timeout(90)


def _wait(futures: dict) -> dict:
    return {k: f.result(timeout=20) for k, f in futures.items()}


def test_create_describe_and_delete_topics_with_confluent_admin(url):
    with running_gateway(url) as gw:
        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap})
        _wait(admin.create_topics([
            ck_admin.NewTopic("orders", num_partitions=4, replication_factor=1, config={"retention.ms": "60000"}),
            ck_admin.NewTopic("events", num_partitions=1, replication_factor=-1,
                              config={"message.timestamp.type": "LogAppendTime"}),
        ]))  # fmt: skip
        cfg = Admin(url).topic("orders")
        assert (cfg.partitions, cfg.retention_ms) == (4, 60_000)
        assert Admin(url).topic("events").timestamp_type == "LogAppendTime"

        # Creating it again: TOPIC_ALREADY_EXISTS; an unsupported config: INVALID_CONFIG, nothing created.
        with pytest.raises(ck.KafkaException) as exists:
            _wait(admin.create_topics([ck_admin.NewTopic("orders", num_partitions=1)]))
        assert exists.value.args[0].code() == ck.KafkaError.TOPIC_ALREADY_EXISTS
        with pytest.raises(ck.KafkaException) as bad:
            _wait(
                admin.create_topics([ck_admin.NewTopic("compacted", 1, config={"cleanup.policy": "compact"})])
            )
        assert bad.value.args[0].code() == ck.KafkaError.INVALID_CONFIG
        assert "compaction" in bad.value.args[0].str()
        assert "compacted" not in [t.name for t in Admin(url).list_topics()]

        resource = ck_admin.ConfigResource(ck_admin.ResourceType.TOPIC, "orders")
        described = admin.describe_configs([resource])[resource].result(timeout=20)
        assert described["retention.ms"].value == "60000"
        assert described["cleanup.policy"].value == "delete"

        _wait(admin.create_partitions([ck_admin.NewPartitions("orders", 6)]))
        assert Admin(url).topic("orders").partitions == 6
        with pytest.raises(ck.KafkaException) as shrink:
            _wait(admin.create_partitions([ck_admin.NewPartitions("orders", 2)]))
        assert shrink.value.args[0].code() == ck.KafkaError.INVALID_PARTITIONS

        _wait(admin.delete_topics(["events"]))
        assert [t.name for t in Admin(url).list_topics()] == ["orders"]
        with pytest.raises(ck.KafkaException) as missing:
            _wait(admin.delete_topics(["events"]))
        assert missing.value.args[0].code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART


def test_kafka_python_admin_create_list_describe_delete(url):
    with running_gateway(url) as gw:
        admin = kafka.KafkaAdminClient(bootstrap_servers=gw.bootstrap)
        try:
            admin.create_topics([kafka.admin.NewTopic("k1", num_partitions=3, replication_factor=1)])
            assert admin.list_topics() == ["k1"]
            (desc,) = admin.describe_topics(["k1"])
            assert len(desc["partitions"]) == 3
            admin.create_partitions({"k1": kafka.admin.NewPartitions(total_count=5)})
            assert Admin(url).topic("k1").partitions == 5
            admin.delete_topics(["k1"])
            assert admin.list_topics() == []
        finally:
            admin.close()


def test_list_offsets_earliest_latest_and_by_time_then_seek(url):
    Admin(url).create_topic("t", 1)
    with Producer(url) as producer:
        for i in range(10):
            producer.send("t", value=f"early{i}".encode()).result(10)
    time.sleep(0.05)
    boundary = int(time.time() * 1000)
    time.sleep(0.05)
    with Producer(url) as producer:
        for i in range(5):
            producer.send("t", value=f"late{i}".encode()).result(10)
    Admin(url).delete_records({TopicPartition("t", 0): 3})
    with running_gateway(url) as gw:
        consumer = ck.Consumer(
            {"bootstrap.servers": gw.bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        try:
            low, high = consumer.get_watermark_offsets(ck.TopicPartition("t", 0), timeout=10)
            assert (low, high) == (3, 15)
            (found,) = consumer.offsets_for_times([ck.TopicPartition("t", 0, boundary)], timeout=10)
            assert found.offset == 10
            (none,) = consumer.offsets_for_times(
                [ck.TopicPartition("t", 0, boundary + 3_600_000)], timeout=10
            )
            assert none.offset == -1  # nothing at or after that time: the end (OFFSET_END)
        finally:
            consumer.close()
        # Seek by offset and by time: read from there.
        by_offset = consume_assigned(gw.bootstrap, [("t", 0, 12)], 3)
        assert [m.value() for m in by_offset] == [b"late2", b"late3", b"late4"]
        by_time = consume_assigned(gw.bootstrap, [("t", 0, found.offset)], 5)
        assert [m.value() for m in by_time] == [f"late{i}".encode() for i in range(5)]


def _max_timestamp(admin, topic: str) -> tuple[int, int]:
    """(offset, timestamp) ListOffsets MAX_TIMESTAMP (-3, KIP-734) answers for ``topic`` [0]."""
    tp = ck.TopicPartition(topic, 0)
    result = admin.list_offsets({tp: ck_admin.OffsetSpec.max_timestamp()})[tp].result(timeout=20)
    return result.offset, result.timestamp


def test_list_offsets_max_timestamp_is_the_record_with_the_largest_timestamp(url):
    """KIP-734: -3 answers the first record with the largest timestamp, not the last appended
    (produce.lua keeps it per partition). Once DeleteRecords removes that record it answers the
    partition's last record (documented: Kafka would search the remaining records) until a larger
    timestamp is appended. On a LogAppendTime topic it is the last record, with its append time."""
    Admin(url).create_topic("t", 1)
    Admin(url).create_topic("la", 1, timestamp_type="LogAppendTime")
    with running_gateway(url) as gw:
        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap})
        assert _max_timestamp(admin, "t") == (-1, -1)  # empty
        with Producer(url) as producer:
            for ts in (1000, 5000, 3000, 5000, 2000):
                producer.send("t", b"v", timestamp_ms=ts)
            producer.flush()
            assert _max_timestamp(admin, "t") == (1, 5000)
            producer.send_and_wait("t", b"v", timestamp_ms=4000)
            assert _max_timestamp(admin, "t") == (1, 5000)
            Admin(url).delete_records({TopicPartition("t", 0): 2})
            assert _max_timestamp(admin, "t") == (5, 4000)  # the last record (Kafka: 3, 5000)
            producer.send_and_wait("t", b"v", timestamp_ms=6000)
            assert _max_timestamp(admin, "t") == (6, 6000)
            for _ in range(3):
                producer.send_and_wait("la", b"v", timestamp_ms=10**12)
        last = Admin(url).read_records(TopicPartition("la", 0))[-1]
        assert _max_timestamp(admin, "la") == (2, last.timestamp_ms) and last.timestamp_ms > 10**12


def test_delete_records_from_confluent_admin(url):
    Admin(url).create_topic("t", 2)
    with Producer(url) as producer:
        for i in range(20):
            producer.send("t", value=str(i).encode(), partition=i % 2)
        producer.flush()
    with running_gateway(url) as gw:
        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap})
        futures = admin.delete_records([ck.TopicPartition("t", 0, 4), ck.TopicPartition("t", 1, -1)])
        results = {(tp.topic, tp.partition): f.result(timeout=20) for tp, f in futures.items()}
        assert results[("t", 0)].low_watermark == 4
        assert results[("t", 1)].low_watermark == 10
        with pytest.raises(ck.KafkaException) as beyond:
            next(iter(admin.delete_records([ck.TopicPartition("t", 0, 99)]).values())).result(timeout=20)
        assert beyond.value.args[0].code() == ck.KafkaError.OFFSET_OUT_OF_RANGE
    assert [m.offset for m in Admin(url).read_records(TopicPartition("t", 0))] == list(range(4, 10))
    assert Admin(url).read_records(TopicPartition("t", 1)) == []


def test_describe_cluster_and_broker_configs(url):
    with running_gateway(url) as gw:
        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap})
        cluster = admin.describe_cluster().result(timeout=20)
        assert [(n.host, n.port) for n in cluster.nodes] == [("127.0.0.1", gw.port)]
        assert cluster.controller.id == cluster.nodes[0].id
        resource = ck_admin.ConfigResource(ck_admin.ResourceType.BROKER, str(cluster.nodes[0].id))
        configs = admin.describe_configs([resource])[resource].result(timeout=20)
        assert configs["auto.create.topics.enable"].value == "true"
