"""One member of ``facade demo``'s consumer group, as a process of its own (so the demo can kill
it with SIGKILL, as a crash would):
``python -m facade.cli.demo_member URL TOPIC GROUP RUN_HEADER RUN SESSION_MS``. Records whose header
RUN_HEADER is not RUN are from an earlier run.

Nothing imports this module (the package's __init__ imports every other one): run as ``-m``, it
is then loaded once.

It consumes with the SDK's Consumer and tells the demo what it has, one JSON object per line on
stdout, *before* it commits: ``{"id", "partitions", "got": [[user, seq], ...], "older"}`` (records
of this run as (user, seq); ``older``: records of earlier runs, skipped). A kill between the
report and the commit makes the next owner deliver those records again (a duplicate the demo
counts), never lose them. SIGTERM (or the demo's end): leave the group and exit 0; SIGINT is
left to the demo. A failure: one ``{"error": "..."}`` line, exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from facade import CommitFailedError, Consumer, FacadeError

POLL_MS = 200


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def member(url: str, topic: str, group: str, header: str, run: str, session_ms: int) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C reaches every process of the terminal's group: the demo stops its members itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    options = {"session_timeout_ms": session_ms, "heartbeat_interval_ms": max(10, session_ms // 6)}
    try:
        with Consumer(url, topic, group, auto_offset_reset="earliest", **options) as consumer:
            told: list[int] | None = None
            while not stop.is_set() and os.getppid() == parent:  # never outlive the demo
                try:
                    batch = consumer.poll(timeout_ms=POLL_MS)
                except FacadeError as exc:
                    if not exc.retriable:
                        raise
                    continue  # a rebalance in progress, say: poll again
                got, older = [], 0
                for msg in batch:
                    if msg.headers.get(header) != run.encode():
                        older += 1
                        continue
                    event = json.loads(msg.value)
                    got.append([event["user"], event["seq"]])
                partitions = sorted(tp.partition for tp in consumer.assignment())
                if got or older or partitions != told:
                    _say({"id": consumer.member_id, "partitions": partitions, "got": got, "older": older})
                    told = partitions
                if batch:
                    try:
                        consumer.commit()
                    except CommitFailedError:
                        pass  # the partition moved on: its new owner gets these again (a duplicate)
    except Exception as exc:  # noqa: BLE001 - the demo reports it in its summary
        _say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    url, topic, group, header, run, session_ms = sys.argv[1:7]
    sys.exit(member(url, topic, group, header, run, int(session_ms)))
