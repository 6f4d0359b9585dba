"""facade gateway, consumer groups: real Kafka clients (confluent-kafka, kafka-python, aiokafka)
in groups coordinated by the gateway (Kafka's classic protocol, state in Redis): rebalances when
a member leaves and when one is killed, commits fenced by generation and member id, offsets
shared with facade's SDK and CLI, the two kinds of group refusing each other, and the admin APIs.
The scripts' contracts are tested one by one in tests/test_gateway_group_scripts.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner
from conftest import wait_until
from gateway_helpers import running_gateway

from facade import Admin, Consumer, Producer
from facade.errors import GroupError
from facade.gateway import join_group

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")
ck_admin = pytest.importorskip("confluent_kafka.admin", reason="confluent-kafka is in the test extras")
kafka = pytest.importorskip("kafka", reason="kafka-python is in the test extras")

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def short_initial_delay(monkeypatch):
    # join_group took the constant by name: patch it there (patching coordinator changed nothing).
    monkeypatch.setattr(join_group, "INITIAL_REBALANCE_DELAY_MS", 300)


def member_count(url, group: str) -> int:
    """Live members of ``group``; 0 while no JoinGroup has made it yet."""
    try:
        return len(Admin(url).describe_group(group).members)
    except GroupError:
        return 0


def confluent(gw, group: str, name: str, **extra):
    conf = {"bootstrap.servers": gw.bootstrap, "group.id": group, "client.id": name, "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "log_level": 0, **extra}  # fmt: skip
    return ck.Consumer(conf)


class Members:
    """Confluent consumers subscribed to one topic, polled in turn; their assignments as seen by
    their rebalance callbacks."""

    def __init__(self, consumers: list, topic: str) -> None:
        self.consumers = consumers
        self.assigned: dict[int, list[int]] = {}
        self.errors: list = []
        self.revocations: list[int] = []
        """Which member had partitions revoked, in order."""
        for i, c in enumerate(consumers):
            c.subscribe([topic], on_assign=self._on_assign(i), on_revoke=self._on_revoke(i))

    def _on_assign(self, i):
        return lambda _c, parts: self.assigned.__setitem__(i, sorted(p.partition for p in parts))

    def _on_revoke(self, i):
        def revoke(_c, parts):
            self.assigned[i] = []
            self.revocations.append(i)

        return revoke

    def poll(self, which=None) -> None:
        for i, c in enumerate(self.consumers):
            if which is None or i in which:
                m = c.poll(0.05)
                if m is not None and m.error() and m.error().code() != ck.KafkaError._UNSUPPORTED_FEATURE:
                    self.errors.append(m.error())

    def until(self, predicate, which=None, timeout=30.0, what=""):
        return wait_until(lambda: (self.poll(which), predicate())[1], timeout=timeout, what=what)

    def covered(self, which, partitions: int) -> bool:
        got = [p for i in which for p in self.assigned.get(i, [])]
        return sorted(got) == list(range(partitions))


def test_confluent_group_of_three_splits_the_partitions_and_rebalances_when_one_leaves(url):
    Admin(url).create_topic("orders", 6)
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "billing", f"c{i}") for i in range(3)], "orders")
        members.until(lambda: members.covered((0, 1, 2), 6) and all(members.assigned.get(i) for i in range(3)),
                      what="three members share six partitions")  # fmt: skip
        d = Admin(url).describe_group("billing")
        assert d.protocol == "kafka" and len(d.members) == 3
        assert sorted(tp.partition for m in d.members for tp in m.partitions) == list(range(6))
        assert {m.client_id for m in d.members} == {"c0", "c1", "c2"} and all(m.topics == ("orders",) for m in d.members)

        members.consumers[2].close()  # LeaveGroup: the others rebalance at once
        members.until(lambda: members.covered((0, 1), 6), which=(0, 1), what="two members share six partitions")
        assert len(Admin(url).describe_group("billing").members) == 2
        assert members.errors == []
        for c in members.consumers[:2]:
            c.close()
    assert Admin(url).describe_group("billing").members == ()


KILLED_MEMBER = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "doomed",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 300, "enable.auto.commit": False,
                  "log_level": 0})
    c.subscribe([sys.argv[3]], on_assign=lambda _c, ps: print("assigned", len(ps), flush=True))
    while True:
        c.poll(0.1)
""")


