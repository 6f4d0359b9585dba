"""facade.topology (local replicated setups) and Sentinel clients (facade/_async/connect.py).

Real processes on free 127.0.0.1 ports; the server binary is the one under test (conftest exports
it as FACADE_SERVER_BINARY, which facade.topology runs). The heavier fault scenarios are in
tests/test_failover.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import free_port, wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry

import facade.aio
import facade.url as urls
from facade import (
    Admin,
    AuthenticationError,
    ConfigError,
    InvalidUrlError,
    Producer,
    ServerError,
    UnsupportedError,
)
from facade._async import connect as async_connect
from facade._sync import connect as sync_connect
from facade.local import sentinel as topology
from facade.url import parse_url

TOPIC = "t"


def create_client(url: Any, *, is_async: bool, retry: Any) -> Any:
    """The asyncio or the blocking client facade builds for ``url``."""
    return (async_connect if is_async else sync_connect).create_client(url, retry=retry)


def query(port: int, *command: Any, password: str | None = None) -> Any:
    with redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5, decode_responses=True) as r:
        return r.execute_command(*command)


def info(port: int, password: str | None = None) -> dict[str, Any]:
    return query(port, "INFO", "replication", password=password)


def config(port: int, name: str) -> str:
    reply = query(port, "CONFIG", "GET", name)
    return reply[name] if isinstance(reply, dict) else reply[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(") ", 1)[1][:1] == "Z")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose topology, if any, is stopped at teardown."""
    d = tmp_path / "topo"
    try:
        yield d
    finally:
        topology.stop(d)


@pytest.fixture
def replicated(data_dir: Path) -> Path:
    """A primary, two replicas and three sentinels."""
    topology.start(data_dir, replicas=2, sentinels=3)
    return data_dir


def force_failover(data_dir: Path) -> tuple[topology.TopologyStatus, topology.TopologyStatus]:
    """SENTINEL FAILOVER (no waiting for down-after): returns the status before and after."""
    before = topology.status(data_dir)
    query(before.sentinels[0].port, "SENTINEL", "FAILOVER", topology.SERVICE)
    wait_until(lambda: topology.status(data_dir).primary.port != before.primary.port, timeout=30,
               what="the sentinels name a new primary")  # fmt: skip
    return before, topology.wait_healthy(data_dir)


def depose_by_freezing(data_dir: Path) -> tuple[topology.TopologyStatus, topology.TopologyStatus]:
    """Freeze the primary until the sentinels promote a replica, then thaw it: for some seconds it
    is a primary again (Sentinel reconfigures a returning old primary only after a delay), and
    clients connected to it before the freeze are still connected."""
    before = topology.status(data_dir)
    os.kill(before.primary.pid, signal.SIGSTOP)
    try:
        after = wait_until(lambda: (st := topology.status(data_dir)).primary.port != before.primary.port and st,
                           timeout=30, what="the sentinels promote a replica")  # fmt: skip
        wait_until(lambda: all(switched(s.port, after.primary.port) for s in after.sentinels), timeout=30,
                   what="every sentinel ends the failover")  # fmt: skip
    finally:
        os.kill(before.primary.pid, signal.SIGCONT)
    return before, after


def switched(sentinel_port: int, primary_port: int) -> bool:
    """Whether a sentinel has finished failing over to ``primary_port`` (what redis-py asks)."""
    m = query(sentinel_port, "SENTINEL", "MASTER", topology.SERVICE)
    m = m if isinstance(m, dict) else dict(zip(m[::2], m[1::2]))
    return int(m["port"]) == primary_port and m["flags"] == "master"


# --- topology -----------------------------------------------------------------------------------


def test_single_node_start_status_stop(data_dir: Path) -> None:
    st = topology.start(data_dir, replicas=0, sentinels=0)
    assert st.url == f"redis://127.0.0.1:{st.primary.port}"
    assert st.as_json() == {"url": st.url, "primary": {"port": st.primary.port, "pid": st.primary.pid},
                            "replicas": [], "sentinels": []}  # fmt: skip
    assert st.running and alive(st.primary.pid)
    assert config(st.primary.port, "min-replicas-to-write") == "0"  # nothing to wait for
    assert config(st.primary.port, "appendonly") == "yes"
    assert topology.status(data_dir) == st
    assert topology.stop(data_dir) is True
    assert not alive(st.primary.pid)
    assert topology.stop(data_dir) is False  # idempotent
    after = topology.status(data_dir)
    assert after.primary.pid is None and not after.running


