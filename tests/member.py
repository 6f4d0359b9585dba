"""A consumer-group member run as its own process by the fault tests.

    python tests/member.py URL GROUP TOPIC OUT [--session-timeout-ms N] [--instance-id ID]
                          [--strategy S] [--batch N] [--delay-ms N] [--max-poll-interval-ms N]

It polls, appends one line per record to OUT ("R <value> <partition> <offset> <delivery_count>")
and then commits (explicitly: auto-commit is off); it also logs "A <partitions>" on assign,
"V <partitions>" on revoke, "F <error>" when a commit is refused and "E <error>" when poll raises
(a fenced static member). SIGTERM closes it cleanly (leaving the group); SIGKILL and SIGSTOP are
what the tests use to simulate crashes and pauses.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from facade import CommitFailedError, Consumer, FencedInstanceIdError


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("out")
    ap.add_argument("--session-timeout-ms", type=int, default=1500)
    ap.add_argument("--instance-id")
    ap.add_argument("--strategy", default="cooperative-sticky")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=0, help="sleep after each poll, before commit")
    ap.add_argument("--max-poll-interval-ms", type=int, default=300_000)
    args = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # Open for the whole life of the process: a kill -9 must leave every line written so far.
    out = open(args.out, "a", buffering=1)  # noqa: SIM115

    def fmt(parts):
        return ",".join(f"{tp.topic}:{tp.partition}" for tp in sorted(parts))

    consumer = Consumer(
        args.topic, args.group, args.url,
        auto_offset_reset="earliest",
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=max(20, args.session_timeout_ms // 10),
        max_poll_interval_ms=args.max_poll_interval_ms,
        enable_auto_commit=False,
        group_instance_id=args.instance_id,
        assignment_strategy=args.strategy,
        on_assign=lambda parts: out.write(f"A {fmt(parts)} {time.time():.3f}\n"),
        on_revoke=lambda parts: out.write(f"V {fmt(parts)} {time.time():.3f}\n"),
    )  # fmt: skip
    out.write(f"S {consumer.member_id} {time.time():.3f}\n")
    try:
        while not stop:
            try:
                records = consumer.poll(timeout_ms=100, max_records=args.batch)
            except FencedInstanceIdError as exc:
                out.write(f"E {str(exc)[:80]} {time.time():.3f}\n")
                break
            out.writelines(f"R {m.value.decode()} {m.partition} {m.offset} {m.delivery_count}\n" for m in records)
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            try:
                consumer.commit()
            except CommitFailedError as exc:
                out.write(f"F {str(exc)[:80]} {time.time():.3f}\n")
    finally:
        consumer.close()
        out.write(f"X {time.time():.3f}\n")
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
