"""The log format: one append-only file of JSON lines per process.

Every process of a run (producers, group members, the runner itself) appends one line per event
to its own file, ``<proc>.jsonl``, and flushes each line, so a ``kill -9`` loses at most a partial
last line; :func:`read_log` drops such a torn tail and refuses a corrupt line anywhere else.
Each line is an object with ``ev`` (the kind) and ``t`` (wall-clock seconds; every process of a
run shares the machine's clock). The kinds:

producers
    ``start`` {role: "producer", proc, pid, topic}; ``ack`` {topic, p, o, k, s}: written only after
    the record's future resolved; ``fail`` {topic, k, s, err}: the future raised (the record may or
    may not be stored; it is not counted as acknowledged); ``stop`` {sent, acked, failed}.

group members
    ``start`` {role: "member", proc, pid, group, topic, mode, instance, options}; ``assign`` /
    ``revoke`` / ``lost`` {tps: [[topic, p], ...]}: the consumer's rebalance callbacks;
    ``d`` {topic, p, o, k, s, m, g, h}: one delivery (the record at offset ``o`` with value
    ``k:s``, handed to member ``m`` of generation ``g`` by a poll() that returned at ``h``),
    written when the application starts processing it; ``commit`` {t0, t1, offsets: [[topic, p, next], ...], outcome: "ok" | "failed"
    | "error" | "async", err}: ``next`` is the offset after the last record delivered (what
    Kafka stores), ``failed`` means CommitFailedError, ``async`` a commitAsync (outcome unknown); ``seek`` {t0, t1, topic, p, from, to, dir}: ``from`` is the
    position before the seek (the offset after the last delivered), ``to`` the next record
    delivered after it; ``fenced`` {err}; ``error`` {where, err}; ``pause`` {tps} (a control
    consumer that stops reading partitions); ``stop`` {}.

the poison-record workload (tests/chaos/poison.py, dead_letters.py)
    its producer logs as a producer does, with role ``poison-producer``; its consumers
    ``start`` {role: "poison", ...}, ``assign``/``revoke``/``lost``, ``d`` {topic, p, o, k, s, n}
    (a healthy record processed; ``n`` its delivery_count), ``fail`` {same} (a poison record
    given back with fail()), ``crash`` {same} (about to die on a poison record), ``commit``
    {outcome, err}, ``error``, ``stop``.

the runner
    ``config`` {...}; ``fault`` {kind, ...}; ``reset`` {t0, t1, topic, outcome, targets: [[p,
    target], ...], err}: an offset reset of the whole group (the next record delivered is the
    first after ``target``); ``quiet`` {}: faults stopped and undone; ``lag`` {lag: [[topic, p,
    lag], ...]}; ``drain`` {quiet, deadline, drained, lag: [[topic, p, lag], ...]};
    ``dlq`` {topic, drained, records: [[p, offset, value, delivery_count, error], ...]}: the poison
    workload's dead-letter topic at the end (``offset`` is the source record's).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class LogError(Exception):
    """A log line that is not JSON and is not a torn last line: the harness itself is broken."""


class EventLog:
    """An append-only event file; each :meth:`write` is one flushed line.

    Safe to call from several threads of one process (a producer's callbacks, say).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, ev: str, **fields: Any) -> dict[str, Any]:
        record = {"ev": ev, "t": round(time.time(), 6), **fields}
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()  # what a kill -9 can lose is at most this line
        return record

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], bool]:
    """The events of one file, and whether its last line was torn (dropped)."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    events: list[dict[str, Any]] = []
    torn = False
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or "ev" not in record or "t" not in record:
                raise ValueError("not an event")
        except ValueError:
            # Only the tail can be cut short by a kill; anything else means the log is corrupt.
            if i == last:  # no newline after it: the write was cut short
                torn = True
                continue
            raise LogError(f"{path}: line {i + 1} is not an event: {raw[:120]!r}") from None
        events.append(record)
    return events, torn


def log_files(directory: str | Path) -> Iterator[Path]:
    """Every event log of a run directory, in name order."""
    yield from sorted(Path(directory).glob("*.jsonl"))


class Tail:
    """Reads the complete lines appended to a file since the last call (for live progress)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pos = 0

    def new_events(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._pos += end + 1
        out = []
        for raw in chunk[: end + 1].split(b"\n"):
            if raw.strip():
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue  # progress only; read_log judges the file at the end
        return out


def proc_name(path: Path) -> str:
    return os.path.basename(path).removesuffix(".jsonl")
