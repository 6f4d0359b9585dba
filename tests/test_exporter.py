"""``facade exporter``: the broker's metrics under kafka_exporter's names, scraped over HTTP while
producers run, with a lagging group, a dead-letter topic and a Sentinel topology, and every
metric checked against the SDK's own figures; a Cluster's shards; the eviction warning; client
metrics served by ClientCollector."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families

import facade
from facade import (
    Admin,
    ConfigError,
    Consumer,
    Producer,
    ReplicaDescription,
    ServerDescription,
    TopicPartition,
)
from facade.descriptions import PartitionStats
from facade.exporter import BrokerCollector, ClientCollector, Reading, exposition, families, parse_listen
from facade.records import GroupDescription, GroupMember, GroupPartitionInfo

FACADE = str(Path(sys.executable).parent / "facade")

# Every metric a broker with topics, groups, dead letters and a replica shows.
EXPECTED = {
    "kafka_brokers", "kafka_topic_partitions", "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset", "kafka_topic_partition_leader", "kafka_topic_partition_leader_is_preferred",
    "kafka_topic_partition_replicas", "kafka_topic_partition_in_sync_replica",
    "kafka_topic_partition_under_replicated_partition", "kafka_consumergroup_current_offset",
    "kafka_consumergroup_current_offset_sum", "kafka_consumergroup_lag", "kafka_consumergroup_lag_sum",
    "kafka_consumergroup_members", "facade_topic_partition_records", "facade_topic_partition_appended",
    "facade_dead_letters", "facade_consumergroup_generation", "facade_consumergroup_pending",
    "facade_consumergroup_lag_seconds", "facade_consumergroup_member_partitions", "facade_up", "facade_server_info",
    "facade_server_used_memory_bytes", "facade_server_maxmemory_bytes", "facade_server_memory_per_record_bytes",
    "facade_server_maxmemory_policy", "facade_server_eviction_risk", "facade_server_uptime_seconds",
    "facade_server_replicas", "facade_replica_up", "facade_replica_info", "facade_replica_lag_bytes",
    "facade_replica_last_ack_seconds", "facade_sentinel_primary_info", "facade_sentinel_config_epoch",
    "facade_scrape_duration_seconds",
}  # fmt: skip


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value} (counters under their name without _total)."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics, name: str, **labels) -> float:
    return metrics[name][tuple(sorted((k, str(v)) for k, v in labels.items()))]


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        assert reply.status == 200
        return parse(reply.read().decode())


# ---------------------------------------------------------------------------------------------
# Pure: a reading to metric families


def test_families_of_a_hand_made_reading():
    parts = (
        PartitionStats("orders", 0, 5, 10, 14, 15, (), 10, 15, "10.0.0.1:7000"),
        PartitionStats("orders", 1, 0, None, None, 3, (), 3, 3, "10.0.0.2:7000"),
        PartitionStats("orders.dlq", 0, 2, 0, 1, 2, (), 0, 2, "10.0.0.2:7000"),
    )
    group = GroupDescription(
        "billing", 7,
        (GroupMember("m-1", ("orders",), (TopicPartition("orders", 0),), 0, "web-3", "billing-app"),),
        (GroupPartitionInfo("orders", 0, "m-1", 12, 14, 10, 15, 3), GroupPartitionInfo("orders", 1, None, None, None, 3, 3, 0)),
    )  # fmt: skip
    server = ServerDescription(
        "valkey 9.1.2", "cluster of 2 primaries", 4000, 0, "allkeys-lru", 60,
        (ReplicaDescription("10.0.0.3:7000", "online", 12, 0, "10.0.0.1:7000"),
         ReplicaDescription("10.0.0.4:7000", "wait_bgsave", None, None, "10.0.0.2:7000")),
        primaries=2,
    )  # fmt: skip
    reading = Reading(parts, (group,), {("billing", "orders", 0): 2500}, server, {"orders": 2, "orders.dlq": 1})
    m = parse(exposition([_Static(families(reading))]))
    assert value(m, "kafka_brokers") == 2
    assert value(m, "kafka_topic_partitions", topic="orders") == 2
    assert value(m, "kafka_topic_partition_current_offset", topic="orders", partition=0) == 15
    assert value(m, "kafka_topic_partition_oldest_offset", topic="orders", partition=0) == 10
    assert value(m, "kafka_topic_partition_leader", topic="orders", partition=1) == 1
    assert value(m, "kafka_topic_partition_replicas", topic="orders", partition=0) == 2
    assert value(m, "kafka_topic_partition_in_sync_replica", topic="orders", partition=1) == 1
    assert value(m, "kafka_topic_partition_under_replicated_partition", topic="orders", partition=1) == 1
    assert value(m, "kafka_topic_partition_under_replicated_partition", topic="orders", partition=0) == 0
    assert value(m, "kafka_consumergroup_current_offset", consumergroup="billing", topic="orders", partition=1) == -1
    assert value(m, "kafka_consumergroup_current_offset_sum", consumergroup="billing", topic="orders") == 12
    assert value(m, "kafka_consumergroup_lag_sum", consumergroup="billing", topic="orders") == 3
    assert value(m, "kafka_consumergroup_members", consumergroup="billing") == 1
    assert value(m, "facade_consumergroup_generation", consumergroup="billing") == 7
    assert value(m, "facade_consumergroup_pending", consumergroup="billing", topic="orders", partition=0) == 2
    assert value(m, "facade_consumergroup_lag_seconds", consumergroup="billing", topic="orders", partition=0) == 2.5
    assert value(m, "facade_consumergroup_member_partitions", consumergroup="billing", member_id="m-1",
                 client_id="billing-app", host="web-3") == 1  # fmt: skip
    assert value(m, "facade_dead_letters", topic="orders") == 2
    assert value(m, "facade_topic_partition_shard", topic="orders", partition=1, shard="10.0.0.2:7000") == 1
    assert value(m, "facade_topic_partition_appended", topic="orders", partition=1) == 3
    assert value(m, "facade_server_memory_per_record_bytes") == 4000 / 7
    assert value(m, "facade_server_eviction_risk") == 1
    assert value(m, "facade_server_maxmemory_policy", policy="allkeys-lru") == 1
    assert value(m, "facade_replica_up", replica="10.0.0.4:7000", primary="10.0.0.2:7000") == 0
    assert value(m, "facade_replica_lag_bytes", replica="10.0.0.3:7000", primary="10.0.0.1:7000") == 12
    assert "facade_sentinel_primary_info" not in m


class _Static:
    def __init__(self, fams):
        self.fams = fams

    def collect(self):
        return self.fams


def test_parse_listen():
    assert parse_listen(":9308") == ("", 9308)
    assert parse_listen("9400") == ("", 9400)
    assert parse_listen("127.0.0.1:9401") == ("127.0.0.1", 9401)
    assert parse_listen("[::1]:9402") == ("::1", 9402)
    for bad in ("host:", "host:http", ":0", ":70000", ""):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_listen(bad)


# ---------------------------------------------------------------------------------------------
# Against real servers


def test_an_unreachable_broker_is_facade_up_0_not_a_failed_scrape():
    collector = BrokerCollector(f"redis://127.0.0.1:{free_port()}")
    try:
        m = parse(exposition([collector]))
    finally:
        collector.close()
    assert value(m, "facade_up") == 0 and set(m) == {"facade_up"}


def test_an_evicting_policy_is_a_metric_and_a_warning(server_factory):
    server = server_factory("--maxmemory-policy", "allkeys-lru")
    done = subprocess.run([FACADE, "--url", server.url, "exporter", "--once"], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    m = parse(done.stdout)
    assert value(m, "facade_server_eviction_risk") == 1 and value(m, "facade_up") == 1
    assert "maxmemory-policy is allkeys-lru" in done.stderr and "noeviction" in done.stderr


def test_client_metrics_are_served_by_client_collector(url):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    with Producer(url, metrics=True, client_id="shop") as p:
        for _ in range(3):
            p.send("t", b"abc")
        p.flush()
        with Consumer("t", "g", url, metrics=True, client_id="billing", auto_offset_reset="earliest") as c:
            wait_until(lambda: c.poll(timeout_ms=200), timeout=20, what="records")
            m = parse(exposition([ClientCollector()]))
    assert value(m, "facade_producer_record_send", client_id="shop", topic="t") == 3
    assert value(m, "facade_producer_byte", client_id="shop", topic="t") == 9
    assert m["facade_producer_produce_latency_seconds"][(("client_id", "shop"), ("le", "+Inf"))] >= 1
    assert value(m, "facade_consumer_records_consumed", client_id="billing", topic="t") == 3
    assert value(m, "facade_consumer_rebalance", client_id="billing", consumergroup="g") == 1
    assert m["facade_consumer_record_e2e_latency_seconds"][(("client_id", "billing"), ("le", "+Inf"))] == 3


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scraped_over_http_during_a_run_with_sentinel_producers_a_lagging_group_and_dead_letters(tmp_path):
    from facade.local import sentinel as topology

    status = topology.start(tmp_path / "ha", replicas=1, sentinels=1, down_after_ms=500)
    url = status.url
    port = free_port()
    proc = subprocess.Popen(
        [FACADE, "--url", url, "exporter", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stop = threading.Event()
    try:
        with Admin(url) as admin:
            admin.create_topic("orders", 3)
            admin.create_topic("audit", 1)
        # A dead letter: a record that fails once with max_deliveries=1.
        with Producer(url) as p:
            p.send("orders", b"poison", key="k-poison").result(10)
        with Consumer("orders", "dlq-maker", url, auto_offset_reset="earliest", max_deliveries=1) as c:
            got = wait_until(lambda: c.poll(timeout_ms=200), timeout=20, what="the poison record")
            c.fail(got[0], "bad record")
            wait_until(lambda: (c.poll(timeout_ms=100), c.commit()) and Admin(url).dlq_list("orders"), timeout=20,
                       what="a dead letter")  # fmt: skip

        def produce() -> None:
            with Producer(url, linger_ms=5) as p:
                i = 0
                while not stop.is_set() and i < 50_000:
                    p.send("orders", f"v{i}", key=f"k{i % 17}")
                    p.send("audit", f"a{i}")
                    i += 1
                    if i % 50 == 0:
                        p.flush()
                        time.sleep(0.01)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        # A lagging group with a live member: it reads a little and commits less.
        lagging = Consumer("orders", "slow", url, auto_offset_reset="earliest", client_id="slow-app",
                           enable_auto_commit=False)  # fmt: skip
        try:
            wait_until(lambda: len(lagging.poll(timeout_ms=200, max_records=5)) > 0 and lagging.commit() is None,
                       timeout=30, what="the lagging group reads")  # fmt: skip
            lagging.poll(timeout_ms=200, max_records=5)  # read, not committed: pending

            # During the run: scrapes answer, and offsets lie between the SDK's readings around them.
            with Admin(url) as admin:
                tps = [TopicPartition("orders", p) for p in range(3)]
                wait_until(lambda: _listening(port), timeout=20, what="the exporter listens")
                for _ in range(3):
                    before = admin.list_offsets(tps, "latest")
                    m = scrape(port)
                    after = admin.list_offsets(tps, "latest")
                    assert value(m, "facade_up") == 1
                    for tp in tps:
                        seen = value(m, "kafka_topic_partition_current_offset", topic="orders", partition=tp.partition)
                        assert before[tp] <= seen <= after[tp]
                    time.sleep(0.2)
                assert after != before or any(after.values())

            stop.set()
            producer.join(30)
            # Producers stopped, the lagging member still in its group: every metric equals the SDK's figure.
            with Admin(url) as admin:
                m = scrape(port)
                _check_against_the_sdk(admin, m, status)
        finally:
            lagging.close()
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        topology.stop(tmp_path / "ha")
    assert "Traceback" not in err, err
    assert f"on http://127.0.0.1:{port}/metrics" in err


def _listening(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def _check_against_the_sdk(admin: Admin, m: dict, status) -> None:
    missing = EXPECTED - set(m)
    assert not missing, f"metrics not served: {sorted(missing)}"
    topics = admin.list_topics()
    assert {t.name for t in topics} == {"orders", "audit", "orders.dlq"}
    stored = 0
    for cfg in topics:
        assert value(m, "kafka_topic_partitions", topic=cfg.name) == cfg.partitions
        desc = admin.describe_topic(cfg.name)
        for p in desc.partitions:
            key = {"topic": cfg.name, "partition": p.partition}
            assert value(m, "kafka_topic_partition_current_offset", **key) == p.log_end_offset
            assert value(m, "kafka_topic_partition_oldest_offset", **key) == p.log_start_offset
            assert value(m, "facade_topic_partition_records", **key) == p.length
            assert value(m, "kafka_topic_partition_replicas", **key) == 2  # the primary and its replica
            assert value(m, "kafka_topic_partition_in_sync_replica", **key) == 2
            assert value(m, "kafka_topic_partition_under_replicated_partition", **key) == 0
            assert value(m, "kafka_topic_partition_leader", **key) == 0
            stored += p.length
    stats = {(s.topic, s.partition): s for s in admin.partition_stats(topics)}
    for (topic, partition), s in stats.items():
        assert value(m, "facade_topic_partition_appended", topic=topic, partition=partition) == s.appended
    assert value(m, "facade_dead_letters", topic="orders") == len(admin.dlq_list("orders")) == 1

    groups = admin.list_groups()
    assert set(groups) == {"dlq-maker", "slow"}
    lagging = []
    for name in groups:
        d = admin.describe_group(name)
        assert value(m, "kafka_consumergroup_members", consumergroup=name) == len(d.members)
        assert value(m, "facade_consumergroup_generation", consumergroup=name) == d.generation
        for p in d.partitions:
            key = {"consumergroup": name, "topic": p.topic, "partition": p.partition}
            committed = -1 if p.committed is None else p.committed
            assert value(m, "kafka_consumergroup_current_offset", **key) == committed
            assert value(m, "kafka_consumergroup_lag", **key) == p.lag
            base = p.committed if p.committed is not None else p.log_start_offset
            assert value(m, "facade_consumergroup_pending", **key) == max(0, (p.position or base) - base)
            if p.lag:
                lagging.append((name, p.topic, p.partition))
        for topic in {p.topic for p in d.partitions}:
            assert value(m, "kafka_consumergroup_lag_sum", consumergroup=name, topic=topic) == sum(
                p.lag for p in d.partitions if p.topic == topic
            )
            assert value(m, "kafka_consumergroup_current_offset_sum", consumergroup=name, topic=topic) == sum(
                p.committed or 0 for p in d.partitions if p.topic == topic
            )
        for member in d.members:
            assert member.client_id == ("slow-app" if name == "slow" else "facade")
            assert value(m, "facade_consumergroup_member_partitions", consumergroup=name, member_id=member.member_id,
                         client_id=member.client_id, host=member.host) == len(member.partitions)  # fmt: skip
    slow = admin.describe_group("slow")
    assert len(slow.members) == 1 and slow.lag > 0  # the lagging group, live
    assert sum(value(m, "facade_consumergroup_pending", consumergroup="slow", topic="orders", partition=p) for p in range(3)) > 0
    ages = admin.uncommitted_age_ms(lagging)
    for key, age_ms in ages.items():
        seen = value(m, "facade_consumergroup_lag_seconds", consumergroup=key[0], topic=key[1], partition=key[2])
        assert 0 < seen <= age_ms / 1000 + 0.001  # read a moment before the SDK's own reading

    server = admin.describe_server()
    assert value(m, "kafka_brokers") == 1
    assert value(m, "facade_server_info", version=server.version, role=server.role) == 1
    assert value(m, "facade_server_maxmemory_bytes") == server.maxmemory
    assert value(m, "facade_server_maxmemory_policy", policy=server.maxmemory_policy) == 1
    assert value(m, "facade_server_eviction_risk") == 0
    used = value(m, "facade_server_used_memory_bytes")
    assert 0.5 * server.used_memory < used < 2 * server.used_memory  # memory moves between two readings
    assert value(m, "facade_server_memory_per_record_bytes") == pytest.approx(used / stored)
    assert value(m, "facade_server_replicas") == len(server.replicas) == 1
    replica = server.replicas[0]
    assert replica.address.endswith(f":{status.replicas[0].port}")
    assert value(m, "facade_replica_up", replica=replica.address, primary="") == 1
    assert value(m, "facade_replica_info", replica=replica.address, primary="", state=replica.state) == 1
    assert value(m, "facade_replica_lag_bytes", replica=replica.address, primary="") >= 0
    assert value(m, "facade_sentinel_primary_info", primary=server.sentinel_primary) == 1
    assert server.sentinel_primary == f"127.0.0.1:{status.primary.port}"
    assert value(m, "facade_sentinel_config_epoch") == server.config_epoch


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_each_partition_is_shown_on_its_cluster_shard(tmp_path):
    from facade.local import cluster as cluster_topology

    status = cluster_topology.start(tmp_path / "c", shards=3)
    try:
        url = status.url
        with Admin(url) as admin:
            admin.create_topic("spread", 8)
            with Producer(url) as p:
                for i in range(40):
                    p.send("spread", f"v{i}", key=f"k{i}")
            collector = BrokerCollector(admin=admin)
            m = parse(exposition([collector]))
            desc = admin.describe_topic("spread")
            server = admin.describe_server()
        shards = sorted({p.shard for p in desc.partitions})
        assert len(shards) == 3 and value(m, "kafka_brokers") == server.primaries == 3
        for p in desc.partitions:
            key = {"topic": "spread", "partition": p.partition}
            assert value(m, "facade_topic_partition_shard", shard=p.shard, **key) == 1
            assert value(m, "kafka_topic_partition_leader", **key) == shards.index(p.shard)
            assert value(m, "kafka_topic_partition_current_offset", **key) == p.log_end_offset
    finally:
        cluster_topology.stop(tmp_path / "c")


def test_the_exporter_command_serves_over_http(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    port = free_port()
    proc = subprocess.Popen([FACADE, "--url", url, "exporter", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_until(lambda: _listening(port), timeout=20, what="the exporter listens")
        m = scrape(port)
        assert value(m, "kafka_topic_partitions", topic="posts") == 2 and value(m, "facade_up") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        busy = subprocess.run([FACADE, "--url", url, "exporter", "--listen", f"127.0.0.1:{busy_port}"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert busy.returncode == 1 and busy.stderr.startswith(f"error: cannot listen on 127.0.0.1:{busy_port}")
    assert facade.exporter.DEFAULT_PORT == 9308
