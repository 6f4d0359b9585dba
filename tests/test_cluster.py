"""facade on a real Redis Cluster: 3 shards started from the server binary under test.

One cluster serves the whole module (started once, FLUSHALL on every primary before each test).
What is proved here, each with a count that would show the failure:

- a 12-partition topic lands on all three shards, and a producer's flush is one round trip per shard;
- a 2-member consumer group reads every keyed record once, in per-key order;
- a partition's slot migrated to another shard (IMPORTING/MIGRATING, MIGRATE key by key, SETSLOT
  NODE) while producing and consuming: nothing lost, nothing doubled, in the topic or in delivery;
- admin create/describe/alter/delete, groups describe/reset/delete;
- relay(atomic=False) is exactly-once (replays and kill -9 included); commit(outputs=...) across
  slots is refused with a message that names the way out, and works when the slots happen to agree;
- a relay whose destination shard is out of memory commits no input whose output was not stored
  (SDK and CLI), and says so.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from cluster_helpers import migrate_slot, node, slot_owner
from conftest import wait_until
from facade.cli import main as cli_main
from redis.crc import key_slot

import facade.cluster as fc
from facade import (
    Admin,
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    Consumer,
    OutOfMemoryError,
    OutputRecord,
    Producer,
    UnsupportedError,
    aio,
    keys,
    relay,
)
from facade._sync.client import Connection
from facade.local import cluster as cluster_topology

FAST = {"heartbeat_interval_ms": 50, "auto_offset_reset": "earliest"}


@pytest.fixture(scope="module")
def cluster(server_spec, tmp_path_factory) -> Iterator[cluster_topology.ClusterStatus]:
    """A 3-shard cluster (no replicas) for the module."""
    data_dir = tmp_path_factory.mktemp("cluster")
    status = cluster_topology.start(data_dir, shards=3, binary=server_spec[0])
    try:
        yield status
    finally:
        cluster_topology.stop(data_dir)


@pytest.fixture
def curl(cluster) -> str:
    """The cluster's URL, every primary emptied (FLUSHALL) for this test."""
    for port in primaries(cluster):
        with node(port) as r:
            r.flushall()
    return cluster.url


def primaries(cluster) -> list[int]:
    return [s.primary.port for s in cluster.shards]


def direct(cluster) -> redis.RedisCluster:
    """A plain redis-py cluster client (the caller closes it)."""
    return redis.RedisCluster(host="127.0.0.1", port=primaries(cluster)[0], socket_timeout=10)


def values(cluster, topic: str, partitions: int) -> list[str]:
    """Every stored value of ``topic``, partition after partition, in order."""
    r = direct(cluster)
    try:
        return [f[b"value"].decode() for p in range(partitions) for _, f in r.xrange(keys.stream(topic, p))]
    finally:
        r.close()