@pytest.mark.slow
def test_a_member_killed_with_sigkill_loses_its_partitions_when_its_session_expires(url):
    Admin(url).create_topic("orders", 6)
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "billing", f"c{i}") for i in range(2)], "orders")
        members.until(lambda: members.covered((0, 1), 6), what="two members")
        doomed = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, gw.bootstrap, "billing", "orders"],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            members.until(lambda: member_count(url, "billing") == 3 and
                          members.covered((0, 1), 6) is False and sum(map(len, members.assigned.values())) == 4,
                          timeout=30, what="the third member took two partitions")  # fmt: skip
            assert doomed.stdout.readline().startswith("assigned")
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
            killed_at = time.monotonic()
            members.until(lambda: members.covered((0, 1), 6), timeout=30, what="its partitions moved")
            waited = time.monotonic() - killed_at
            assert 3 < waited < 20, waited  # after its session (6 s) expired, not at once
            d = Admin(url).describe_group("billing")
            assert {m.client_id for m in d.members} == {"c0", "c1"}
        finally:
            if doomed.poll() is None:
                doomed.kill()
                doomed.wait(10)
            doomed.stdout.close()
        for c in members.consumers:
            c.close()


def _produce(url, topic, counts):
    with Producer(url=url) as p:
        for partition, n in enumerate(counts):
            for i in range(n):
                p.send(topic, f"v{i}".encode(), partition=partition)
        p.flush()


def test_commits_are_shared_with_the_sdk_and_cli_with_exact_lag_and_reset_offsets(url):
    from facade.cli import main

    Admin(url).create_topic("events", 2)
    _produce(url, "events", [10, 4])
    TP = ck.TopicPartition
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "readers", "r0")], "events")
        members.until(lambda: members.covered((0,), 2), what="assigned")
        c = members.consumers[0]
        c.commit(offsets=[TP("events", 0, 7, "note"), TP("events", 1, 4)], asynchronous=False)
        got = {p.partition: (p.offset, p.metadata) for p in c.committed([TP("events", 0), TP("events", 1)], timeout=10)}
        assert got == {0: (7, "note"), 1: (4, None)} or got == {0: (7, "note"), 1: (4, "")}
        d = Admin(url).describe_group("readers")
        assert {p.partition: (p.committed, p.lag) for p in d.partitions} == {0: (7, 3), 1: (4, 0)}
        assert {p.owner for p in d.partitions} == {d.members[0].member_id}  # owners from the assignment
        text = CliRunner().invoke(main, ["--url", url, "groups", "describe", "readers"], catch_exceptions=False)
        assert "r0" in text.output or d.members[0].member_id in text.output
        refused = CliRunner().invoke(main, ["--url", url, "groups", "reset-offsets", "readers", "-t", "events",
                                            "--to-earliest", "--execute"])  # fmt: skip
        assert refused.exit_code != 0 and "live member" in refused.output
        c.close()

        done = CliRunner().invoke(main, ["--url", url, "groups", "reset-offsets", "readers", "-t", "events",
                                         "--shift-by", "-2", "--execute", "--json"], catch_exceptions=False)  # fmt: skip
        assert done.exit_code == 0, done.output
        assert {p["partition"]: p["target"] for p in json.loads(done.output)["partitions"]} == {0: 5, 1: 2}
        # A consumer outside the group's membership (assign()) reads the reset offsets and, the
        # group being empty, may commit (generation -1).
        outside = confluent(gw, "readers", "tool")
        outside.assign([TP("events", 0), TP("events", 1)])
        assert [p.offset for p in outside.committed([TP("events", 0), TP("events", 1)], timeout=10)] == [5, 2]
        outside.commit(offsets=[TP("events", 0, 9)], asynchronous=False)
        outside.close()
    assert {p.partition: (p.committed, p.lag) for p in Admin(url).describe_group("readers").partitions} == {
        0: (9, 1), 1: (2, 2)}  # fmt: skip


def test_a_commit_of_a_past_generation_is_refused(url):
    Admin(url).create_topic("events", 2)
    TP = ck.TopicPartition
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "g", "a")], "events")
        members.until(lambda: members.covered((0,), 2), what="assigned")
        # kafka-python speaks the protocol by hand: a commit with a generation the group left
        client = kafka.KafkaConsumer(bootstrap_servers=gw.bootstrap, group_id="g", enable_auto_commit=False)
        try:
            from kafka.structs import OffsetAndMetadata
            from kafka.structs import TopicPartition as KTP

            coordinator_ = client._coordinator
            coordinator_._generation = type(coordinator_._generation)(1, "a-stale-member", "range")
            with pytest.raises(kafka.errors.KafkaError) as info:
                client.commit({KTP("events", 0): OffsetAndMetadata(3, "", -1)})
            assert "UnknownMember" in type(info.value).__name__ or "Generation" in type(info.value).__name__ or \
                "CommitFailed" in type(info.value).__name__
        finally:
            client.close()
        c = members.consumers[0]
        assert c.committed([TP("events", 0)], timeout=10)[0].offset < 0  # nothing was stored
        c.close()


