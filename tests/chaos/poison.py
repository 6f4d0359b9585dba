"""A consumer-group member with poison records: the dead-letter workload's worker process.

    python -m <package>.poison URL GROUP TOPIC LOG --name PROC --max-deliveries N [--mode MODE] ...

Which records are poison is decided from the value alone (:func:`poison`), so the checker knows
without asking anyone: about one in ``POISON_ONE_IN``. A poison record either makes the handler
fail (``fail()``, with the error ``poison k:s``; the rest of that partition's batch is skipped, as
fail() asks) or crashes the process (``os._exit``) as a handler that keeps crashing would
(:func:`crashes`). Every other record is processed and logged. The consumer runs with
``max_deliveries``; a poison record must end up in the dead-letter topic, and nothing else.

Events, besides ``start`` {role: "poison", ...}, ``assign``/``revoke``/``lost`` and ``stop``:
``d`` {topic, p, o, k, s, n}: a healthy record processed (``n``: its delivery_count);
``fail`` {topic, p, o, k, s, n}: a poison record given back with fail(); ``crash`` {...}: the
process is about to die on a poison record; ``commit`` {outcome, err}.

``--mode`` picks a deliberately broken consumer for control runs (see ``CONTROLS``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import zlib
from typing import Any

from facade import CommitFailedError, Consumer, FacadeError, TopicPartition

from .events import EventLog

POISON_ONE_IN = 60
# control mode -> the dead-letter check class it must trip
CONTROLS = {
    "fail-innocent": "dlq-innocent",  # also fails healthy records that merely look odd to it
    "swallow-poison": "dlq-missing",  # processes poison records as if they were fine
}
MODES = ("normal", *CONTROLS)


def _digest(value: str) -> int:
    return zlib.crc32(value.encode())


def poison(value: str) -> bool:
    """Whether the record with this value (``k:s``) is poison."""
    return _digest(value) % POISON_ONE_IN == 0


def crashes(value: str) -> bool:
    """Whether a poison record crashes its consumer's process (else its handler fails it)."""
    return poison(value) and _digest(f"crash/{value}") % 4 == 0  # a quarter: each crash costs a session


ODD_ONE_IN = 10


def looks_odd(value: str) -> bool:
    """The fail-innocent control's mistake: healthy records it fails as if they were poison (one
    in ten, never a poison one: digests of 1 mod 10 are never 0 mod 60). One in sixty, as often as
    poison, left too few chances on a loaded machine: each must reach max_deliveries with this
    member before a rebalance hands it to a normal one, and a CI run once saw none do so."""
    return _digest(value) % ODD_ONE_IN == 1


def _tps(parts: Any) -> list[list[Any]]:
    return sorted([tp.topic, tp.partition] for tp in parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument("--max-deliveries", type=int, default=2)
    ap.add_argument("--session-ms", type=int, default=1000)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args(argv)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    log = EventLog(args.log)
    options = {
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "session_timeout_ms": args.session_ms,
        "heartbeat_interval_ms": args.heartbeat_ms,
        "max_deliveries": args.max_deliveries,
    }
    log.write("start", role="poison", proc=args.name, pid=os.getpid(), group=args.group, topic=args.topic,
              mode=args.mode, options=options)  # fmt: skip
    consumer = Consumer(
        args.topic, args.group, args.url,
        on_assign=lambda parts: log.write("assign", tps=_tps(parts)),
        on_revoke=lambda parts: log.write("revoke", tps=_tps(parts)),
        on_lost=lambda parts: log.write("lost", tps=_tps(parts)),
        **options,
    )  # fmt: skip
    try:
        while not stop:
            try:
                records = consumer.poll(timeout_ms=200, max_records=args.batch)
            except FacadeError as exc:
                log.write("error", where="poll", err=f"{type(exc).__name__}: {exc}"[:300])
                time.sleep(0.1)
                continue
            failed: set[TopicPartition] = set()
            for m in records:
                tp = m.topic_partition
                if tp in failed:
                    continue  # given back with the failed record: it comes again
                value = m.value.decode()
                k, _, s = value.rpartition(":")
                fields = {"topic": m.topic, "p": m.partition, "o": m.offset, "k": k, "s": int(s), "n": m.delivery_count}
                bad = poison(value) if args.mode != "swallow-poison" else False
                if bad and crashes(value):
                    log.write("crash", **fields)
                    os._exit(7)
                if bad or (args.mode == "fail-innocent" and looks_odd(value)):
                    log.write("fail", **fields)
                    consumer.fail(m, f"poison {value}")
                    failed.add(tp)
                    continue
                log.write("d", **fields)
            if records:
                try:
                    consumer.commit()
                    log.write("commit", outcome="ok", err="")
                except CommitFailedError as exc:
                    log.write("commit", outcome="failed", err=str(exc)[:300])
                except FacadeError as exc:
                    log.write("commit", outcome="error", err=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        try:
            consumer.close()
        except FacadeError as exc:
            log.write("error", where="close", err=f"{type(exc).__name__}: {exc}"[:300])
        log.write("stop")
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