@pytest.mark.slow
def test_replicated_start_is_linked_safe_and_agreed(replicated: Path) -> None:
    st = topology.status(replicated)
    ports = [st.primary.port, *(r.port for r in st.replicas), *(s.port for s in st.sentinels)]
    assert len(set(ports)) == 6 and 6379 not in ports and 26379 not in ports
    assert st.url == "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in st.sentinels) + "/facade"
    j = st.as_json()
    assert set(j) == {"url", "primary", "replicas", "sentinels"}
    assert len(j["replicas"]) == 2 and len(j["sentinels"]) == 3
    assert all(set(n) == {"port", "pid"} and n["pid"] for n in [j["primary"], *j["replicas"], *j["sentinels"]])

    primary = info(st.primary.port)
    assert primary["role"] == "master" and primary["connected_slaves"] == 2
    for r in st.replicas:
        i = info(r.port)
        assert (i["role"], i["master_port"], i["master_link_status"]) == ("slave", st.primary.port, "up")
    for node in (st.primary, *st.replicas):  # any of them may be promoted: all run safe settings
        for name, value in topology.SAFE_SETTINGS.items():
            assert config(node.port, name) == value, f"port {node.port}: {name}"
    settings = topology.sentinel_settings(topology.DEFAULT_DOWN_AFTER_MS)
    for s in st.sentinels:
        assert query(s.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "facade") == ["127.0.0.1", str(st.primary.port)]
        m = query(s.port, "SENTINEL", "MASTER", "facade")
        m = m if isinstance(m, dict) else dict(zip(m[::2], m[1::2]))
        assert int(m["quorum"]) == 2 and int(m["num-other-sentinels"]) == 2 and int(m["num-slaves"]) == 2
        assert m["down-after-milliseconds"] == settings["down-after-milliseconds"]
        assert m["failover-timeout"] == settings["failover-timeout"]
        assert m["parallel-syncs"] == settings["parallel-syncs"]


@pytest.mark.slow
def test_second_start_is_refused_and_a_stopped_topology_restarts_with_its_data(replicated: Path) -> None:
    st = topology.status(replicated)
    with pytest.raises(ServerError, match="already runs"):
        topology.start(replicated, replicas=2, sentinels=3)
    with Admin(st.url) as admin:
        admin.create_topic(TOPIC)
    with Producer(st.url, acks="all") as p:
        p.send_and_wait(TOPIC, "kept")
    assert topology.stop(replicated) is True
    assert not any(alive(n.pid) for n in (st.primary, *st.replicas, *st.sentinels))
    with pytest.raises(ServerError, match="same counts"):
        topology.start(replicated, replicas=1, sentinels=3)
    again = topology.start(replicated, replicas=2, sentinels=3)
    assert again.primary.port == st.primary.port and again.url == st.url
    with redis.Redis(host="127.0.0.1", port=again.primary.port, socket_timeout=5) as r:
        assert r.xlen(f"facade:{{{TOPIC}/0}}:log") == 1