def test_a_commit_with_metadata_above_kafkas_limit_is_refused_and_not_stored(url):
    """Kafka refuses commit metadata longer than offset.metadata.max.bytes (4096):
    OFFSET_METADATA_TOO_LARGE, nothing stored; the gateway stored any size (up to the 100 MB
    request limit) in the partition's committed offsets hash."""
    Admin(url).create_topic("t", 1)
    TP = ck.TopicPartition
    with running_gateway(url) as gw:
        c = ck.Consumer({"bootstrap.servers": gw.bootstrap, "group.id": "g", "enable.auto.commit": False})
        try:
            with pytest.raises(ck.KafkaException) as info:
                c.commit(offsets=[TP("t", 0, 1, metadata="x" * 4097)], asynchronous=False)
            assert info.value.args[0].code() == ck.KafkaError.OFFSET_METADATA_TOO_LARGE
            assert c.committed([TP("t", 0)], timeout=10)[0].offset < 0  # nothing was stored
            # (4000: confluent-kafka sends the metadata with a trailing NUL byte)
            c.commit(offsets=[TP("t", 0, 2, metadata="x" * 4000)], asynchronous=False)
            assert c.committed([TP("t", 0)], timeout=10)[0].offset == 2
        finally:
            c.close()


def test_the_two_kinds_of_group_refuse_each_other(url):
    Admin(url).create_topic("t", 2)
    with running_gateway(url) as gw:
        with Consumer("t", "sdk-group", url=url) as sdk:
            wait_until(lambda: (sdk.poll(timeout_ms=50), len(sdk.assignment()) == 2)[1], timeout=15, what="sdk owns t")
            k = confluent(gw, "sdk-group", "k")
            k.subscribe(["t"])
            errors = []
            wait_until(lambda: (errors.append(m.error()) if (m := k.poll(0.2)) is not None and m.error() else None,
                                any(e.code() == ck.KafkaError.INCONSISTENT_GROUP_PROTOCOL for e in errors))[1],
                       timeout=20, what="the Kafka client is refused")  # fmt: skip
            k.close()
            assert len(sdk.assignment()) == 2

        members = Members([confluent(gw, "kafka-group", "k")], "t")
        members.until(lambda: members.covered((0,), 2), what="the Kafka client owns t")
        with Consumer("t", "kafka-group", url=url) as sdk, pytest.raises(GroupError, match="kafka clients"):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                sdk.poll(timeout_ms=100)
                members.poll()
        members.consumers[0].close()


def test_admin_clients_list_describe_and_delete_groups(url):
    Admin(url).create_topic("t", 3)
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "live", f"m{i}") for i in range(2)], "t")
        members.until(lambda: members.covered((0, 1), 3), what="assigned")
        outside = confluent(gw, "idle", "tool")
        outside.commit(offsets=[ck.TopicPartition("t", 0, 1)], asynchronous=False)
        outside.close()

        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap})
        listed = admin.list_consumer_groups().result(timeout=10)
        assert {g.group_id: str(g.state) for g in listed.valid} == {
            "live": "ConsumerGroupState.STABLE", "idle": "ConsumerGroupState.EMPTY"}  # fmt: skip
        described = admin.describe_consumer_groups(["live"])["live"].result(timeout=10)
        assert described.partition_assignor == "range" and len(described.members) == 2
        assert sorted(tp.partition for m in described.members for tp in m.assignment.topic_partitions) == [0, 1, 2]
        assert {m.client_id for m in described.members} == {"m0", "m1"}

        ka = kafka.KafkaAdminClient(bootstrap_servers=gw.bootstrap)
        try:
            assert {g["group_id"]: (g["protocol_type"], g["group_state"]) for g in ka.list_groups()} == {
                "idle": ("", "Empty"), "live": ("consumer", "Stable")}  # fmt: skip
            (committed,) = ka.list_group_offsets({"idle": None})["idle"].values()
            assert committed.offset == 1
            results = ka.delete_groups(["idle", "live", "nobody"])
            assert results == {"idle": "OK", "live": "NonEmptyGroupError", "nobody": "GroupIdNotFoundError"}
        finally:
            ka.close()
        assert [g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid] == ["live"]
        for c in members.consumers:
            c.close()


