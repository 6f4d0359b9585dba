"""Each Lua script does what the KEYS/ARGV header at the top of its file promises, on a real server.

Calls are built with facade.scripts' builders (the one place that knows each script's ARGV), so
these tests check the scripts and the builders together. Run against Valkey (default) and Redis
(FACADE_TEST_SERVER=/usr/bin/redis-server): the same contracts must hold on both.
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
from facade.records import TopicPartition

T, G = "orders", "billing"
TP = TopicPartition(T, 0)
LOG, OWN, OFF, DONE, DLV = (keys.stream(T, 0), keys.owners(T, 0), keys.committed(T, 0), keys.processed(T, 0),
                            keys.deliveries(T, 0))  # fmt: skip


class Lua:
    """Runs scripts.Call objects on one client."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
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


def code_of(exc: ResponseError) -> str:
    return str(exc).split(" ", 1)[0]


def produce(lua, records, tp=TP, seq=0, pid="", plain=None, times=None, **kw):
    """Append ``records`` (flat field lists, or (key, value) pairs in the plain form) and return
    the parsed reply."""
    if plain is None:  # (key, value) byte pairs go in the plain form; (dedup id, fields) do not
        plain = all(isinstance(rec, tuple) and isinstance(rec[1], bytes) for rec in records)
    args: list = []
    for rec in records:
        if plain:
            args += list(rec)
        else:
            dedup, fields = rec if isinstance(rec, tuple) else ("", rec)
            args += [dedup, len(fields), *fields]
    options = {"max_len": None, "retention_ms": None, "acked": False, "producer_id": pid, "first_seq": seq,
                   "producer_id_expiry_ms": 3_600_000, "dedup_window_ms": 60_000, "dedup_max_ids": 1000}  # fmt: skip
    options.update(kw)
    now = int(time.time() * 1000)
    call = scripts.produce(tp, count=len(records), plain=plain, times=f"{now} {len(records)}" if times is None else times,
                           records=args, **options)  # fmt: skip
    return scripts.Produced.parse(lua(call))


def init(lua, tp=TP):
    lua(scripts.partition_init(tp.topic, tp.partition))


def entries(r, stream=LOG):
    return [(eid.decode(), fields) for eid, fields in r.xrange(stream)]


def offsets_of(items):
    return [int((e[0].decode() if isinstance(e[0], bytes) else e[0]).split("-")[1]) for e in items]


# --- every script ------------------------------------------------------------------------------


def test_every_lua_file_is_registered():
    on_disk = {p.stem for p in scripts.lua_dir().glob("*.lua")}
    assert on_disk == set(scripts.NAMES) | {scripts.PRELUDE}


def test_every_error_code_a_script_raises_is_mapped():
    # Each 'CODE text' a script replies with must become a named FacadeError in errors.from_redis.
    for name in scripts.NAMES:
        for code in re.findall(r"error_reply\(['\"]([A-Z]+)", scripts.source(name)):
            assert code in _SCRIPT_ERRORS, f"{name}.lua raises {code}, unknown to facade.errors"


def test_every_script_has_a_keys_argv_header_and_binds_argv_to_names():
    for name in scripts.NAMES:
        text = (scripts.lua_dir() / f"{name}.lua").read_text()
        lines = text.split("\n")
        if lines[0].startswith("#!lua"):  # script flags (Redis 7+) must come first
            assert lines[0] == "#!lua flags=allow-oom", name
            lines = lines[1:]
        assert lines[0].startswith(f"-- {name}:"), name
        assert "-- KEYS[" in text and "-- Returns:" in text, name
        body = "\n".join(line for line in lines if not line.startswith("--"))
        # ARGV is read into named locals first: no ARGV[n] deep inside the logic.
        first_logic = next(
            i for i, line in enumerate(body.split("\n")) if line.startswith(("if ", "for ", "redis.call"))
        )
        late = [line for line in body.split("\n")[first_logic:] if re.search(r"ARGV\[\d+\]", line)]
        assert len(late) <= 12, f"{name}.lua reads ARGV by index in its logic: {late[:3]}"


def test_the_prelude_is_loaded_in_front_of_each_script_after_its_flags():
    for name in scripts.NAMES:
        text = scripts.source(name)
        assert "local function find_entry" in text
        assert not text.startswith("--") or not text.lstrip().startswith("#!lua"), name


# --- produce -----------------------------------------------------------------------------------


def test_produce_gives_dense_offsets_and_ids_of_append_ms_and_offset(r, lua):
    init(lua)
    before = int(r.time()[0]) * 1000 - 1000
    first = produce(lua, [(b"k1", b"a"), (b"k2", b"b")])
    second = produce(lua, [[b"value", b"c"], [b"key", b"k", b"value", b"d", b"h:x", b"1"]])
    assert (first.first, first.duplicate, second.first) == (0, False, 2)
    stored = entries(r)
    assert offsets_of(stored) == [0, 1, 2, 3]
    assert all(int(eid.split("-")[0]) >= before for eid, _ in stored)
    assert stored[3][1] == {b"key": b"k", b"value": b"d", b"ts": stored[3][1][b"ts"], b"h:x": b"1"}
    assert list(stored[3][1]) == [b"key", b"value", b"ts", b"h:x"]  # key, value, ts, headers: in that order


def test_produce_stores_create_time_as_a_delta_from_the_append_time(r, lua):
    init(lua)
    produce(lua, [(b"k", b"a"), (b"k", b"b"), (b"k", b"c")], times="1000 2 5000 1")
    (id0, f0), (_, f1), (id2, f2) = entries(r)
    append_ms = int(id0.split("-")[0])
    assert int(f0[b"ts"]) == int(f1[b"ts"]) == append_ms - 1000
    assert int(f2[b"ts"]) == int(id2.split("-")[0]) - 5000


def test_log_append_time_topics_store_no_create_time(r, lua):
    init(lua)
    produce(lua, [(b"k", b"a")], times="")
    assert b"ts" not in entries(r)[0][1]


def test_ids_keep_increasing_when_the_clock_goes_back(r, lua):
    # A stream whose last ID is in the future (a clock that went back): appends reuse that ms.
    r.xadd(LOG, {"value": "x"}, id=f"{int(time.time() * 1000) + 3_600_000}-0")
    produced = produce(lua, [(b"k", b"a"), (b"k", b"b")])
    ids = [eid for eid, _ in entries(r)]
    assert (
        produced.first == 1
        and ids[1].split("-")[0] == ids[0].split("-")[0]
        and offsets_of(entries(r)) == [0, 1, 2]
    )