def test_chosen_base_port_and_taken_ports(data_dir: Path) -> None:
    for _ in range(20):  # find two free consecutive ports
        base = free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", base))
                b.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        break
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 1))
        squatter.listen()
        with pytest.raises(ServerError, match=f"port {base + 1} .* is taken"):
            topology.start(data_dir, replicas=1, sentinels=0, port=base)
    st = topology.start(data_dir, replicas=1, sentinels=0, port=base)
    assert (st.primary.port, [r.port for r in st.replicas]) == (base, [base + 1])
    assert config(base, "min-replicas-to-write") == "1"


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"replicas": -1}, "replicas must be"),
        ({"replicas": 0, "sentinels": 3}, "need at least one replica"),
        ({"sentinels": True}, "sentinels must be"),
        ({"down_after_ms": 10}, "down_after_ms"),
        ({"port": 0}, "port must be"),
    ],
)
def test_bad_arguments(data_dir: Path, kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        topology.start(data_dir, **kwargs)
    with pytest.raises(ServerError, match="no topology"):
        topology.status(data_dir)


def test_settings_helpers() -> None:
    assert topology.server_settings(0)["min-replicas-to-write"] == "0"
    assert topology.server_settings(2) == topology.SAFE_SETTINGS
    assert topology.sentinel_settings(1000) == {"down-after-milliseconds": "1000", "failover-timeout": "3000",
                                                "parallel-syncs": "1"}  # fmt: skip
    assert [topology.quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_killed_replica_shows_and_restarts(replicated: Path) -> None:
    st = topology.status(replicated)
    victim = st.replicas[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_until(lambda: topology.status(replicated).replicas[0].pid is None, what="status sees the dead replica")
    assert not topology.status(replicated).running
    with pytest.raises(ServerError, match="already runs"):
        topology.start_node(replicated, st.sentinels[0].port)
    back = topology.start_node(replicated, victim.port)
    assert back.running and back.primary.port == st.primary.port
    assert info(victim.port)["master_link_status"] == "up"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_stop_ends_frozen_processes(replicated: Path) -> None:
    st = topology.status(replicated)
    os.kill(st.replicas[1].pid, signal.SIGSTOP)
    os.kill(st.sentinels[2].pid, signal.SIGSTOP)
    assert topology.stop(replicated, timeout=5) is True
    assert not any(alive(n.pid) for n in (st.primary, *st.replicas, *st.sentinels))


# --- Sentinel URLs ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_status_and_clients_follow_a_promotion(replicated: Path) -> None:
    st = topology.status(replicated)
    with Admin(st.url) as admin:
        admin.create_topic(TOPIC)
    with Producer(st.url, acks="all") as producer:
        first = producer.send_and_wait(TOPIC, "before")
        before, after = force_failover(replicated)
        # The old primary is alive and now a replica: a write on a pooled connection to it is
        # answered READONLY, and the client moves to the new primary by itself.
        assert before.primary.port in {r.port for r in after.replicas}
        assert info(before.primary.port)["role"] == "slave"
        second = producer.send_and_wait(TOPIC, "after")
    assert second.offset > first.offset
    with redis.Redis(host="127.0.0.1", port=after.primary.port, socket_timeout=5) as r:
        assert [f[b"value"] for _, f in r.xrange(f"facade:{{{TOPIC}/0}}:log")] == [b"before", b"after"]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_readonly_answer_alone_makes_the_client_rediscover(replicated: Path, monkeypatch) -> None:
    """redis-py's SentinelManagedConnection turns READONLY into a reconnect through the sentinels;
    with our periodic check switched off, that alone must take a write to the new primary."""
    monkeypatch.setattr(urls, "PRIMARY_CHECK_INTERVAL_S", 3600.0)
    st = topology.status(replicated)
    client = create_client(parse_url(st.url), is_async=False, retry=Retry(NoBackoff(), 1))
    try:
        client.set("k", "1")
        before, after = depose_by_freezing(replicated)
        # Demote the thawed old primary ourselves (Sentinel would also drop its clients).
        query(before.primary.port, "REPLICAOF", "127.0.0.1", after.primary.port)
        assert client.config_get("port")["port"] == str(before.primary.port)  # a read stays put
        client.set("k", "2")  # READONLY -> disconnect -> ask the sentinels -> new primary (one retry)
        assert client.config_get("port")["port"] == str(after.primary.port)
    finally:
        client.close()
    assert query(after.primary.port, "GET", "k") == "2"


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("is_async", [False, True])
def test_clients_leave_a_deposed_primary_within_the_check_interval(replicated: Path, is_async: bool) -> None:
    """Reads are never answered READONLY (a consumer's XREAD BLOCK, metadata reads), and a thawed
    old primary even accepts writes until Sentinel demotes it: the periodic check moves the
    client to the new primary before that."""

    async def run(client: Any) -> tuple[int, int, float]:
        async def port() -> int:
            return int((await client.config_get("port"))["port"])

        first = await port()
        before, after = depose_by_freezing(replicated)
        thawed = time.monotonic()
        now = first
        while now == first and time.monotonic() - thawed < 15:
            now = await port()
            await asyncio.sleep(0.05)
        took = time.monotonic() - thawed
        assert info(before.primary.port)["role"] == "master", "Sentinel demoted it before the client moved"
        assert (first, now) == (before.primary.port, after.primary.port)
        return first, now, took

    url = parse_url(topology.status(replicated).url)
    if is_async:

        async def main() -> float:
            client = create_client(url, is_async=True, retry=Retry(NoBackoff(), 1))
            try:
                return (await run(client))[2]
            finally:
                await client.aclose()

        took = asyncio.run(main())
    else:
        client = create_client(url, is_async=False, retry=Retry(NoBackoff(), 1))

        class Awaitable:  # the blocking client behind the same coroutine
            async def config_get(self, name: str) -> Any:
                return client.config_get(name)

        try:
            took = asyncio.run(run(Awaitable()))[2]
        finally:
            client.close()
    print(f"\n[topology] {'async' if is_async else 'sync'} client left the deposed primary {took:.2f}s after it thawed")
    assert took <= urls.PRIMARY_CHECK_INTERVAL_S + 1.0


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_blocked_read_on_a_frozen_primary_ends_after_the_socket_timeout(replicated: Path) -> None:
    """A consumer waits for records with XREAD BLOCK (at most a heartbeat long). If the primary
    freezes (SIGSTOP, a VM pause), the reply never comes: the socket timeout ends the wait."""
    st = topology.status(replicated)
    client = create_client(parse_url(st.url), is_async=False, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
        os.kill(st.primary.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(redis.TimeoutError):
                client.xread({"nothing": "$"}, block=1000)
        finally:
            os.kill(st.primary.pid, signal.SIGCONT)
        took = time.monotonic() - started
    finally:
        client.close()
    print(f"\n[topology] XREAD BLOCK 1000 on a frozen primary gave up after {took:.2f}s")
    assert urls.SOCKET_TIMEOUT_S - 0.5 <= took <= urls.SOCKET_TIMEOUT_S + 3


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_password_reaches_sentinels_and_servers(data_dir: Path) -> None:
    st = topology.start(data_dir, replicas=1, sentinels=1, password="s3cr:t@pw")
    assert "s3cr" not in st.url
    for node in (st.primary, st.replicas[0], st.sentinels[0]):
        with pytest.raises(redis.AuthenticationError):
            query(node.port, "PING")
    with_password = st.url.replace("redis+sentinel://", "redis+sentinel://:s3cr%3At%40pw@")
    assert parse_url(with_password).redacted() == st.url.replace("redis+sentinel://", "redis+sentinel://:***@")
    with Admin(with_password) as admin:
        admin.create_topic(TOPIC)
    with Producer(with_password, acks="all") as p:
        assert p.send_and_wait(TOPIC, "v").offset == 0
    with pytest.raises(AuthenticationError), Admin(st.url.replace("redis+sentinel://", "redis+sentinel://:wrong@")) as admin:
        admin.create_topic("other")


# --- client construction (no server needed) -----------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("scheme,tls", [("redis+sentinel", False), ("rediss+sentinel", True)])
def test_sentinel_client_has_timeouts_auth_and_tls_everywhere(scheme: str, tls: bool, is_async: bool) -> None:
    url = parse_url(f"{scheme}://alice:pw@s1:26380,s2/svc?db=2")
    assert (url.sentinel, url.tls, url.service, url.db) == (True, tls, "svc", 2)
    assert url.hosts == (("s1", 26380), ("s2", 26379))
    client = create_client(url, is_async=is_async, retry=Retry(NoBackoff(), 0))  # connects lazily
    try:
        pool = client.connection_pool
        kw = pool.connection_kwargs
        assert (kw["username"], kw["password"], kw["db"]) == ("alice", "pw", 2)
        assert kw["socket_timeout"] == urls.SOCKET_TIMEOUT_S
        assert kw["socket_connect_timeout"] == urls.CONNECT_TIMEOUT_S
        assert pool.service_name == "svc" and pool.is_master
        assert ("SSL" in pool.connection_class.__name__) is tls
        sentinels = client.sentinel_manager.sentinels
        assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                for s in sentinels] == [("s1", 26380), ("s2", 26379)]  # fmt: skip
        for s in sentinels:
            skw = s.connection_pool.connection_kwargs
            assert (skw["username"], skw["password"]) == ("alice", "pw")
            assert skw["socket_timeout"] == skw["socket_connect_timeout"] == urls.SENTINEL_TIMEOUT_S
            assert ("SSL" in s.connection_pool.connection_class.__name__) is tls
        assert "pw" not in repr(client.sentinel_manager)
    finally:
        if is_async:
            asyncio.run(client.aclose())
        else:
            client.close()
    assert client.sentinel_manager is None  # closing the client closed the sentinel clients too


def test_single_server_urls_build_plain_clients() -> None:
    client = create_client(parse_url("rediss://u:pw@h:6390/1"), is_async=False, retry=Retry(NoBackoff(), 0))
    try:
        kw = client.connection_pool.connection_kwargs
        assert (kw["host"], kw["port"], kw["db"], kw["username"]) == ("h", 6390, 1, "u")
        assert "SSL" in client.connection_pool.connection_class.__name__
    finally:
        client.close()


def test_sentinel_urls_have_no_single_server_kwargs() -> None:
    with pytest.raises(UnsupportedError, match="names sentinels, not one server"):
        parse_url("redis+sentinel://:pw@h1:1/svc").client_kwargs()
    with pytest.raises(UnsupportedError, match="no sentinels"):
        parse_url("redis://h").sentinel_kwargs()
    with pytest.raises(InvalidUrlError, match="no service name"):
        parse_url("rediss+sentinel://h1:1")


@pytest.mark.slow
def test_async_clients_use_sentinel_urls_too(replicated: Path) -> None:
    st = topology.status(replicated)

    async def run() -> str:
        async with facade.aio.Admin(st.url) as admin:
            await admin.create_topic(TOPIC)
        async with facade.aio.Producer(st.url, acks="all") as p:
            return (await p.send_and_wait(TOPIC, "v")).offset

    assert asyncio.run(run()) == 0