def take(c: Consumer, n: int, timeout: float = 15.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += c.poll(timeout_ms=50, max_records=max(1, n - len(got)))
    return got


def check_keyed(records: list[str]) -> tuple[int, int, bool]:
    """(distinct, duplicated, per-key order kept) of "key:seq" values in delivery order."""
    counts = Counter(records)
    last: dict[str, int] = {}
    ordered = True
    for v in records:
        k, i = v.split(":")
        if int(i) < last.get(k, -1):
            ordered = False
        last[k] = int(i)
    return len(counts), sum(n - 1 for n in counts.values()), ordered


# ---------------------------------------------------------------------------------------------
# Placement


def test_partitions_spread_over_every_shard_and_live_where_the_slot_map_says(cluster, curl):
    with Admin(curl) as a:
        a.create_topic("t", 12)
        nodes = fc.partition_nodes(a._conn, "t", 12)
        d = a.describe_topic("t")
    assert {n.split(":")[1] for n in nodes.values()} == {str(p) for p in primaries(cluster)}
    assert [p.stream_key for p in d.partitions] == [keys.stream("t", p) for p in range(12)]
    for p, where in nodes.items():
        with node(int(where.split(":")[1])) as r:
            assert r.execute_command("CLUSTER", "KEYSLOT", keys.stream("t", p)) == fc.partition_slot("t", p)
            assert r.exists(keys.stream("t", p)) == 1  # the stream is on that node
            assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", fc.partition_slot("t", p)) >= 1
    with Admin(curl) as a:  # describe_server sums the primaries; partition_stats spans shards
        server = a.describe_server()
        stats = a.partition_stats([a.topic("t")])
    assert server.role == f"cluster of {len(primaries(cluster))} primaries" and server.used_memory > 0
    assert len(server.run_id.split(",")) == len(primaries(cluster))
    assert [s.partition for s in stats] == list(range(12)) and all(s.length == 0 for s in stats)
    # A single server has no shards (no I/O: the client never connects).
    single = redis.Redis(host="127.0.0.1", port=1)
    try:
        assert fc.partition_nodes(single, "t", [0, 3]) == {0: None, 3: None}
        assert not fc.is_cluster(single) and fc.is_cluster(a._conn)
    finally:
        single.close()


def test_a_flush_is_one_round_trip_per_shard(curl, monkeypatch):
    rounds: list[tuple[str, int]] = []
    real = Connection._node_round

    def spy(self, node_name, calls, tail):
        rounds.append((node_name, len(calls)))
        return real(self, node_name, calls, tail)

    monkeypatch.setattr(Connection, "_node_round", spy)
    with Admin(curl) as a:
        a.create_topic("t", 12)
    rounds.clear()
    with Producer(curl, linger_ms=10_000) as p:
        futs = [p.send("t", f"v{i}", partition=i % 12) for i in range(120)]
        p.flush()
        assert sorted(f.result().partition for f in futs) == sorted(i % 12 for i in range(120))
    assert len(rounds) == 3, rounds  # three shards, one pipelined round trip each
    assert sum(n for _, n in rounds) == 12  # one produce call per partition
    assert len(values_of_all(curl, "t", 12)) == 120


def values_of_all(url: str, topic: str, partitions: int) -> list[bytes]:
    conn = Connection(url)
    try:
        return [e for p in range(partitions) for e in conn.command("reading", "XRANGE", keys.stream(topic, p), "-", "+")]
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Consumer groups


def _member(url: str, topic: str, got: list[str], owned: list[set], stop: threading.Event, errors: list) -> None:
    try:
        with Consumer(topic, "g", url, **FAST) as c:
            while not stop.is_set():
                for m in c.poll(timeout_ms=100):
                    got.append(m.value.decode())
                c.commit()
                owned.append(c.assignment())
    except Exception as exc:  # noqa: BLE001 (the test reports it)
        errors.append(exc)


def test_two_member_group_reads_everything_once_in_key_order(cluster, curl):
    n, nkeys = 2400, 24
    with Admin(curl) as a:
        a.create_topic("t", 12)
    with Producer(curl) as p:
        for i in range(n):
            p.send("t", f"k{i % nkeys}:{i}", key=f"k{i % nkeys}")
    got: list[list[str]] = [[], []]
    owned: list[list[set]] = [[], []]
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=_member, args=(curl, "t", got[i], owned[i], stop, errors)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: errors or len(got[0]) + len(got[1]) >= n, timeout=30, what="the group read everything")
        time.sleep(0.3)  # anything doubled would arrive now
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, errors
    distinct, duplicated, _ = check_keyed(got[0] + got[1])
    assert (distinct, duplicated) == (n, 0)
    for part in got:  # per-key order within what each member read
        assert check_keyed(part)[2]
    # Both members worked, and between them they held partitions on every shard.
    assert got[0] and got[1]
    with Admin(curl) as a:
        where = fc.partition_nodes(a._conn, "t", 12)
        desc = a.describe_group("g")
    held = [set().union(*o) for o in owned]
    assert held[0] and held[1]
    assert {where[tp.partition] for tp in held[0] | held[1]} == set(where.values())
    assert sum(p.lag for p in desc.partitions) == 0


def test_async_clients_on_a_cluster(curl):
    async def main() -> tuple[int, int]:
        async with aio.Admin(curl) as a:
            await a.create_topic("t", 6)
        async with aio.Producer(curl) as p:
            futs = [await p.send("t", f"k{i % 6}:{i}", key=f"k{i % 6}") for i in range(600)]
            await p.flush()
            offsets = {(m.partition, m.offset) for m in [await f for f in futs]}
        got: list[str] = []
        async with aio.Consumer("t", "g", curl, **FAST) as c:
            deadline = time.monotonic() + 15
            while len(got) < 600 and time.monotonic() < deadline:
                got += [m.value.decode() for m in await c.poll(timeout_ms=100)]
                await c.commit()
        distinct, duplicated, ordered = check_keyed(got)
        assert ordered
        return len(offsets), distinct + 1000 * duplicated

    assert asyncio.run(main()) == (600, 600)


