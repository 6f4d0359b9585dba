"""Replication under faults: a real primary, two replicas and three sentinels (facade.topology).

Each test produces keyed records (value ``<key>:<seq>``), strikes (kill -9, SIGSTOP, restarts),
then reads every partition back from whichever server is the primary now, and counts with
tests/failover_checker.py what was lost, doubled or reordered among the acknowledged records.
The figures are printed (run with ``-s``) and quoted in docs/replication.md.

Sentinels run with down-after-milliseconds 2000: at 1000, Sentinel (Redis 7 and Valkey 9 alike)
regularly declared the primary it had just promoted down about a second after the switch and
failed over again while that primary still served, which is a real hazard but not the one these
tests measure (docs/replication.md, "Spurious failovers"). Producers use ``metadata_max_age_ms=1000``
(the replica count for acks="all" is re-read every second) and a generous ``delivery_timeout_ms``
so that their own retries ride out the failover.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import wait_until
from failover_checker import (
    Background,
    KeyedSequences,
    Ledger,
    check,
    check_consumed,
    info,
    new_primary,
    parse_value,
    read_topic,
    value_of,
    wait_for_acks,
)
from failover_checker import producing as producing_to

from facade import Admin, Consumer, FacadeError, NotEnoughReplicasError, Producer
from facade.local import sentinel as topology

pytestmark = pytest.mark.slow

TOPIC = "events"
PARTITIONS = 4
KEYS = 12
DOWN_AFTER_MS = 2000
PRODUCER = {"acks": "all", "linger_ms": 2, "delivery_timeout_ms": 60_000, "metadata_max_age_ms": 1000,
            "replica_timeout_ms": 2000}  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Path]:
    """A started topology (primary, 2 replicas, 3 sentinels) with the topic; stopped afterwards."""
    data_dir = tmp_path / "topo"
    st = topology.start(data_dir, replicas=2, sentinels=3, down_after_ms=DOWN_AFTER_MS)
    try:
        with Admin(st.url) as admin:
            admin.create_topic(TOPIC, partitions=PARTITIONS)
        yield data_dir
    finally:
        topology.stop(data_dir)


def url(data_dir: Path) -> str:
    return topology.status(data_dir).url


def producing(target: str, ledger: Ledger, seqs: KeyedSequences, **options: Any):
    return producing_to(target, TOPIC, ledger, seqs, {**PRODUCER, **options})


def report(title: str, **figures: Any) -> None:
    print(f"\n[failover] {title}: " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in figures.items()))  # fmt: skip


# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_kill_primary_during_acks_all_loses_and_doubles_nothing(cluster: Path) -> None:
    ledger, seqs = Ledger(), KeyedSequences(KEYS)
    before = topology.status(cluster)
    worker = Background(producing(before.url, ledger, seqs))
    wait_for_acks(ledger, 300)

    struck = time.monotonic()
    os.kill(before.primary.pid, signal.SIGKILL)
    after = new_primary(cluster, before.primary.port)
    promoted = time.monotonic() - struck
    # acks="all" waits for every configured replica, and the killed primary is one now (the
    # sentinels list it): a supervisor restarts it, and production resumes by itself.
    topology.start_node(cluster, before.primary.port)
    topology.wait_healthy(cluster)
    wait_for_acks(ledger, 300)
    worker.finish()

    assert not ledger.failed, f"records failed instead of riding out the failover: {list(ledger.failed.values())[:3]}"
    result = check(ledger, read_topic(after.url, TOPIC, PARTITIONS))
    window = ledger.longest_gap(start=struck)
    report("kill -9 primary, acks=all", promoted_s=promoted, unavailable_s=window, **vars_of(result))
    assert result.lost == [] and result.duplicated == [] and result.reordered == [] and result.misplaced == []
    assert after.primary.port in {r.port for r in before.replicas}


@pytest.mark.timeout(120)
def test_sigstop_primary_past_failover_then_sigcont(cluster: Path) -> None:
    ledger, seqs = Ledger(), KeyedSequences(KEYS)
    before = topology.status(cluster)
    old = before.primary
    worker = Background(producing(before.url, ledger, seqs))
    wait_for_acks(ledger, 300)

    struck = time.monotonic()
    os.kill(old.pid, signal.SIGSTOP)
    try:
        after = new_primary(cluster, old.port)
        promoted = time.monotonic() - struck
        time.sleep(1.0)  # frozen well past the failover
    finally:
        os.kill(old.pid, signal.SIGCONT)
    resumed = time.monotonic()
    # The old primary comes back, is told by the sentinels that it is a replica now, and syncs.
    healthy = topology.wait_healthy(cluster, timeout=30)
    assert healthy.primary.port == after.primary.port
    rejoined = wait_until(
        lambda: (i := info(old.port))["role"] == "slave" and i["master_port"] == after.primary.port
        and i["master_link_status"] == "up",
        timeout=30,
        what="the old primary replicates from the new one",
    )
    assert rejoined
    wait_for_acks(ledger, 300)
    worker.finish()

    assert not ledger.failed, f"records failed: {list(ledger.failed.values())[:3]}"
    result = check(ledger, read_topic(after.url, TOPIC, PARTITIONS))
    report(
        "SIGSTOP primary past the failover, acks=all",
        promoted_s=promoted,
        frozen_s=resumed - struck,
        unavailable_s=ledger.longest_gap(start=struck),
        **vars_of(result),
    )
    assert result.lost == [] and result.duplicated == [] and result.reordered == [] and result.misplaced == []


@pytest.mark.timeout(150)
def test_five_restarts_chasing_the_primary_while_producing_and_consuming(cluster: Path) -> None:
    """Kill the primary, let Sentinel promote a replica, restart the killed node as a replica,
    five times over, while a producer (acks="all": every write on both replicas, the default that
    survives a failover Sentinel starts by mistake) and a consumer group
    member keep going. Nothing acknowledged is lost or doubled; the member receives every record."""
    ledger, seqs = Ledger(), KeyedSequences(KEYS)
    target = url(cluster)
    deliveries: list[Any] = []
    commit_failures: list[BaseException] = []

    def consume(stop: threading.Event) -> None:
        with Consumer(TOPIC, "chasers", target, auto_offset_reset="earliest", reconnect_timeout_ms=60_000) as c:
            while not stop.is_set():
                batch = c.poll(timeout_ms=200)
                deliveries.extend(batch)
                try:
                    c.commit()
                except FacadeError as exc:  # fenced after an expired session: redelivered, reported
                    commit_failures.append(exc)

    consumer = Background(consume)
    producer = Background(producing(target, ledger, seqs))
    wait_for_acks(ledger, 200)
    windows, promotions = [], []
    for _ in range(5):
        st = topology.status(cluster)
        struck = time.monotonic()
        os.kill(st.primary.pid, signal.SIGKILL)
        after = new_primary(cluster, st.primary.port)
        promotions.append(time.monotonic() - struck)
        topology.start_node(cluster, st.primary.port)  # back as a replica of the new primary
        topology.wait_healthy(cluster)
        wait_for_acks(ledger, 100)
        windows.append(ledger.longest_gap(start=struck))
    producer.finish()
    assert not ledger.failed, f"records failed: {list(ledger.failed.values())[:3]}"
    stored = read_topic(after.url, TOPIC, PARTITIONS)
    result = check(ledger, stored)
    assert result.lost == [] and result.duplicated == [] and result.reordered == [] and result.misplaced == []
    wanted = {(s.key, s.seq) for s in stored}
    wait_until(
        lambda: wanted <= {parse_value(m.value) for m in list(deliveries)},
        timeout=60,
        interval=0.2,
        what="the consumer group received every stored record",
    )
    consumer.finish()
    consumed = check_consumed(stored, deliveries)
    report(
        "5 kill -9 + restart rounds, acks=all, one group member consuming",
        promotions_s=" ".join(f"{p:.2f}" for p in promotions),
        unavailable_s=" ".join(f"{w:.2f}" for w in windows),
        **vars_of(result),
    )
    report("  consumer group across the 5 failovers", commit_failures=len(commit_failures), **vars_of(consumed))
    assert consumed.skipped == []


@pytest.mark.timeout(90)
def test_a_killed_replica_stops_acks_all_by_default_and_lower_bars_stay_available(cluster: Path) -> None:
    st = topology.status(cluster)
    target = st.url
    gone = f"127.0.0.1:{st.replicas[0].port}"
    os.kill(st.replicas[0].pid, signal.SIGKILL)
    wait_until(lambda: info(st.primary.port)["connected_slaves"] == 1, timeout=10, what="the primary sees 1 replica")

    # The default waits for every configured replica; the sentinels still list the killed one.
    started = time.monotonic()
    with Producer(target, **{**PRODUCER, "delivery_timeout_ms": 3000, "replica_timeout_ms": 500}) as producer:
        fut = producer.send(TOPIC, value_of("k0", 0), key="k0")
        producer.flush()
        with pytest.raises(NotEnoughReplicasError) as caught:
            fut.result(timeout=30)
    failed_after = time.monotonic() - started
    message = str(caught.value)
    assert "needs 2 replica(s) in sync; 1 in sync now" in message and "nothing was appended" in message, message
    assert f"{gone} (not attached)" in message and "min_insync_replicas=2" in message, message

    ledger = Ledger()
    for options in ({"min_insync_replicas": 2}, {"min_insync_replicas": 1}, {"acks": 1}):
        with Producer(target, **{**PRODUCER, **options}) as producer:
            md = producer.send_and_wait(TOPIC, value_of("k1", len(ledger)), key="k1")
        ledger.acknowledge("k1", len(ledger), md.partition, md.offset)
    result = check(ledger, read_topic(target, TOPIC, PARTITIONS))
    report("kill -9 one of 2 replicas", default_failed_after_s=failed_after, **vars_of(result))
    assert result.lost == [] and result.duplicated == []
    # Refused before the append: the record that failed is not on the primary either.
    assert result.unacknowledged_stored == 0


def replication_filler_bytes() -> int:
    """More bytes than the kernel can buffer between a primary and a frozen replica.

    A replica stopped with SIGSTOP is not cut off: the kernel keeps receiving the replication
    stream into its socket buffer, and a thawed replica applies it even after the primary died.
    Only what is still in the primary's own memory when it dies is lost, so a control run first
    fills both socket buffers (receive side of the replica, send side of the primary)."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += 32 * 1024 * 1024
    return total + 8 * 1024 * 1024


