"""Admin against a real server: topic lifecycle, validation, and what lands in Redis."""

from __future__ import annotations

import logging

import pytest
import redis

from facade import (
    Admin,
    ConfigError,
    Consumer,
    GroupCursor,
    InvalidNameError,
    Producer,
    TopicConfig,
    TopicExistsError,
    UnknownTopicError,
    keys,
)


@pytest.fixture
def admin(url):
    with Admin(url) as a:
        yield a


@pytest.fixture
def raw(url):
    r = redis.Redis.from_url(url)
    yield r
    r.close()


def test_create_describe_list_delete(admin, raw, url):
    cfg = admin.create_topic("orders", 3, retention_ms=60_000, max_len=1000)
    assert (cfg.name, cfg.partitions, cfg.retention_ms, cfg.max_len, cfg.layout) == ("orders", 3, 60_000, 1000, 2)
    assert cfg.created_ms > 1_600_000_000_000  # server clock, filled in by the script
    # One stream per partition, each existing (empty) from creation on.
    for p in range(3):
        assert raw.type(keys.stream("orders", p)) == b"stream"
        assert raw.xlen(keys.stream("orders", p)) == 0
    assert [t.name for t in admin.list_topics()] == ["orders"]
    assert admin.topic("orders") == cfg

    with Producer(url) as prod:
        prod.send_and_wait("orders", b"v", partition=1)
    desc = admin.describe_topic("orders")
    assert desc.config == cfg
    assert [(p.partition, p.length) for p in desc.partitions] == [(0, 0), (1, 1), (2, 0)]
    assert (desc.partitions[1].log_start_offset, desc.partitions[1].log_end_offset) == (0, 1)
    assert (desc.partitions[0].log_start_offset, desc.partitions[0].log_end_offset) == (0, 0)
    assert desc.partitions[2].stream_key == keys.stream("orders", 2)

    admin.delete_topic("orders")
    assert admin.list_topics() == []
    assert not [k for k in raw.keys("facade:{orders/*")]
    with pytest.raises(UnknownTopicError, match=r"create_topic\('orders', partitions=N\)") as info:
        admin.describe_topic("orders")
    assert info.value.topic == "orders"


def test_create_twice_refused_and_nothing_changes(admin, raw):
    admin.create_topic("t", 2)
    with Producer(admin._conn.url.raw) as prod:
        prod.send_and_wait("t", b"keep", partition=0)
    with pytest.raises(TopicExistsError):
        admin.create_topic("t", 5)
    assert admin.create_topic("t", 5, exist_ok=True).partitions == 2  # the existing topic, unchanged
    assert admin.topic("t").partitions == 2
    assert raw.xlen(keys.stream("t", 0)) == 1
    assert not raw.exists(keys.stream("t", 2))


@pytest.mark.parametrize("name", ["", "a b", "x{y}", "a/b", "é", "a" * 250, ".", ".."])
def test_bad_topic_names_refused(admin, raw, name):
    with pytest.raises(InvalidNameError, match="A-Z a-z 0-9|reserved|must be"):
        admin.create_topic(name, 1)
    assert raw.dbsize() == 0


@pytest.mark.parametrize("count", [0, -1, 1025, 2.5, "3", True])
def test_bad_partition_counts_refused(admin, raw, count):
    with pytest.raises(ConfigError, match="partition count"):
        admin.create_topic("t", count)
    assert raw.dbsize() == 0


def test_longest_legal_name_and_max_partitions(admin):
    name = "a" * 245  # room for its dead-letter topic, <name>.dlq, within Kafka's 249
    assert admin.create_topic(name, 1024).partitions == 1024
    assert len(admin.describe_topic(name).partitions) == 1024


def test_alter_partitions_grows_only_and_warns(admin, caplog):
    admin.create_topic("t", 2)
    with caplog.at_level(logging.WARNING, logger="facade"):
        cfg = admin.alter_partitions("t", 4)
    assert cfg.partitions == 4 and admin.topic("t").created_ms == cfg.created_ms
    assert "keys map to different partitions" in caplog.text
    assert len(admin.describe_topic("t").partitions) == 4
    for bad in (4, 3):
        with pytest.raises(ConfigError, match="only grow"):
            admin.alter_partitions("t", bad)
    with pytest.raises(UnknownTopicError):
        admin.alter_partitions("missing", 3)


def test_bad_retention_refused(admin, raw):
    with pytest.raises(ConfigError, match="retention_ms"):
        admin.create_topic("t", 1, retention_ms=0)
    with pytest.raises(ConfigError, match="max_len"):
        admin.create_topic("t", 1, max_len="10")
    assert raw.dbsize() == 0


def test_metadata_shared_by_all_clients(url):
    with Admin(url) as a, Admin(url) as b:
        a.create_topic("shared", 7)
        assert b.topic("shared") == TopicConfig("shared", 7, None, None, a.topic("shared").created_ms, 2)


def test_dead_server_gives_clear_error():
    from conftest import free_port

    with Admin(f"redis://127.0.0.1:{free_port()}") as a, pytest.raises(Exception) as info:
        a.list_topics()
    from facade import ConnectionFailedError

    assert isinstance(info.value, ConnectionFailedError)
    assert "cannot reach the server" in str(info.value)


def test_describe_server_partition_stats_and_pending_ages(admin, url):
    server = admin.describe_server()
    assert server.role == "master" and server.used_memory > 0 and server.uptime_s >= 0
    assert server.version.split()[0] in ("valkey", "redis") and server.run_id
    assert server.sentinel_primary is None and server.config_epoch is None
    admin.create_topic("t", 2)
    with Producer(url) as p:
        for i in range(5):
            p.send("t", f"v{i}", partition=i % 2)
    with Consumer("t", "g", url, auto_offset_reset="earliest") as c:
        got = []
        while len(got) < 5:
            got += c.poll(timeout_ms=200)
        stats = admin.partition_stats(admin.list_topics())
        assert [(s.partition, s.length, s.appended) for s in stats] == [(0, 3, 3), (1, 2, 2)]
        assert [(s.first_offset, s.last_offset) for s in stats] == [(0, 2), (0, 1)]
        assert [s.groups for s in stats] == [(GroupCursor("g", 3),), (GroupCursor("g", 2),)]
        ages = admin.uncommitted_age_ms([("g", "t", 0), ("g", "t", 1), ("nobody", "t", 0)])
        # A group that committed nothing has everything uncommitted, as its lag says.
        assert set(ages) == {("g", "t", 0), ("g", "t", 1), ("nobody", "t", 0)} and min(ages.values()) >= 0
        c.commit()
        assert admin.uncommitted_age_ms([("g", "t", 0)]) == {}
    assert admin.partition_stats([]) == [] and admin.uncommitted_age_ms([]) == {}
