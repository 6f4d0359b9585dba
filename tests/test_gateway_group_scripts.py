"""The kafka_* scripts (Kafka's classic group protocol for the gateway), driven directly: the
generation forms when every member rejoined or the rebalance timeout passed; generation, member
id and instance id fence; commits of a generation stay valid while the next one forms; commits
from outside the membership only into an empty group; the two kinds of group refuse each other.
Real clients drive the same scripts in tests/test_gateway_groups.py."""

from __future__ import annotations

import json
import time

import pytest
import redis

from facade import keys, scripts
from facade.gateway import coordinator
from facade.records import TopicPartition

pytestmark = pytest.mark.timeout(60)

G = "kgroup"
STATE, MEMBERS, DEADLINES, KAFKA, PENDING = keys.kafka_group_keys(G)


class Lua:
    def __init__(self, r: redis.Redis) -> None:
        self.s = scripts.Scripts(r)

    def __call__(self, call: scripts.Call):
        return getattr(self.s, call.script)(keys=call.keys, args=call.args)


@pytest.fixture
def r(url):
    with redis.Redis.from_url(url, socket_timeout=10) as client:
        yield client


@pytest.fixture
def lua(r):
    return Lua(r)


def join_call(group, member="", minted="m-new", *, v4=False, instance="", protocols=("range",), session=10_000,
              rebalance=2_000, delay=0, ptype="consumer", metadata=None, token="tok", max_members=10):  # fmt: skip
    """kafka_join as the gateway calls it; each protocol's metadata is its name unless given."""
    pairs = [(p, p.encode() if metadata is None else metadata) for p in protocols]
    packed = coordinator.pack_protocols(pairs)
    return scripts.kafka_join(group, member, minted, require_known=v4, instance=instance, protocol_type=ptype,
                              described={"topics": ["t"], "host": "h", "client_id": "c"},
                              protocols=list(protocols), packed=packed, digest=coordinator.protocols_digest(packed),
                              token=token, session_ms=session, rebalance_ms=rebalance, initial_delay_ms=delay,
                              max_members=max_members)  # fmt: skip


def join(lua, member="", minted="m-new", **kw):
    reply = lua(join_call(G, member, minted, **kw))
    return reply[0].decode(), reply[1].decode()


def stored_metadata(r, member, protocol="range") -> bytes:
    """A member's metadata for ``protocol`` as the gateway reads it for the leader (HMGET m:<id>)."""
    return dict(coordinator.unpack_protocols(r.hget(KAFKA, f"m:{member}")))[protocol]


def wait(lua, member):
    reply = lua(scripts.kafka_join_wait(G, member))
    if reply[0] != b"none":
        return reply[0].decode()
    return scripts.KafkaJoined.parse(reply)


def sync(lua, member, gen, assignments=(), instance=""):
    reply = lua(scripts.kafka_sync(G, member, instance, gen, "", "", None, list(assignments)))
    return reply[0].decode() if reply[0] != b"none" else bytes(reply[1])


def beat(lua, member, gen, instance=""):
    return lua(scripts.kafka_heartbeat(G, member, instance, gen))[0].decode()


def commit(lua, member, gen, offset=5, instance=""):
    tp = TopicPartition("t", 0)
    return lua(scripts.kafka_commit(G, member, instance, gen, [(tp, offset, "meta")]))[0].decode()


def stable_pair(lua):
    """Two members a, b in a stable generation; returns the generation."""
    assert join(lua, "", "a") == ("none", "a")
    assert join(lua, "", "b") == ("none", "b")
    ja, jb = wait(lua, "a"), wait(lua, "b")
    assert ja.generation == jb.generation and ja.leader == "a"
    assert sorted(m for m, _ in ja.members) == ["a", "b"] and jb.members == []
    assert sync(lua, "b", jb.generation) == "wait"
    assert sync(lua, "a", ja.generation, [("a", b"A"), ("b", b"B")]) == b"A"
    assert sync(lua, "b", jb.generation) == b"B"
    return ja.generation


def test_member_id_required_then_join_with_the_given_id(lua, r):
    assert join(lua, "", "m-1", v4=True) == ("member_id_required", "m-1")
    assert join(lua, "m-unknown", v4=True)[0] == "unknown_member_id"
    assert join(lua, "m-1", v4=True) == ("none", "m-1")
    joined = wait(lua, "m-1")
    assert (joined.generation, joined.leader, joined.protocol_name, joined.protocol_type) == (1, "m-1", "range", "consumer")
    assert joined.members == [("m-1", "")]
    assert stored_metadata(r, "m-1") == b"range"


