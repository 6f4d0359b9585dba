"""facade gateway, consumer groups: what one member may cost the group and the Redis. Protocol
metadata above ``Limits.max_member_metadata_bytes`` and joins beyond ``Limits.max_group_members``
are refused and leave the group as it was; the kafka_* scripts never read a member's metadata
(it is stored apart and read by the gateway with HMGET), so a group of members with large
metadata costs each script call no more than one with small metadata; a JoinGroup whose client
went away while waiting is withdrawn and does not hold the rebalance.
Raw JoinGroup v1 frames (tests/kafka_wire.py) choose what no client library lets a test choose."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis
from conftest import wait_until
from gateway_helpers import running_gateway
from kafka_wire import join_group, join_group_request
from test_gateway_group_scripts import Lua, join_call

from facade import keys, scripts
from facade.gateway import Limits, coordinator
from facade.gateway import join_group as join_group_module

pytestmark = pytest.mark.timeout(90)

NONE, INVALID_REQUEST, GROUP_MAX_SIZE_REACHED = 0, 42, 81
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def short_initial_delay(monkeypatch):
    monkeypatch.setattr(join_group_module, "INITIAL_REBALANCE_DELAY_MS", 200)


@pytest.fixture
def r(url):
    with redis.Redis.from_url(url, socket_timeout=10) as client:
        yield client


def group_snapshot(r, group):
    state, members, _, kafka, _ = keys.kafka_group_keys(group)
    return (r.hget(state, "generation"), r.hget(state, "phase"), r.hget(state, "leader"), sorted(r.hkeys(members)),
            sorted(r.hkeys(kafka)))  # fmt: skip


def test_metadata_above_the_limit_is_invalid_request_and_the_group_is_unaffected(url, r):
    with running_gateway(url) as gw:
        at_limit = join_group(gw.port, "big", [("range", b"a" * MIB)], protocol_type="connect")
        assert at_limit.error == NONE and at_limit.leader == at_limit.member_id
        assert at_limit.members == [(at_limit.member_id, b"a" * MIB)]
        before = group_snapshot(r, "big")
        # one byte over, in one protocol or spread over two: refused before anything is stored
        for protocols in ([("range", b"b" * (MIB + 1))], [("range", b"b" * MIB), ("roundrobin", b"b")]):
            over = join_group(gw.port, "big", protocols, protocol_type="connect")
            assert (over.error, over.generation) == (INVALID_REQUEST, -1)
            assert group_snapshot(r, "big") == before
        assert r.exists(*keys.kafka_group_keys("other")) == 0
        assert join_group(gw.port, "other", [("range", b"c" * (MIB + 1))]).error == INVALID_REQUEST
        assert r.exists(*keys.kafka_group_keys("other")) == 0


def test_the_metadata_limit_and_protocol_bounds_are_the_gateways_limits(url, r):
    with pytest.raises(Exception, match="max_member_metadata_bytes must be a positive int"):
        Limits(max_member_metadata_bytes=0)
    with running_gateway(url, limits=Limits(max_member_metadata_bytes=100)) as gw:
        assert join_group(gw.port, "g", [("range", b"x" * 101)]).error == INVALID_REQUEST
        assert join_group(gw.port, "g", [("range", b"x" * 100)]).error == NONE
        many = [(f"p{i}", b"") for i in range(coordinator.MAX_PROTOCOLS + 1)]
        assert join_group(gw.port, "h", many).error == INVALID_REQUEST
        long_name = [("p" * (coordinator.MAX_PROTOCOL_NAME_BYTES + 1), b"")]
        assert join_group(gw.port, "h", long_name).error == INVALID_REQUEST
        assert r.exists(*keys.kafka_group_keys("h")) == 0


def test_a_join_beyond_the_group_max_size_is_group_max_size_reached(url, r):
    with running_gateway(url, limits=Limits(max_group_members=2)) as gw:
        answers = {}

        def member(name):
            answers[name] = join_group(gw.port, "full", [("range", name.encode())])

        threads = [threading.Thread(target=member, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [answers[n].error for n in ("a", "b")] == [NONE, NONE]
        assert answers["a"].generation == answers["b"].generation
        before = group_snapshot(r, "full")
        assert len(before[3]) == 2
        third = join_group(gw.port, "full", [("range", b"c")])
        assert (third.error, third.generation) == (GROUP_MAX_SIZE_REACHED, -1)
        assert group_snapshot(r, "full") == before


def test_the_scripts_never_read_a_members_metadata(url, r):
    """Six members with 1 MiB of metadata each: kafka_join_wait's answers carry no metadata (the
    gateway reads it apart), and the scripts work unchanged when every stored metadata and
    description is bytes no script could decode (the old design decoded each member's JSON in
    every join: it fails here)."""
    lua = Lua(r)
    group = "wide"
    state, members_key, _, kafka_key, _ = keys.kafka_group_keys(group)
    names = [f"m{i}" for i in range(6)]
    for name in names:
        reply = lua(join_call(group, "", name, metadata=b"\x01" * MIB, rebalance=60_000, session=60_000))
        assert reply[0] == b"none"
    for name in names:
        packed = r.hget(kafka_key, f"m:{name}")
        assert len(packed) > MIB and dict(coordinator.unpack_protocols(packed))["range"] == b"\x01" * MIB
    # what a script would have to decode to read them: not JSON, not the packed form
    for name in names:
        r.hset(kafka_key, f"m:{name}", b"\xff{not json" * 100_000)
        r.hset(members_key, name, b"kafka \xff{not json" * 100_000)
    formed = None
    for name in names:
        reply = lua(scripts.kafka_join_wait(group, name))
        size = sum(len(x) if isinstance(x, bytes) else 8 for x in reply[:5])
        size += sum(len(x) for x in reply[5]) if reply[0] == b"none" else 0
        assert size < 2_000, f"kafka_join_wait answered {size} bytes"
        if reply[0] == b"none" and scripts.KafkaJoined.parse(reply).leader == name:
            formed = scripts.KafkaJoined.parse(reply)
    assert formed is not None and sorted(m for m, _ in formed.members) == names
    # a seventh joins and every member rejoins: still no script reads the metadata
    assert lua(join_call(group, "", "m6", metadata=b"\x02" * MIB, rebalance=60_000))[0] == b"none"
    for name in [*names, "m6"]:
        assert lua(join_call(group, name, name, metadata=b"\x01" * MIB, rebalance=60_000))[0] == b"none"
    joined = [lua(scripts.kafka_join_wait(group, name)) for name in [*names, "m6"]]
    assert all(reply[0] == b"none" for reply in joined)
    assert r.hget(state, "phase") == b"syncing"


def test_the_leaders_answer_carries_every_members_large_metadata(url, r):
    """Through the gateway: six members with 1 MiB each, and the leader gets all six."""
    with running_gateway(url) as gw:
        answers = {}

        def member(i):
            answers[i] = join_group(gw.port, "wide", [("range", bytes([i]) * MIB)], protocol_type="connect",
                                    rebalance_ms=10_000)  # fmt: skip

        threads = [threading.Thread(target=member, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(a.error == NONE for a in answers.values()) and len(answers) == 6
        leaders = [a for a in answers.values() if a.member_id == a.leader]
        assert len(leaders) == 1
        got = dict(leaders[0].members)
        assert sorted(got.values()) == sorted(bytes([i]) * MIB for i in range(6))
        assert {a.member_id: got[a.member_id] for a in answers.values()} == {
            a.member_id: bytes([i]) * MIB for i, a in answers.items()
        }


def test_a_joiner_that_disconnects_while_waiting_is_withdrawn_and_does_not_hold_the_rebalance(url, r, monkeypatch):
    # A long initial delay: the first joiner waits in JoinGroup for others to come.
    monkeypatch.setattr(join_group_module, "INITIAL_REBALANCE_DELAY_MS", 60_000)
    state, members_key, _, kafka_key, _ = keys.kafka_group_keys("g")
    with running_gateway(url) as gw:
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        sock.sendall(join_group_request("g", [("range", b"gone")], rebalance_ms=60_000, session_ms=60_000))
        wait_until(lambda: r.hlen(members_key) == 1, timeout=10)
        (gone,) = r.hkeys(members_key)
        assert r.hget(kafka_key, b"j:" + gone) == b"w"
        sock.close()
        wait_until(lambda: r.hlen(members_key) == 0, timeout=10)
        assert r.hget(state, "phase") == b"empty" and r.hlen(kafka_key) == 0
        # The next member forms its generation alone, within its own (short) rebalance timeout:
        # not the 60 s the gone joiner's join would have held it to, and without it.
        start = time.monotonic()
        alone = join_group(gw.port, "g", [("range", b"here")], rebalance_ms=1_000)
        assert alone.error == NONE and time.monotonic() - start < 30
        assert alone.members == [(alone.member_id, b"here")]


def test_only_the_latest_join_of_a_member_is_withdrawn(url, r):
    lua = Lua(r)
    state, members_key, _, kafka_key, _ = keys.kafka_group_keys("g")
    assert lua(join_call("g", "", "a", token="first", delay=60_000, rebalance=60_000)) == [b"none", b"a"]
    # the client came back on a new connection and joined again: the old connection's cancel keeps it
    assert lua(join_call("g", "a", "x", token="second", delay=60_000, rebalance=60_000)) == [b"none", b"a"]
    assert lua(scripts.kafka_join_cancel("g", "a", "first")) == [b"kept"]
    assert r.hexists(members_key, "a")
    assert lua(scripts.kafka_join_cancel("g", "a", "second")) == [b"none"]
    assert not r.hexists(members_key, "a") and r.hlen(kafka_key) == 0 and r.hget(state, "phase") == b"empty"
    # a member whose generation formed is not withdrawn (it was answered)
    assert lua(join_call("g", "", "b", token="t", delay=0, rebalance=1_000))[0] == b"none"
    assert lua(scripts.kafka_join_wait("g", "b"))[0] == b"none"
    assert lua(scripts.kafka_join_cancel("g", "b", "t")) == [b"kept"]
    assert r.hexists(members_key, "b")
