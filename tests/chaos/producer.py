"""A keyed producer process: writes ``key:seq`` values, logs each record once it is acknowledged.

    python -m <package>.producer URL TOPIC LOG --name P --keys N --rate R [--seed S]

Keys are ``<name>k<i>``, so no two producers share a key and ``seq`` counts up per key without
coordination. ``acks=1`` with idempotence on (the defaults, spelled out). A record is logged as
``ack`` only after its future resolved, with the partition and offset the broker gave it; a future
that raised is logged as ``fail``. SIGTERM stops sending, waits for every outstanding future and
exits.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time

from facade import Producer

from .events import EventLog


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("topic")
    ap.add_argument("log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--rate", type=float, default=100.0, help="records per second")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--role", default="producer", help="the role its log names (poison-producer: the dead-letter workload's)")
    args = ap.parse_args(argv)

    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rng = random.Random(args.seed)
    log = EventLog(args.log)
    log.write("start", role=args.role, proc=args.name, pid=os.getpid(), topic=args.topic)
    keys = [f"{args.name}k{i}" for i in range(args.keys)]
    seqs = dict.fromkeys(keys, 0)
    outstanding: list[tuple[str, int, object]] = []
    sent = acked = failed = 0

    def settle(wait: float | None) -> None:
        nonlocal acked, failed
        still = []
        for key, seq, fut in outstanding:
            if wait is None and not fut.done():
                still.append((key, seq, fut))
                continue
            try:
                md = fut.result(wait)
            except Exception as exc:  # noqa: BLE001 - any failure means "not acknowledged"
                failed += 1
                log.write("fail", topic=args.topic, k=key, s=seq, err=f"{type(exc).__name__}: {exc}"[:200])
                continue
            acked += 1
            log.write("ack", topic=md.topic, p=md.partition, o=md.offset, k=key, s=seq)
        outstanding[:] = still

    producer = Producer(args.url, acks=1, idempotent=True, linger_ms=5)
    try:
        interval = 1.0 / args.rate
        next_send = time.monotonic()
        while not stop:
            key = rng.choice(keys)
            seq = seqs[key]
            seqs[key] = seq + 1
            outstanding.append((key, seq, producer.send(args.topic, f"{key}:{seq}", key=key)))
            sent += 1
            settle(None)
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_send = time.monotonic()  # fell behind (a broker restart): do not burst
        producer.flush()
    finally:
        settle(60.0)  # the delivery timeout (30 s) bounds this
        producer.close()
        log.write("stop", sent=sent, acked=acked, failed=failed)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
