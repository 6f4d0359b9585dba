"""``python -m tests.chaos``: seeded chaos runs against a consumer group, with the checker's verdict.

From the repository root (with facade installed):

    python -m tests.chaos --seed 7 --duration 60                  # one run, bundled Valkey
    python -m tests.chaos --seed 1 --runs 10 --duration 60        # a campaign: seeds 1..10
    python -m tests.chaos --seed 42 --duration 600                # a long run (about 11 minutes)
    python -m tests.chaos --server-binary /usr/bin/redis-server --report out.json
    python -m tests.chaos --control all --faults none --duration 30   # the checker must catch each
                                                                   # (two runs: the phantom runs alone)
    python -m tests.chaos --seed 3 --duration 60 --poison 2       # with the poison-record workload
    python -m tests.chaos --check /tmp/chaos-xxxx                  # check an earlier run's logs again
    python -m tests.chaos --workload relay --seed 3 --runs 5 --duration 60   # relays under faults
    python -m tests.chaos --workload relay --dedup-ids --duration 60         # relay(atomic=False)
    python -m tests.chaos --workload relay --control all --faults none --duration 15   # broken relays

Exit status: 0 no anomaly (and every control caught), 1 anomalies (or a control not caught),
2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import controls, dead_letters
from .check import CLASSES
from .faults import KINDS
from .run import RunConfig, check_dir, remove, run


def _members(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    bounds = (int(lo), int(hi or lo))
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"--members wants N or LO-HI with 1 <= LO <= HI, got {text!r}")
    return bounds


def _choice(allowed: tuple[str, ...], name: str):
    def parse(text: str) -> tuple[str, ...]:
        if text == "none":
            return ()
        if text == "all":
            return allowed
        picked = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in picked if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {name} {', '.join(bad)}; choose from {', '.join(allowed)}"
            )
        return picked

    return parse


def main(argv: list[str] | None = None) -> int:
    head, _, rest = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description=head,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1, help="runs with seeds SEED, SEED+1, ...")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of faults per run")
    ap.add_argument("--server-binary", help="redis-server / valkey-server (default: the bundled Valkey)")
    ap.add_argument("--members", type=_members, default=(3, 6), help="group size, N or LO-HI (default 3-6)")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100.0, help="records per second per producer")
    ap.add_argument("--session-ms", type=int, default=3000)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--batch", type=int, default=100, help="max_records per poll")
    ap.add_argument("--fault-interval", type=float, default=2.0, help="mean seconds between faults")
    ap.add_argument(
        "--faults",
        type=_choice(KINDS, "fault"),
        default=KINDS,
        help=f"comma-separated, 'all' or 'none' ({', '.join(KINDS)})",
    )
    ap.add_argument(
        "--control",
        type=_choice(CLASSES + dead_letters.CLASSES, "class"),
        default=(),
        help=f"add a broken member per class, which must be caught ('all' or comma-separated: {', '.join(CLASSES)})",
    )
    ap.add_argument(
        "--poison",
        type=int,
        default=0,
        metavar="N",
        help="add the poison-record workload with N consumers (max_deliveries; its dead-letter topic must "
        "hold exactly the poison records)",
    )
    ap.add_argument("--max-deliveries", type=int, default=2, help="of the poison-record workload's consumers")
    ap.add_argument("--split-window-ms", type=int, help="default: session + one slow batch + 1 s")
    ap.add_argument("--report", type=Path, help="write the report as JSON here")
    ap.add_argument("--workdir", type=Path, help="keep the logs here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the logs of runs without anomalies too")
    ap.add_argument("--check", type=Path, metavar="DIR", help="only check the logs of an earlier run")
    ap.add_argument("--workload", choices=("group", "relay"), default="group",
                    help="group: consumer group members (default); relay: facade.relay processes (tests/chaos/relay_run.py)")  # fmt: skip
    ap.add_argument("--relays", type=int, default=3, help="relay workload: relay processes")
    ap.add_argument("--dedup-ids", action="store_true", help="relay workload: relay(atomic=False), as on Redis Cluster")
    args = ap.parse_args(argv)
    if args.workload == "relay":
        return _relays(args)

    from .report import render, summarize

    if args.check:
        window = args.split_window_ms / 1000 if args.split_window_ms else None
        _, result = check_dir(args.check, window)
        print(
            json.dumps(
                {"figures": result.figures, "anomalies": {c: len(v) for c, v in result.anomalies.items()}},
                indent=2,
            )
        )
        for cls, items in result.anomalies.items():
            for a in items[:5]:
                print(f"{cls}: {a.what}")
        return 1 if result.total else 0

    summaries, failed = [], False
    plan = [
        (args.seed + i, group) for i in range(args.runs) for group in (controls.groups(args.control) or [()])
    ]
    for seed, group in plan:
        name = f"seed-{seed}" + (f"-control-{'-'.join(group)}" if group else "")
        workdir = args.workdir / name if args.workdir else None
        cfg = RunConfig(
            seed=seed,
            duration_s=args.duration,
            server_binary=args.server_binary,
            members=args.members,
            partitions=args.partitions,
            producers=args.producers,
            rate=args.rate,
            session_ms=args.session_ms,
            heartbeat_ms=args.heartbeat_ms,
            batch=args.batch,
            fault_interval_s=args.fault_interval,
            faults=args.faults,
            controls=group,
            poison=args.poison,
            max_deliveries=args.max_deliveries,
            window_s=args.split_window_ms / 1000 if args.split_window_ms else None,
            workdir=workdir,
        )
        r = run(cfg)
        summary = summarize(r)
        summaries.append(summary)
        print(render([summary]), flush=True)
        bad = r.anomalies > 0 and not cfg.controls or not all(r.controls.values())
        failed |= bad
        if not bad and not args.keep and not args.workdir:
            remove(r.workdir)
    if len(summaries) > 1:
        print(render(summaries))
    if args.report:
        args.report.write_text(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2) + "\n")
    return 1 if failed else 0


def _relays(args: argparse.Namespace) -> int:
    from . import relay_check, relay_run

    if args.control == CLASSES:  # "all"
        args.control = relay_check.CONTROLLED
    bad = [c for c in args.control if c not in relay_check.CONTROLLED]
    if bad:
        print(f"relay controls are {', '.join(relay_check.CONTROLLED)}, not {', '.join(bad)}", file=sys.stderr)
        return 2
    faults = tuple(k for k in relay_run.KINDS if k in args.faults or k.removesuffix("-many") in args.faults)
    failed, summaries = False, []
    for i in range(args.runs):
        cfg = relay_run.RelayRunConfig(
            seed=args.seed + i, duration_s=args.duration, server_binary=args.server_binary,
            atomic=not args.dedup_ids, relays=args.relays, partitions=args.partitions, producers=args.producers,
            rate=args.rate, session_ms=args.session_ms, heartbeat_ms=args.heartbeat_ms,
            fault_interval_s=args.fault_interval, faults=faults, controls=args.control,
            workdir=args.workdir / f"relay-seed-{args.seed + i}" if args.workdir else None,
        )  # fmt: skip
        r = relay_run.run(cfg)
        print(relay_run.render(r), flush=True)
        summaries.append(relay_run.summary(r))
        bad_run = r.anomalies > 0 and not cfg.controls or not all(r.controls.values())
        failed |= bad_run
        if not bad_run and not args.keep and not args.workdir:
            remove(r.workdir)
    if args.report:
        args.report.write_text(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