def test_a_tail_deleted_with_xdel_never_gives_its_offset_again(r, lua):
    init(lua)
    produce(lua, [(b"k", b"a"), (b"k", b"b"), (b"k", b"c")])
    r.xdel(LOG, entries(r)[-1][0])  # the last ID stays with the stream
    assert produce(lua, [(b"k", b"d")]).first == 3
    assert produce(lua, [[b"value", b"e"]]).first == 4
    assert offsets_of(entries(r)) == [0, 1, 3, 4]


def test_offsets_go_on_after_the_stream_was_trimmed_empty(r, lua):
    init(lua)
    produce(lua, [(b"k", b"a")] * 5)
    r.xtrim(LOG, maxlen=0)
    assert produce(lua, [(b"k", b"b")]).first == 5


def test_produce_to_a_missing_stream_is_notopic_and_leaves_nothing(r, lua):
    with pytest.raises(ResponseError) as info:
        produce(lua, [(b"k", b"v")], pid="p1")
    assert code_of(info.value) == "NOTOPIC"
    assert not r.exists(LOG, keys.producer_state(T, 0), keys.producer_index(T, 0))


def test_produce_max_len_trims_approximately(r, lua):
    init(lua)
    for _ in range(5):
        produce(lua, [[b"value", b"x"]] * 200, max_len=100)
    assert 100 <= r.xlen(LOG) < 1000
    assert offsets_of(entries(r))[-1] == 999  # trimming never changes the offsets that remain


def test_produce_retention_drops_old_entries_by_append_time(r, lua):
    init(lua)
    for i in range(300):  # three whole stream nodes appended long ago (approximate trims drop nodes)
        r.xadd(LOG, {"value": "old"}, id=f"{1000 + i}-{i}")
    for _ in range(3):
        produce(lua, [[b"value", b"x"]] * 100, retention_ms=60_000)
    assert b"old" not in [f[b"value"] for _, f in entries(r)]
    assert produce(lua, [[b"value", b"y"]]).first == 600


def test_a_retried_batch_is_not_appended_twice_and_returns_its_offsets(r, lua):
    init(lua)
    first = produce(lua, [(b"k", b"a"), (b"k", b"b")], pid="p1", seq=0)
    again = produce(lua, [(b"k", b"a"), (b"k", b"b")], pid="p1", seq=0)
    assert (again.first, again.duplicate, again.append_ms) == (first.first, True, first.append_ms)
    assert r.xlen(LOG) == 2


@pytest.mark.parametrize("seq", [0, 1, 4, 10])
def test_a_sequence_that_skips_or_goes_back_is_outoforder(r, lua, seq):
    init(lua)
    produce(lua, [(b"k", b"a")] * 2, pid="p1", seq=0)
    produce(lua, [(b"k", b"a")], pid="p1", seq=2)  # the last batch is seq 2; 3 would come next
    with pytest.raises(ResponseError) as info:
        produce(lua, [(b"k", b"a")], pid="p1", seq=seq)
    assert code_of(info.value) == "OUTOFORDER"
    assert r.xlen(LOG) == 3


def test_a_retry_of_any_of_the_last_five_batches_answers_its_original_offsets_and_ms(r, lua):
    """Kafka's ProducerStateEntry keeps a producer's last 5 batches: a retry of any of them (same
    first and last sequence) gets that batch's first offset and append ms back, nothing
    appended; an older batch, or a remembered first sequence with another length, is OUTOFORDER."""
    init(lua)
    stored = []
    for b in range(7):  # batches of 2 records: sequences 0-1, 2-3, ..., 12-13
        stored.append(produce(lua, [(b"k", b"%d" % b)] * 2, pid="p1", seq=2 * b))
        time.sleep(0.002)  # distinct append ms per batch
    assert [p.first for p in stored] == list(range(0, 14, 2))
    for b in range(2, 7):
        again = produce(lua, [(b"k", b"x")] * 2, pid="p1", seq=2 * b)
        assert (again.first, again.duplicate, again.append_ms) == (stored[b].first, True, stored[b].append_ms)
    for seq, n in [(0, 2), (2, 2), (4, 1), (4, 3), (6, 4)]:  # older than the 5, or not the same batch
        with pytest.raises(ResponseError) as info:
            produce(lua, [(b"k", b"x")] * n, pid="p1", seq=seq)
        assert code_of(info.value) == "OUTOFORDER", (seq, n)
        assert "its last batches here: 4-5, 6-7, 8-9, 10-11, 12-13" in str(info.value)
    assert r.xlen(LOG) == 14
    assert produce(lua, [(b"k", b"next")], pid="p1", seq=14).first == 14
    state = r.hget(keys.producer_state(T, 0), "p1").decode()
    assert [e.split(" ")[:2] for e in state.split(";")] == [["6", "7"], ["8", "9"], ["10", "11"], ["12", "13"],
                                                            ["14", "14"]]  # fmt: skip


def test_a_call_of_several_batches_is_remembered_batch_by_batch(r, lua):
    """The gateway's call of k batches of one producer id: each batch is remembered on its own, so
    the whole call again, or any one of its batches alone, is a retry; one retried batch together
    with a new one is refused."""
    init(lua)
    pair = [scripts.ProduceBatch("p1", 0, 2, True, "", [b"k", b"a", b"k", b"b"]),
            scripts.ProduceBatch("p1", 2, 1, True, "", [b"k", b"c"])]  # fmt: skip
    lua(scripts.produce_batches(TP, pair, **_OPTIONS))
    again = scripts.Produced.parse_all(lua(scripts.produce_batches(TP, pair, **_OPTIONS)))
    assert [(p.first, p.duplicate) for p in again] == [(0, True), (2, True)]
    second = scripts.Produced.parse_all(lua(scripts.produce_batches(TP, pair[1:], **_OPTIONS)))
    assert [(p.first, p.duplicate) for p in second] == [(2, True)]
    mixed = [pair[1], scripts.ProduceBatch("p1", 3, 1, True, "", [b"k", b"d"])]
    with pytest.raises(ResponseError, match="OUTOFORDER.*in one call with new batches"):
        lua(scripts.produce_batches(TP, mixed, **_OPTIONS))
    assert r.xlen(LOG) == 3


