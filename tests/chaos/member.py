"""A consumer-group member process: polls, logs every delivery, commits after each batch.

    python -m <package>.member URL GROUP TOPIC LOG --name PROC [--instance ID] [--mode MODE] ...

Signals: SIGTERM closes the consumer and exits; SIGUSR1 asks for a seek (back to a record this
process delivered, or forward to the first record of the last second) on one owned partition;
SIGUSR2 toggles the slow handler (``--slow-ms`` of sleep per record). ``FencedInstanceIdError``
(a newer process took this static member's identity) ends the process, as it must.

``--mode`` picks a deliberately broken consumer for the checker's control runs; each breaks one
promise, and the checker must notice (see ``CONTROLS``).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from typing import Any

from facade import CommitFailedError, Consumer, FacadeError, TopicPartition

from . import compat
from .events import EventLog
from .offsets import Key, beyond, order_key, successor

# control mode -> the check class it must trip
CONTROLS = {
    "commit-then-crash": "lost",  # commits a batch before processing it, then dies: never processed
    "reorder": "order",  # processes each batch backwards (polling slowly, so batches hold several records)
    "redeliver": "duplicate",  # processes some committed batches a second time, without a seek
    "phantom": "split",  # reads every partition through a group of its own, logs it as this group's
    "swallow": "zombie",  # stalls with a batch in hand, then reports its refused commit as a success
    "skip-partition": "orphan",  # stops reading one of its partitions for good
}
MODES = ("normal", *CONTROLS)


def _tps(parts: Any) -> list[list[Any]]:
    return sorted([tp.topic, tp.partition] for tp in parts)


def _value(raw: bytes) -> tuple[str, int]:
    key, _, seq = raw.decode().rpartition(":")
    return key, int(seq)


class Member:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.log = EventLog(args.log)
        self.stop = False
        self.seek_wanted = False
        self.slow = args.slow
        self.batches = 0
        # Per partition, the offset after the last record delivered since the last commit.
        self.pending: dict[TopicPartition, Key] = {}
        # What asynchronous commits since the last synchronous one covered.
        self.unconfirmed: dict[TopicPartition, Key] = {}
        self.commits = 0
        self.position: dict[TopicPartition, Key] = {}
        self.delivered: dict[
            TopicPartition, list[Any]
        ] = {}  # offsets delivered in this tenure (for seeks back)
        self.skipped: TopicPartition | None = None
        self.next_stall = time.monotonic() + 2.0
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_seek)
        signal.signal(signal.SIGUSR2, self._on_slow)

    def _on_term(self, *_: Any) -> None:
        self.stop = True

    def _on_seek(self, *_: Any) -> None:
        self.seek_wanted = True

    def _on_slow(self, *_: Any) -> None:
        self.slow = not self.slow

    # -- rebalance callbacks ------------------------------------------------------------------

    def _forget(self, parts: set[TopicPartition]) -> None:
        for tp in parts:
            self.pending.pop(tp, None)
            self.unconfirmed.pop(tp, None)
            self.position.pop(tp, None)
            self.delivered.pop(tp, None)

    def on_assign(self, parts: set[TopicPartition]) -> None:
        self.log.write("assign", tps=_tps(parts))

    def on_revoke(self, parts: set[TopicPartition]) -> None:
        self.log.write("revoke", tps=_tps(parts))
        self._forget(parts)

    def on_lost(self, parts: set[TopicPartition]) -> None:
        self.log.write("lost", tps=_tps(parts))
        self._forget(parts)

    # -- the loop -----------------------------------------------------------------------------

    def consumer(self, group: str) -> Consumer:
        a = self.args
        # The swallow control stalls for longer than this with a batch in hand: a consumer with
        # background heartbeats must leave the group then, as Kafka's does.
        options = compat.consumer_options(
            session_timeout_ms=a.session_ms,
            heartbeat_interval_ms=a.heartbeat_ms,
            group_instance_id=a.instance,
            max_poll_interval_ms=a.session_ms if a.mode == "swallow" else None,
        )
        self.log.write(
            "start",
            role="member",
            proc=a.name,
            pid=os.getpid(),
            group=a.group,
            topic=a.topic,
            mode=a.mode,
            instance=a.instance,
            options=options,
        )
        return compat.make_consumer(
            [a.topic], group, a.url, options, self.on_assign, self.on_revoke, self.on_lost
        )

    def run(self) -> int:
        if self.args.mode == "phantom":
            return self.run_phantom()
        consumer = self.consumer(self.args.group)
        try:
            while not self.stop:
                if self.seek_wanted:
                    self.seek_wanted = False
                    self.seek(consumer)
                try:
                    records = consumer.poll(timeout_ms=200, max_records=self.args.batch)
                    handed = time.time()
                except compat.FencedInstanceIdError as exc:
                    self.log.write("fenced", err=str(exc)[:300])
                    return 0
                except FacadeError as exc:
                    self.log.write("error", where="poll", err=f"{type(exc).__name__}: {exc}"[:300])
                    time.sleep(0.1)
                    continue
                if self.args.mode == "skip-partition":
                    self.skip_one(consumer)
                if not records:
                    continue
                self.batches += 1
                if self.args.mode == "commit-then-crash":
                    self.note(records)
                    self.commit(consumer)
                    if self.args.crash_after and self.batches >= self.args.crash_after:
                        os._exit(3)  # committed, never processed
                    self.process(consumer, records, handed)
                    continue
                if self.args.mode == "reorder":
                    records = list(reversed(records))
                    time.sleep(0.3)  # the next poll then finds several records to turn round
                self.process(consumer, records, handed)
                self.note(records)
                if self.args.mode == "swallow" and time.monotonic() >= self.next_stall:
                    time.sleep(2.5 * self.args.session_ms / 1000)  # a stall (a GC pause, a slow call)
                    self.next_stall = time.monotonic() + 4.0
                if self.commit(consumer) == "ok" and self.args.mode == "redeliver" and self.batches % 3 == 0:
                    self.process(consumer, records, time.time())  # as if poll() had handed them out again
        except compat.FencedInstanceIdError as exc:
            self.log.write("fenced", err=str(exc)[:300])
            return 0
        finally:
            self.close(consumer)
        return 0

    def process(self, consumer: Consumer, records: list[Any], handed: float) -> None:
        """Log each record as its processing begins; ``handed`` is when poll() returned it."""
        member, generation = compat.group_identity(consumer)
        for m in records:
            key, seq = _value(m.value)
            self.log.write(
                "d", topic=m.topic, p=m.partition, o=m.offset, k=key, s=seq, m=member, g=generation, h=handed
            )
            if self.slow:
                time.sleep(self.args.slow_ms / 1000)

    def note(self, records: list[Any]) -> None:
        """What the next commit covers: per partition, the offset after the last record handed out."""
        for m in records:
            tp = TopicPartition(m.topic, m.partition)
            nxt = successor(order_key(m.offset))
            if self.args.mode != "reorder" or nxt > self.pending.get(tp, ()):
                self.pending[tp] = nxt
            self.position[tp] = nxt
            seen = self.delivered.setdefault(tp, [])
            seen.append(m.offset)
            del seen[:-200]

    def commit(self, consumer: Consumer) -> str:
        """Commit what the last batch handed out, and log it; returns the outcome.

        With ``--async-commits`` most commits are Kafka's commitAsync (outcome unknown, logged as
        ``async``) and every fifth is synchronous; a synchronous commit covers the asynchronous
        ones before it (Kafka's commits are cumulative), so it is logged as covering them too.
        """
        if not self.pending:
            return "none"
        self.commits += 1
        asynchronous = self.args.async_commits and self.commits % 5 != 0
        if asynchronous:
            covered_now = dict(self.pending)
            self.unconfirmed.update(self.pending)
        else:
            covered_now = {**self.unconfirmed, **self.pending}
            self.unconfirmed = {}
        covered = [[tp.topic, tp.partition, list(nxt)] for tp, nxt in sorted(covered_now.items())]
        self.pending = {}
        t0 = time.time()
        err = ""
        # Logged first: a kill -9 inside commit() leaves a commit of unknown outcome, not none.
        self.log.write("commit-begin", t0=t0, offsets=covered)
        try:
            if asynchronous:
                try:
                    consumer.commit(asynchronous=True)
                    outcome = "async"
                except TypeError:  # an SDK without commitAsync
                    consumer.commit()
                    outcome = "ok"
            else:
                consumer.commit()
                outcome = "ok"
        except CommitFailedError as exc:
            outcome, err = "failed", str(exc)[:300]
            if self.args.mode == "swallow":
                outcome, err = "ok", ""
        except compat.FencedInstanceIdError:
            raise
        except FacadeError as exc:
            outcome, err = "error", f"{type(exc).__name__}: {exc}"[:300]
        self.log.write("commit", t0=t0, t1=time.time(), offsets=covered, outcome=outcome, err=err)
        return outcome

    def seek(self, consumer: Consumer) -> None:
        owned = sorted(tp for tp in consumer.assignment() if self.delivered.get(tp))
        if not owned:
            return
        tp = self.rng.choice(owned)
        here = self.position[tp]
        target: Any = None
        direction = self.rng.choices(["back", "forward", "past-end"], [4, 4, 1])[0]
        if direction == "past-end":
            # Out of range: Kafka's consumer then starts over where auto_offset_reset says.
            target = beyond(self.delivered[tp][-1])
        elif direction == "forward":
            lookup = getattr(consumer, "offsets_for_times", None)
            try:
                found = lookup({tp: int(time.time() * 1000) - 1000}) if lookup else {}
            except FacadeError:
                found = {}
            target = found.get(tp)
            target = getattr(target, "offset", target)  # OffsetAndTimestamp, or a bare offset
            if target is None or order_key(target) <= here:
                direction, target = "back", None
        if target is None:
            target = self.rng.choice(self.delivered[tp])
        # Logged before the call: a seek that took effect must excuse what follows even if this
        # process dies before it returns.
        self.log.write(
            "seek", topic=tp.topic, p=tp.partition, to=target, dir=direction, **{"from": list(here)}
        )
        try:
            consumer.seek(tp, target)
            outcome, err = "ok", ""
            self.position[tp] = order_key(target)
            self.delivered[tp] = []
            # As Kafka's commitSync() after a seek, the next commit covers the new position (what
            # the consumer says it is: a target outside the log was resolved by auto_offset_reset).
            self.pending[tp] = order_key(consumer.position(tp))
            self.unconfirmed.pop(tp, None)
        except FacadeError as exc:
            outcome, err = "error", f"{type(exc).__name__}: {exc}"[:300]
        self.log.write("seek-end", topic=tp.topic, p=tp.partition, outcome=outcome, err=err)

    def skip_one(self, consumer: Consumer) -> None:
        owned = consumer.assignment()
        if self.skipped in owned or not owned:
            return
        self.skipped = min(owned)
        consumer.pause([self.skipped])
        self.log.write("pause", tps=_tps([self.skipped]))

    def run_phantom(self) -> int:
        """Not a member at all: reads the topic in a group of its own and logs what it reads as
        deliveries of this group, as a consumer that ignores ownership would."""
        consumer = self.consumer(f"{self.args.group}-phantom-{self.args.name}")
        try:
            while not self.stop:
                records = consumer.poll(timeout_ms=200, max_records=self.args.batch)
                self.process(consumer, records, time.time())
                if records:
                    consumer.commit()
        finally:
            self.close(consumer)
        return 0

    def close(self, consumer: Consumer) -> None:
        try:
            consumer.close()
        except FacadeError as exc:
            self.log.write("error", where="close", err=f"{type(exc).__name__}: {exc}"[:300])
        self.log.write("stop")
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("group")
    ap.add_argument("topic")
    ap.add_argument("log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--instance", default=None, help="group_instance_id (static membership)")
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument("--session-ms", type=int, default=3000)
    ap.add_argument("--heartbeat-ms", type=int, default=300)
    ap.add_argument("--batch", type=int, default=100, help="max_records per poll")
    ap.add_argument("--slow", action="store_true", help="start with the slow handler on")
    ap.add_argument("--slow-ms", type=int, default=25, help="sleep per record while slow")
    ap.add_argument(
        "--crash-after", type=int, default=0, help="commit-then-crash: die after this many batches"
    )
    ap.add_argument(
        "--async-commits", action="store_true", help="commit asynchronously, every fifth synchronously"
    )
    ap.add_argument("--seed", type=int, default=0)
    return Member(ap.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