def test_the_generation_forms_when_every_member_rejoined_and_the_leader_assigns(lua):
    gen = stable_pair(lua)
    assert beat(lua, "a", gen) == beat(lua, "b", gen) == "none"
    assert join(lua, "", "c") == ("none", "c")  # a newcomer: the others must rejoin
    assert beat(lua, "a", gen) == "rebalance_in_progress"
    assert commit(lua, "a", gen) == "none"  # commits of the generation ending still count (revocation)
    assert wait(lua, "c") == "wait"
    assert join(lua, "a") == ("none", "a")
    assert wait(lua, "a") == "wait"  # b has not rejoined
    assert join(lua, "b") == ("none", "b")
    nxt = wait(lua, "b")
    assert nxt.generation == gen + 1 and nxt.leader == "a"
    assert beat(lua, "a", gen) == "illegal_generation"
    assert sync(lua, "b", gen) == "illegal_generation"
    assert commit(lua, "b", gen) == "illegal_generation"
    assert commit(lua, "c", nxt.generation) == "rebalance_in_progress"  # joined, not synced yet
    assert sync(lua, "a", nxt.generation, [("a", b"1"), ("b", b"2"), ("c", b"3")]) == b"1"
    assert [sync(lua, m, nxt.generation) for m in "bc"] == [b"2", b"3"]
    assert commit(lua, "c", nxt.generation) == "none"


def test_the_count_of_waiting_members_is_checked_before_a_generation_forms(lua, r):
    gen = stable_pair(lua)
    assert join(lua, "a") == ("none", "a")
    assert int(r.hget(STATE, "waiting")) == 1
    r.hset(STATE, "waiting", 5)  # a wrong count (the hint) never forms a generation without b
    assert wait(lua, "a") == "wait" and int(r.hget(STATE, "waiting")) == 1
    assert join(lua, "b") == ("none", "b")
    assert wait(lua, "a").generation == gen + 1 and int(r.hget(STATE, "waiting")) == 0


def test_members_that_do_not_rejoin_in_time_are_removed(lua, r):
    gen = stable_pair(lua)
    assert join(lua, "a") == ("none", "a")  # a rejoins; b never does
    r.hset(STATE, "join_deadline", 0)  # the rebalance timeout passed
    nxt = wait(lua, "a")
    assert nxt.generation == gen + 1 and [m for m, _ in nxt.members] == ["a"]
    assert beat(lua, "b", gen) == "unknown_member_id"
    assert commit(lua, "b", gen) == "unknown_member_id"


def test_an_expired_session_ends_the_member_and_starts_a_rebalance(lua, r):
    gen = stable_pair(lua)
    r.zadd(DEADLINES, {"b": 1})  # b's session ran out (killed)
    assert beat(lua, "a", gen) == "rebalance_in_progress"
    assert beat(lua, "b", gen) == "unknown_member_id"
    assert join(lua, "a") == ("none", "a")
    assert wait(lua, "a").generation == gen + 1  # alone now: no waiting for b
    assert r.hkeys(MEMBERS) == [b"a"] and r.hget(KAFKA, "a:b") is None


def test_leaving_empties_the_group_and_then_outside_commits_are_accepted(lua, r):
    gen = stable_pair(lua)
    assert commit(lua, "", -1) == "unknown_member_id"  # a commit from outside a live group
    replies = lua(scripts.kafka_leave(G, [("a", ""), ("zz", "")]))
    assert [[x.decode() for x in reply] for reply in replies] == [["none", "a"], ["unknown_member_id", "zz"]]
    assert beat(lua, "b", gen) == "rebalance_in_progress"
    lua(scripts.kafka_leave(G, [("b", "")]))
    assert r.hget(STATE, "phase") == b"empty" and int(r.hget(STATE, "generation")) == gen + 1
    assert commit(lua, "", -1, offset=7) == "none"
    assert r.hget(keys.committed("t", 0), G) == b"7 meta"


def test_a_static_members_new_process_fences_the_old_one(lua):
    assert join(lua, "", "s-1", instance="i1") == ("none", "s-1")
    gen = wait(lua, "s-1").generation
    sync(lua, "s-1", gen, [("s-1", b"x")])
    assert join(lua, "", "s-2", instance="i1") == ("none", "s-2")  # restarted process, same instance
    assert beat(lua, "s-1", gen, instance="i1") == "fenced_instance_id"
    assert commit(lua, "s-1", gen, instance="i1") == "fenced_instance_id"
    assert wait(lua, "s-2").generation == gen + 1  # it was the leader: the group rebalances