def test_sequences_wrap_from_int32_max_to_zero(r, lua):
    """Kafka's sequences are int32: after 2147483647 comes 0 (DefaultRecordBatch.incrementSequence),
    also inside a batch; a sequence beyond int32 is BADARG."""
    init(lua)
    top = 2**31 - 1
    produce(lua, [(b"k", b"a")] * 2, pid="p1", seq=top - 2)  # top-2, top-1
    across = produce(lua, [(b"k", b"b")] * 3, pid="p1", seq=top)  # top, 0, 1
    assert across.first == 2
    assert produce(lua, [(b"k", b"c")], pid="p1", seq=2).first == 5
    assert produce(lua, [(b"k", b"b")] * 3, pid="p1", seq=top).duplicate  # the wrapping batch retried
    with pytest.raises(ResponseError, match="OUTOFORDER"):
        produce(lua, [(b"k", b"d")], pid="p1", seq=0)
    produce(lua, [(b"k", b"a")], pid="p2", seq=top)
    assert produce(lua, [(b"k", b"e")], pid="p2", seq=0).first == 7
    with pytest.raises(ResponseError) as info:
        produce(lua, [(b"k", b"a")], pid="p3", seq=top + 1)
    assert code_of(info.value) == "BADARG" and "0 to 2147483647" in str(info.value)
    assert r.xlen(LOG) == 8


def test_create_times_are_stored_exactly_up_to_2_pow_53_minus_1_and_refused_beyond(r, lua):
    """A create time passes through Lua as a double: up to 2^53-1 it is stored exactly (the record's
    "ts" field, append ms minus it); beyond, and below 0, the call is BADARG, nothing stored."""
    init(lua)
    top = 2**53 - 1
    produce(lua, [(b"k", b"a")], times=f"{top} 1")
    (eid, fields), = entries(r)
    assert int(eid.split("-")[0]) - int(fields[b"ts"]) == top
    for bad in (2**53, 2**53 + 1, 10**19, -1):
        with pytest.raises(ResponseError) as info:
            produce(lua, [(b"k", b"b")], times=f"{bad} 1")
        assert code_of(info.value) == "BADARG" and "0 to 9007199254740991" in str(info.value)
    assert r.xlen(LOG) == 1


def test_produce_keeps_the_largest_timestamp_and_its_first_offset(r, lua):
    """KEYS[7]: the largest create time appended and the first offset with it, never lowered; a
    record dropped as a repeated dedup id does not count; LogAppendTime records (no create times)
    count with their append ms, the latest record with it."""
    init(lua)
    maxts = keys.max_timestamp(T, 0)
    produce(lua, [(b"k", b"a")] * 6, times="1000 1 5000 2 3000 1 5000 1 2000 1")
    assert r.get(maxts) == b"5000 1"
    produce(lua, [(b"k", b"b")], times="4000 1")
    assert r.get(maxts) == b"5000 1"
    produce(lua, [("d1", [b"value", b"x"]), ("d1", [b"value", b"y"])], times="6000 1 7000 1")
    assert r.get(maxts) == b"6000 7"  # the second (7000) was a repeat of d1: not stored
    produce(lua, [(b"k", b"c")] * 2, times="")
    (last_id, _), = r.xrevrange(LOG, count=1)
    ms, offset = last_id.decode().split("-")
    assert r.get(maxts).decode() == f"{ms} {offset}" and offset == "9"


_OPTIONS = {"max_len": None, "retention_ms": None, "acked": False, "producer_id_expiry_ms": 3_600_000,
            "dedup_window_ms": 60_000, "dedup_max_ids": 1000}  # fmt: skip


def test_produce_checks_every_batch_before_writing_any(r, lua):
    """A call of several batches (the gateway's: one Kafka partition's batches) is all or nothing:
    a later batch with a bad shape (create time runs not covering it, an odd field count) or a
    sequence that does not follow the earlier batch is refused before the first XADD, leaving no
    record and no producer state; the good pair then goes in at dense offsets, and the same call
    again is a retry answered with the same offsets per batch."""
    init(lua)
    now = int(time.time() * 1000)
    good = scripts.ProduceBatch("p1", 0, 1, True, f"{now} 1", [b"k", b"a"])
    refused = [
        (scripts.ProduceBatch("", 0, 2, True, f"{now} 1", [b"k", b"b", b"k", b"c"]), "BADARG"),
        (scripts.ProduceBatch("", 0, 1, False, "", ["", 3, b"value", b"b", b"h:x"]), "BADARG"),
        (scripts.ProduceBatch("p1", 5, 1, True, "", [b"k", b"b"]), "OUTOFORDER"),
        (scripts.ProduceBatch("p1", 0, 1, True, "", [b"k", b"b"]), "OUTOFORDER"),
    ]
    for second, code in refused:
        with pytest.raises(ResponseError) as info:
            lua(scripts.produce_batches(TP, [good, second], **_OPTIONS))
        assert code_of(info.value) == code, second
    assert r.xlen(LOG) == 0 and not r.exists(keys.producer_state(T, 0))
    pair = [good, scripts.ProduceBatch("p1", 1, 2, False, "", ["", 2, b"value", b"b", "", 4, b"key", b"k", b"nv", b""])]
    stored = scripts.Produced.parse_all(lua(scripts.produce_batches(TP, pair, **_OPTIONS)))
    assert [(p.first, p.duplicate) for p in stored] == [(0, False), (1, False)]
    again = scripts.Produced.parse_all(lua(scripts.produce_batches(TP, pair, **_OPTIONS)))
    assert [(p.offset(0), p.duplicate, p.append_ms) for p in again] == [(0, True, stored[0].append_ms),
                                                                         (1, True, stored[0].append_ms)]  # fmt: skip
    assert offsets_of(entries(r)) == [0, 1, 2]


