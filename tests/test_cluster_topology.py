"""facade.cluster_topology: local clusters started from the server binary under test.

Start (slots assigned, nodes met, replicas linked, cluster_state:ok), status as JSON, stop and
start again with the data kept, the argument checks, and a primary killed under an acks="all"
producer: its replica takes over and no acknowledged record is lost or doubled.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from cluster_helpers import node
from conftest import wait_until

import facade.cluster as fc
import facade.local.cluster as ct
from facade import Admin, ConfigError, Producer, ServerError, keys


def cluster_values(status: ct.ClusterStatus, topic: str, partitions: int) -> list[str]:
    r = redis.RedisCluster(host="127.0.0.1", port=status.shards[0].primary.port, socket_timeout=10)
    try:
        return [f[b"value"].decode() for p in range(partitions) for _, f in r.xrange(keys.stream(topic, p))]
    finally:
        r.close()


@pytest.mark.slow
def test_start_status_stop_and_start_again_with_the_data(tmp_path, server_spec):
    status = ct.start(tmp_path, shards=2, replicas_per_shard=1, binary=server_spec[0])
    try:
        doc = status.as_json()
        assert set(doc) == {"url", "shards"}
        assert [s["slots"] for s in doc["shards"]] == [[[0, 8191]], [[8192, 16383]]]
        ports = [s["primary"]["port"] for s in doc["shards"]] + [r["port"] for s in doc["shards"] for r in s["replicas"]]
        assert doc["url"] == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
        assert all(len(s["replicas"]) == 1 and s["replicas"][0]["pid"] for s in doc["shards"])
        assert status.running and status.binary == server_spec[0]
        for shard in status.shards:
            with node(shard.primary.port) as r:
                info = r.info("replication")
                assert info["role"] == "master" and info["connected_slaves"] == 1
                assert r.config_get("appendonly")["appendonly"] == "yes"
                assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
                assert r.execute_command("CLUSTER", "INFO").decode().count("cluster_state:ok") == 1
        with pytest.raises(ServerError, match="already runs"):
            ct.start(tmp_path, shards=2, replicas_per_shard=1, binary=server_spec[0])
        # acks="all" on a cluster with replicas: each shard's configured replica (CLUSTER NODES)
        # confirms its writes.
        with Admin(status.url) as a:
            a.create_topic("t", 8)
            assert [r.state for r in a.describe_replicas().replicas] == ["in sync"]
        with Producer(status.url, acks="all") as p:
            futs = [p.send("t", f"v{i}", partition=i % 8) for i in range(80)]
            p.flush()
            assert sorted(f.result().offset for f in futs) == sorted(list(range(10)) * 8)
        assert ct.status(tmp_path) == status
    finally:
        assert ct.stop(tmp_path) is True
    stopped = ct.status(tmp_path)
    assert not stopped.running
    assert all(n.pid is None for s in stopped.shards for n in (s.primary, *s.replicas))
    assert ct.stop(tmp_path) is False
    with pytest.raises(ServerError, match="same counts"):
        ct.start(tmp_path, shards=3, binary=server_spec[0])
    again = ct.start(tmp_path, shards=2, replicas_per_shard=1, binary=server_spec[0])
    try:
        assert again.url == status.url and again.running
        assert sorted(cluster_values(again, "t", 8)) == sorted(f"v{i}" for i in range(80))  # from the AOF
    finally:
        ct.stop(tmp_path)


def test_argument_checks(tmp_path):
    for bad in ({"shards": 0}, {"shards": True}, {"shards": 17}, {"shards": 2, "replicas_per_shard": -1}):
        with pytest.raises(ConfigError, match="must be an integer"):  # as facade.local.sentinel
            ct.start(tmp_path / "x", **bad)
    with pytest.raises(ServerError, match="no cluster"):
        ct.status(tmp_path / "nothing")
    assert ct.stop(tmp_path / "nothing") is False
    assert ct.slot_ranges(3) == [(0, 5460), (5461, 10922), (10923, 16383)]
    for k in (1, 2, 3, 5, 16):
        ranges = ct.slot_ranges(k)
        assert ranges[0][0] == 0 and ranges[-1][1] == 16383
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))


def _free_block(count: int) -> int:
    """A base port with ``count`` free ports from it, and their bus ports (+10000) free too."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        ok = True
        for p in [*range(base, base + count), *range(base + 10000, base + 10000 + count)]:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    pytest.skip("no block of free loopback ports found")


