"""`facade topics migrate`: topics of the older key layout (stream-ID offsets) are refused until
they are carried over to dense offsets, and the migration keeps every record and each group's
position, survives an interruption and a producer of the older facade appending meanwhile."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner
from facade.cli import main

from facade import Admin, Consumer, GroupError, Producer, TopicError, TopicPartition, acl, keys
from facade._sync import migrate

pytestmark = pytest.mark.timeout(60)

T = "legacy"


@pytest.fixture
def raw(url):
    with redis.Redis.from_url(url) as r:
        yield r


def old_topic(raw: redis.Redis, counts: list[int], name: str = T) -> dict[int, list[bytes]]:
    """A topic as facade's layout 1 stored it: config without "layout", server-made IDs, fields
    key/value/h:<name>. Returns the IDs of each partition."""
    cfg = {"name": name, "partitions": len(counts), "retention_ms": None, "max_len": None, "created_ms": 1}
    raw.hset(keys.TOPICS, name, json.dumps(cfg))
    ids: dict[int, list[bytes]] = {}
    for p, n in enumerate(counts):
        stream = keys.stream(name, p)
        raw.xgroup_create(stream, "__init__", "$", mkstream=True)
        raw.xgroup_destroy(stream, "__init__")
        ids[p] = []
        for i in range(n):
            fields = {b"key": f"k{i % 3}".encode(), b"value": f"v{p}-{i}".encode(), b"h:trace": f"t{i}".encode()}
            ids[p].append(raw.xadd(stream, fields))
    return ids


def old_group(raw: redis.Redis, partition: int, group: str, read: int, acked: int, name: str = T) -> None:
    """A layout-1 group: ``read`` records delivered, the first ``acked`` of them acknowledged."""
    stream = keys.stream(name, partition)
    raw.xgroup_create(stream, group, "0")
    if read:
        got = raw.xreadgroup(group, "owner", {stream: ">"}, count=read)[0][1]
        if acked:
            raw.xack(stream, group, *[entry_id for entry_id, _ in got[:acked]])
    raw.hset(keys.GROUPS, group, json.dumps({"created_ms": 1}))


def snapshot(raw: redis.Redis) -> dict[bytes, bytes]:
    """The topic's registry entry and partition keys, serialized."""
    return {k: raw.dump(k) for k in sorted(raw.keys(f"facade:{{{T}/*"))} | {b"config": raw.hget(keys.TOPICS, T)}


def consume_all(url: str, group: str, want: int) -> list:
    got: list = []
    with Consumer(T, group, url, auto_offset_reset="earliest", enable_auto_commit=False) as c:
        for _ in range(200):
            got += c.poll(timeout_ms=100)
            if len(got) >= want:
                break
        assert len(got) == want
        assert c.poll(timeout_ms=300) == []
    return got


def test_an_older_topic_is_refused_with_the_command_that_migrates_it(url, raw):
    old_topic(raw, [3])
    before = snapshot(raw)
    with pytest.raises(TopicError, match=f"facade topics migrate {T}"), Producer(url) as p:
        p.send(T, "x").get(timeout=5)
    with pytest.raises(TopicError, match="facade topics migrate"), Consumer(T, "g", url) as c:
        c.poll(timeout_ms=200)
    assert snapshot(raw) == before
    with Admin(url) as admin:
        assert admin.describe_group("g").members == ()  # the consumer left its group


