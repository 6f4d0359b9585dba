"""One chaos run, start to verdict.

1. Start a broker (AOF, fsync always) on a free port, a proxy in front of it, create the topic.
2. Start the group (3-6 members, about a third of them static, plus any control members) and the
   keyed producers.
3. Fault phase: for ``duration_s``, a fault every ``fault_interval_s`` on average (exponential
   gaps), seeded; crashed members are restarted as their slots ask.
4. Quiesce: end every fault and bring the group back to its minimum size. That moment is
   "quiet"; the orphan deadline is quiet + session timeout + 10 s.
5. Calm: the producers go on for ``calm_s`` (what the faults left behind, such as two processes of
   one static member, shows under load), then stop, each waiting for its outstanding
   acknowledgements.
6. Drain: until every acknowledged record was delivered and the group's lag (``describe_group``)
   is 0 everywhere, or until the orphan deadline + ``grace_s``.
7. With the poison-record workload (``poison``: its own topic, producer and group of consumers
   with ``max_deliveries``; tests/chaos/dead_letters.py): wait until each of its acknowledged
   records was processed or dead-lettered, stop its consumers, log the dead-letter topic.
8. Stop everything, read the logs back and check them.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import facade.server
from facade import Admin, FacadeError

from . import controls, dead_letters
from .check import Result, check
from .cluster import Cluster, Settings
from .events import EventLog, Tail, read_log
from .faults import KINDS, Injector
from .history import History, load
from .offsets import order_key

TOPIC, GROUP = "chaos", "chaos-group"


@dataclass
class RunConfig:
    seed: int = 1
    duration_s: float = 60.0
    server_binary: str | None = None
    members: tuple[int, int] = (3, 6)
    partitions: int = 8
    producers: int = 2
    rate: float = 100.0  # records per second, per producer
    keys: int = 20  # per producer
    session_ms: int = 3000
    heartbeat_ms: int = 500
    batch: int = 100
    slow_ms: int | None = None  # default: a full batch takes 1.5 session timeouts
    fault_interval_s: float = 2.0
    faults: tuple[str, ...] = KINDS
    controls: tuple[str, ...] = ()
    window_s: float | None = None  # split window; default: session + one slow batch + 1 s
    grace_s: float = 10.0  # waited past the orphan deadline before what is missing counts as lost
    calm_s: float | None = None  # default: the split window + 2 s, at most session + 8 s
    poison: int = 0  # consumers of the poison-record workload (0: no such workload, unless a control)
    poison_rate: float = 20.0  # records per second to its topic
    max_deliveries: int = 2
    poison_session_ms: int = 1000  # its consumers' session: each poison crash costs about one
    poison_drain_s: float = 60.0  # waited for its records to be processed or dead-lettered
    workdir: Path | None = None

    @property
    def poison_(self) -> int:
        """Healthy consumers of the poison-record workload (at least one beside a control of it)."""
        aimed = any(c in dead_letters.CLASSES for c in self.controls)
        return max(self.poison, 1 if aimed else 0)

    @property
    def slow_ms_(self) -> int:
        return self.slow_ms if self.slow_ms is not None else math.ceil(1.5 * self.session_ms / self.batch)

    @property
    def window_s_(self) -> float:
        if self.window_s is not None:
            return self.window_s
        return self.session_ms / 1000 + self.batch * self.slow_ms_ / 1000 + 1.0

    @property
    def calm_s_(self) -> float:
        return (
            self.calm_s
            if self.calm_s is not None
            else min(self.window_s_ + 2.0, self.session_ms / 1000 + 8.0)
        )


@dataclass
class RunResult:
    config: RunConfig
    binary: str
    workdir: Path
    result: Result
    history: History
    faults: Counter
    timings: dict[str, float]
    controls: dict[str, bool] = field(default_factory=dict)  # class -> caught

    @property
    def anomalies(self) -> int:
        return self.result.total


def _lag(admin: Admin, partitions: int) -> dict[int, int | None]:
    lag: dict[int, int | None] = dict.fromkeys(range(partitions))
    try:
        for p in admin.describe_group(GROUP).partitions:
            if p.topic == TOPIC:
                lag[p.partition] = p.lag
    except FacadeError:
        pass
    return lag


def _acked(cluster: Cluster) -> set[tuple[Any, ...]]:
    out = set()
    for w in cluster.workers.values():
        if w.role == "producer" and w.log.exists():
            for e in read_log(w.log)[0]:
                if e["ev"] == "ack":
                    out.add((e["topic"], int(e["p"]), order_key(e["o"])))
    return out


def _drain(cfg: RunConfig, cluster: Cluster, runlog: EventLog, quiet: float) -> dict[str, float]:
    deadline = quiet + cfg.session_ms / 1000 + 10.0
    final = deadline + cfg.grace_s
    began = time.time()
    acked = _acked(cluster)
    delivered: set[tuple[Any, ...]] = set()
    tails: dict[Path, Tail] = {}
    drained: float | None = None
    at_deadline: dict[int, int | None] | None = None
    last_sample = 0.0
    with Admin(cluster.broker.url) as admin:
        while True:
            cluster.supervise()
            for w in list(cluster.workers.values()):
                if w.role == "member":
                    for e in tails.setdefault(w.log, Tail(w.log)).new_events():
                        if e.get("ev") == "d":
                            delivered.add((e["topic"], int(e["p"]), order_key(e["o"])))
            lag = _lag(admin, cfg.partitions)
            now = time.time()
            if now - last_sample >= 1.0:
                runlog.write("lag", lag=[[TOPIC, p, n] for p, n in sorted(lag.items())])
                last_sample = now
            if at_deadline is None and now >= deadline:
                at_deadline = lag
            if acked <= delivered and all(n == 0 for n in lag.values()):
                drained = now
                if at_deadline is None:
                    at_deadline = lag
                break
            if now >= final:
                break
            time.sleep(0.5)
    runlog.write(
        "drain",
        quiet=quiet,
        deadline=deadline,
        drained=drained,
        lag=[[TOPIC, p, n] for p, n in sorted((at_deadline or {}).items())],
    )
    return {
        "drain_s": round(time.time() - began, 2),
        "drained_after_quiet_s": round(drained - quiet, 2) if drained else -1,
    }


def _slots(cfg: RunConfig, cluster: Cluster, rng: random.Random) -> None:
    # A third of the members are static, a third commit asynchronously.
    for i in range(rng.randint(*cfg.members)):
        cluster.add_slot(f"m{i}", static=i % 3 == 1, async_commits=i % 3 == 2)
    for i in range(cfg.poison_):
        cluster.add_slot(f"x{i}", role="poison")
    for cls in cfg.controls:
        mode = controls.MODE_FOR[cls]
        role = "poison" if cls in dead_letters.CLASSES else "member"
        cluster.add_slot(controls.slot_name(cls), mode=mode, role=role, **controls.SLOT_OPTIONS.get(mode, {}))


def _poison_end(cfg: RunConfig, cluster: Cluster, runlog: EventLog) -> dict[str, float]:
    """Wait until the workload's records were processed or dead-lettered, stop its consumers, and
    log its dead-letter topic (``dlq``)."""
    began = time.monotonic()
    acked = set()
    for w in cluster.workers.values():
        if w.role == "poison-producer" and w.log.exists():
            acked |= {(e["k"], int(e["s"])) for e in read_log(w.log)[0] if e["ev"] == "ack"}
    logs = [w.log for w in cluster.workers.values() if w.role == "poison"]
    done = dead_letters.processed_or_dead(
        cluster.broker.url, logs, acked, cfg.poison_drain_s, tick=cluster.supervise
    )
    for slot in cluster.slots.values():
        if slot.role == "poison":
            slot.wanted = False
    cluster.stop(cluster.of_role("poison"), timeout=30)
    runlog.write(
        "dlq", topic=dead_letters.POISON_TOPIC, drained=done, records=dead_letters.snapshot(cluster.broker.url)
    )
    return {"poison_drain_s": round(time.monotonic() - began, 2)}


def run(cfg: RunConfig) -> RunResult:
    """Run once; the logs stay in ``cfg.workdir`` (a new temporary directory if None)."""
    workdir = Path(cfg.workdir or tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    binary = cfg.server_binary or facade.server.server_binary()
    rng = random.Random(cfg.seed)
    settings = Settings(
        TOPIC,
        GROUP,
        cfg.partitions,
        cfg.session_ms,
        cfg.heartbeat_ms,
        cfg.batch,
        cfg.slow_ms_,
        cfg.keys,
        cfg.rate,
    )
    runlog = EventLog(workdir / "runner.jsonl")
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k != "workdir"}
    config.update(binary=binary, window_s=cfg.window_s_, slow_ms=cfg.slow_ms_)
    runlog.write("config", **config)
    timings: dict[str, float] = {}
    began = time.monotonic()
    cluster = Cluster(binary, workdir, settings, runlog, cfg.seed)
    injector = Injector(cluster, rng, cfg.faults, cfg.members[0])
    try:
        with Admin(cluster.broker.url) as admin:
            admin.create_topic(TOPIC, partitions=cfg.partitions)
            if cfg.poison_:
                admin.create_topic(dead_letters.POISON_TOPIC, partitions=4)
        cluster.poison = {
            "topic": dead_letters.POISON_TOPIC,
            "group": dead_letters.POISON_GROUP,
            "max_deliveries": cfg.max_deliveries,
            "session_ms": cfg.poison_session_ms,
        }
        _slots(cfg, cluster, rng)
        for slot in list(cluster.slots.values()):
            cluster.start_slot(slot)
        for i in range(cfg.producers):
            cluster.start_producer(i)
        if cfg.poison_:
            cluster.start_poison_producer(dead_letters.POISON_TOPIC, cfg.poison_rate)
        timings["setup_s"] = round(time.monotonic() - began, 2)

        start = time.monotonic()
        end = start + cfg.duration_s
        aimed = sorted(
            [
                (start + frac * cfg.duration_s, kind, controls.slot_name(cls), options)
                for cls in cfg.controls
                for frac, kind, options in controls.TARGETED.get(controls.MODE_FOR[cls], [])
            ],
            key=lambda x: x[0],
        )
        next_fault = start + rng.expovariate(1 / cfg.fault_interval_s) if cfg.faults else math.inf
        while (now := time.monotonic()) < end:
            cluster.supervise()
            injector.tick()
            while aimed and aimed[0][0] <= now:
                _, kind, slot, options = aimed.pop(0)
                injector.inject(kind, slot, **options)
            if now >= next_fault:
                injector.inject()
                next_fault = time.monotonic() + rng.expovariate(1 / cfg.fault_interval_s)
            time.sleep(0.05)
        timings["faults_s"] = round(time.monotonic() - start, 2)

        injector.quiesce()
        quiet = runlog.write("quiet")["t"]
        calm_end = time.monotonic() + cfg.calm_s_
        while time.monotonic() < calm_end:
            cluster.supervise()
            time.sleep(0.05)
        timings["calm_s"] = round(cfg.calm_s_, 2)
        stopping = time.monotonic()
        cluster.stop(cluster.producers() + cluster.of_role("poison-producer"), timeout=60)
        timings["producers_stop_s"] = round(time.monotonic() - stopping, 2)
        timings.update(_drain(cfg, cluster, runlog, quiet))
        if cfg.poison_:
            timings.update(_poison_end(cfg, cluster, runlog))
    finally:
        try:
            cluster.shutdown()
        finally:
            runlog.close()
    history = load(workdir)
    result = check(history, cfg.window_s_, extra=(dead_letters.check,))
    timings["total_s"] = round(time.monotonic() - began, 2)
    caught = {cls: controls.caught(cls, result, history) for cls in cfg.controls}
    return RunResult(cfg, binary, workdir, result, history, injector.counts, timings, caught)


def check_dir(directory: Path, window_s: float | None = None) -> tuple[History, Result]:
    """Check the logs of an earlier run again (the window defaults to the one it used)."""
    history = load(directory)
    return history, check(
        history,
        window_s if window_s is not None else float(history.config.get("window_s", 10)),
        extra=(dead_letters.check,),
    )


def remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