def test_a_static_follower_back_with_the_same_subscription_keeps_the_generation_and_its_assignment(lua, r):
    assert join(lua, "", "lead") == ("none", "lead")
    assert join(lua, "", "f-1", instance="i1") == ("none", "f-1")
    gen = wait(lua, "lead").generation
    assert wait(lua, "f-1").generation == gen
    sync(lua, "lead", gen, [("lead", b"L"), ("f-1", b"F")])
    r.hset(STATE, "assignment", '{"f-1":[["t",1]],"lead":[["t",0]]}')
    assert join(lua, "", "f-2", instance="i1") == ("none", "f-2")  # restarted within its session
    back = wait(lua, "f-2")
    assert (back.generation, back.leader, back.members) == (gen, "lead", [])
    assert sync(lua, "f-2", gen) == b"F"  # the old process's assignment, no rebalance
    assert beat(lua, "lead", gen) == "none"
    assert beat(lua, "f-1", gen, instance="i1") == "fenced_instance_id"
    assert sorted(r.hkeys(MEMBERS)) == [b"f-2", b"lead"]
    assert json.loads(r.hget(STATE, "assignment")) == {"f-2": [["t", 1]], "lead": [["t", 0]]}
    assert join(lua, "", "f-3", instance="i1", protocols=("roundrobin", "range")) == ("none", "f-3")
    assert beat(lua, "lead", gen) == "rebalance_in_progress"  # a changed subscription rebalances


def test_assignors_in_common_are_required_and_the_vote_picks_one(lua):
    assert join(lua, "", "a", protocols=("roundrobin", "range")) == ("none", "a")
    assert join(lua, "", "b", protocols=("sticky",))[0] == "inconsistent_group_protocol"
    assert join(lua, "", "b", protocols=("range", "roundrobin"), ptype="connect")[0] == "inconsistent_group_protocol"
    assert join(lua, "", "b", protocols=("range",)) == ("none", "b")
    assert wait(lua, "a").protocol_name == "range"  # the only one both support


def test_a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout(lua, r):
    assert join(lua, "", "a") == ("none", "a")
    assert join(lua, "", "b") == ("none", "b")
    gen = wait(lua, "a").generation
    assert wait(lua, "b").generation == gen
    assert sync(lua, "b", gen) == "wait"  # the leader (a) does not sync
    r.hset(STATE, "sync_deadline", 1)  # the rebalance timeout passed
    assert sync(lua, "b", gen) == "rebalance_in_progress"
    assert beat(lua, "a", gen) == "unknown_member_id"
    assert join(lua, "b") == ("none", "b")
    assert wait(lua, "b").leader == "b"


def test_the_initial_delay_waits_for_more_members(lua, r):
    assert join(lua, "", "a", delay=60_000, rebalance=60_000) == ("none", "a")
    assert wait(lua, "a") == "wait"  # alone, but the initial delay has not passed
    assert join(lua, "", "b", delay=60_000, rebalance=60_000) == ("none", "b")
    r.hset(STATE, "join_deadline", int(time.time() * 1000) - 1)
    assert wait(lua, "a").generation == 1 and wait(lua, "b").generation == 1
    lua(scripts.kafka_leave(G, [("b", "")]))
    assert join(lua, "a", delay=60_000, rebalance=60_000) == ("none", "a")
    assert wait(lua, "a").generation == 2
    assert sync(lua, "a", 2, [("a", b"all")]) == b"all"
    assert join(lua, "a", delay=60_000, rebalance=60_000) == ("none", "a")  # rejoins its stable group
    assert wait(lua, "a").generation == 3  # alone, but the group was not empty: no initial delay


def test_the_two_kinds_of_group_refuse_each_other(lua, r):
    lua(scripts.group_join("sdk", "facade-member", "n1", {"topics": ["t"]}, 10_000, "", "facade"))
    reply = lua(join_call("sdk", "", "k", rebalance=1_000))
    assert reply[0] == b"inconsistent_group_protocol"
    tp = TopicPartition("t", 0)
    assert lua(scripts.kafka_commit("sdk", "", "", -1, [(tp, 3, "")]))[0] == b"inconsistent_group_protocol"
    assert r.hget(keys.committed("t", 0), "sdk") is None
    assert join(lua, "", "a") == ("none", "a")
    with pytest.raises(redis.ResponseError, match="GROUPKIND"):
        lua(scripts.group_join(G, "facade-member", "n1", {"topics": ["t"]}, 10_000, "", "facade"))


def test_group_delete_removes_the_kafka_keys(lua, r):
    stable_pair(lua)
    lua(scripts.kafka_leave(G, [("a", ""), ("b", "")]))
    assert r.exists(KAFKA) == 0 or r.hlen(KAFKA) == 0
    join(lua, "", "x", v4=True)  # a pending id
    assert r.exists(PENDING)
    assert lua(scripts.group_delete(G)) == 1
    assert r.exists(STATE, MEMBERS, DEADLINES, KAFKA, PENDING) == 0