def test_producer_state_expires_by_its_own_expiry_not_the_callers(r, lua):
    init(lua)
    produce(lua, [(b"k", b"a")], pid="long-lived", seq=0, producer_id_expiry_ms=3_600_000)
    # Another producer with a 1 s expiry, long after: it must not expire the first one's state.
    time.sleep(1.1)
    produce(lua, [(b"k", b"b")], pid="short", seq=0, producer_id_expiry_ms=1000)
    assert r.hexists(keys.producer_state(T, 0), "long-lived")
    again = produce(lua, [(b"k", b"a")], pid="long-lived", seq=0)
    assert again.duplicate and r.xlen(LOG) == 2
    time.sleep(1.1)
    produce(lua, [(b"k", b"c")], pid="third", seq=0)
    assert not r.hexists(keys.producer_state(T, 0), "short")  # its own expiry passed


def test_a_repeated_dedup_id_returns_the_original_offset(r, lua):
    init(lua)
    produced = produce(lua, [("d1", [b"value", b"a"]), ("d2", [b"value", b"b"]), ("d1", [b"value", b"c"])])
    assert produced.offsets == (0, 1, 0) and r.xlen(LOG) == 2
    again = produce(lua, [("", [b"value", b"x"]), ("d2", [b"value", b"b"])])
    assert again.offsets == (2, 1)


def test_dedup_ids_expire_with_their_own_window(r, lua):
    init(lua)
    produce(lua, [("d1", [b"value", b"a"])], dedup_window_ms=200)
    produce(lua, [("d2", [b"value", b"a"])], dedup_window_ms=60_000)
    time.sleep(0.3)
    assert produce(lua, [("d1", [b"value", b"a"]), ("d2", [b"value", b"a"])]).offsets == (2, 1)


def test_the_dedup_cap_is_the_topics_and_bounded_per_call(r, lua):
    init(lua)
    produce(lua, [(f"d{i}", [b"value", b"x"]) for i in range(50)], dedup_max_ids=1000)
    produce(lua, [("last", [b"value", b"x"])], dedup_max_ids=10)
    assert r.zcard(keys.dedup_index(T, 0)) == 10 and r.hexists(keys.dedup(T, 0), "last")
    produce(lua, [(f"e{i}", [b"value", b"x"]) for i in range(200)], dedup_max_ids=1000)
    produce(lua, [("one", [b"value", b"x"])], dedup_max_ids=10)
    assert r.zcard(keys.dedup_index(T, 0)) == 211 - 65  # at most the batch + 64 dropped per call


def test_ack_aware_retention_never_trims_what_a_group_has_not_committed(r, lua):
    init(lua)
    produce(lua, [[b"value", b"x"]] * 300)
    r.xgroup_create(LOG, "slow", id="0")
    r.hset(keys.committed(T, 0), "slow", 120)
    for _ in range(3):
        produce(lua, [[b"value", b"y"]] * 200, max_len=10, acked=True)
    remaining = offsets_of(entries(r))
    assert remaining[0] <= 120 and remaining[-1] == 899
    assert len(remaining) < 900  # committed records went
    produce(lua, [[b"value", b"y"]] * 200, max_len=10, retention_ms=1, acked=True)
    assert offsets_of(entries(r))[0] <= 120
    r.hset(keys.committed(T, 0), "slow", 1100)
    produce(lua, [[b"value", b"z"]], max_len=10, acked=True)
    assert r.xlen(LOG) < 300


# --- topics ------------------------------------------------------------------------------------


def test_partition_init_creates_an_empty_stream_once(r, lua):
    assert lua(scripts.partition_init(T, 0)) == 1
    assert r.xlen(LOG) == 0 and r.xinfo_groups(LOG) == []
    assert lua(scripts.partition_init(T, 0)) == 0


def topic_json(partitions, **kw):
    return json.dumps({"name": T, "partitions": partitions, "created_ms": 0, "layout": 2, **kw})


def test_topic_register_create_then_alter(r, lua):
    stored = json.loads(lua(scripts.topic_register(T, topic_json(2), "create")))
    assert stored["created_ms"] > 1_600_000_000_000
    with pytest.raises(ResponseError) as info:
        lua(scripts.topic_register(T, topic_json(3), "create"))
    assert code_of(info.value) == "TOPICEXISTS"
    grown = json.loads(lua(scripts.topic_register(T, topic_json(4, layout=9), "alter")))
    assert (grown["partitions"], grown["created_ms"], grown["layout"]) == (4, stored["created_ms"], 2)
    for n in (4, 1):
        with pytest.raises(ResponseError) as info:
            lua(scripts.topic_register(T, topic_json(n), "alter"))
        assert code_of(info.value) == "BADARG"


# --- offsets: lookups, positions, trimming -----------------------------------------------------


@pytest.fixture
def spread(r, lua):
    """A partition of 60 records over several milliseconds (some sharing one), offsets 0..59."""
    init(lua)
    base = int(time.time() * 1000) - 100_000
    for i in range(60):
        r.xadd(LOG, {"value": str(i)}, id=f"{base + (i // 3) * 7}-{i}")
    return base


@pytest.mark.parametrize("target", [0, 1, 2, 3, 17, 58, 59, 60])
def test_a_seek_to_any_offset_reads_that_record_next(r, lua, spread, target):
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    moved = scripts.Positioned.parse(
        lua(scripts.set_position(TP, G, "a|1", target, "none", commit=False, exactly_once=False))
    )
    assert moved.position == target
    got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 3)))
    assert offsets_of(got.entries) == list(range(target, min(target + 3, 60)))


def test_lookups_skip_holes_left_by_deleted_records(r, lua, spread):
    r.xdel(LOG, *[eid for eid, _ in entries(r)][10:20])
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.set_position(TP, G, "a|1", 12, "none", commit=False, exactly_once=False))
    assert offsets_of(scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 2))).entries) == [20, 21]


@pytest.mark.parametrize(
    "policy,target,expected",
    [
        ("earliest", 100, 5),
        ("latest", 100, 60),
        ("earliest", 2, 5),
        ("latest", 2, 60),
        ("clamp", 100, 60),
        ("clamp", 2, 5),
    ],
)
def test_positions_outside_the_log_follow_auto_offset_reset(r, lua, spread, policy, target, expected):
    r.xtrim(LOG, minid=entries(r)[5][0], approximate=False)  # log start is now offset 5
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    moved = scripts.Positioned.parse(
        lua(scripts.set_position(TP, G, "a|1", target, policy, commit=False, exactly_once=False))
    )
    assert moved.position == expected