def test_waiting_consumer_wakes_quickly_for_any_partition(curl):
    """poll() on 12 partitions over 3 shards (no multi-slot XREAD): a record on any partition
    wakes it within a few tens of milliseconds."""
    with Admin(curl) as a:
        a.create_topic("t", 12)
    with Consumer("t", "g", curl, **FAST) as c, Producer(curl, linger_ms=0) as p:
        wait_until(lambda: c.poll(timeout_ms=50) == [] and len(c.assignment()) == 12, timeout=10)
        delays = []
        for partition in range(12):
            result: list = []
            t = threading.Thread(target=lambda out=result: out.extend(c.poll(timeout_ms=3000)))
            t.start()
            time.sleep(0.15)  # the consumer is blocked by now
            sent = time.monotonic()
            p.send_and_wait("t", f"p{partition}", partition=partition)
            t.join()
            delays.append(time.monotonic() - sent)
            assert [m.value for m in result] == [f"p{partition}".encode()]
        c.commit()
    print(f"\nwake-up delays (ms): {sorted(round(d * 1000) for d in delays)}")
    assert max(delays) < 0.25, delays
    assert sorted(delays)[6] < 0.05, delays  # the median: half a 20 ms slice plus round trips


# ---------------------------------------------------------------------------------------------
# Resharding


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_slot_migration_while_producing_and_consuming_loses_and_doubles_nothing(cluster, curl, monkeypatch):
    topic, partitions, nkeys = "mig", 6, 30
    with Admin(curl) as a:
        a.create_topic(topic, partitions)
    victim = 0
    slot = fc.partition_slot(topic, victim)
    source = slot_owner(primaries(cluster), slot)
    target = next(p for p in primaries(cluster) if p != source)

    redirects = Counter()
    real = Connection._node_round

    def spy(self, node_name, calls, tail):
        replies = real(self, node_name, calls, tail)
        if isinstance(replies, list):
            redirects.update(type(r).__name__ for r in replies if isinstance(r, fc.REDIRECTS))
        return replies

    monkeypatch.setattr(Connection, "_node_round", spy)

    sent: list[str] = []
    got: list[str] = []
    stop_producing, stop_consuming = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with Producer(curl, linger_ms=5) as p:
                i = 0
                while not stop_producing.is_set():
                    batch = []
                    for _ in range(20):
                        v = f"k{i % nkeys}:{i}"
                        batch.append((v, p.send(topic, v, key=f"k{i % nkeys}")))
                        i += 1
                    p.flush()
                    for v, f in batch:
                        f.result()  # raises if the record was not stored
                        sent.append(v)
                    time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    owned: list[set] = []
    threads = [threading.Thread(target=produce)]
    threads += [threading.Thread(target=_member, args=(curl, topic, got, owned, stop_consuming, errors))]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: errors or len(got) > 300, timeout=20, what="traffic flowing")
        # Move the slot a key at a time, slowly, so that clients meet ASK and TRYAGAIN mid-way.
        moved = migrate_slot(slot, source, target, primaries(cluster), keys_per_step=1, pause_s=0.15)
        assert moved >= 4  # stream, producer state, owner tokens at least
        before = len(got)
        wait_until(lambda: errors or len(got) > before + 300, timeout=20, what="traffic after the move")
        stop_producing.set()
        threads[0].join(30)
        wait_until(lambda: errors or len(set(got)) >= len(sent), timeout=30, what="the consumer caught up")
        time.sleep(0.3)
    finally:
        stop_producing.set()
        stop_consuming.set()
        for t in threads:
            t.join(30)
        migrate_slot(slot, target, source, primaries(cluster), keys_per_step=100)  # as it was
    assert not errors, errors
    assert slot_owner(primaries(cluster), slot) == source
    stored = values(cluster, topic, partitions)
    # In the topic: every acknowledged record once (the idempotent producer absorbed the retries).
    assert len(stored) == len(set(stored)) == len(sent)
    assert Counter(stored) == Counter(sent)
    # In delivery: every record once, per-key order kept.
    distinct, duplicated, ordered = check_keyed(got)
    print(f"\nmigration: {len(sent)} records, {dict(redirects)} redirects met, lost={len(sent) - distinct} "
          f"duplicated={duplicated}")
    assert (distinct, duplicated, ordered) == (len(sent), 0, True)
    assert redirects["MovedError"] >= 1  # the test did exercise the redirect path