@pytest.mark.slow
def test_fixed_ports(tmp_path, server_spec):
    base = _free_block(2)
    status = ct.start(tmp_path, shards=2, port=base, binary=server_spec[0])
    try:
        assert [s.primary.port for s in status.shards] == [base, base + 1]
        with node(base) as r:
            assert r.config_get("cluster-port")["cluster-port"] == str(base + 10000)
    finally:
        ct.stop(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_primary_is_replaced_and_acks_all_records_survive(tmp_path, server_spec):
    status = ct.start(tmp_path, shards=3, replicas_per_shard=1, binary=server_spec[0])
    try:
        url = status.url
        with Admin(url) as a:
            a.create_topic("t", 6)
            where = fc.partition_nodes(a._conn, "t", 6)
        meta = fc.key_slot(keys.TOPICS)
        # A shard that serves partitions but not the topic registry.
        victim = next(
            s for s in status.shards
            if f"127.0.0.1:{s.primary.port}" in where.values() and not any(lo <= meta <= hi for lo, hi in s.slots)
        )  # fmt: skip
        acked: list[str] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def produce() -> None:
            try:
                with Producer(url, acks="all", linger_ms=5) as p:
                    i = 0
                    while not stop.is_set():
                        batch = []
                        for _ in range(20):
                            v = f"k{i % 12}:{i}"
                            batch.append((v, p.send("t", v, key=f"k{i % 12}")))
                            i += 1
                        p.flush()
                        for v, f in batch:
                            f.result()  # raises if it was not stored
                            acked.append(v)
                        time.sleep(0.01)
            except Exception as exc:  # noqa: BLE001 (the test reports it)
                errors.append(exc)

        t = threading.Thread(target=produce)
        t.start()
        try:
            wait_until(lambda: errors or len(acked) > 200, timeout=20)
            os.kill(victim.primary.pid, signal.SIGKILL)
            killed_at, before = time.monotonic(), len(acked)
            wait_until(
                lambda: errors or _promoted(tmp_path, victim),
                timeout=30, interval=0.2, what="the replica took over",
            )  # fmt: skip
            wait_until(lambda: errors or len(acked) > before + 200, timeout=40, what="producing after the failover")
            took = time.monotonic() - killed_at
        finally:
            stop.set()
            t.join(60)
        assert not errors, errors
        after = ct.status(tmp_path)
        promoted = next(s for s in after.shards if s.primary.port == victim.replicas[0].port)
        assert promoted.slots == victim.slots
        stored = Counter(cluster_values(after, "t", 6))
        assert sum(stored.values()) == len(stored)  # nothing doubled by the retries
        assert set(acked) <= set(stored)  # nothing acknowledged was lost
        print(f"\nfailover: primary {victim.primary.port} killed, producing again after {took:.1f} s; "
              f"{len(acked)} records acknowledged, {sum(stored.values())} stored, 0 doubled")
    finally:
        ct.stop(tmp_path)


def _promoted(data_dir, victim: ct.ShardStatus) -> bool:
    return any(s.primary.port == victim.replicas[0].port and s.slots for s in ct.status(data_dir).shards)


def test_compose_cluster_profile_says_what_it_must():
    """compose.cluster.yaml: every node runs with NODE_SETTINGS, and the URL in its header names
    the primaries cluster-init makes. (Textual: PyYAML is not a dependency; `docker compose config`
    runs too where docker compose is installed, which it is not on this machine.)"""
    path = Path(__file__).resolve().parent.parent / "compose.cluster.yaml"
    text = path.read_text()
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.fullmatch(r" {2}([A-Za-z0-9_.-]+):\s*", line)
        if m:
            current = m.group(1)
            blocks[current] = ""
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
    nodes = {name: " ".join(body.split()) for name, body in blocks.items() if re.fullmatch(r"node-\d+", name)}
    assert len(nodes) == 6
    for i, (name, body) in enumerate(sorted(nodes.items()), start=1):
        assert f"--port 700{i} " in body, name
        for key, value in ct.NODE_SETTINGS.items():
            shown = value or '""'
            assert f"--{key} {shown}" in body, (name, key)
    url = re.search(r"FACADE_URL=(\S+)", text).group(1)
    assert url == "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    assert "--cluster-replicas 1" in blocks["cluster-init"]
    assert "6379" not in "".join(nodes.values()) + blocks["cluster-init"]
    docker = shutil.which("docker")
    has_compose = docker is not None and (
        subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20, check=False).returncode == 0
    )
    if has_compose:
        done = subprocess.run(
            [docker, "compose", "-f", str(path), "config", "--quiet"], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_cluster_quick_runs(server_spec):
    """python -m bench.cluster --quick: single server, 1 and 3 shards, every record counted (the
    bench checks that itself); no timing is asserted."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bench.cluster", "--quick", "--server-binary", server_spec[0]],
        cwd=root, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for label in ("single server", "cluster, 1 shard", "cluster, 3 shards", "overhead"):
        assert label in done.stdout, label