def test_a_position_outside_the_log_with_policy_none_is_refused_and_changes_nothing(r, lua, spread):
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    for target in (61, 10**9):
        with pytest.raises(ResponseError) as info:
            lua(scripts.set_position(TP, G, "a|1", target, "none", commit=False, exactly_once=False))
        assert code_of(info.value) == "OUTOFRANGE"
    assert r.xinfo_groups(LOG)[0]["entries-read"] == 0


def test_set_position_by_time_and_to_the_ends(r, lua, spread):
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    at = scripts.Positioned.parse(
        lua(
            scripts.set_position(
                TP, G, "a|1", f"time:{spread + 7 * 4}", "none", commit=False, exactly_once=False
            )
        )
    )
    assert at.position == 12
    assert (
        scripts.Positioned.parse(
            lua(scripts.set_position(TP, G, "a|1", "latest", "none", commit=False, exactly_once=False))
        ).position
        == 60
    )
    assert (
        scripts.Positioned.parse(
            lua(scripts.set_position(TP, G, "a|1", "earliest", "none", commit=False, exactly_once=False))
        ).position
        == 0
    )


def test_set_position_is_fenced_for_a_non_owner(r, lua, spread):
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    with pytest.raises(ResponseError) as info:
        lua(scripts.set_position(TP, G, "b|2", 0, "none", commit=False, exactly_once=False))
    assert code_of(info.value) == "FENCED"


def test_an_operators_reset_commits_and_clears_a_dead_owner(r, lua, spread):
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    moved = scripts.Positioned.parse(
        lua(scripts.set_position(TP, G, "", 40, "clamp", commit=True, exactly_once=False))
    )
    assert (moved.previous, moved.position) == (0, 40)
    assert r.hget(OFF, G) == b"40" and r.hget(OWN, G) is None


def test_exactly_once_positions_never_go_below_the_processed_mark(r, lua, spread):
    r.hset(DONE, G, 30)
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "a|1", "", "earliest", True)))
    assert claimed.position == 30
    moved = scripts.Positioned.parse(
        lua(scripts.set_position(TP, G, "a|1", 0, "none", commit=False, exactly_once=True))
    )
    assert moved.position == 30


def test_lookups_are_bounded_on_a_partition_spanning_years(r, lua):
    # One record per "day" for ~5 years, and 3000 in the last millisecond: the binary search over
    # the ms part takes a bounded number of probes whatever the spread.
    init(lua)
    pipe = r.pipeline(transaction=False)
    start = 1_600_000_000_000
    for i in range(2000):
        pipe.xadd(LOG, {"value": "x"}, id=f"{start + i * 86_400_000}-{i}")
    last = start + 2000 * 86_400_000
    for i in range(2000, 5000):
        pipe.xadd(LOG, {"value": "x"}, id=f"{last}-{i}")
    pipe.execute()
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    for target in (0, 1, 999, 1999, 2000, 2001, 4321, 4999, 5000):
        r.config_resetstat()
        moved = scripts.Positioned.parse(
            lua(scripts.set_position(TP, G, "a|1", target, "none", commit=False, exactly_once=False))
        )
        assert moved.position == target
        stats = r.info("commandstats")
        probes = stats.get("cmdstat_xrange", {}).get("calls", 0) + stats.get("cmdstat_xrevrange", {}).get(
            "calls", 0
        )
        assert probes <= 64, (target, probes)
        got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 1)))
        assert offsets_of(got.entries) == ([target] if target < 5000 else [])


def test_trim_before_removes_below_an_offset_in_bounded_steps(r, lua):
    init(lua)
    produce(lua, [[b"value", b"x"]] * 1000)
    calls = 0
    while True:
        calls += 1
        start, done = lua(scripts.trim_before(TP, 777, limit=300))
        if done:
            break
        assert calls < 20
    assert start == 777 and offsets_of(entries(r))[0] == 777 and calls > 1
    assert produce(lua, [[b"value", b"y"]]).first == 1000
    assert lua(scripts.trim_before(TP, None))[0] == 1001  # all: the log start is the log end


def test_log_read_returns_bounds_and_records_from_an_offset_with_or_without_a_hint(r, lua):
    init(lua)
    assert lua(scripts.log_read(TP, 0, 10)) == [0, 0, b"0-0", []]
    for _ in range(5):
        produce(lua, [[b"value", b"x"]] * 200)
    lua(scripts.trim_before(TP, 100))
    got = scripts.LogRead.parse(lua(scripts.log_read(TP, 537, 3)))
    assert (got.log_start, got.high_watermark) == (100, 1000)
    assert offsets_of(got.entries) == [537, 538, 539]
    hint = got.entries[-1][0].decode()
    assert offsets_of(scripts.LogRead.parse(lua(scripts.log_read(TP, 540, 2, hint))).entries) == [540, 541]
    # A hint that is not the entry of offset - 1 is ignored, not trusted.
    assert offsets_of(scripts.LogRead.parse(lua(scripts.log_read(TP, 700, 1, hint))).entries) == [700]
    assert offsets_of(scripts.LogRead.parse(lua(scripts.log_read(TP, 700, 1, "1-699"))).entries) == [700]
    # Outside [log start, high watermark): no records, the bounds say why.
    for outside in (99, 1000, 5000):
        assert scripts.LogRead.parse(lua(scripts.log_read(TP, outside, 5))).entries == []
    with pytest.raises(ResponseError, match="NOTOPIC"):
        lua(scripts.log_read(TopicPartition("missing", 0), 0, 1))


# --- ownership, fetch, commit ------------------------------------------------------------------


def test_claim_a_free_partition_starts_where_auto_offset_reset_says(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 4)
    latest = scripts.Claimed.parse(lua(scripts.claim(TP, G, "a|1", "", "latest", False)))
    assert (latest.ok, latest.position) == (True, 4)
    other = TopicPartition(T, 0)
    earliest = scripts.Claimed.parse(lua(scripts.claim(other, "g2", "a|1", "", "earliest", False)))
    assert earliest.position == 0
    with pytest.raises(ResponseError) as info:
        lua(scripts.claim(TP, "g3", "a|1", "", "none", False))
    assert code_of(info.value) == "NOOFFSET"


def test_claim_starts_at_the_committed_offset(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 10)
    r.hset(OFF, G, "6 some metadata")
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "a|1", "", "latest", False)))
    assert claimed.position == 6
    assert offsets_of(scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 10))).entries) == [6, 7, 8, 9]


