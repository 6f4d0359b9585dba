"""A relay process for the relay workload: copies SRC into DST as a member of GROUP.

    python -m <package>.relay URL SRC DST GROUP LOG --name PROC [--atomic | --dedup-ids] [--mode MODE]

``normal`` runs ``facade.relay`` itself (the system under test) until SIGTERM. The other modes
are deliberately broken relays, written against the public Consumer and Producer, for the
checker's control runs; each breaks one promise and logs what it did (``commit``, ``flushed``,
``reversed`` events), so a catch can be traced to it (see ``CONTROLS``).

Every process logs ``start`` {role: "relay", proc, pid, mode, atomic}, ``copied`` {n} after
each batch the relay committed (``facade.relay``'s ``on_batch``), ``error`` {err} if the relay
raised, and ``stop``. A relay that raised exits with status 1 (the runner restarts it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

import facade
from facade import Consumer, FacadeError, Producer

from .events import EventLog

# control mode -> the relay check class it must trip
CONTROLS = {
    "commit-before-confirm": "lost",  # commits a batch's inputs, then dies before sending its outputs
    "no-dedup": "duplicate",  # outputs without dedup ids; dies after they are stored, before the commit
    "reorder": "order",  # sends each batch's outputs backwards
}
MODES = ("normal", *CONTROLS)


class Stop(Exception):
    """SIGTERM: leave the relay loop (its ``finally`` closes the consumer and producer)."""


def _stop(*_: Any) -> None:
    raise Stop


def _offsets(batch: list[Any]) -> list[list[Any]]:
    """[[topic, partition, first offset, last offset], ...] of a batch."""
    spans: dict[tuple[str, int], list[int]] = {}
    for m in batch:
        span = spans.setdefault((m.topic, m.partition), [m.offset, m.offset])
        span[0], span[1] = min(span[0], m.offset), max(span[1], m.offset)
    return [[t, p, lo, hi] for (t, p), (lo, hi) in sorted(spans.items())]


def broken(args: argparse.Namespace, log: EventLog, options: dict[str, Any]) -> None:
    """A hand-written relay loop that breaks one promise (``args.mode``)."""
    consumer = Consumer(args.src, args.group, args.url, guarantee="exactly-once", **options)
    producer = Producer(args.url, linger_ms=5)
    batches = 0
    try:
        while True:
            batch = consumer.poll(timeout_ms=200, max_records=100)
            if not batch:
                continue
            batches += 1
            crash = args.crash_after and batches >= args.crash_after
            if args.mode == "commit-before-confirm":
                consumer.commit()
                log.write("commit", spans=_offsets(batch))
                if crash:
                    os._exit(3)  # inputs committed, outputs never sent
            if args.mode == "reorder":
                log.write("reversed", spans=_offsets(batch))
                batch = list(reversed(batch))
                time.sleep(0.3)  # the next poll then finds several records of a key to turn round
            dedup = args.mode != "no-dedup"
            futures = [
                producer.send(args.dst, m.value, m.key, m.headers,
                              dedup_id=f"{args.group}/{m.topic}/{m.partition}/{m.offset}" if dedup else None)
                for m in batch
            ]  # fmt: skip
            producer.flush()
            for fut in futures:
                fut.result()
            log.write("flushed", spans=_offsets(batch))
            if args.mode == "no-dedup" and crash:
                os._exit(3)  # outputs stored, inputs not committed: the next owner copies them again
            if args.mode != "commit-before-confirm":
                consumer.commit()
            log.write("copied", n=len(batch))
    finally:
        try:
            consumer.close()
        finally:
            producer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("group")
    ap.add_argument("log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument("--atomic", action=argparse.BooleanOptionalAction, default=True,
                    help="--atomic: outputs and commits in one script; --no-atomic: dedup ids")  # fmt: skip
    ap.add_argument("--session-ms", type=int, default=3000)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--crash-after", type=int, default=0, help="broken modes: die after this many batches")
    args = ap.parse_args(argv)

    log = EventLog(args.log)
    signal.signal(signal.SIGTERM, _stop)
    options = {"session_timeout_ms": args.session_ms, "heartbeat_interval_ms": args.heartbeat_ms}
    log.write("start", role="relay", proc=args.name, pid=os.getpid(), mode=args.mode, atomic=args.atomic)
    code = 0
    try:
        if args.mode == "normal":
            facade.relay(args.src, args.dst, args.group, args.url, atomic=args.atomic, consumer_options=options,
                         on_batch=lambda n: log.write("copied", n=n))  # fmt: skip
        else:
            broken(args, log, options)
    except Stop:
        pass
    except FacadeError as exc:
        log.write("error", err=f"{type(exc).__name__}: {exc}"[:300])
        code = 1
        time.sleep(0.1)
    finally:
        log.write("stop")
        log.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
