"""Three ``facade consume`` processes in one group share a keyed topic: each record once, keys in order."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from conftest import wait_until

from facade import Admin, Producer, keys, partition_for_key

FACADE = str(Path(sys.executable).parent / "facade")

TOPIC = "events"
GROUP = "workers"
PARTITIONS = 6
KEYS = 30
PER_KEY = 20  # 600 records
IDLE_MS = 6000
SETTLE_S = 1.5


def owners(r: redis.Redis) -> list[str | None]:
    """The member that owns each partition for GROUP right now (None where nobody does)."""
    out = []
    for p in range(PARTITIONS):
        token = r.hget(keys.owners(TOPIC, p), GROUP)
        out.append(token.decode().split("|", 1)[0] if token else None)
    return out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_three_consume_processes_share_a_group(url, redis_server):
    with Admin(url) as admin:
        admin.create_topic(TOPIC, PARTITIONS)
    cmd = [
        FACADE, "--url", url, "consume", TOPIC, "--group", GROUP, "--from-beginning",
        "--format", "json", "--idle-timeout-ms", str(IDLE_MS),
    ]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    try:
        with redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=10) as r:
            # Produce only once the group has settled (two partitions per member) and stayed so for
            # longer than a heartbeat interval, so that every member follows the same generation
            # and no rebalance happens while records flow.
            settled: dict[str, object] = {}

            def stable() -> bool:
                now, current = time.monotonic(), owners(r)
                if None in current or sorted(Counter(current).values()) != [2, 2, 2]:
                    settled.clear()
                elif settled.get("owners") != current:
                    settled.update(owners=current, since=now)
                return bool(settled) and now - settled["since"] >= SETTLE_S  # type: ignore[operator]

            wait_until(stable, timeout=IDLE_MS / 1000 - 1, what="three members own two partitions each")
        with Producer(url) as producer:
            for seq in range(1, PER_KEY + 1):
                for k in range(KEYS):
                    producer.send(TOPIC, f"key-{k}:{seq}", key=f"key-{k}")
                producer.flush()
                time.sleep(0.02)  # a steady stream, not one burst
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()

    received: list[list[tuple[str, int]]] = []
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err, err.decode()
        pairs = []
        for line in out.decode().splitlines():
            m = json.loads(line)
            key, seq = m["value"].split(":")
            assert m["key"] == key and m["topic"] == TOPIC
            pairs.append((key, int(seq)))
        received.append(pairs)
        assert f"Processed a total of {len(pairs)} message".encode() in err

    everything = Counter(pair for pairs in received for pair in pairs)
    expected = {(f"key-{k}", s) for k in range(KEYS) for s in range(1, PER_KEY + 1)}
    missing = expected - set(everything)
    stderr = "\n".join(f"process {i}: {err.decode().strip()}" for i, (_, err) in enumerate(results))
    assert not missing, (
        f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}, on partitions "
        f"{sorted({partition_for_key(k.encode(), PARTITIONS) for k, _ in missing})}; stderr:\n{stderr}"
    )
    assert max(everything.values()) == 1, "records consumed more than once"
    assert sum(1 for pairs in received if pairs) > 1, "only one process received records"

    holder: dict[str, int] = {}
    for index, pairs in enumerate(received):
        last: dict[str, int] = {}
        for key, seq in pairs:
            assert holder.setdefault(key, index) == index, f"{key} went to two processes"
            assert seq > last.get(key, 0), f"{key}: {seq} after {last[key]} in process {index}"
            last[key] = seq