def test_migration_keeps_records_in_order_and_carries_group_positions(url, raw):
    ids = old_topic(raw, [25, 15, 0])
    old_group(raw, 0, "g", read=10, acked=7)  # 7, 8, 9 pending: committed offset 7
    old_group(raw, 1, "g", read=15, acked=15)  # all acknowledged: 15
    raw.hset(keys.processed(T, 0), "eo", ids[0][4])  # an exactly-once group processed offset 4
    with Admin(url) as admin:
        report = admin.migrate_topic(T)
        assert (report.partitions, report.records, report.groups, report.already) == (3, 40, ("g",), False)
        tps = [TopicPartition(T, p) for p in range(3)]
        assert admin.list_offsets(tps, "earliest") == dict.fromkeys(tps, 0)
        assert admin.list_offsets(tps, "latest") == {tps[0]: 25, tps[1]: 15, tps[2]: 0}
        assert [p.committed for p in admin.describe_group("g").partitions] == [7, 15]
        assert admin.topic(T).layout == keys.LAYOUT_VERSION
    assert raw.hget(keys.processed(T, 0), "eo") == b"5"
    leftovers = [k for p in range(3) for k in (keys.migration_copy(T, p), keys.migration_old(T, p),
                                                keys.migration_marker(T, p))]  # fmt: skip
    assert raw.exists(*leftovers) == 0

    # Every record, in the old order, with dense offsets, its key, value, headers and append time.
    everything = consume_all(url, "fresh", 40)
    for p in range(2):
        mine = [m for m in everything if m.partition == p]
        assert [m.offset for m in mine] == list(range(len(ids[p])))
        assert [m.value for m in mine] == [f"v{p}-{i}".encode() for i in range(len(ids[p]))]
        assert [m.key for m in mine] == [f"k{i % 3}".encode() for i in range(len(ids[p]))]
        assert [m.headers.get("trace") for m in mine] == [f"t{i}".encode() for i in range(len(ids[p]))]
        assert [m.timestamp_ms for m in mine] == [int(i.split(b"-")[0]) for i in ids[p]]
    # Group g goes on from its first unacknowledged record.
    resumed = consume_all(url, "g", 18)
    assert [m.offset for m in resumed if m.partition == 0] == list(range(7, 25))
    # New records continue the offsets.
    with Producer(url) as producer:
        assert producer.send(T, "next", partition=0).get(timeout=5).offset == 25
        assert producer.send(T, "first", partition=2).get(timeout=5).offset == 0


def test_an_interrupted_migration_resumes_where_it_stopped(url, raw):
    old_topic(raw, [5, 6])
    old_group(raw, 1, "g", read=6, acked=2)
    with Admin(url) as admin:
        # The run stops after partition 1: the topic is still refused, partition 1 is done.
        conn = admin._conn
        assert migrate._migrate_partition(conn, TopicPartition(T, 1), set()) == 6
        with pytest.raises(TopicError, match="migrate"), Producer(url) as p:
            p.send(T, "x").get(timeout=5)
        report = admin.migrate_topic(T)
        assert (report.partitions, report.records) == (1, 5)
        assert [p.committed for p in admin.describe_group("g").partitions] == [2]
        assert admin.migrate_topic(T).already
    assert sorted((m.partition, m.offset) for m in consume_all(url, "all", 11)) == [
        *((0, i) for i in range(5)),
        *((1, i) for i in range(6)),
    ]


def test_records_an_old_producer_appends_during_the_copy_are_carried_over(url, raw, monkeypatch):
    old_topic(raw, [30])
    copy = migrate._copy
    appended = []

    def copy_then_append(conn, tp, boundaries):
        result = copy(conn, tp, boundaries)
        if not appended:  # an older facade's producer appends once, after the first copy
            appended.append(raw.xadd(keys.stream(T, 0), {b"value": b"late"}))
        return result

    monkeypatch.setattr(migrate, "CHUNK", 7)
    monkeypatch.setattr(migrate, "_copy", copy_then_append)
    with Admin(url) as admin:
        assert admin.migrate_topic(T).records == 31
    got = consume_all(url, "g", 31)
    assert [m.offset for m in got] == list(range(31)) and got[-1].value == b"late"


def test_a_group_with_live_members_is_refused_and_nothing_changes(url, raw):
    old_topic(raw, [4])
    old_group(raw, 0, "busy", read=4, acked=1)
    now_ms = int(raw.time()[0]) * 1000
    raw.zadd(keys.group_deadlines("busy"), {"m1": now_ms + 60_000})
    before = snapshot(raw)
    with Admin(url) as admin, pytest.raises(GroupError, match="'busy' has live members"):
        admin.migrate_topic(T)
    assert snapshot(raw) == before


def test_the_cli_migrates_and_an_admin_user_may(url, raw, server_spec, redis_server):
    old_topic(raw, [3, 2])
    _, version, is_valkey = server_spec
    rules = acl.rules("admin", server_version=None if is_valkey else version)
    raw.execute_command("ACL", "SETUSER", "t-migrate", "reset", "on", ">pw", *rules)
    try:
        admin_url = f"redis://t-migrate:pw@127.0.0.1:{redis_server.port}"
        result = CliRunner().invoke(main, ["--url", admin_url, "topics", "migrate", T])
        assert result.exit_code == 0, result.output
        assert "Migrated topic legacy: 5 records in 2 partitions" in result.output
        again = CliRunner().invoke(main, ["--url", admin_url, "topics", "migrate", T])
        assert again.exit_code == 0 and "already has dense offsets" in again.output
    finally:
        raw.execute_command("ACL", "DELUSER", "t-migrate")
    assert len(consume_all(url, "g", 5)) == 5