@pytest.mark.timeout(90)
def test_control_acks_1_loses_what_the_lagging_replicas_never_got(cluster: Path) -> None:
    """The checker can see loss: replicas frozen and lagging behind a large write, acks=1 writes
    acknowledged by the primary alone, primary killed, replicas thawed and one promoted: those
    writes are gone. The same fault with acks="all" acknowledges nothing it could lose."""
    st = topology.status(cluster)
    target = st.url
    ledger, seqs = Ledger(), KeyedSequences(KEYS)
    with Producer(target, **{**PRODUCER, "acks": 1}) as producer, Producer(
        target, **{**PRODUCER, "min_insync_replicas": 2, "delivery_timeout_ms": 1500, "replica_timeout_ms": 300}
    ) as careful:

        def send(n: int) -> None:
            for _ in range(n):
                key, seq = seqs.next()
                md = producer.send_and_wait(TOPIC, value_of(key, seq), key=key)
                ledger.acknowledge(key, seq, md.partition, md.offset)

        send(100)
        with redis.Redis(host="127.0.0.1", port=st.primary.port, socket_timeout=30) as r:
            assert r.wait(2, 5000) == 2  # everything so far is on both replicas
            replicated = set(ledger.acked)
            for replica in st.replicas:
                os.kill(replica.pid, signal.SIGSTOP)
            try:
                filler = b"x" * (1024 * 1024)
                for _ in range(replication_filler_bytes() // len(filler) + 1):
                    r.set("control-filler", filler)  # replication lag: megabytes the replicas never read
                send(100)  # acknowledged by the primary alone (acks=1), within min-replicas-max-lag
                futures = []
                for _ in range(20):  # the same with acks="all": not acknowledged, so not counted
                    key, seq = seqs.next()
                    futures.append(careful.send(TOPIC, value_of(key, seq), key=key))
                careful.flush()
                for fut in futures:
                    with pytest.raises(NotEnoughReplicasError):
                        fut.result(timeout=30)
                os.kill(st.primary.pid, signal.SIGKILL)
            finally:
                for replica in st.replicas:
                    os.kill(replica.pid, signal.SIGCONT)
    after = new_primary(cluster, st.primary.port)
    topology.wait_healthy(cluster)
    result = check(ledger, read_topic(after.url, TOPIC, PARTITIONS))
    report("control: acks=1, replicas lagging, primary killed", **vars_of(result))
    assert result.duplicated == [] and result.reordered == []
    assert set(result.lost) == set(ledger.acked) - replicated, "exactly the writes the replicas never got are lost"
    assert len(result.lost) == 100


def vars_of(result: Any) -> dict[str, Any]:
    """Counts for report(): list fields become their lengths."""
    return {k: len(v) if isinstance(v, list) else v for k, v in vars(result).items()}
