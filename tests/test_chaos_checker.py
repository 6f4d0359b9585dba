"""The chaos checker on hand-written logs: each anomaly class caught, and its look-alikes not.

No server and no processes: each test writes the event files a run would leave (tests/chaos/events.py
documents the format) and checks them. Offsets are dense integers here; one test uses stream IDs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaos import dead_letters
from chaos.check import check
from chaos.events import LogError, read_log
from chaos.history import load
from chaos.offsets import order_key, successor

pytestmark = pytest.mark.timeout(30)

WINDOW = 5.0
T = "t"


def write(directory: Path, name: str, *events: dict) -> None:
    with open(directory / f"{name}.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)


def start(t: float, role: str = "member", instance: str | None = None) -> dict:
    return {"ev": "start", "t": t, "role": role, "instance": instance, "mode": "normal"}


def ack(t: float, p: int, o, k: str, s: int) -> dict:
    return {"ev": "ack", "t": t, "topic": T, "p": p, "o": o, "k": k, "s": s}


def d(t: float, p: int, o, k: str, s: int) -> dict:
    return {"ev": "d", "t": t, "topic": T, "p": p, "o": o, "k": k, "s": s, "m": "x", "g": 1}


def commit(t0: float, t1: float, p: int, nxt, outcome: str = "ok") -> dict:
    key = list(order_key(nxt))
    return {
        "ev": "commit",
        "t": t1,
        "t0": t0,
        "t1": t1,
        "offsets": [[T, p, key]],
        "outcome": outcome,
        "err": "",
    }


def sig(t: float, ev: str, *ps: int) -> dict:
    return {"ev": ev, "t": t, "tps": [[T, p] for p in ps]}


def seek(t: float, p: int, here, to) -> list[dict]:
    return [
        {"ev": "seek", "t": t, "topic": T, "p": p, "from": list(order_key(here)), "to": to, "dir": "x"},
        {"ev": "seek-end", "t": t + 0.01, "topic": T, "p": p, "outcome": "ok", "err": ""},
    ]


def producer(directory: Path, *records: tuple) -> None:
    """Acknowledged records (partition, offset, key, seq), one per 10 ms from t=0."""
    write(directory, "p0.1", start(0, "producer"), *(ack(0.01 * i, *r) for i, r in enumerate(records)))


def anomalies(directory: Path, window: float = WINDOW) -> dict[str, list[str]]:
    result = check(load(directory), window, extra=(dead_letters.check,))
    return {cls: [a.what for a in items] for cls, items in result.anomalies.items() if items}


RECORDS = [(0, i, f"k{i % 2}", i // 2) for i in range(6)]  # partition 0, offsets 0..5, keys k0/k1


# -- lost ------------------------------------------------------------------------------------


def test_lost_record_is_caught(tmp_path):
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS) if r[1] != 3))
    found = anomalies(tmp_path)
    assert found["lost"] == ["k1:1 at t[0]@3 acknowledged, never delivered"], found
    assert "skipped 1 uncommitted record(s) after 2" in found["order"][0]  # the same hole, seen in order


def test_every_record_delivered_is_not_lost_and_a_torn_last_line_is_ignored(tmp_path):
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS)))
    with open(tmp_path / "m0.1.jsonl", "a") as f:
        f.write('{"ev": "d", "t": 9, "top')  # a kill -9 in the middle of a write
    assert anomalies(tmp_path) == {}
    assert read_log(tmp_path / "m0.1.jsonl")[1] is True


def test_a_corrupt_line_that_is_not_the_last_is_an_error(tmp_path):
    (tmp_path / "m0.1.jsonl").write_text('{"ev": "start", "t": 1}\nnot json\n{"ev": "stop", "t": 2}\n')
    with pytest.raises(LogError):
        read_log(tmp_path / "m0.1.jsonl")


def test_records_a_forward_seek_skipped_are_not_lost(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        d(1.1, *RECORDS[0]),
        d(1.2, *RECORDS[1]),
        *seek(1.3, 0, 2, 5),
        d(1.4, *RECORDS[5]),
    )
    assert anomalies(tmp_path) == {}


def test_a_seek_past_the_end_excuses_only_what_was_stored_before_it(tmp_path):
    # Offsets 2..5 were stored before the seek (the consumer may clamp it to the end and skip
    # them); 6 and 7 were appended after it and must still be delivered.
    write(
        tmp_path,
        "p0.1",
        start(0, "producer"),
        *(ack(0.01 * i, *r) for i, r in enumerate(RECORDS)),
        ack(2.0, 0, 6, "k0", 3),
        ack(2.1, 0, 7, "k1", 3),
    )
    past_end = seek(1.3, 0, 2, 1_000_001)
    past_end[0]["dir"] = "past-end"
    write(tmp_path, "m0.1", start(1), d(1.1, *RECORDS[0]), d(1.2, *RECORDS[1]), *past_end)
    found = anomalies(tmp_path)
    assert list(found) == ["lost"] and [w.split(" ")[0] for w in found["lost"]] == ["k0:3", "k1:3"], found


# -- order -----------------------------------------------------------------------------------


def test_going_back_within_a_tenure_is_caught(tmp_path):
    producer(tmp_path, *RECORDS)
    order = [0, 1, 3, 2, 4, 5]
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *RECORDS[j]) for i, j in enumerate(order)))
    found = anomalies(tmp_path)
    assert list(found) == ["order"] and any("went back from 3" in w for w in found["order"]), found


def test_a_seek_back_is_not_an_order_anomaly(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
        commit(1.2, 1.21, 0, 4),
        *seek(1.3, 0, 4, 2),
        d(1.4, *RECORDS[2]),
        d(1.41, *RECORDS[3]),
        d(1.42, *RECORDS[4]),
        d(1.43, *RECORDS[5]),
    )
    assert anomalies(tmp_path) == {}


def test_a_new_tenure_starting_after_the_committed_position_is_caught(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
        commit(1.2, 1.21, 0, 2),
    )  # committed 0..1, then died holding 2..3
    write(tmp_path, "m1.1", start(1), d(5.0, *RECORDS[4]), d(5.1, *RECORDS[5]))  # skips 2..3
    found = anomalies(tmp_path)
    assert list(found) == ["order"] and "after the committed position" in found["order"][0], found
    assert "2 was delivered to m0.1" in found["order"][0] and "m0.1 committed 2 (ok" in found["order"][0], found


def test_a_handover_after_a_commit_the_owner_died_inside_of_is_in_order(tmp_path):
    # The owner handled 0..3 and died inside commit(4): whether it landed is unknown, so the next
    # tenure may start at 2 (it did not) or at 4 (it did); neither skips anything handled.
    producer(tmp_path, *RECORDS)
    begun = {"ev": "commit-begin", "t": 1.3, "t0": 1.3, "offsets": [[T, 0, list(order_key(4))]]}
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
          commit(1.2, 1.21, 0, 2), begun)  # fmt: skip
    write(tmp_path, "m1.1", start(1), d(5.0, *RECORDS[4]), d(5.1, *RECORDS[5]))
    assert anomalies(tmp_path) == {}
    # Without the begun commit the same handover skips 2..3.
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
          commit(1.2, 1.21, 0, 2))  # fmt: skip
    assert list(anomalies(tmp_path)) == ["order"]


def test_a_handover_from_a_commit_answered_late_is_in_order(tmp_path):
    # The owner's synchronous commit(4) landed at once, but its process was stopped (or starved)
    # before it logged the answer: the next owner started at 4 before that. CI saw this as an
    # order anomaly ("a tenure began after the committed position") while the commit was judged
    # from its answer; it may have landed from its call on.
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
          commit(1.2, 5.5, 0, 4))  # fmt: skip
    write(tmp_path, "m1.1", start(1), d(5.0, *RECORDS[4]), d(5.1, *RECORDS[5]))
    assert anomalies(tmp_path) == {}
    # An asynchronous commit lands after its call returns (on the next read): judged at its end.
    write(tmp_path, "m0.1", start(1), *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
          commit(1.2, 5.5, 0, 4, "async"))  # fmt: skip
    assert list(anomalies(tmp_path)) == ["order"]


def test_a_handover_restarting_at_the_committed_position_is_in_order(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
        commit(1.2, 1.21, 0, 2),
    )
    write(tmp_path, "m1.1", start(1), *(d(5.0 + i / 100, *r) for i, r in enumerate(RECORDS[2:])))
    assert anomalies(tmp_path) == {}


def test_a_record_delivered_after_a_later_record_of_its_key_was_committed_is_caught(tmp_path):
    # Partition 0 holds k:0 (offset 0), x:0 (1), k:1 (2); a commit that skips over offset 0.
    producer(tmp_path, (0, 0, "k", 0), (0, 1, "x", 0), (0, 2, "k", 1))
    write(
        tmp_path,
        "m0.1",
        start(1),
        d(1.1, 0, 1, "x", 0),
        d(1.2, 0, 2, "k", 1),
        commit(1.3, 1.31, 0, 3),
        d(1.4, 0, 0, "k", 0),
    )
    found = anomalies(tmp_path)
    assert any("after k:1 was committed" in w for w in found["order"]), found


# -- duplicate after commit ------------------------------------------------------------------


def _committed_then_redelivered(tmp_path, outcome: str, between: list[dict] = ()) -> None:
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:3])),
        commit(1.2, 1.21, 0, 3, outcome),
        *between,
    )
    write(tmp_path, "m1.1", start(1), *(d(5.0 + i / 100, *r) for i, r in enumerate(RECORDS)))


def test_a_record_delivered_again_after_its_commit_succeeded_is_caught(tmp_path):
    _committed_then_redelivered(tmp_path, "ok")
    found = anomalies(tmp_path)
    assert len(found["duplicate"]) == 3 and "m0.1's commit" in found["duplicate"][0], found


def _handed_out_late(tmp_path, at: float, *between: dict, key: int = 3) -> None:
    """m0.1 delivers 0-2; m1.1 takes over at 2.0, delivers 0-3 and commits 4; then m0.1, never
    told, hands out record ``key`` at ``at`` (what it read while it owned the partition)."""
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(0.5), *(d(1.0 + i / 100, *r) for i, r in enumerate(RECORDS[:3])),
          *between, d(at, *RECORDS[key]))  # fmt: skip
    write(tmp_path, "m1.1", start(1.5), *(d(2.0 + i / 100, *r) for i, r in enumerate(RECORDS[:4])),
          commit(2.1, 2.11, 0, 4), *(d(2.2 + i / 100, *r) for i, r in enumerate(RECORDS[4:])))  # fmt: skip


def test_a_zombie_continuing_its_run_within_the_window_is_excused_and_counted(tmp_path):
    _handed_out_late(tmp_path, 2.5)
    result = check(load(tmp_path), WINDOW)
    assert {c: a for c, a in result.anomalies.items() if a} == {}
    assert result.figures["zombie deliveries within the window (excused)"] == 1


def test_a_zombie_beyond_the_window_or_after_a_callback_or_going_back_is_judged(tmp_path):
    for name in ("late", "told", "back"):
        (tmp_path / name).mkdir()
    _handed_out_late(tmp_path / "late", 2.0 + WINDOW + 1)
    _handed_out_late(tmp_path / "told", 2.5, sig(2.3, "lost", 0))
    _handed_out_late(tmp_path / "back", 2.5, key=1)
    for name in ("late", "told", "back"):
        assert "duplicate" in anomalies(tmp_path / name), name


def test_redelivery_after_a_refused_commit_is_not_a_duplicate(tmp_path):
    _committed_then_redelivered(tmp_path, "failed")
    assert anomalies(tmp_path) == {}


def test_redelivery_after_a_seek_back_is_not_a_duplicate(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:3])),
        commit(1.2, 1.21, 0, 3),
        *seek(1.3, 0, 3, 0),
        *(d(1.4 + i / 100, *r) for i, r in enumerate(RECORDS)),
    )
    assert anomalies(tmp_path) == {}


def test_redelivery_after_an_offset_reset_is_not_a_duplicate(tmp_path):
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:3])),
        commit(1.2, 1.21, 0, 3),
        {"ev": "stop", "t": 1.3},
    )
    write(
        tmp_path,
        "runner",
        {"ev": "reset", "t": 2.0, "topic": T, "targets": [[0, "0-0"]]},
        {"ev": "reset-end", "t": 2.1, "outcome": "ok", "err": ""},
    )
    write(tmp_path, "m1.1", start(3), *(d(3.1 + i / 100, *r) for i, r in enumerate(RECORDS)))
    assert anomalies(tmp_path) == {}


# -- split ownership -------------------------------------------------------------------------

LONG = [(0, i, "k", i) for i in range(100)]


def test_two_processes_receiving_one_partition_for_longer_than_the_window_is_caught(tmp_path):
    producer(tmp_path, *LONG)
    write(tmp_path, "m0.1", start(1), *(d(1 + i / 10, *r) for i, r in enumerate(LONG)))  # 1 s .. 10.9 s
    write(tmp_path, "m1.1", start(1), *(d(2 + i / 10, *r) for i, r in enumerate(LONG)))  # 2 s .. 11.9 s
    found = anomalies(tmp_path)
    assert len(found["split"]) == 1 and "both received it for 8.9 s" in found["split"][0], found


def test_a_handover_with_a_short_overlap_or_a_stopped_owner_is_not_split(tmp_path):
    producer(tmp_path, *LONG)
    # m0.1 received 0..49 until 5.9 s, was stopped (SIGSTOP) from 6 s to 20 s, then handed out what
    # it still held (50..52); m1.1 received 50..99 from 9 s to 13.9 s: no overlap while both ran.
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1 + i / 10, *LONG[i]) for i in range(50)),
        *(d(20 + i / 10, *LONG[i]) for i in range(50, 53)),
    )
    write(tmp_path, "m1.1", start(1), *(d(9 + i / 10, *LONG[i]) for i in range(50, 100)))
    write(tmp_path, "runner", {"ev": "resumed", "t": 20.0, "proc": "m0.1", "since": 6.0})
    assert "split" not in anomalies(tmp_path, window=2.0)
    (tmp_path / "runner.jsonl").unlink()  # without the pause, the same 4.9 s overlap is split ownership
    assert "split" in anomalies(tmp_path, window=2.0)


def test_an_old_static_process_still_receiving_after_its_successor_is_caught(tmp_path):
    producer(tmp_path, *LONG)
    write(tmp_path, "m1.1", start(1, instance="m1"), *(d(1 + i / 5, *LONG[i]) for i in range(0, 100, 2)))
    write(tmp_path, "m1.2", start(2, instance="m1"), *(d(2 + i / 5, *LONG[i]) for i in range(1, 100, 2)))
    found = anomalies(tmp_path)
    assert any("static member m1: m1.1 received" in w for w in found["split"]), found


# -- zombie commit ---------------------------------------------------------------------------


def _zombie(tmp_path, outcome: str, commit_at: float) -> dict[str, list[str]]:
    producer(tmp_path, *RECORDS)
    write(
        tmp_path,
        "m0.1",
        start(1),
        *(d(1.1 + i / 100, *r) for i, r in enumerate(RECORDS[:3])),
        commit(commit_at, commit_at + 0.01, 0, 3, outcome),
    )
    write(tmp_path, "m1.1", start(1), *(d(5.0 + i / 100, *r) for i, r in enumerate(RECORDS)))
    return anomalies(tmp_path)


def test_a_commit_accepted_after_another_process_took_the_partition_is_caught(tmp_path):
    found = _zombie(tmp_path, "ok", commit_at=6.0)
    assert len(found["zombie"]) == 1 and "m1.1 began receiving it" in found["zombie"][0], found


def test_a_refused_commit_of_a_zombie_is_fine(tmp_path):
    assert _zombie(tmp_path, "failed", commit_at=6.0) == {}


def test_a_commit_before_the_handover_is_not_a_zombie(tmp_path):
    assert "zombie" not in _zombie(tmp_path, "ok", commit_at=1.2)


# -- orphan ----------------------------------------------------------------------------------


def _drained(tmp_path, lag: int, delivered_at: float) -> dict[str, list[str]]:
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(1), *(d(delivered_at + i / 100, *r) for i, r in enumerate(RECORDS)))
    write(
        tmp_path,
        "runner",
        {"ev": "drain", "t": 40, "quiet": 10.0, "deadline": 23.0, "drained": None, "lag": [[T, 0, lag]]},
    )
    return anomalies(tmp_path)


def test_lag_left_at_the_deadline_is_an_orphan(tmp_path):
    found = _drained(tmp_path, lag=4, delivered_at=11)
    assert list(found) == ["orphan"] and "lag 4 at the deadline" in found["orphan"][0], found


def test_records_first_delivered_after_the_deadline_are_orphans(tmp_path):
    found = _drained(tmp_path, lag=0, delivered_at=30)
    assert (
        list(found) == ["orphan"] and "6 acknowledged record(s) first delivered after" in found["orphan"][0]
    )


def test_a_group_that_drained_in_time_has_no_orphans(tmp_path):
    assert _drained(tmp_path, lag=0, delivered_at=11) == {}


# -- offsets ---------------------------------------------------------------------------------


def test_stream_ids_and_integers_order_and_step_alike():
    assert order_key("1700000000000-3") < order_key("1700000000000-10") < order_key("1700000000001-0")
    assert order_key(9) < order_key(10) and order_key("10") == order_key(10)
    assert successor(order_key("5-1")) == order_key("5-2") and successor(order_key(7)) == order_key(8)


def test_stream_id_offsets_go_through_the_same_checks(tmp_path):
    records = [(0, f"1700000000000-{i}", "k", i) for i in range(4)]
    producer(tmp_path, *records)
    write(tmp_path, "m0.1", start(1), d(1.1, *records[0]), d(1.2, *records[2]), d(1.3, *records[3]))
    found = anomalies(tmp_path)
    assert set(found) == {"lost", "order"} and "skipped 1 uncommitted record" in found["order"][0], found


# -- the poison-record workload (dead letters) ---------------------------------------------------

POISON, HEALTHY = ("k0:90", "k0:171"), ("k0:0", "k0:1")  # by chaos.poison.poison(): poison or not


def dead_letter_run(directory: Path, dead: list[str], *, processed=HEALTHY, failed=POISON) -> dict[str, list[str]]:
    """A poison workload's logs: every value of POISON and HEALTHY acknowledged, ``processed``
    and ``failed`` as the worker logged them, ``dead`` the dead-letter topic at the end."""
    values = [*POISON, *HEALTHY]

    def fields(i: int, value: str) -> dict:
        k, _, s = value.rpartition(":")
        return {"topic": "chaos-poison", "p": 0, "o": i, "k": k, "s": int(s), "n": 1}

    write(directory, "pp.1", start(0, "poison-producer"),
          *({"ev": "ack", "t": 0.1, **fields(i, v)} for i, v in enumerate(values)))  # fmt: skip
    write(directory, "x0.1", start(0.2, "poison"),
          *({"ev": "d", "t": 0.3, **fields(values.index(v), v)} for v in processed),
          *({"ev": "fail", "t": 0.3, **fields(values.index(v), v)} for v in failed))  # fmt: skip
    records = [[0, values.index(v), v, 3, ""] for v in dead]
    write(directory, "runner", {"ev": "dlq", "t": 1.0, "topic": "chaos-poison", "drained": True, "records": records})
    return anomalies(directory)


def test_exactly_the_poison_records_in_the_dead_letters_is_no_anomaly(tmp_path):
    assert dead_letter_run(tmp_path, list(POISON)) == {}


def test_a_healthy_record_in_the_dead_letters_is_caught_and_traced_to_who_failed_it(tmp_path):
    found = dead_letter_run(tmp_path, [*POISON, HEALTHY[0]], processed=HEALTHY[1:], failed=[*POISON, HEALTHY[0]])
    assert list(found) == ["dlq-innocent"] and "k0:0" in found["dlq-innocent"][0], found
    result = check(load(tmp_path), WINDOW, extra=(dead_letters.check,))
    assert result.anomalies["dlq-innocent"][0].procs == ("x0.1",)


def test_a_poison_record_processed_or_never_dead_lettered_is_caught(tmp_path):
    found = dead_letter_run(tmp_path, [POISON[1]], processed=[*HEALTHY, POISON[0]], failed=[POISON[1]])
    assert list(found) == ["dlq-missing"] and "processed as healthy by x0.1" in found["dlq-missing"][0], found


def test_a_record_dead_lettered_twice_or_a_healthy_one_never_processed_is_caught(tmp_path):
    found = dead_letter_run(tmp_path, [*POISON, POISON[0]], processed=HEALTHY[1:])
    assert sorted(found) == ["dlq-lost", "dlq-twice"], found
    assert "k0:0" in found["dlq-lost"][0] and "k0:90" in found["dlq-twice"][0]


def test_a_run_without_the_poison_workload_has_no_dead_letter_classes(tmp_path):
    producer(tmp_path, *RECORDS)
    write(tmp_path, "m0.1", start(0), *(d(0.5, *r) for r in RECORDS))
    result = check(load(tmp_path), WINDOW, extra=(dead_letters.check,))
    assert not set(result.anomalies) & set(dead_letters.CLASSES)
