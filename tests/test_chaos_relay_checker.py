"""The relay workload's checker (tests/chaos/relay_check.py) on hand-written logs: each anomaly
class caught, its look-alikes not, and a control traced back to the relay that misbehaved.

No server and no processes: each test writes the event files a relay run would leave.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaos import relay_check
from chaos.history import load

pytestmark = pytest.mark.timeout(30)

SRC = "relay-src"


def write(directory: Path, name: str, *events: dict) -> None:
    with open(directory / f"{name}.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)


def acks(directory: Path, *records: tuple[int, int, str, int]) -> None:
    """Source records acknowledged: (partition, offset, key, seq)."""
    write(directory, "p0.1", {"ev": "start", "t": 0, "role": "producer"},
          *({"ev": "ack", "t": 0.01 * i, "topic": SRC, "p": p, "o": o, "k": k, "s": s}
            for i, (p, o, k, s) in enumerate(records)))  # fmt: skip


def sink(directory: Path, *rows: tuple[int, int, str, int]) -> None:
    """The destination as read back: (partition, offset, key, seq)."""
    write(directory, relay_check.SINK, {"ev": "start", "t": 10, "role": "sink"},
          *({"ev": "out", "t": 10, "p": p, "o": o, "k": k, "s": s} for p, o, k, s in rows))  # fmt: skip


def drain(directory: Path, lag: int = 0) -> None:
    write(directory, "runner", {"ev": "drain", "t": 9, "quiet": 1, "deadline": 8, "drained": 5 if not lag else None,
                                "lag": [[SRC, 0, lag]]})  # fmt: skip


SOURCE = [(0, i, f"k{i % 2}", i // 2) for i in range(6)]  # keys k0/k1, seqs 0..2


def verdict(directory: Path) -> dict[str, list[str]]:
    result = relay_check.check(load(directory))
    return {cls: [a.what for a in found] for cls, found in result.anomalies.items() if found}


def test_a_faithful_copy_has_no_anomaly(tmp_path):
    acks(tmp_path, *SOURCE)
    # Keys interleave differently in the destination: only per-key order matters.
    sink(tmp_path, (0, 0, "k1", 0), (0, 1, "k0", 0), (0, 2, "k0", 1), (0, 3, "k1", 1), (0, 4, "k1", 2), (0, 5, "k0", 2))
    drain(tmp_path)
    assert verdict(tmp_path) == {}


def test_lost_duplicate_order_and_stuck_are_caught(tmp_path):
    acks(tmp_path, *SOURCE)
    sink(tmp_path, (0, 0, "k0", 0), (0, 1, "k0", 2), (0, 2, "k0", 1), (0, 3, "k0", 0), (0, 4, "k1", 0), (0, 5, "k1", 1))
    drain(tmp_path, lag=3)
    found = verdict(tmp_path)
    assert found["lost"] == ["k1:2 acknowledged at relay-src[0]@5, not in the destination"]
    assert found["duplicate"] == ["k0:0 stored 2 times in the destination"]
    # k0:1 after k0:2 is disorder; the second copy of k0:0 is only a duplicate.
    assert found["order"] == ["k0:1 stored at destination[0]@2, after k0:2 (@1)"]
    assert found["stuck"] == ["relay-src[0]: the relay group's lag is 3 at the deadline, 7.0 s after the faults stopped"]


def test_a_control_is_caught_only_through_the_records_it_handled(tmp_path):
    acks(tmp_path, *SOURCE)
    sink(tmp_path, *((0, i, k, s) for i, (_, _, k, s) in enumerate(SOURCE[:4])))  # offsets 4 and 5 lost
    drain(tmp_path)
    # The broken relay committed offsets 4..5 of partition 0 before storing their outputs.
    write(tmp_path, "c-commit-before-confirm.1", {"ev": "start", "t": 0, "role": "relay"},
          {"ev": "commit", "t": 1, "spans": [[SRC, 0, 4, 5]]})  # fmt: skip
    result = relay_check.check(load(tmp_path))
    assert len(result.anomalies["lost"]) == 2
    assert relay_check.caught("lost", result, load(tmp_path), "c-commit-before-confirm")
    # Another relay's commits do not count as the control's.
    assert not relay_check.caught("lost", result, load(tmp_path), "c-no-dedup")