def test_kafka_python_and_aiokafka_members_consume_and_commit_in_one_group_with_a_confluent_one(url):
    aiokafka = pytest.importorskip("aiokafka", reason="aiokafka is in the test extras")
    import threading

    Admin(url).create_topic("mixed", 3)
    _produce(url, "mixed", [20, 20, 20])
    seen: dict[str, set[tuple[int, int]]] = {"conf": set(), "kp": set(), "aio": set()}
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "mixed", "conf")], "mixed")
        kp = kafka.KafkaConsumer("mixed", bootstrap_servers=gw.bootstrap, group_id="mixed", client_id="kp",
                                 enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=300,
                                 auto_offset_reset="earliest", max_poll_records=2)  # fmt: skip

        async def aio_member(stop: asyncio.Event, assigned: list):
            c = aiokafka.AIOKafkaConsumer("mixed", bootstrap_servers=gw.bootstrap, group_id="mixed", client_id="aio",
                                          enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=300,
                                          auto_offset_reset="earliest", max_poll_records=2)  # fmt: skip
            await c.start()
            try:
                while not stop.is_set():
                    batches = await c.getmany(timeout_ms=100, max_records=2)
                    seen["aio"].update((r.partition, r.offset) for rs in batches.values() for r in rs)
                    if batches:
                        await c.commit()
                    assigned[:] = sorted(tp.partition for tp in c.assignment())
            finally:
                await c.stop()

        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        aio_assigned: list[int] = []
        thread = threading.Thread(target=loop.run_until_complete, args=(aio_member(stop, aio_assigned),), daemon=True)
        thread.start()
        try:
            def step():
                records = [r for rs in kp.poll(timeout_ms=50).values() for r in rs]
                seen["kp"].update((r.partition, r.offset) for r in records)
                if records:
                    kp.commit()
                m = members.consumers[0].poll(0.05)
                if m is not None and not m.error():
                    seen["conf"].add((m.partition(), m.offset()))
                    members.consumers[0].commit(message=m, asynchronous=False)
                if member_count(url, "mixed") == 0:
                    return False  # no JoinGroup has made the group yet
                d = Admin(url).describe_group("mixed")
                mine = sorted(tp.partition for tp in kp.assignment())
                return (len(d.members) == 3 and sorted(members.assigned.get(0, []) + mine + aio_assigned) == [0, 1, 2]
                        and set().union(*seen.values()) == {(p, o) for p in range(3) for o in range(20)}
                        and sum(p.lag for p in d.partitions) == 0)  # fmt: skip

            wait_until(step, timeout=60, what="three libraries consumed and committed every record")
            assert {m.client_id for m in Admin(url).describe_group("mixed").members} == {"conf", "kp", "aio"}
            assert all(seen.values())  # each library consumed some
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(20)
            loop.close()
            kp.close()
            members.consumers[0].close()


CONSUMING_MEMBER = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "doomed",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 300, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "log_level": 0})
    c.subscribe([sys.argv[3]])
    while True:
        m = c.poll(0.1)
        if m is not None and not m.error():
            print(m.partition(), m.offset(), flush=True)