def test_claim_is_a_cas_on_the_owner_token(r, lua):
    init(lua)
    assert scripts.Claimed.parse(lua(scripts.claim(TP, G, "a|1", "", "earliest", False))).ok
    held = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "", "earliest", False)))
    assert (held.ok, held.holder) == (False, "a|1")
    wrong = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "c|3", "earliest", False)))
    assert not wrong.ok  # expected someone else: refused
    assert scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False))).ok
    assert r.hget(OWN, G) == b"b|2"


def test_release_only_by_the_owner(r, lua):
    init(lua)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    assert lua(scripts.release(TP, G, "b|2")) == 0 and r.hget(OWN, G) == b"a|1"
    assert lua(scripts.release(TP, G, "a|1")) == 1 and r.hget(OWN, G) is None


def test_fetch_with_a_wrong_token_is_fenced_and_changes_nothing(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 3)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    with pytest.raises(ResponseError) as info:
        lua(scripts.fetch(TP, G, "b|2", 10, commit=3))
    assert code_of(info.value) == "FENCED"
    assert r.hget(OFF, G) is None and r.xinfo_groups(LOG)[0]["entries-read"] == 0


def test_fetch_keeps_no_pending_list_and_carries_a_commit(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 5)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 3)))
    assert offsets_of(got.entries) == [0, 1, 2] and got.position_id == ""
    assert r.xpending(LOG, G)["pending"] == 0
    got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 10, commit=3)))
    assert offsets_of(got.entries) == [3, 4] and r.hget(OFF, G) == b"3"
    info = r.xinfo_groups(LOG)[0]
    assert (info["entries-read"], info["lag"]) == (5, 0)


def test_fetch_from_an_offset_moves_the_position_first(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 5)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 5))
    got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 2, start=1)))
    assert offsets_of(got.entries) == [1, 2]
    empty = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 2, start=5)))
    assert empty.entries == [] and empty.position_id == entries(r)[-1][0]


def test_at_most_once_reads_commit_what_they_read(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 4)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 3, noack=True))
    assert r.hget(OFF, G) == b"3"


def test_commit_is_cumulative_and_fenced_per_partition(r, lua):
    other = TopicPartition(T, 1)
    init(lua)
    init(lua, other)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.claim(other, G, "b|2", "", "earliest", False))
    out = lua(scripts.commit(G, [(TP, "a|1", 7, True, "meta"), (other, "a|1", 3, False, "")]))
    assert out[0] == 1 and isinstance(out[1], ResponseError) and code_of(out[1]) == "FENCED"
    assert r.hget(OFF, G) == b"7 meta" and r.hget(DONE, G) == b"7"
    assert r.hget(keys.committed(T, 1), G) is None  # fenced: nothing changed there
    lua(scripts.commit(G, [(TP, "a|1", 5, True, "")]))
    assert (r.hget(OFF, G), r.hget(DONE, G)) == (b"5", b"7")  # the processed mark only rises


def test_a_commit_retried_after_a_lost_reply_is_recognised_after_a_takeover(r, lua):
    init(lua)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    call = scripts.commit(G, [(TP, "a|1", 4, False, "")], "c-1")
    assert lua(call) == [1]  # applied; its reply "lost"
    lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False))  # a's session ended meanwhile
    assert lua(call) == [1]  # the retry: the same commit, applied before
    other = scripts.commit(G, [(TP, "a|1", 5, False, "")], "c-2")
    assert code_of(lua(other)[0]) == "FENCED" and r.hget(OFF, G) == b"4"


def test_commit_without_an_owner_only_for_a_group_without_live_owner(r, lua):
    init(lua)
    assert lua(scripts.commit(G, [(TP, "", 2, False, "")])) == [1]
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    assert code_of(lua(scripts.commit(G, [(TP, "", 1, False, "")]))[0]) == "FENCED"


# --- delivery counts: handovers and failures ---------------------------------------------------


def test_a_handover_counts_only_records_handed_to_the_application(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 10)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 10, handed="3"))  # read 10 ahead, the application had 0..3
    lua(scripts.commit(G, [(TP, "a|1", 2, False, "")]))
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False)))
    assert claimed.position == 2 and claimed.redelivered == ((2, 3),) and claimed.failures == {}


def test_a_record_handed_out_alone_when_its_consumer_died_counts_as_a_failure(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 10)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 1, handed="reads"))
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False)))
    assert claimed.redelivered == ((0, 0),) and claimed.failures == {0: 1}


def test_fail_counts_one_record_only(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 10)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 10, handed="read"))
    got = scripts.Fetched.parse(lua(scripts.fetch(TP, G, "a|1", 10, start=4, failed=[4], handed="read")))
    assert offsets_of(got.entries)[0] == 4
    lua(scripts.commit(G, [(TP, "a|1", 10, False, "")]))
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False)))
    assert claimed.redelivered == () and claimed.failures == {}  # all committed: forgotten
    assert r.hget(DLV, f"{G}:f") is None


def test_a_fail_report_sent_again_after_a_lost_reply_counts_once(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 5)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 5, handed="read"))
    # The report's reply was lost and the client sends the same report again: one failure, one
    # more delivery; its next failure (count 2) counts.
    for _ in range(2):
        lua(scripts.fetch(TP, G, "a|1", 5, start=2, failed=[(2, 1)], handed="read"))
    assert r.hget(DLV, f"{G}:f") == b"2 1" and r.hget(DLV, f"{G}:r") == b"2 2"
    lua(scripts.fetch(TP, G, "a|1", 5, start=2, failed=[(2, 2)], handed="read"))
    assert r.hget(DLV, f"{G}:f") == b"2 2" and r.hget(DLV, f"{G}:r") == b"2 2 2 2"
    # A bare offset is one more failure each time.
    lua(scripts.fetch(TP, G, "a|1", 5, start=3, failed=[3], handed="read"))
    lua(scripts.fetch(TP, G, "a|1", 5, start=3, failed=[3], handed="read"))
    assert r.hget(DLV, f"{G}:f") == b"2 2 3 2"


