"""facade gateway driven by Kafka clients in other languages: Sarama (Go) and KafkaJS (Node).

The clients are small programs kept in tests/clients/ (go/sarama_client.go, js/kafkajs_client.js)
that take a command on argv and print JSON lines. Sarama comes from Debian
(golang-github-shopify-sarama-dev, built in GOPATH mode, once per source version: the binary is
cached in the temp directory under its source hash); KafkaJS from npm, pinned by
tests/clients/js/package-lock.json. Where a tool is missing the tests skip, naming the install
command (.ci/run installs both).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from gateway_helpers import running_gateway
from kafka_reference import kafka_partition

from facade import Admin, Producer, TopicPartition

pytestmark = pytest.mark.timeout(120)

CLIENTS = Path(__file__).resolve().parent / "clients"
SARAMA_SOURCE = CLIENTS / "go" / "sarama_client.go"
GOPATH = Path("/usr/share/gocode")  # where Debian's golang-*-dev packages put their sources
KAFKAJS_DIR = CLIENTS / "js"
BASE_MS = 1704164645000  # 2024-01-02T03:04:05Z: the clients' first record timestamp
KEYS = [f"user-{i}" for i in range(40)]


class Client:
    """One of the client programs: ``run`` for a command that finishes, ``member`` for a group member."""

    def __init__(self, name: str, argv: list[str], source: str) -> None:
        self.name = name
        self.argv = argv
        self.source = source  # the "source" header its produce command writes

    def run(self, bootstrap: str, *args: str, timeout: float = 60) -> list[dict[str, Any]]:
        done = subprocess.run([*self.argv, bootstrap, *args], capture_output=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"{self.name} {' '.join(args)} failed:\n{done.stderr.decode()}"
        return [json.loads(line) for line in done.stdout.decode().splitlines()]

    @contextlib.contextmanager
    def member(self, bootstrap: str, group: str, topic: str) -> Iterator[Member]:
        member = Member(self.name, [*self.argv, bootstrap, "group", group, topic])
        try:
            yield member
        finally:
            member.kill()


class Member:
    """A group member process; its JSON lines are collected by a reader thread."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr = b""
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]  # fmt: skip
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()

    def _drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.events.append(self._lines.get_nowait())
            except queue.Empty:
                return self.events

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], what: str, timeout: float = 30) -> Any:
        def check() -> Any:
            if self.proc.poll() is not None and self._lines.empty():
                raise AssertionError(f"{self.name} member exited {self.proc.returncode}: {self._stderr.decode()}")
            return predicate(self._drain())

        return wait_until(check, timeout=timeout, interval=0.1, what=f"{self.name}: {what}")

    def assignment(self) -> list[str] | None:
        """The partitions of the member's latest assignment (None before its first)."""
        assigned = [e for e in self._drain() if e["event"] == "assigned"]
        return assigned[-1]["partitions"] if assigned else None

    def records(self) -> list[dict[str, Any]]:
        return [e for e in self._drain() if e["event"] == "record"]

    def leave(self, timeout: float = 30) -> None:
        """Close its stdin (it leaves the group and exits) and wait for it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout) == 0, self._stderr.decode()
        self.wait_for(lambda events: any(e["event"] == "closed" for e in events), "closed", timeout=5)

    def kill(self) -> None:
        """Kill it if it still runs; close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for reader in self._readers:
            reader.join(10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _sarama() -> Client:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/github.com/Shopify/sarama").is_dir():
        pytest.skip(
            "Go or Sarama is not installed (apt-get install golang-go golang-github-shopify-sarama-dev;"
            " .ci/run installs them)"
        )
    source = SARAMA_SOURCE.read_bytes()
    cache = Path(tempfile.gettempdir()) / "facade-test-clients"
    cache.mkdir(exist_ok=True)
    binary = cache / f"sarama_client-{hashlib.sha256(source).hexdigest()[:16]}"
    if not binary.exists():
        partial = cache / f"{binary.name}.{os.getpid()}"
        env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off", "GOFLAGS": "",
               "GOCACHE": str(cache / "go-build")}  # fmt: skip
        done = subprocess.run([go, "build", "-o", str(partial), str(SARAMA_SOURCE)], env=env,
                              capture_output=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, f"building {SARAMA_SOURCE.name} failed:\n{done.stderr.decode()}"
        partial.replace(binary)  # atomic: concurrent sessions never run a half-written binary
    return Client("sarama", [str(binary)], "sarama")


def _kafkajs() -> Client:
    node = shutil.which("node")
    if node is None or not (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.skip(f"node or kafkajs is not installed (apt-get install nodejs npm; cd {KAFKAJS_DIR} && npm ci;"
                    " .ci/run does both)")  # fmt: skip
    return Client("kafkajs", [node, str(KAFKAJS_DIR / "kafkajs_client.js")], "kafkajs")


_BUILT: dict[str, Client] = {}


@pytest.fixture(params=["sarama", "kafkajs"])
def client(request: pytest.FixtureRequest) -> Client:
    """Each client program in turn (Sarama is compiled once per session)."""
    name = request.param
    if name not in _BUILT:
        _BUILT[name] = _sarama() if name == "sarama" else _kafkajs()
    return _BUILT[name]


def test_client_creates_a_topic_and_reads_its_metadata(url, client):
    # fail_on=WARNING: no request failed or closed a connection (a client that retries would hide it).
    with running_gateway(url, fail_on=logging.WARNING) as gw:
        client.run(gw.bootstrap, "create", "orders", "3")
        meta = client.run(gw.bootstrap, "metadata", "orders")[0]
    assert Admin(url).describe_topic("orders").config.partitions == 3
    assert meta["partitions"] == [0, 1, 2]
    assert meta["brokers"] == [gw.bootstrap]
    if client.name == "sarama":
        assert set(meta["leaders"].values()) == {gw.bootstrap}
    else:
        assert set(meta["leaders"].values()) == {gw.gateway.node_id}


@pytest.mark.parametrize("mode", ["plain", "idempotent"])
def test_client_produces_with_acks_all_and_the_sdk_reads_key_value_headers_timestamp(url, client, mode):
    Admin(url).create_topic("t", 2)
    with running_gateway(url, fail_on=logging.WARNING) as gw:
        acked = client.run(gw.bootstrap, "produce", "t", "30", *(["idempotent"] if mode == "idempotent" else []))
    assert len(acked) == 30
    stored = {m.key: m for p in range(2) for m in Admin(url).read_records(TopicPartition("t", p), 0, 100)}
    assert len(stored) == 30
    for ack in acked:
        i = int(ack["key"][1:])
        m = stored[ack["key"].encode()]
        assert (m.partition, m.offset) == (ack["partition"], ack["offset"])
        assert m.partition == kafka_partition(m.key, 2)  # both clients place keys with murmur2
        assert m.value == f"v{i}".encode()
        assert list(m.headers) == [("source", client.source.encode()), ("n", str(i).encode())]
        assert m.timestamp_ms == BASE_MS + i


@pytest.mark.slow  # KafkaJS has no assign(): it joins a group of one first (about 4 s)
def test_client_reads_what_the_sdk_wrote(url, client):
    Admin(url).create_topic("t", 1)
    with Producer(url) as producer:
        for i in range(12):
            producer.send("t", value=f"m{i}".encode(), key=f"k{i}".encode(), headers={"i": str(i)},
                          timestamp_ms=BASE_MS + 1000 * i)  # fmt: skip
        producer.send("t", value=b"", key=None, timestamp_ms=BASE_MS)
    with running_gateway(url, fail_on=logging.WARNING) as gw:
        got = client.run(gw.bootstrap, "consume", "t", "0", "3", "10")
    assert [(r["offset"], r["key"], r["value"], r["headers"], r["timestamp_ms"]) for r in got] == [
        (i, f"k{i}", f"m{i}", {"i": str(i)}, BASE_MS + 1000 * i) for i in range(3, 12)
    ] + [(12, None, "", {}, BASE_MS)]


def test_a_key_goes_to_the_same_partition_as_from_facade(url, client):
    """Sarama with a murmur2 hasher (tests/clients/go: Sarama 1.22 has only FNV-1a partitioners)
    and KafkaJS's DefaultPartitioner place each key where the facade SDK does."""
    Admin(url).create_topic("t", 8)
    with running_gateway(url, fail_on=logging.WARNING) as gw:
        acked = client.run(gw.bootstrap, "produce-keys", "t", *KEYS)
    placed = {a["key"].encode(): a["partition"] for a in acked}
    stored = {m.key: p for p in range(8) for m in Admin(url).read_records(TopicPartition("t", p), 0, 100)}
    assert placed == stored
    expected = {key.encode(): kafka_partition(key.encode(), 8) for key in KEYS}
    assert placed == expected
    Admin(url).create_topic("sdk", 8)
    with Producer(url) as producer:
        sdk = {key.encode(): producer.send("sdk", value=b"x", key=key).result(10).partition for key in KEYS}
    assert placed == sdk
    assert len(set(placed.values())) > 4


def _covered(members: list[Member], partitions: set[str]) -> bool:
    """Every member has an assignment, and together they own each partition exactly once."""
    owned = [m.assignment() for m in members]
    if any(o is None for o in owned):
        return False
    flat = [p for o in owned for p in o]  # type: ignore[union-attr]
    return len(flat) == len(set(flat)) and set(flat) == partitions


@pytest.mark.slow
def test_a_group_of_two_members_shares_commits_and_rebalances_when_one_leaves(url, client):
    Admin(url).create_topic("work", 4)
    partitions = {f"work/{p}" for p in range(4)}
    with Producer(url) as producer:
        for i in range(40):
            producer.send("work", value=f"a{i}".encode(), key=f"k{i}".encode())
    with running_gateway(url, fail_on=logging.WARNING) as gw, client.member(gw.bootstrap, "g", "work") as a:
        a.wait_for(lambda _: a.assignment() == sorted(partitions), "owns all four partitions alone")
        with client.member(gw.bootstrap, "g", "work") as b:
            wait_until(lambda: _covered([a, b], partitions), timeout=40, interval=0.1, what="two members split 4")
            assert len(a.assignment() or []) == 2 and len(b.assignment() or []) == 2
            b_owned = set(b.assignment() or [])
            wait_until(lambda: len({r["value"] for r in a.records() + b.records()}) == 40, timeout=30,
                       interval=0.1, what="the 40 records are read")  # fmt: skip
            b.leave()
        b_read = b.records()
        a.wait_for(lambda _: a.assignment() == sorted(partitions), "owns all four again after b left", timeout=40)
        with Producer(url) as producer:
            for i in range(20):
                producer.send("work", value=f"b{i}".encode(), key=f"k{i}".encode())
        a.wait_for(lambda _: len({r["value"] for r in a.records()} & {f"b{i}" for i in range(20)}) == 20,
                   "a reads the 20 later records, b's former partitions included")  # fmt: skip
        a.leave()
    a_read = a.records()
    everything = a_read + b_read
    assert sorted(r["value"] for r in everything) == sorted([f"a{i}" for i in range(40)] + [f"b{i}" for i in range(20)])
    # What b read before leaving was committed: a resumed b's partitions after it, reading nothing twice.
    assert {f"{r['topic']}/{r['partition']}" for r in b_read} <= b_owned
    # Each record's committed offset is the log end: both clients committed everything they read.
    described = Admin(url).describe_group("g")
    assert described.protocol == "kafka"
    ends = {p: 1 + max(r["offset"] for r in everything if r["partition"] == p) for p in range(4)}
    assert {p.partition: p.committed for p in described.partitions} == ends