def test_asyncio_clients_follow_a_moved_slot(cluster, curl):
    """The asyncio flavour's own redirect path: a producer and a consumer whose slot map predates
    a migration keep working, and the record lands on the new shard."""
    with Admin(curl) as a:
        a.create_topic("t", 3)
    slot = fc.partition_slot("t", 0)
    source = slot_owner(primaries(cluster), slot)
    target = next(p for p in primaries(cluster) if p != source)

    async def main() -> list[str]:
        async with aio.Producer(curl, linger_ms=0) as p, aio.Consumer("t", "g", curl, **FAST) as c:
            await p.send_and_wait("t", "before", partition=0)
            got = [m.value.decode() for m in await c.poll(timeout_ms=2000)]
            await c.commit()
            migrate_slot(slot, source, target, primaries(cluster), keys_per_step=100)
            await p.send_and_wait("t", "after", partition=0)  # MOVED, then the new owner
            deadline = time.monotonic() + 10
            while "after" not in got and time.monotonic() < deadline:
                got += [m.value.decode() for m in await c.poll(timeout_ms=200)]
                await c.commit()
            return got

    try:
        assert asyncio.run(main()) == ["before", "after"]
        with node(target) as r:
            assert r.xlen(keys.stream("t", 0)) == 2
    finally:
        migrate_slot(slot, target, source, primaries(cluster), keys_per_step=100)


# ---------------------------------------------------------------------------------------------
# Admin


def test_admin_create_describe_alter_delete(cluster, curl):
    with Admin(curl) as a:
        a.create_topic("a", 4, max_len=1000)
        a.create_topic("b", 9)
        with pytest.raises(Exception, match="already exists"):
            a.create_topic("a", 4)
        assert [t.name for t in a.list_topics()] == ["a", "b"]
        with Producer(curl) as p:
            for i in range(90):
                p.send("b", f"v{i}", partition=i % 9)
        d = a.describe_topic("b")
        assert [x.length for x in d.partitions] == [10] * 9
        assert all((x.log_start_offset, x.log_end_offset) == (0, 10) for x in d.partitions)
        assert a.alter_partitions("b", 12).partitions == 12
        assert len(a.describe_topic("b").partitions) == 12
        with Consumer("b", "g", curl, **FAST) as c:
            assert len(take(c, 90)) == 90
            c.commit()
        desc = a.describe_group("g")
        assert {p.partition for p in desc.partitions if p.committed} == set(range(9))
        assert a.list_groups() == ["g"]
        plan = a.reset_offsets("g", "b", to_earliest=True, execute=True)
        assert len(plan) == 12
        with Consumer("b", "g", curl, **FAST) as c:
            assert len(take(c, 90)) == 90  # replayed from the start
        a.delete_group("g")
        assert a.list_groups() == []
        a.delete_topic("b")
        assert [t.name for t in a.list_topics()] == ["a"]
    # Every key of "b" is gone from every shard.
    for port in primaries(cluster):
        with node(port) as r:
            assert not [k for k in r.scan_iter("facade:{b/*")]


# ---------------------------------------------------------------------------------------------
# Consume-transform-produce


def test_commit_with_outputs_across_slots_is_refused_and_commits_nothing(curl):
    with Admin(curl) as a:
        a.create_topic("in", 1)
        a.create_topic("out", 3)
    with Producer(curl) as p:
        for i in range(5):
            p.send("in", f"v{i}")
    with Consumer("in", "g", curl, **FAST) as c:
        batch = take(c, 5)
        outs = [OutputRecord(m, "out", m.value.upper(), partition=1) for m in batch]
        assert fc.partition_slot("in", 0) != fc.partition_slot("out", 1)
        with pytest.raises(UnsupportedError, match=r"atomic=False") as info:
            c.commit(outs)
        assert "dedup" in str(info.value) and "slot" in str(info.value)
        # Nothing was written, nothing committed; a plain commit still works afterwards.
        assert values_of_all(curl, "out", 3) == []
        with Admin(curl) as a:
            assert a.describe_group("g").partitions[0].lag == 5
        c.commit()
        with Admin(curl) as a:
            assert a.describe_group("g").partitions[0].lag == 0