def test_delivery_state_stays_bounded(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 300)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    for i in range(200):
        lua(scripts.fetch(TP, G, "a|1", 1, start=i, failed=[i]))
    assert len(r.hget(DLV, f"{G}:f").split()) <= 128 and len(r.hget(DLV, f"{G}:r").split()) <= 128


# --- transact ----------------------------------------------------------------------------------


def test_transact_appends_outputs_and_commits_once(r, lua):
    out_tp = TopicPartition("out", 0)
    init(lua)
    init(lua, out_tp)
    produce(lua, [(b"k", b"v")] * 3)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    outputs = [
        scripts.Output(keys.stream("out", 0), None, None, 1000, [b"key", b"k", b"value", b"x", b"h:a", b"1"])
    ] * 2
    call = scripts.transact(TP, G, "a|1", "a|1#0", commit=3, mark=True, dead=[], outputs=outputs)
    assert scripts.Transacted.parse(lua(call)) == scripts.Transacted([0, 1], False)
    assert scripts.Transacted.parse(lua(call)) == scripts.Transacted([], True)  # a retry: nothing again
    assert r.xlen(keys.stream("out", 0)) == 2 and r.hget(OFF, G) == b"3" and r.hget(DONE, G) == b"3"
    stored = entries(r, keys.stream("out", 0))[0][1]
    assert list(stored) == [b"key", b"value", b"ts", b"h:a"]


def test_transact_is_fenced_and_checks_outputs_before_writing(r, lua):
    init(lua)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    outputs = [scripts.Output(keys.stream("missing", 0), None, None, None, [b"value", b"x"])]
    with pytest.raises(ResponseError) as info:
        lua(scripts.transact(TP, G, "a|1", "t1", commit=1, mark=False, dead=[], outputs=outputs))
    assert code_of(info.value) == "NOTOPIC" and r.hget(OFF, G) is None
    with pytest.raises(ResponseError) as info:
        lua(scripts.transact(TP, G, "b|2", "t2", commit=1, mark=False, dead=[], outputs=[]))
    assert code_of(info.value) == "FENCED"


def test_dead_lettering_marks_records_dead_without_committing(r, lua):
    dlq = TopicPartition("orders.dlq", 0)
    init(lua)
    init(lua, dlq)
    produce(lua, [(b"k", b"v")] * 3)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 3, handed="read"))
    lua(scripts.fetch(TP, G, "a|1", 0, start=1, failed=[1]))  # fail(): its first failure
    out = [scripts.Output(keys.stream(dlq.topic, 0), None, None, None, [b"value", b"v"])]
    done = lua(scripts.transact(TP, G, "a|1", "t1", commit=None, mark=False, dead=[1], outputs=out, need=1))
    assert scripts.Transacted.parse(done) == scripts.Transacted([0], False)
    assert r.hget(OFF, G) is None and r.xlen(keys.stream(dlq.topic, 0)) == 1
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False)))
    assert claimed.failures == {1: -1}


def test_dead_letters_take_only_records_that_failed_max_deliveries_times(r, lua):
    dlq = TopicPartition("orders.dlq", 0)
    init(lua)
    init(lua, dlq)
    produce(lua, [(b"k", b"v")] * 5)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 5, handed="read"))
    lua(scripts.fetch(TP, G, "a|1", 5, start=2, failed=[2], handed="read"))  # 2 fails; 3, 4 read again
    lua(scripts.fetch(TP, G, "a|1", 5, start=2, failed=[2], handed="read"))
    out = [scripts.Output(keys.stream(dlq.topic, 0), None, None, None, [b"value", b"v"])]

    def dead_letter(offsets, txn, need=2):
        call = scripts.transact(TP, G, "a|1", txn, commit=None, mark=False, dead=offsets, outputs=out * len(offsets),
                                need=need)  # fmt: skip
        return scripts.Transacted.parse(lua(call))

    # Records read again behind a failed one, or failed fewer times than asked, are refused, and
    # nothing is written: the dead letters take only what the application failed (or crashed on).
    assert dead_letter([2, 3], "t1").refused == ((3, 0),)
    assert dead_letter([2], "t2", need=3).refused == ((2, 2),)
    assert dead_letter([2], "t3", need=None).refused == ((2, 2),)
    assert r.xlen(keys.stream(dlq.topic, 0)) == 0 and r.hget(DLV, f"{G}:f") == b"2 2"
    assert dead_letter([2], "t4") == scripts.Transacted([0], False)
    assert dead_letter([2], "t5").refused == ((2, None),)  # dead already: not twice
    assert r.xlen(keys.stream(dlq.topic, 0)) == 1


def test_a_clean_release_leaves_a_record_handed_out_alone_a_delivery_not_a_failure(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")] * 3)
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 1, handed="reads"))
    assert lua(scripts.release(TP, G, "a|1", clean=True)) == 1  # close() or a revoke: no crash
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "", "earliest", False)))
    assert claimed.redelivered == ((0, 0),) and claimed.failures == {}
    lua(scripts.fetch(TP, G, "b|2", 1, handed="reads"))
    assert lua(scripts.release(TP, G, "b|2")) == 1  # going down with an exception: a crash
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "c|3", "", "earliest", False)))
    assert claimed.redelivered == ((0, 0), (0, 0)) and claimed.failures == {0: 1}


def test_a_record_handed_out_alone_did_not_crash_a_consumer_that_reads_again(r, lua):
    init(lua)
    produce(lua, [(b"k", b"v")])
    lua(scripts.claim(TP, G, "a|1", "", "earliest", False))
    lua(scripts.fetch(TP, G, "a|1", 1, handed="reads"))
    lua(scripts.fetch(TP, G, "a|1", 1, handed="read"))  # the next poll: nothing new, but it came back
    claimed = scripts.Claimed.parse(lua(scripts.claim(TP, G, "b|2", "a|1", "earliest", False)))
    assert claimed.redelivered == ((0, 0),) and claimed.failures == {}


# --- group membership --------------------------------------------------------------------------


def join(lua, member, nonce="n", session_ms=10_000, meta=None, mode=""):
    return lua(scripts.group_join(G, member, nonce, meta or {"topics": [T]}, session_ms, mode, "facade"))


def beat(lua, member, nonce="n", session_ms=10_000, known=""):
    return scripts.Heartbeat.parse(lua(scripts.group_heartbeat(G, member, nonce, session_ms, known)))


def generation(r):
    return int(r.hget(keys.group_state(G), "generation"))


