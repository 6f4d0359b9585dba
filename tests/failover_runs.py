"""Measure what failovers do to acks="all" writes: python -m tests.failover_runs [--runs N].

For each strike (kill -9 or SIGSTOP of the primary, or of the primary together with one replica)
and each setting (the default: every configured replica; ``min_insync_replicas=2``: the primary
and one replica; ``min_insync_replicas=1``: the primary alone, the control), on a fresh topology
(primary, two replicas, three sentinels; facade.local.sentinel), two producers write keyed
records: one through the sentinels, and one straight to the first primary's address, as a client
behind a stale DNS name or proxy would (the one that can reach a deposed primary). A killed node
is restarted two seconds after the promotion, as a supervisor would; a stopped one is resumed a
second after it. Then the topic is read from the new primary and tests/failover_checker.py counts
acknowledged-but-lost, doubled and reordered records.

Prints one line per run and a summary table; writes JSON with ``--json-out``. Takes about half a
minute per run. The figures are quoted in docs/replication.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from facade import Admin
from facade.local import sentinel as topology

from .failover_checker import (
    Background,
    KeyedSequences,
    Ledger,
    check,
    new_primary,
    producing,
    read_topic,
    wait_for_acks,
)

TOPIC, PARTITIONS = "events", 4
STRIKES = ("kill9-primary", "sigstop-primary", "kill9-primary+replica", "sigstop-primary+replica")
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "min_insync_replicas=2": {"min_insync_replicas": 2},
    "min_insync_replicas=1": {"min_insync_replicas": 1},
}
PRODUCER = {"acks": "all", "linger_ms": 2, "delivery_timeout_ms": 60_000, "metadata_max_age_ms": 1000,
            "replica_timeout_ms": 2000}  # fmt: skip
# The producer writing to the first primary's address directly gives up sooner: the address
# stops being a primary for good.
DIRECT = {**PRODUCER, "delivery_timeout_ms": 10_000}


def one_run(strike: str, setting: str, binary: str | None, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / f"{strike}-{setting}-{time.monotonic_ns()}"
    st = topology.start(data_dir, replicas=2, sentinels=3, down_after_ms=2000, binary=binary)
    try:
        with Admin(st.url) as admin:
            admin.create_topic(TOPIC, PARTITIONS)
        ledger = Ledger()
        options = SETTINGS[setting]
        through = Background(producing(st.url, TOPIC, ledger, KeyedSequences(8), {**PRODUCER, **options}))
        direct_url = f"redis://127.0.0.1:{st.primary.port}"
        direct = Background(producing(direct_url, TOPIC, ledger, _DirectKeys(4), {**DIRECT, **options}, chunk=5))
        wait_for_acks(ledger, 300)
        targets = [st.primary] + ([st.replicas[0]] if "+replica" in strike else [])
        kill = strike.startswith("kill9")
        struck = time.monotonic()
        for node in targets:
            os.kill(node.pid, signal.SIGKILL if kill else signal.SIGSTOP)
        try:
            after = new_primary(data_dir, st.primary.port, timeout=60)
            promoted = time.monotonic() - struck
            time.sleep(2.0 if kill else 1.0)
        finally:
            for node in targets:
                if kill:
                    topology.start_node(data_dir, node.port)
                else:
                    os.kill(node.pid, signal.SIGCONT)
        topology.wait_healthy(data_dir, timeout=60)
        stalled = False
        try:
            wait_for_acks(ledger, 300, timeout=60)
        except TimeoutError:
            stalled = True
        direct.finish(timeout=120)
        through.finish(timeout=120)
        after = topology.status(data_dir)
        result = check(ledger, read_topic(after.url, TOPIC, PARTITIONS))
        return {
            "strike": strike, "setting": setting, "promoted_s": round(promoted, 2),
            "unavailable_s": round(ledger.longest_gap(start=struck), 2), "acknowledged": result.acknowledged,
            "failed": len(ledger.failed), "lost": len(result.lost), "duplicated": len(result.duplicated),
            "reordered": len(result.reordered), "misplaced": len(result.misplaced),
            "unacknowledged_stored": result.unacknowledged_stored, "stalled": stalled,
        }  # fmt: skip
    finally:
        topology.stop(data_dir)


class _DirectKeys(KeyedSequences):
    """Keys of the direct producer: their own sequences, apart from the other producer's."""

    def __init__(self, keys: int) -> None:
        super().__init__(keys)
        self.keys = [f"direct{i}" for i in range(keys)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.failover_runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per strike and setting (default %(default)s)")
    ap.add_argument("--strikes", nargs="+", choices=STRIKES, default=list(STRIKES))
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--server-binary", help="server to run (default: the bundled Valkey)")
    ap.add_argument("--json-out", type=Path, help="write every run's figures here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="failover-runs") as tmp:
        for strike in args.strikes:
            for setting in args.settings:
                for _ in range(args.runs):
                    row = one_run(strike, setting, args.server_binary, Path(tmp))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\n{'strike':26} {'setting':24} runs  lost  doubled  reordered  acked      failed  unavailable s")
    for strike in args.strikes:
        for setting in args.settings:
            mine = [r for r in rows if r["strike"] == strike and r["setting"] == setting]
            total = lambda k, rs=mine: sum(r[k] for r in rs)
            gaps = [r["unavailable_s"] for r in mine]
            print(f"{strike:26} {setting:24} {len(mine):4}  {total('lost'):4}  {total('duplicated'):7}  "
                  f"{total('reordered'):9}  {total('acknowledged'):9}  {total('failed'):6}  "
                  f"{min(gaps):.1f}-{max(gaps):.1f}" + ("  (stalled)" if any(r["stalled"] for r in mine) else ""))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