def _topic_sharing_slot(slot: int, prefix: str) -> str:
    for i in range(1_000_000):
        name = f"{prefix}{i}"
        if fc.partition_slot(name, 0) == slot:
            return name
    raise AssertionError("no name found")


def test_commit_with_outputs_works_when_the_slots_agree(curl):
    out = _topic_sharing_slot(fc.partition_slot("in", 0), "out")
    with Admin(curl) as a:
        a.create_topic("in", 1)
        a.create_topic(out, 1)
    with Producer(curl) as p:
        for i in range(5):
            p.send("in", f"v{i}")
    with Consumer("in", "g", curl, guarantee="exactly-once", **FAST) as c:
        batch = take(c, 5)
        c.commit([OutputRecord(m, out, m.value.upper()) for m in batch])
    assert sorted(e[1][b"value"] for e in values_of_all(curl, out, 1)) == [f"V{i}".encode() for i in range(5)]


class _Crash(Exception):
    pass


def _relay_crashing_at_first_commit(monkeypatch, url: str, dst: str, **options) -> None:
    """relay() that dies after its first batch's outputs were flushed, before their inputs are
    committed: the moment where a non-atomic relay would double its outputs on restart."""
    real = Consumer.commit

    def commit(self, *args, **kwargs):
        raise _Crash

    monkeypatch.setattr(Consumer, "commit", commit)
    try:
        with pytest.raises(_Crash):
            relay("src", dst, "r-" + dst, url, atomic=False, idle_timeout_ms=500, **options)
    finally:
        monkeypatch.setattr(Consumer, "commit", real)


def test_relay_atomic_false_is_exactly_once_across_a_crash_and_replays(cluster, curl, monkeypatch):
    n = 600
    with Admin(curl) as a:
        for name in ("src", "dst", "dst2", "dst-auto"):
            a.create_topic(name, 6)
    with Producer(curl) as p:
        for i in range(n):
            p.send("src", f"k{i % 12}:{i}", key=f"k{i % 12}")
    with pytest.raises(UnsupportedError, match="atomic=False"):
        relay("src", "dst", "r", curl, atomic=True, idle_timeout_ms=300)  # one script cannot span slots
    # The default picks the dedup-id path on a cluster by itself.
    assert relay("src", "dst-auto", "r-auto", curl, idle_timeout_ms=500).copied == n
    assert sorted(values(cluster, "dst-auto", 6)) == sorted(values(cluster, "src", 6))
    _relay_crashing_at_first_commit(monkeypatch, curl, "dst")
    first = len(values(cluster, "dst", 6))
    assert 0 < first <= 500
    # Restarted: the uncommitted batch comes back and is sent again under the same dedup ids.
    assert relay("src", "dst", "r-dst", curl, atomic=False, idle_timeout_ms=500).copied == n
    got = Counter(values(cluster, "dst", 6))
    assert (len(got), sum(got.values())) == (n, n)
    assert got == Counter(values(cluster, "src", 6))
    # A rewound group replays into the exactly-once consumer: nothing is copied again.
    with Admin(curl) as a:
        a.reset_offsets("r-dst", "src", to_earliest=True, execute=True)
    assert relay("src", "dst", "r-dst", curl, atomic=False, idle_timeout_ms=500).copied == 0
    assert sum(Counter(values(cluster, "dst", 6)).values()) == n
    # Control: the same crash with at-least-once outputs (no dedup ids) doubles the first batch.
    _relay_crashing_at_first_commit(monkeypatch, curl, "dst2", exactly_once=False)
    first = len(values(cluster, "dst2", 6))
    assert first > 0
    relay("src", "dst2", "r-dst2", curl, exactly_once=False, idle_timeout_ms=500)
    assert len(values(cluster, "dst2", 6)) == n + first


