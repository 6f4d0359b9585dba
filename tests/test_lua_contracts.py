"""Each Lua script does what the KEYS/ARGV header at the top of its file promises, on a real server.

Run against Valkey (default) and Redis (FACADE_TEST_SERVER=/usr/bin/redis-server): the same
contracts must hold on both.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import redis
from redis.exceptions import ResponseError

from facade import keys, scripts
from facade.errors import _SCRIPT_ERRORS, GroupError, from_redis

T, G = "orders", "billing"
LOG, OWN, DONE = keys.consume_keys(T, 0)
PKEYS = keys.produce_keys(T, 0)
GKEYS = list(keys.group_keys(G))
OWNER = keys.STREAM_CONSUMER


class Lua:
    """Every script in lua/, registered on one client: ``lua.produce(keys=[...], args=[...])``."""

    def __init__(self, r: redis.Redis) -> None:
        for name in scripts.NAMES:
            setattr(self, name, r.register_script(scripts.source(name)))


@pytest.fixture
def r(url):
    with redis.Redis.from_url(url, socket_timeout=10) as client:
        yield client


@pytest.fixture
def lua(r):
    return Lua(r)


def code_of(exc: ResponseError) -> str:
    return str(exc).split(" ", 1)[0]


def produce_args(records, max_len="", retention_ms="", pid="", seq=0, expiry_ms=3_600_000, window_ms=60_000,
                 max_dedup=1000, dedup=None, acked=False, plain=False):
    """ARGV for produce.lua: ``records`` are flat field lists; ``dedup`` one dedup id ("" none) each.
    ``plain``: records are [key, k, value, v] and go in the plain form (k, v only)."""
    args = [max_len, retention_ms, pid, seq, expiry_ms, window_ms, max_dedup, len(records), "acked" if acked else "",
            "plain" if plain else ""]
    for i, fields in enumerate(records):
        if plain:
            assert fields[0] == b"key" and fields[2] == b"value" and len(fields) == 4 and not dedup
            args += [fields[1], fields[3]]
        else:
            args += [dedup[i] if dedup else "", len(fields), *fields]
    return args


def produce(lua, records, **kw):
    """Run produce.lua on partition 0; returns the offsets (checks the batch was not a retry)."""
    offsets, duplicate = produce_full(lua, records, **kw)
    assert duplicate == 0
    return offsets


def produce_full(lua, records, **kw):
    joined, duplicate = lua.produce(keys=PKEYS, args=produce_args(records, **kw))
    return (joined.split(b",") if joined else []), duplicate


def server_ms(r) -> int:
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def ids(entries):
    return [e[0] for e in entries]


def test_every_lua_file_is_registered():
    on_disk = {p.stem for p in scripts.lua_dir().glob("*.lua")}
    assert on_disk == set(scripts.NAMES)


def test_every_error_code_a_script_raises_is_mapped():
    # Each 'CODE text' a script replies with must become a named FacadeError in errors.from_redis.
    for name in scripts.NAMES:
        for code in re.findall(r"error_reply\('([A-Z]+) ", scripts.source(name)):
            assert code in _SCRIPT_ERRORS, f"{name}.lua raises {code}, unknown to facade.errors"


def test_every_script_has_a_keys_argv_header():
    for name in scripts.NAMES:
        lines = scripts.source(name).split("\n")
        if lines[0].startswith("#!lua"):  # script flags (Redis 7+) must come first
            assert lines[0] == "#!lua flags=allow-oom", name
            lines = lines[1:]
        assert lines[0].startswith(f"-- {name}:"), name
        text = scripts.source(name)
        assert "-- KEYS[1]" in text and "-- Returns:" in text, name


# --- produce -----------------------------------------------------------------------------------


def test_produce_appends_in_order_and_returns_ids(r, lua):
    assert lua.partition_init(keys=[LOG]) == 1
    records = [[b"key", b"k%d" % i, b"value", b"v%d" % i, b"h:trace", b"t%d" % i] for i in range(5)]
    records.append([b"value", b""])  # keyless, empty value
    out = produce(lua, records)
    assert len(out) == 6
    stored = r.xrange(LOG)
    assert ids(stored) == out
    as_tuples = [tuple(map(int, i.split(b"-"))) for i in out]
    assert as_tuples == sorted(as_tuples)
    assert stored[0][1] == {b"key": b"k0", b"value": b"v0", b"h:trace": b"t0"}
    assert stored[5][1] == {b"value": b""}
    # Field order is kept as given: key, value, then headers (what redis-cli shows).
    assert list(stored[0][1]) == [b"key", b"value", b"h:trace"]


def test_produce_plain_form_stores_the_same_entries_as_the_general_form(r, lua):
    assert lua.partition_init(keys=[LOG]) == 1
    records = [[b"key", b"k%d" % i, b"value", b"v%d" % i] for i in range(5)]
    plain = produce(lua, records, plain=True, pid="p", seq=0)
    general = produce(lua, records, pid="p", seq=5)
    entries = r.xrange(LOG)
    assert ids(entries) == plain + general
    assert [e[1] for e in entries] == [dict(zip(f[::2], f[1::2])) for f in records] * 2
    # a retry of the plain batch is recognised like any other
    assert produce_full(lua, records, plain=True, pid="p", seq=5) == (general, 1)


def test_produce_ids_carry_the_server_clock(r, lua):
    lua.partition_init(keys=[LOG])
    before = server_ms(r)
    (entry_id,) = produce(lua, [[b"value", b"x"]])
    assert before <= int(entry_id.split(b"-")[0]) <= server_ms(r)


def test_produce_to_a_missing_stream_is_notopic_and_appends_nothing(r, lua):
    with pytest.raises(ResponseError) as info:
        produce(lua, [[b"value", b"x"]])
    assert code_of(info.value) == "NOTOPIC"
    assert LOG in str(info.value)
    assert r.exists(LOG) == 0
    assert type(from_redis(info.value)).__name__ == "UnknownTopicError"


def test_produce_max_len_trims_approximately(r, lua):
    lua.partition_init(keys=[LOG])
    for _ in range(10):
        produce(lua, [[b"value", b"x"]] * 100, max_len="10")
    # "~": whole macro nodes (100 entries by default) go, so between 10 and 10 + one node remain.
    assert 10 <= r.xlen(LOG) <= 110
    assert r.xrevrange(LOG, count=1)  # the newest is always kept


def test_produce_without_limits_keeps_everything(r, lua):
    lua.partition_init(keys=[LOG])
    for _ in range(5):
        produce(lua, [[b"value", b"x"]] * 100)
    assert r.xlen(LOG) == 500


def test_produce_retention_drops_old_entries(r, lua):
    lua.partition_init(keys=[LOG])
    # 250 entries from 1970 (explicit IDs): more than two whole macro nodes are older than any cutoff.
    for i in range(250):
        r.xadd(LOG, {"value": "old"}, id=f"1000-{i}")
    (new,) = produce(lua, [[b"value", b"new"]], retention_ms="60000")
    left = r.xrange(LOG)
    assert left[-1][0] == new
    old_left = [e for e in left if e[1][b"value"] == b"old"]
    assert len(old_left) < 100  # approximate: only the node shared with recent entries survives
    assert r.xinfo_stream(LOG)["first-entry"][0] != b"1000-0"


def test_produce_retention_keeps_recent_entries(r, lua):
    lua.partition_init(keys=[LOG])
    produce(lua, [[b"value", b"a"]] * 300)
    produce(lua, [[b"value", b"b"]], retention_ms="3600000")
    assert r.xlen(LOG) == 301


def test_produce_zero_records(r, lua):
    lua.partition_init(keys=[LOG])
    assert produce(lua, []) == []
    assert r.xlen(LOG) == 0


def test_produce_to_a_missing_stream_leaves_no_producer_or_dedup_state(r, lua):
    with pytest.raises(ResponseError):
        produce(lua, [[b"value", b"x"]], pid="p1", dedup=["d1"])
    assert r.exists(*PKEYS) == 0


# --- produce: idempotent producers and dedup ids -------------------------------------------------

V = [b"value", b"x"]


def test_a_retried_batch_is_not_appended_twice(r, lua):
    lua.partition_init(keys=[LOG])
    first, duplicate = produce_full(lua, [V] * 3, pid="p1", seq=0)
    assert duplicate == 0
    again, duplicate = produce_full(lua, [V] * 3, pid="p1", seq=0)
    assert (again, duplicate) == (first, 1)  # the original offsets come back
    assert r.xlen(LOG) == 3
    nxt = produce(lua, [V] * 2, pid="p1", seq=3)
    assert r.xlen(LOG) == 5 and len(nxt) == 2


@pytest.mark.parametrize("seq", [2, 4, 10])
def test_a_sequence_that_skips_or_goes_back_is_outoforder(r, lua, seq):
    lua.partition_init(keys=[LOG])
    produce(lua, [V] * 3, pid="p1", seq=0)  # last batch: 0..2
    produce(lua, [V] * 3, pid="p1", seq=3)  # last batch: 3..5
    with pytest.raises(ResponseError) as info:
        produce(lua, [V], pid="p1", seq=seq if seq != 4 else 0)  # 0: older than the last batch
    assert code_of(info.value) == "OUTOFORDER"
    assert type(from_redis(info.value)).__name__ == "OutOfOrderSequenceError"
    assert r.xlen(LOG) == 6  # nothing appended


def test_producers_and_partitions_have_separate_sequences(r, lua):
    lua.partition_init(keys=[LOG])
    produce(lua, [V] * 2, pid="p1", seq=0)
    produce(lua, [V] * 2, pid="p2", seq=0)
    assert r.xlen(LOG) == 4
    assert set(r.hkeys(PKEYS[1])) == {b"p1", b"p2"}


def test_a_non_idempotent_producer_leaves_no_state(r, lua):
    lua.partition_init(keys=[LOG])
    produce(lua, [V] * 2)
    produce(lua, [V] * 2)
    assert r.xlen(LOG) == 4
    assert r.exists(*PKEYS[1:]) == 0


def test_idle_producer_ids_expire(r, lua):
    lua.partition_init(keys=[LOG])
    produce(lua, [V], pid="old", seq=0, expiry_ms=100)
    time.sleep(0.25)
    produce(lua, [V], pid="new", seq=0, expiry_ms=100)
    assert r.hkeys(PKEYS[1]) == [b"new"]
    assert r.zrange(PKEYS[2], 0, -1) == [b"new"]
    produce(lua, [V], pid="old", seq=0, expiry_ms=100)  # forgotten: its sequence starts over


def test_a_repeated_dedup_id_returns_the_original_offset(r, lua):
    lua.partition_init(keys=[LOG])
    (first,) = produce(lua, [V], dedup=["order-1"])
    out = produce(lua, [V, V, V], dedup=["order-1", "order-2", "order-2"])
    assert out[0] == first and out[1] == out[2] != first
    assert r.xlen(LOG) == 2


def test_dedup_ids_expire_after_the_window(r, lua):
    lua.partition_init(keys=[LOG])
    (first,) = produce(lua, [V], dedup=["d"], window_ms=100)
    time.sleep(0.25)
    (second,) = produce(lua, [V], dedup=["d"], window_ms=100)
    assert second != first
    assert r.xlen(LOG) == 2


def test_dedup_ids_are_capped_per_partition(r, lua):
    lua.partition_init(keys=[LOG])
    produce(lua, [V] * 3, dedup=["d1", "d2", "d3"], max_dedup=2)
    assert r.zcard(PKEYS[4]) == 2 and r.hlen(PKEYS[3]) == 2
    assert not r.hexists(PKEYS[3], "d1")  # the oldest went first
    produce(lua, [V], dedup=["d1"], max_dedup=2)
    assert r.xlen(LOG) == 4


# --- partition_init ----------------------------------------------------------------------------


def test_partition_init_creates_an_empty_stream_once(r, lua):
    assert lua.partition_init(keys=[LOG]) == 1
    assert r.type(LOG) == b"stream"
    assert r.xlen(LOG) == 0
    assert r.xinfo_groups(LOG) == []  # its helper group is gone
    r.xadd(LOG, {"value": "x"})
    assert lua.partition_init(keys=[LOG]) == 0
    assert r.xlen(LOG) == 1


# --- topic_register ----------------------------------------------------------------------------


def topic_config(partitions, **kw):
    cfg = {"name": T, "partitions": partitions, "retention_ms": None, "max_len": None, "created_ms": 0}
    cfg["layout"] = 1
    cfg.update(kw)
    return json.dumps(cfg)


def test_topic_register_create_fills_created_ms(r, lua):
    before = server_ms(r)
    stored = json.loads(lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(3), "create"]))
    assert stored["partitions"] == 3 and stored["name"] == T
    assert stored["retention_ms"] is None and stored["max_len"] is None
    assert isinstance(stored["created_ms"], int)
    assert before <= stored["created_ms"] <= server_ms(r)
    assert json.loads(r.hget(keys.TOPICS, T)) == stored


def test_topic_register_create_keeps_a_given_created_ms(r, lua):
    cfg = topic_config(1, created_ms=1234)
    stored = json.loads(lua.topic_register(keys=[keys.TOPICS], args=[T, cfg, "create"]))
    assert stored["created_ms"] == 1234


def test_topic_register_large_numbers_survive_cjson(r, lua):
    cfg = topic_config(1, retention_ms=7 * 24 * 3600 * 1000, max_len=10_000_000, created_ms=1_732_435_200_123)
    stored = json.loads(lua.topic_register(keys=[keys.TOPICS], args=[T, cfg, "create"]))
    assert (stored["retention_ms"], stored["max_len"], stored["created_ms"]) == (
        604_800_000, 10_000_000, 1_732_435_200_123
    )


def test_topic_register_create_twice_is_topicexists(r, lua):
    lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(3), "create"])
    with pytest.raises(ResponseError) as info:
        lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(5), "create"])
    assert code_of(info.value) == "TOPICEXISTS"
    assert json.loads(r.hget(keys.TOPICS, T))["partitions"] == 3


def test_topic_register_alter_grows_and_keeps_created_ms_and_layout(r, lua):
    first = json.loads(lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(2), "create"]))
    stored = json.loads(
        lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(4, created_ms=5, layout=9), "alter"])
    )
    assert stored["partitions"] == 4
    assert stored["created_ms"] == first["created_ms"]
    assert stored["layout"] == 1
    assert json.loads(r.hget(keys.TOPICS, T)) == stored


@pytest.mark.parametrize("partitions", [2, 1])
def test_topic_register_alter_that_does_not_grow_is_badarg(r, lua, partitions):
    lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(2), "create"])
    with pytest.raises(ResponseError) as info:
        lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(partitions), "alter"])
    assert code_of(info.value) == "BADARG"
    assert "only grow" in str(info.value)
    assert json.loads(r.hget(keys.TOPICS, T))["partitions"] == 2


def test_topic_register_alter_missing_is_notopic(r, lua):
    with pytest.raises(ResponseError) as info:
        lua.topic_register(keys=[keys.TOPICS], args=[T, topic_config(2), "alter"])
    assert code_of(info.value) == "NOTOPIC"
    assert r.hlen(keys.TOPICS) == 0


# --- claim / release ---------------------------------------------------------------------------


def claim(lua, token, expected="", start="0"):
    return lua.claim(keys=[LOG, OWN], args=[G, token, expected, start])


def test_claim_missing_stream_is_notopic(r, lua):
    with pytest.raises(ResponseError) as info:
        claim(lua, "a|1")
    assert code_of(info.value) == "NOTOPIC"
    assert r.exists(OWN) == 0


def test_claim_a_free_partition_creates_the_group(r, lua):
    lua.partition_init(keys=[LOG])
    first = r.xadd(LOG, {"value": "x"})
    assert claim(lua, "a|1", start="$") == [1, first]  # a "$" group starts after what is there
    assert r.hget(OWN, G) == b"a|1"
    assert [g["name"] for g in r.xinfo_groups(LOG)] == [G.encode()]


def test_claim_earliest_starts_at_zero(r, lua):
    lua.partition_init(keys=[LOG])
    r.xadd(LOG, {"value": "x"})
    assert claim(lua, "a|1", start="0") == [1, b"0-0"]


def test_claim_is_a_cas(r, lua):
    lua.partition_init(keys=[LOG])
    assert claim(lua, "a|1")[0] == 1
    assert claim(lua, "b|1") == [0, b"a|1"]  # expected free, but a holds it
    assert claim(lua, "b|1", expected="c|1") == [0, b"a|1"]  # expected the wrong previous owner
    assert r.hget(OWN, G) == b"a|1"
    assert claim(lua, "a|1")[0] == 1  # the holder re-claiming is a no-op success
    assert claim(lua, "b|2", expected="a|1")[0] == 1  # b saw a leave: takes over
    assert r.hget(OWN, G) == b"b|2"
    assert claim(lua, "a|1", expected="")[0] == 0  # and a cannot take it back


def test_claim_of_an_existing_group_reports_its_position(r, lua):
    lua.partition_init(keys=[LOG])
    entry = [r.xadd(LOG, {"value": str(i)}) for i in range(3)]
    claim(lua, "a|1")
    lua.fetch(keys=[LOG, OWN, DONE], args=[G, "a|1", 2, ">", OWNER, ""])
    lua.release(keys=[OWN], args=[G, "a|1"])
    # The group exists already (BUSYGROUP is fine), and its start argument is ignored now.
    assert claim(lua, "b|2", start="$") == [1, entry[1]]


def test_groups_are_independent(r, lua):
    lua.partition_init(keys=[LOG])
    assert lua.claim(keys=[LOG, OWN], args=["g1", "a|1", "", "0"])[0] == 1
    assert lua.claim(keys=[LOG, OWN], args=["g2", "b|1", "", "0"])[0] == 1
    assert r.hgetall(OWN) == {b"g1": b"a|1", b"g2": b"b|1"}


def test_release(r, lua):
    lua.partition_init(keys=[LOG])
    claim(lua, "a|1")
    assert lua.release(keys=[OWN], args=[G, "b|1"]) == 0  # not the holder: nothing changes
    assert r.hget(OWN, G) == b"a|1"
    assert lua.release(keys=[OWN], args=[G, "a|1"]) == 1
    assert r.hget(OWN, G) is None
    assert lua.release(keys=[OWN], args=[G, "a|1"]) == 0
    assert claim(lua, "b|2")[0] == 1  # free again


# --- fetch / commit ----------------------------------------------------------------------------


@pytest.fixture
def owned(r, lua):
    """Partition 0 with 5 records, claimed (from the start) by token "a|1"."""
    lua.partition_init(keys=[LOG])
    written = produce(lua, [[b"value", b"v%d" % i] for i in range(5)])
    assert claim(lua, "a|1")[0] == 1
    return written


def fetch(lua, token, count, cursor, *acks, mode=""):
    """(entries, counts) of the fetch script; its third result (last ID read) is checked apart."""
    entries, counts, _last = lua.fetch(keys=[LOG, OWN, DONE], args=[G, token, count, cursor, OWNER, mode, *acks])
    return [entries, counts]


def pending_ids(r):
    return [p["message_id"] for p in r.xpending_range(LOG, G, "-", "+", 1000)]


def test_fetch_new_records(r, lua, owned):
    entries, counts = fetch(lua, "a|1", 3, ">")
    assert ids(entries) == owned[:3]
    assert entries[0][1] == [b"value", b"v0"]
    assert counts == []
    entries, counts = fetch(lua, "a|1", 10, ">")
    assert ids(entries) == owned[3:]
    assert fetch(lua, "a|1", 10, ">") == [[], []]
    assert pending_ids(r) == owned


def test_fetch_with_a_wrong_token_is_fenced_and_reads_nothing(r, lua, owned):
    fetch(lua, "a|1", 2, ">")
    before = r.xinfo_groups(LOG)[0]
    for token in ("b|1", "a|2", ""):
        with pytest.raises(ResponseError) as info:
            fetch(lua, token, 10, ">", owned[0])
        assert code_of(info.value) == "FENCED"
        assert type(from_redis(info.value)).__name__ == "CommitFailedError"
    assert r.xinfo_groups(LOG)[0] == before  # nothing delivered
    assert pending_ids(r) == owned[:2]  # nothing acknowledged


def test_fetch_acks_before_reading(r, lua, owned):
    fetch(lua, "a|1", 2, ">")
    entries, _ = fetch(lua, "a|1", 2, ">", owned[0], owned[1])
    assert ids(entries) == owned[2:4]
    assert pending_ids(r) == owned[2:4]


def test_fetch_on_a_deleted_stream_is_notopic(r, lua, owned):
    r.delete(LOG)
    with pytest.raises(ResponseError) as info:
        fetch(lua, "a|1", 10, ">")
    assert code_of(info.value) == "NOTOPIC"


def test_history_read_returns_pending_in_order_with_delivery_counts(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", "", owned[1]])
    # A new owner takes over and first re-reads what a left uncommitted.
    assert claim(lua, "b|2", expected="a|1")[0] == 1
    entries, counts = fetch(lua, "b|2", 10, "0")
    assert ids(entries) == [owned[0], *owned[2:]]
    assert [e[1] for e in entries] == [[b"value", b"v%d" % i] for i in (0, 2, 3, 4)]
    # Does XREADGROUP with a history ID count as a delivery? It must, on every server we support.
    assert counts == [2, 2, 2, 2]
    entries, counts = fetch(lua, "b|2", 10, "0")
    assert counts == [3, 3, 3, 3]


def test_history_read_pages_after_an_id(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    entries, counts = fetch(lua, "a|1", 2, "0")
    assert ids(entries) == owned[:2]
    entries, counts = fetch(lua, "a|1", 2, owned[1].decode())
    assert ids(entries) == owned[2:4]
    assert len(counts) == 2
    entries, counts = fetch(lua, "a|1", 2, owned[4].decode())
    assert (entries, counts) == ([], [])


def test_history_read_skips_and_acks_trimmed_entries(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    r.xdel(LOG, owned[1], owned[3])  # as if retention had dropped them while pending
    entries, counts = fetch(lua, "a|1", 10, "0")
    assert ids(entries) == [owned[0], owned[2], owned[4]]
    assert counts == [2, 2, 2]
    assert pending_ids(r) == [owned[0], owned[2], owned[4]]


def test_history_read_of_only_trimmed_entries_is_empty_and_clears_them(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    r.xdel(LOG, *owned)
    assert fetch(lua, "a|1", 2, "0") == [[], []]
    assert pending_ids(r) == []


def test_history_read_does_not_stop_at_a_batch_of_trimmed_entries(r, lua, owned):
    # The consumer takes an empty history read as "nothing left to re-read" and switches to ">".
    # When a whole batch was trimmed, the live pending records after it must still come back.
    fetch(lua, "a|1", 5, ">")
    r.xdel(LOG, owned[0], owned[1])
    entries, counts = fetch(lua, "a|1", 2, "0")
    assert ids(entries) == owned[2:4]
    assert counts == [2, 2]


def test_commit_acks_owned_records(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    assert lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", "", owned[0], owned[2]]) == 2
    assert pending_ids(r) == [owned[1], owned[3], owned[4]]
    assert lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", "", owned[0]]) == 0  # already acknowledged
    assert lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", ""]) == 0  # nothing to acknowledge


def test_commit_by_a_fenced_member_is_refused_and_acks_nothing(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    assert claim(lua, "b|2", expected="a|1")[0] == 1
    with pytest.raises(ResponseError) as info:
        lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", "", *owned])
    assert code_of(info.value) == "FENCED"
    assert pending_ids(r) == owned  # still pending, for b to re-read
    assert lua.commit(keys=[LOG, OWN, DONE], args=[G, "b|2", "", *owned]) == 5


def test_commit_takes_the_consumer_chunk_of_ids(r, lua, owned):
    # Lua's unpack() stops near 8000 values (LUAI_MAXCSTACK): the consumer acks in chunks of 4000.
    fetch(lua, "a|1", 5, ">")
    fake = [f"{i}-0" for i in range(1, 4000 - len(owned) + 1)]
    assert lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", "", *owned, *fake]) == 5
    assert lua.fetch(keys=[LOG, OWN, DONE], args=[G, "a|1", 1, ">", OWNER, "", *fake]) == [[], [], b""]


def test_commit_with_no_owner_is_fenced(r, lua, owned):
    lua.release(keys=[OWN], args=[G, "a|1"])
    with pytest.raises(ResponseError) as info:
        lua.commit(keys=[LOG, OWN, DONE], args=[G, "a|1", ""])
    assert code_of(info.value) == "FENCED"


# --- group coordination ------------------------------------------------------------------------


def join(lua, member, session_ms=10_000, meta=None):
    return lua.group_join(keys=GKEYS, args=[member, json.dumps(meta or {"topics": [T]}), session_ms])


def heartbeat(lua, member, session_ms=10_000, known=""):
    return lua.group_heartbeat(keys=GKEYS, args=[member, session_ms, known])


def members_of(reply):
    flat = reply[3]
    return {flat[i].decode(): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}


def test_join_grows_the_generation(r, lua):
    assert join(lua, "a") == 1
    assert join(lua, "b", meta={"topics": [T], "strategy": "range"}) == 2
    assert join(lua, "a") == 3  # a rejoin is a new generation too
    assert set(r.hkeys(keys.group_members(G))) == {b"a", b"b"}
    assert json.loads(r.hget(keys.group_members(G), "b")) == {"topics": [T], "strategy": "range"}
    deadline = r.zscore(keys.group_deadlines(G), "a")
    assert server_ms(r) + 9_000 < deadline <= server_ms(r) + 10_000


def test_heartbeat_before_any_assignment_reports_members(lua):
    join(lua, "a")
    join(lua, "b")
    gen, agen, assignment, _ = reply = heartbeat(lua, "a")
    assert (gen, agen, assignment) == (2, b"", b"")
    assert set(members_of(reply)) == {"a", "b"}


def test_sync_is_first_writer_wins_and_refuses_stale_generations(r, lua):
    join(lua, "a")
    gen = join(lua, "b")
    plan_a = json.dumps({"a": [[T, 0]], "b": [[T, 1]]})
    assert lua.group_sync(keys=GKEYS[:1], args=[gen, plan_a]) == 1
    assert lua.group_sync(keys=GKEYS[:1], args=[gen, json.dumps({"a": [], "b": []})]) == 0  # already stored
    assert lua.group_sync(keys=GKEYS[:1], args=[gen - 1, plan_a]) == 0  # stale
    assert r.hget(keys.group_state(G), "assignment") == plan_a.encode()
    # Members learn it from their heartbeat; members are no longer listed once assigned.
    gen_now, agen, assignment, members = heartbeat(lua, "b")
    assert (gen_now, agen, assignment, members) == (gen, str(gen).encode(), plan_a.encode(), [])
    # Once known, it is not sent again.
    assert heartbeat(lua, "b", known=str(gen))[2] == b""
    # A join moves the group on: the old generation's assignment can no longer be stored.
    new_gen = join(lua, "c")
    assert lua.group_sync(keys=GKEYS[:1], args=[gen, plan_a]) == 0
    assert lua.group_sync(keys=GKEYS[:1], args=[new_gen, plan_a]) == 1


def test_sync_for_a_future_generation_is_refused(lua):
    gen = join(lua, "a")
    assert lua.group_sync(keys=GKEYS[:1], args=[gen + 1, "{}"]) == 0


def test_expired_members_are_removed_by_a_heartbeat(r, lua):
    join(lua, "a", session_ms=100)
    gen = join(lua, "b")
    time.sleep(0.25)
    reply = heartbeat(lua, "b")
    assert reply[0] == gen + 1  # a's removal starts a new generation
    assert set(members_of(reply)) == {"b"}
    assert r.zscore(keys.group_deadlines(G), "a") is None
    with pytest.raises(ResponseError) as info:
        heartbeat(lua, "a")
    assert code_of(info.value) == "UNKNOWNMEMBER"
    assert type(from_redis(info.value)).__name__ == "UnknownMemberError"


def test_an_expired_member_learns_it_on_its_own_heartbeat(r, lua):
    gen = join(lua, "a", session_ms=100)
    join(lua, "b")
    gen = join(lua, "b")
    time.sleep(0.25)
    with pytest.raises(ResponseError) as info:
        heartbeat(lua, "a")
    assert code_of(info.value) == "UNKNOWNMEMBER"
    assert r.hexists(keys.group_members(G), "a") == 0
    assert int(r.hget(keys.group_state(G), "generation")) == gen + 1
    assert heartbeat(lua, "b")[0] == gen + 1


def test_expired_members_are_removed_by_a_join(r, lua):
    join(lua, "a", session_ms=100)
    time.sleep(0.25)
    join(lua, "b")
    assert r.hkeys(keys.group_members(G)) == [b"b"]
    assert r.zrange(keys.group_deadlines(G), 0, -1) == [b"b"]


def test_heartbeat_extends_the_session(r, lua):
    join(lua, "a", session_ms=300)
    join(lua, "b")
    for _ in range(4):
        time.sleep(0.1)
        heartbeat(lua, "a", session_ms=300)
    assert heartbeat(lua, "b")[0] == 2  # a never expired


def test_heartbeat_of_an_unknown_member(r, lua):
    join(lua, "a")
    with pytest.raises(ResponseError) as info:
        heartbeat(lua, "stranger")
    assert code_of(info.value) == "UNKNOWNMEMBER"
    assert int(r.hget(keys.group_state(G), "generation")) == 1  # a stranger changes nothing


def test_leave(r, lua):
    join(lua, "a")
    join(lua, "b")
    assert lua.group_leave(keys=GKEYS, args=["a"]) == 3
    assert r.hkeys(keys.group_members(G)) == [b"b"]
    assert r.zrange(keys.group_deadlines(G), 0, -1) == [b"b"]
    assert lua.group_leave(keys=GKEYS, args=["a"]) == 0  # not a member: nothing changes
    assert int(r.hget(keys.group_state(G), "generation")) == 3
    with pytest.raises(ResponseError) as info:
        heartbeat(lua, "a")
    assert code_of(info.value) == "UNKNOWNMEMBER"


def test_group_delete_refuses_while_a_member_is_live(r, lua):
    join(lua, "a")
    with pytest.raises(ResponseError) as info:
        lua.group_delete(keys=GKEYS)
    assert code_of(info.value) == "GROUPBUSY"
    assert isinstance(from_redis(info.value), GroupError)
    assert r.exists(*GKEYS) == 3


def test_group_delete_after_members_expired_or_left(r, lua):
    join(lua, "a", session_ms=100)
    join(lua, "b")
    lua.group_leave(keys=GKEYS, args=["b"])
    time.sleep(0.25)
    assert lua.group_delete(keys=GKEYS) == 1
    assert r.exists(*GKEYS) == 0
    assert lua.group_delete(keys=GKEYS) == 1  # nothing left: still fine


# --- set_position ------------------------------------------------------------------------------


def set_position(lua, token, target, start="0"):
    return lua.set_position(keys=[LOG, OWN], args=[G, token, target, start])


def test_set_position_missing_stream_is_notopic(lua):
    with pytest.raises(ResponseError) as info:
        set_position(lua, "", "0-0")
    assert code_of(info.value) == "NOTOPIC"


def test_set_position_is_fenced_for_a_non_owner_and_for_admins_of_an_owned_partition(r, lua, owned):
    for token in ("b|1", ""):
        with pytest.raises(ResponseError) as info:
            set_position(lua, token, "0-0")
        assert code_of(info.value) == "FENCED"
    assert r.xinfo_groups(LOG)[0]["last-delivered-id"] == b"0-0"


def test_set_position_acks_what_lies_before_and_redelivers_after(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    assert set_position(lua, "a|1", owned[2].decode()) == [owned[4], owned[2], 3]
    assert pending_ids(r) == owned[3:]
    entries, _ = fetch(lua, "a|1", 10, ">")
    assert ids(entries) == owned[3:]


def test_set_position_to_the_end_skips_everything(r, lua, owned):
    fetch(lua, "a|1", 2, ">")
    previous, target, acked = set_position(lua, "a|1", "$")
    assert (previous, target, acked) == (owned[1], owned[4], 2)
    assert pending_ids(r) == []
    assert fetch(lua, "a|1", 10, ">") == [[], []]


def test_set_position_back_to_the_beginning(r, lua, owned):
    fetch(lua, "a|1", 5, ">")
    assert set_position(lua, "a|1", "0-0") == [owned[4], b"0-0", 0]
    entries, _ = fetch(lua, "a|1", 10, ">")
    assert ids(entries) == owned


def test_set_position_by_an_admin_creates_the_group(r, lua):
    lua.partition_init(keys=[LOG])
    written = produce(lua, [[b"value", b"x"]] * 3)
    assert set_position(lua, "", written[0].decode(), start="$") == [written[2], written[0], 0]
    assert r.xinfo_groups(LOG)[0]["last-delivered-id"] == written[0]


def test_set_position_acks_more_than_one_xpending_page(r, lua):
    lua.partition_init(keys=[LOG])
    written = []
    for _ in range(3):
        written += produce(lua, [[b"value", b"x"]] * 1000)
    claim(lua, "a|1")
    fetch(lua, "a|1", 3000, ">")
    assert set_position(lua, "a|1", "$")[2] == 3000
    assert pending_ids(r) == []


def test_produce_ack_aware_retention_keeps_what_a_group_still_needs(r, lua):
    r.xgroup_create(LOG, "slow", id="0", mkstream=True)
    first = produce(lua, [[b"value", b"x"]] * 300)
    # The group read 150 and acknowledged the first 100: the floor is entry 100 (still pending).
    r.xreadgroup("slow", "c", {LOG: ">"}, count=150)
    r.xack(LOG, "slow", *first[:100])
    produce(lua, [[b"value", b"y"]] * 300, max_len=10, acked=True)
    remaining = [e[0] for e in r.xrange(LOG)]
    assert first[100] in remaining  # never trimmed past what the group needs
    assert len(remaining) < 600  # but acknowledged entries went
    # Without the flag, MAXLEN trims regardless of the group.
    produce(lua, [[b"value", b"z"]], max_len=10)
    assert first[100] not in [e[0] for e in r.xrange(LOG)]


def test_commit_many_commits_each_owned_partition_and_fences_the_others(r, lua, owned):
    # Partition 0 is owned by "a|1" and its 5 records are delivered; partition 1 is owned by
    # someone else. One call: partition 0 is committed (mark set), partition 1 refused alone.
    fetch(lua, "a|1", 5, ">")
    log2, own2, done2 = keys.consume_keys(T, 1)
    r.xadd(log2, {"value": "x"})
    r.xgroup_create(log2, G, id="0")
    ((_, [(other_id, _)]),) = r.xreadgroup(G, OWNER, {log2: ">"})
    r.hset(own2, G, "b|2")
    out = lua.commit_many(
        keys=[LOG, OWN, DONE, log2, own2, done2],
        args=[G, "a|1", owned[1], 2, owned[0], owned[1], "a|1", "m", 1, other_id],
    )
    assert out[0] == 2 and isinstance(out[1], ResponseError) and str(out[1]).startswith("FENCED")
    assert r.hget(DONE, G) == owned[1] and r.xpending(LOG, G)["pending"] == 3
    assert r.xpending(log2, G)["pending"] == 1 and r.hget(done2, G) is None  # fenced: nothing changed