""")


@pytest.mark.slow
def test_a_group_of_three_consumes_everything_through_a_leave_and_a_sigkill(url):
    """Each record is handed to the group at least once, and every record committed is never
    handed out again, while one member leaves and one is killed with SIGKILL."""
    Admin(url).create_topic("work", 6)
    _produce(url, "work", [50] * 6)
    with running_gateway(url) as gw:
        doomed = subprocess.Popen([sys.executable, "-c", CONSUMING_MEMBER, gw.bootstrap, "workers", "work"],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            members = Members([confluent(gw, "workers", f"w{i}") for i in range(2)], "work")
            seen: set[tuple[int, int]] = set()

            def consume(which=(0, 1)):
                for i in which:
                    c = members.consumers[i]
                    m = c.poll(0.05)
                    if m is not None and not m.error():
                        seen.add((m.partition(), m.offset()))
                        c.commit(message=m, asynchronous=False)

            wait_until(lambda: (consume(), member_count(url, "workers") == 3)[1], timeout=30,
                       what="three members")  # fmt: skip
            os.kill(doomed.pid, signal.SIGKILL)  # its partitions move once its session expires
            doomed.wait(10)
            members.consumers[1].close()  # and one leaves
            wait_until(lambda: (consume((0,)), len(seen) == 300)[1], timeout=60, what="every record consumed")
            d = Admin(url).describe_group("workers")
            assert [m.client_id for m in d.members] == ["w0"]
            assert sum(p.lag for p in d.partitions) == 0
        finally:
            if doomed.poll() is None:
                doomed.kill()
                doomed.wait(10)
            doomed.stdout.close()
        members.consumers[0].close()


def test_two_gateways_serve_one_group_with_the_cooperative_sticky_assignor(url):
    Admin(url).create_topic("orders", 4)
    with running_gateway(url) as a, running_gateway(url) as b:
        coop = {"partition.assignment.strategy": "cooperative-sticky"}
        members = Members([confluent(a, "shared", "on-a", **coop), confluent(b, "shared", "on-b", **coop)], "orders")
        # incremental callbacks: track the assignment from the consumers themselves
        def shares():
            got = [sorted(p.partition for p in c.assignment()) for c in members.consumers]
            return all(got) and sorted(p for ps in got for p in ps) == [0, 1, 2, 3]

        members.until(shares, what="two members on two gateways share four partitions")
        d = Admin(url).describe_group("shared")
        assert {m.client_id for m in d.members} == {"on-a", "on-b"}
        assert sorted(tp.partition for m in d.members for tp in m.partitions) == [0, 1, 2, 3]
        members.consumers[1].close()
        members.until(lambda: sorted(p.partition for p in members.consumers[0].assignment()) == [0, 1, 2, 3],
                      which=(0,), what="the member on gateway a takes all")  # fmt: skip
        members.consumers[0].close()


def test_a_static_member_restarted_within_its_session_gets_its_partitions_back_without_a_rebalance(url):
    Admin(url).create_topic("orders", 4)
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "static", "lead")], "orders")
        members.until(lambda: members.covered((0,), 4), what="the leader alone")  # the leader stays the leader
        static = confluent(gw, "static", "s", **{"group.instance.id": "s1"})
        members.consumers.append(static)
        static.subscribe(["orders"], on_assign=members._on_assign(1), on_revoke=members._on_revoke(1))
        members.until(lambda: members.covered((0, 1), 4) and all(members.assigned.get(i) for i in (0, 1)),
                      what="two members")  # fmt: skip
        before = Admin(url).describe_group("static")
        theirs = members.assigned[1]
        members.revocations.clear()
        members.consumers[1].close()  # a static member sends no LeaveGroup: its session stays
        again = confluent(gw, "static", "s", **{"group.instance.id": "s1"})
        got = []
        again.subscribe(["orders"], on_assign=lambda _c, parts: got.extend(p.partition for p in parts))
        wait_until(lambda: (again.poll(0.05), members.poll((0,)), got)[2], timeout=20, what="the restart is assigned")
        assert sorted(got) == theirs
        after = Admin(url).describe_group("static")
        assert after.generation == before.generation and 0 not in members.revocations
        assert {m.member_id for m in after.members} - {m.member_id for m in before.members}  # a new member id
        again.close()
        members.consumers[0].close()


def test_kcat_balanced_consumer_joins_a_group_beside_a_confluent_member(url):
    import shutil

    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    Admin(url).create_topic("orders", 4)
    with running_gateway(url) as gw:
        members = Members([confluent(gw, "mixed", "conf")], "orders")
        members.until(lambda: members.covered((0,), 4), what="alone first")
        with subprocess.Popen([kcat, "-b", gw.bootstrap, "-G", "mixed", "-X", "client.id=kcat", "-X",
                               "session.timeout.ms=6000", "-X", "log_level=0", "-q", "-o", "beginning", "orders"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:  # fmt: skip
            try:
                members.until(lambda: {m.client_id: len(m.partitions) for m in Admin(url).describe_group("mixed").members}
                              == {"conf": 2, "kcat": 2} and len(members.assigned[0]) == 2, timeout=30,
                              what="kcat takes half")  # fmt: skip
            finally:
                proc.terminate()  # kcat leaves its group on SIGTERM
                proc.wait(10)
        members.until(lambda: members.covered((0,), 4), timeout=20, what="kcat's half comes back")
        members.consumers[0].close()


@pytest.mark.slow
def test_a_group_on_a_redis_cluster_commits_across_shards(server_spec, tmp_path):
    from facade.local import cluster as cluster_topology

    status = cluster_topology.start(tmp_path / "cluster", shards=3, binary=server_spec[0])
    admin = Admin(status.url)
    try:
        admin.create_topic("spread", 6)
        TP = ck.TopicPartition
        with running_gateway(status.url) as gw:
            members = Members([confluent(gw, "spread-group", f"c{i}") for i in range(2)], "spread")
            members.until(lambda: members.covered((0, 1), 6), what="two members on a cluster")
            c = members.consumers[0]
            c.commit(offsets=[TP("spread", p, 0) for p in range(6)], asynchronous=False)
            assert [p.offset for p in c.committed([TP("spread", p) for p in range(6)], timeout=10)] == [0] * 6
            d = admin.describe_group("spread-group")
            assert len(d.members) == 2 and {p.partition: p.committed for p in d.partitions} == dict.fromkeys(range(6), 0)
            members.consumers[1].close()
            members.until(lambda: members.covered((0,), 6), which=(0,), what="one member takes all")
            c.close()
    finally:
        admin.close()
        cluster_topology.stop(tmp_path / "cluster")


@pytest.fixture
def reader(url, redis_server, server_spec):
    """A Redis ACL user of the consumer role, for SASL/PLAIN through the gateway."""
    import redis

    from facade import acl

    _, version, is_valkey = server_spec
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as r:
        for user, role in (("group-reader", "consumer"), ("group-writer", "producer")):
            rules = acl.rules(role, server_version=None if is_valkey else version)
            r.execute_command("ACL", "SETUSER", user, "reset", "on", ">secret-pw", *rules)
        try:
            yield {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                   "sasl.username": "group-reader", "sasl.password": "secret-pw"}  # fmt: skip
        finally:
            r.execute_command("ACL", "DELUSER", "group-reader", "group-writer")


def test_a_sasl_user_of_the_consumer_role_joins_commits_and_leaves(url, reader):
    Admin(url).create_topic("t", 2)
    TP = ck.TopicPartition
    with running_gateway(url, sasl_plain=True) as gw:
        # One member first, then a second: a rebalance with authenticated members (concurrent
        # first authentications: test_gateway_security.py).
        members = Members([confluent(gw, "secure", "s0", **reader)], "t")
        members.until(lambda: members.covered((0,), 2), what="one SASL member")
        second = confluent(gw, "secure", "s1", **reader)
        members.consumers.append(second)
        second.subscribe(["t"], on_assign=members._on_assign(1), on_revoke=members._on_revoke(1))
        members.until(lambda: members.covered((0, 1), 2) and all(members.assigned.get(i) for i in (0, 1)),
                      what="two SASL members")  # fmt: skip
        c = members.consumers[0]
        mine = members.assigned[0][0]
        c.commit(offsets=[TP("t", mine, 0, "by a SASL user")], asynchronous=False)
        assert c.committed([TP("t", mine)], timeout=10)[0].metadata == "by a SASL user"
        members.consumers[1].close()
        members.until(lambda: members.covered((0,), 2), which=(0,), what="the other leaves")
        assert members.errors == []
        c.close()

        # A user of the producer role may not join: GROUP_AUTHORIZATION_FAILED, nothing joined.
        writer = confluent(gw, "secure", "w", **{**reader, "sasl.username": "group-writer"})
        writer.subscribe(["t"])
        seen = []
        wait_until(lambda: (seen.append(m.error()) if (m := writer.poll(0.2)) is not None and m.error() else None,
                            any(e.code() == ck.KafkaError.GROUP_AUTHORIZATION_FAILED for e in seen))[1],
                   timeout=20, what="the producer-role user is refused")  # fmt: skip
        writer.close()
        # Listing groups is the admin role's: the consumer role is refused, not answered an empty list.
        admin = ck_admin.AdminClient({"bootstrap.servers": gw.bootstrap, **reader})
        result = admin.list_consumer_groups().result(timeout=10)
        assert result.valid == [] and [e.code() for e in result.errors] == [ck.KafkaError.CLUSTER_AUTHORIZATION_FAILED]
    assert Admin(url).describe_group("secure").members == ()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_gateway_groups_quick(server_spec):
    """``python -m bench.gateway_groups`` runs end to end (no timing asserted: each figure checks
    its own record counts while it runs)."""
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bench.gateway_groups", "--quick", "--messages", "5000",
         "--server-binary", server_spec[0]],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    for line in ("form (s)", "leave (s)", "group consume (rec/s)"):
        assert line in done.stdout
