"""``python -m bench.gateway_groups``: consumer groups of confluent-kafka (librdkafka) consumers
through ``facade gateway`` (a gateway process in front of a fresh Valkey/Redis, as in
``python -m bench.gateway``).

    python -m bench.gateway_groups             # 200,000 records, 3 rounds
    python -m bench.gateway_groups --quick     # 20,000 records, 1 round

Figures, each the median over the rounds:

- ``form_s``: three consumers subscribe at once; seconds until each has its partitions. The
  gateway, like Kafka, lets a first member wait 3 s for others (group.initial.rebalance.delay.ms),
  so this is 3 s plus the rest.
- ``leave_s``: one member closes (LeaveGroup); seconds until the other two own every partition.
- ``group_consume``: records/s for a group of three subscribed consumers (one thread each,
  auto-commit on, as librdkafka defaults) to receive every record of 8 partitions, timed from
  the first assignment the group hands out (its forming before that is ``form_s``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from typing import Any

from .gateway import PARTITIONS, Broker, create_topic, produce
from .server import BenchError

MEMBERS = 3


def _consumer(bootstrap: str, group: str, name: str, **extra: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                     "auto.offset.reset": "earliest", **extra})  # fmt: skip


def rebalances(bootstrap: str, topic: str) -> tuple[float, float]:
    """(form_s, leave_s) for one group of three."""
    consumers = [_consumer(bootstrap, "bench-rebalance", f"m{i}") for i in range(MEMBERS)]
    owned: dict[int, set[int]] = {}
    for i, c in enumerate(consumers):
        c.subscribe([topic], on_assign=lambda _c, ps, i=i: owned.__setitem__(i, {p.partition for p in ps}),
                    on_revoke=lambda _c, ps, i=i: owned.__setitem__(i, set()))  # fmt: skip

    def until(which: range, done: Any) -> float:
        start = time.perf_counter()
        while not done():
            if time.perf_counter() - start > 60:
                raise BenchError("the group did not settle within 60 s")
            for i in which:
                consumers[i].poll(0.01)
        return time.perf_counter() - start

    form = until(range(MEMBERS), lambda: all(owned.get(i) for i in range(MEMBERS)))
    consumers[-1].close()
    leave = until(range(MEMBERS - 1), lambda: set().union(*(owned.get(i, set()) for i in range(MEMBERS - 1)))
                  == set(range(PARTITIONS)))  # fmt: skip
    for c in consumers[:-1]:
        c.close()
    return form, leave


def group_consume(bootstrap: str, topic: str, n: int) -> float:
    """Records/s for a group of three to receive all ``n`` records."""
    got = [0] * MEMBERS
    first: list[float] = []
    stop = threading.Event()
    ready = threading.Barrier(MEMBERS + 1)

    def member(i: int) -> None:
        c = _consumer(bootstrap, "bench-consume", f"c{i}")
        c.subscribe([topic], on_assign=lambda _c, _ps: first.append(time.perf_counter()))
        ready.wait()
        while not stop.is_set():
            for msg in c.consume(10_000, 0.2):
                if msg.error() is None:
                    got[i] += 1
        c.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in range(MEMBERS)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    while sum(got) < n:
        if time.perf_counter() - start > 300:
            stop.set()
            raise BenchError(f"group consume: only {sum(got)} of {n} records within 300 s")
        time.sleep(0.005)
    elapsed = time.perf_counter() - min(first)
    stop.set()
    for t in threads:
        t.join(30)
    if sum(got) != n:
        raise BenchError(f"group consume: {sum(got)} records received for {n} produced (duplicates)")
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gateway_groups", description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, help="records for group_consume (default 200,000)")
    ap.add_argument("--rounds", type=int, help="rounds, median reported (default 3)")
    ap.add_argument("--server-binary", help="redis-server or valkey-server behind the gateway (default: bundled Valkey)")
    ap.add_argument("--quick", action="store_true", help="20,000 records, 1 round")
    args = ap.parse_args(argv)
    preset = (20_000, 1) if args.quick else (200_000, 3)
    for name, value in zip(("messages", "rounds"), preset):
        if getattr(args, name) is None:
            setattr(args, name, value)
    figures: dict[str, list[float]] = {"form_s": [], "leave_s": [], "group_consume": []}
    for r in range(args.rounds):
        with Broker("facade", args.server_binary) as broker:
            create_topic(broker.bootstrap, "groups")
            form, leave = rebalances(broker.bootstrap, "groups")
            create_topic(broker.bootstrap, "records")
            produce(broker.bootstrap, "records", args.messages, 100)
            rate = group_consume(broker.bootstrap, "records", args.messages)
        for key, value in (("form_s", form), ("leave_s", leave), ("group_consume", rate)):
            figures[key].append(value)
        print(f"  round {r + 1}: form {form:.2f} s, leave {leave:.2f} s, group consume {rate:,.0f} rec/s", file=sys.stderr)
    print(f"{args.messages:,} records, {PARTITIONS} partitions, a group of {MEMBERS}, median of {args.rounds} round(s)")
    print(f"form (s)              {statistics.median(figures['form_s']):>10.2f}")
    print(f"leave (s)             {statistics.median(figures['leave_s']):>10.2f}")
    print(f"group consume (rec/s) {statistics.median(figures['group_consume']):>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