RELAY_CHILD = """
import sys
from facade import relay
relay("src", "dst", "relay", sys.argv[1], atomic=False,
      consumer_options={"session_timeout_ms": 1000, "heartbeat_interval_ms": 50})
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_relay_atomic_false_survives_kill9_on_a_cluster(cluster, curl):
    total, rng, kills = 1500, random.Random(5), 0
    with Admin(curl) as a:
        a.create_topic("src", 6)
        a.create_topic("dst", 6)
    with Producer(curl) as p:
        sent = 0
        while sent < total:
            for _ in range(300):
                p.send("src", f"k{sent % 20}:{sent}", key=f"k{sent % 20}")
                sent += 1
            p.flush()
            proc = subprocess.Popen([sys.executable, "-c", RELAY_CHILD, curl])
            time.sleep(rng.uniform(0.4, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
    proc = subprocess.Popen([sys.executable, "-c", RELAY_CHILD, curl])
    try:
        wait_until(lambda: len(values(cluster, "dst", 6)) >= total, timeout=60, what="relay caught up")
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait()
    got = Counter(values(cluster, "dst", 6))
    lost, duplicated = total - len(got), sum(n - 1 for n in got.values())
    print(f"\ncluster relay (dedup ids) with {kills} kill -9: lost={lost} duplicated={duplicated}")
    assert (lost, duplicated) == (0, 0)


def _shard_of(cluster, topic: str, partition: int = 0) -> int:
    """Port of the primary holding ``topic[partition]``."""
    return slot_owner(primaries(cluster), key_slot(keys.stream(topic, partition).encode()))


def _elsewhere(cluster, than: str, prefix: str) -> str:
    """A topic name whose partition 0 lives on another shard than ``than``'s."""
    return next(f"{prefix}{i}" for i in range(200) if _shard_of(cluster, f"{prefix}{i}") != _shard_of(cluster, than))


def _committed(url: str, group: str) -> int | None:
    with Admin(url) as a:
        return a.describe_group(group).partitions[0].committed