def test_join_starts_a_generation_and_heartbeats_list_members_until_an_assignment(r, lua):
    assert join(lua, "a") == 1 and join(lua, "b") == 2
    hb = beat(lua, "a")
    assert (hb.generation, hb.assignment_generation, set(hb.members)) == (2, "", {"a", "b"})
    assert lua(scripts.group_sync(G, 2, {"a": [TP], "b": []})) == 1
    assert lua(scripts.group_sync(G, 2, {"a": [], "b": [TP]})) == 0  # first writer wins
    hb = beat(lua, "b")
    assert (hb.assignment_generation, hb.assignment, hb.members) == ("2", {"a": [TP], "b": []}, {})
    assert beat(lua, "b", known="2").assignment is None  # unchanged: not sent again


def test_sync_refuses_stale_generations_and_unknown_members(r, lua):
    join(lua, "a")
    assert lua(scripts.group_sync(G, 0, {"a": [TP]})) == 0
    assert lua(scripts.group_sync(G, 2, {"a": [TP]})) == 0
    assert lua(scripts.group_sync(G, 1, {"a": [TP], "ghost": []})) == 0  # never names a non-member
    assert not r.hexists(keys.group_state(G), "assignment")


def test_every_removal_starts_a_new_generation_and_drops_the_assignment(r, lua):
    join(lua, "a")
    join(lua, "b", session_ms=200)
    lua(scripts.group_sync(G, 2, {"a": [], "b": [TP]}))
    time.sleep(0.3)
    hb = beat(lua, "a")
    assert (hb.generation, hb.assignment_generation, hb.previous) == (3, "", {"a": [], "b": [TP]})
    assert not r.hexists(keys.group_state(G), "assignment")
    with pytest.raises(ResponseError) as info:
        beat(lua, "b")
    assert code_of(info.value) == "UNKNOWNMEMBER"


def test_a_static_member_back_after_expiry_starts_a_generation(r, lua):
    # The orphaned-partitions bug: a static member coming back with unchanged metadata, while the
    # join itself removes an expired member, must not keep an assignment naming that member.
    join(lua, "s", nonce="1", mode="static")
    join(lua, "dead", session_ms=200)
    lua(scripts.group_sync(G, 2, {"s": [], "dead": [TP]}))
    time.sleep(0.3)
    assert join(lua, "s", nonce="2", mode="static") == 3
    assert not r.hexists(keys.group_state(G), "assignment")


def test_a_static_restart_within_its_session_keeps_the_generation_and_fences_the_old_process(r, lua):
    join(lua, "s", nonce="old", mode="static")
    lua(scripts.group_sync(G, 1, {"s": [TP]}))
    assert join(lua, "s", nonce="new", mode="static") == 1
    assert beat(lua, "s", nonce="new").assignment == {"s": [TP]}
    with pytest.raises(ResponseError) as info:
        beat(lua, "s", nonce="old")
    assert code_of(info.value) == "FENCEDINSTANCE"
    assert lua(scripts.group_alive(G, ["s|old", "s|new"])) == [0, 1]
    assert lua(scripts.group_leave(G, "s", "old")) == 0  # the old process cannot end the new session


def test_group_alive_ends_expired_sessions_for_good(r, lua):
    join(lua, "a", nonce="1", session_ms=200)
    assert lua(scripts.group_alive(G, ["a|1", "a|2", "nobody|x"])) == [1, 0, 0]
    time.sleep(0.3)
    assert lua(scripts.group_alive(G, ["a|1"])) == [0]
    join(lua, "a", nonce="3")
    assert lua(scripts.group_alive(G, ["a|1", "a|3"])) == [0, 1]


def test_rebalance_keeps_the_session_and_needs_it(r, lua):
    join(lua, "a", nonce="1")
    assert join(lua, "a", nonce="1", mode="rebalance") == 2
    with pytest.raises(ResponseError) as info:
        join(lua, "a", nonce="other", mode="rebalance")
    assert code_of(info.value) == "UNKNOWNMEMBER"


def test_leave_ends_only_that_session(r, lua):
    join(lua, "a")
    join(lua, "b")
    assert lua(scripts.group_leave(G, "a", "n")) == 3
    assert r.hkeys(keys.group_members(G)) == [b"b"]
    assert lua(scripts.group_leave(G, "a", "n")) == 0 and generation(r) == 3


def test_group_lock_refuses_live_members_and_keeps_joins_out(r, lua):
    join(lua, "a")
    with pytest.raises(ResponseError) as info:
        lua(scripts.group_lock(G, True))
    assert code_of(info.value) == "GROUPBUSY" and "a" in str(info.value)
    lua(scripts.group_leave(G, "a", "n"))
    assert lua(scripts.group_lock(G, True, 5000)) == 1
    with pytest.raises(ResponseError) as info:
        join(lua, "b")
    assert code_of(info.value) == "GROUPLOCKED"
    lua(scripts.group_lock(G, False))
    assert join(lua, "b") > 0


def test_a_group_of_crashed_members_can_be_locked(r, lua):
    join(lua, "a", session_ms=150)
    time.sleep(0.25)
    assert lua(scripts.group_lock(G, True)) == 1


def test_groups_of_the_other_protocol_are_refused(r, lua):
    join(lua, "a")
    with pytest.raises(ResponseError) as info:
        lua(scripts.group_join(G, "k", "n", {}, 10_000, "", "kafka"))
    assert code_of(info.value) == "GROUPKIND"


def test_group_delete_refuses_while_a_member_is_live(r, lua):
    join(lua, "a")
    with pytest.raises(ResponseError) as info:
        lua(scripts.group_delete(G))
    assert code_of(info.value) == "GROUPBUSY"
    assert isinstance(from_redis(info.value), GroupError)
    lua(scripts.group_leave(G, "a", "n"))
    assert lua(scripts.group_delete(G)) == 1 and r.exists(*keys.group_keys(G)) == 0


def test_member_expiry_is_bounded_per_call(r, lua):
    for i in range(150):
        join(lua, f"m{i}", session_ms=100)
    time.sleep(0.2)
    join(lua, "late")
    assert r.hlen(keys.group_members(G)) == 51  # 100 removed by that call, the rest by the next
    join(lua, "later")
    assert r.hlen(keys.group_members(G)) == 2