@pytest.mark.parametrize("exactly_once", [True, False], ids=["dedup-ids", "at-least-once"])
def test_a_relay_commits_no_input_whose_output_was_not_stored(cluster, curl, exactly_once):
    """The destination's shard runs out of memory (maxmemory, noeviction) after the first batch,
    for longer than delivery_timeout_ms: the relay raises the error, and the inputs committed are
    exactly the outputs stored. (It used to commit the failed batch and report it copied.)"""
    n = 501
    dst = _elsewhere(cluster, "src", "dst")
    with Admin(curl) as a:
        a.create_topic("src", 1)
        a.create_topic(dst, 1)
    with Producer(curl) as p:
        for i in range(n):
            p.send("src", f"k:{i}", key="k")
    first: list[int] = []

    def fill_destination(copied: int) -> None:
        if not first:
            first.append(copied)
            with node(_shard_of(cluster, dst)) as r:
                r.config_set("maxmemory", 1)  # every write refused with OOM from now on

    try:
        with pytest.raises(OutOfMemoryError, match="out of memory"):
            relay("src", dst, "r", curl, exactly_once=exactly_once, idle_timeout_ms=500, on_batch=fill_destination,
                  producer_options={"delivery_timeout_ms": 1000}, consumer_options=FAST)  # fmt: skip
    finally:
        with node(_shard_of(cluster, dst)) as r:
            r.config_set("maxmemory", 0)
    assert 0 < first[0] < n
    assert _committed(curl, "r") == first[0] == len(values(cluster, dst, 1))
    # With memory back, a restart copies the rest: every record once, in order.
    assert relay("src", dst, "r", curl, exactly_once=exactly_once, idle_timeout_ms=500,
                 consumer_options=FAST).copied == n - first[0]  # fmt: skip
    assert values(cluster, dst, 1) == [f"k:{i}" for i in range(n)]
    assert _committed(curl, "r") == n


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_cli_relay_stops_uncommitted_when_the_destination_is_out_of_memory(cluster, curl):
    """`facade relay --at-least-once` with the destination's shard out of memory for longer than
    the producer's delivery timeout (30 s): exit status 1, the error, an honest count, and the
    record not committed; run again once memory is back, it is copied."""
    dst = _elsewhere(cluster, "src", "dst")
    with Admin(curl) as a:
        a.create_topic("src", 1)
        a.create_topic(dst, 1)
    with Producer(curl) as p:
        for i in range(5):
            p.send("src", f"k:{i}", key="k")
    args = ["--url", curl, "relay", "src", dst, "-g", "r", "--at-least-once", "--idle-timeout-ms", "500"]
    first = CliRunner().invoke(cli_main, args, catch_exceptions=False)
    assert first.exit_code == 0 and "Relayed 5 records" in first.stderr, first.output
    with Producer(curl) as p:
        p.send("src", "k:5", key="k")
    with node(_shard_of(cluster, dst)) as r:
        r.config_set("maxmemory", 1)
    try:
        failed = CliRunner().invoke(cli_main, args, catch_exceptions=False)
    finally:
        with node(_shard_of(cluster, dst)) as r:
            r.config_set("maxmemory", 0)
    assert failed.exit_code == 1, failed.output
    assert "Relayed 0 records from src to " in failed.stderr and "not committed" in failed.stderr
    assert "out of memory" in failed.stderr
    assert _committed(curl, "r") == 5 and len(values(cluster, dst, 1)) == 5
    again = CliRunner().invoke(cli_main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "Relayed 1 record " in again.stderr, again.output
    assert values(cluster, dst, 1) == [f"k:{i}" for i in range(6)]


def test_dead_lettering_across_slots_is_refused_clearly(curl):
    with Admin(curl) as a:
        a.create_topic("t", 1)
    with Producer(curl) as p:
        p.send("t", "poison")
    # Refused when the consumer is built, before any record could be taken and half-handled.
    with pytest.raises(UnsupportedError, match="dead-letter"):
        Consumer("t", "g", curl, max_deliveries=1, **FAST)
    with Consumer("t", "g", curl, **FAST) as c:  # without max_deliveries the record is read as usual
        assert [m.value for m in take(c, 1)] == [b"poison"]


# ---------------------------------------------------------------------------------------------
# Producer options and URLs


def test_acks_all_waits_on_every_shard_that_took_writes(curl, monkeypatch):
    tails: list[tuple] = []
    real = Connection._node_round

    def spy(self, node_name, calls, tail):
        tails.extend((node_name, tuple(t)) for t in tail)
        return real(self, node_name, calls, tail)

    monkeypatch.setattr(Connection, "_node_round", spy)
    with Admin(curl) as a:
        a.create_topic("t", 12)
    with Producer(curl, acks="all") as p:  # no replicas: WAIT 0 confirms at once
        futs = [p.send("t", f"v{i}", partition=i) for i in range(12)]
        p.flush()
        assert all(f.result().offset == 0 for f in futs)
    assert len({n for n, t in tails if t[0] == "WAIT"}) == 3
    with (
        pytest.raises(Exception, match="replicas"),
        Producer(curl, acks="all", min_insync_replicas=2, replica_timeout_ms=50, delivery_timeout_ms=300) as p,
    ):
        p.send_and_wait("t", "needs a replica", partition=0)


def test_cluster_urls(cluster):
    with pytest.raises(ConnectionFailedError, match="cluster"):
        Producer("redis+cluster://127.0.0.1:1").close()
    conn = Connection(cluster.url.replace("redis+cluster://", "redis+cluster://default:@"))
    try:
        assert conn.cluster
        assert conn.command("ping", "PING")
    finally:
        conn.close()
    with pytest.raises(ConfigError, match="database 0"):
        Connection(cluster.url + "?db=2")


def test_password_in_a_cluster_url_reaches_every_node(cluster, curl):
    ports = primaries(cluster)
    for port in ports:
        with node(port) as r:
            r.config_set("requirepass", "s3cret")
    try:
        with Admin(curl.replace("redis+cluster://", "redis+cluster://:s3cret@")) as a:
            a.create_topic("t", 6)  # a partition script on every shard
            assert [t.name for t in a.list_topics()] == ["t"]
        with pytest.raises(AuthenticationError, match="password"):
            Admin(curl).close()
    finally:
        for port in ports:
            with redis.Redis(host="127.0.0.1", port=port, password="s3cret", socket_timeout=10) as r:
                r.config_set("requirepass", "")


def test_describe_shows_each_partitions_shard(cluster, curl):
    with Admin(curl) as a:
        a.create_topic("where", 12)
        desc = a.describe_topic("where")
    shards = {p.shard for p in desc.partitions}
    assert len(shards) == 3 and None not in shards  # 12 partitions over all 3 primaries
    from facade.cluster import key_slot

    for p in desc.partitions:  # each partition's shard is the one that serves its slot
        assert p.stream_key == keys.stream("where", p.partition)
        assert key_slot(p.stream_key) == key_slot(keys.owners("where", p.partition))
