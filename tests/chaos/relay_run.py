"""One run of the relay workload: relays copying a topic under faults, then the checker's verdict.

1. Start a broker (AOF, fsync always) and a proxy; create the source and destination topics
   (same partition count, so a key's records share one destination partition).
2. Start ``relays`` relay processes in one group (``facade.relay``; atomic or with dedup ids),
   plus any control relays (deliberately broken, :data:`relay.CONTROLS`), and the keyed
   producers writing the source.
3. Fault phase, seeded: ``kill -9`` of several relays at once, SIGSTOP of several at once (short,
   or past the session timeout, so their partitions move while they are frozen), and of one;
   connection cuts; broker restarts. Killed relays come back 0.2-3 s later.
4. Quiesce (every fault ended, every relay slot running), calm for ``calm_s``, stop the producers.
5. Drain: until the relay group's lag on the source is 0, or the deadline (quiet + session +
   20 s). Stop the relays, read the destination back (Admin.read_records) into the ``sink`` log.
6. Check (:mod:`relay_check`): lost, duplicate, order, stuck.

Relay processes take the place of group members in :class:`cluster.Cluster` (restarts, faults).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import facade.server
from facade import Admin, FacadeError, TopicPartition

from . import relay_check
from .cluster import Cluster, Settings, Slot, Worker
from .events import EventLog
from .faults import Injector
from .history import load
from .run import RunResult

SRC, DST, GROUP = "relay-src", "relay-dst", "relay-group"

WEIGHTS = {"kill-many": 3, "pause-many": 3, "kill": 1, "pause": 1, "cut": 1, "broker": 0.5}
KINDS = tuple(WEIGHTS)
SLOT_OPTIONS = {"commit-before-confirm": {"crash_after": 3}, "no-dedup": {"crash_after": 3}}


@dataclass
class RelayRunConfig:
    seed: int = 1
    duration_s: float = 30.0
    server_binary: str | None = None
    atomic: bool = True  # False: dedup ids (the Redis Cluster default)
    relays: int = 3
    partitions: int = 6
    producers: int = 2
    rate: float = 100.0  # records per second, per producer
    keys: int = 20  # per producer
    session_ms: int = 3000
    heartbeat_ms: int = 500
    fault_interval_s: float = 1.5
    faults: tuple[str, ...] = KINDS
    controls: tuple[str, ...] = ()
    calm_s: float = 3.0
    workdir: Path | None = None


@dataclass
class RelayRunResult(RunResult):
    """A relay run's result: the group run's fields, with the relay workload's configuration."""

    config: RelayRunConfig  # type: ignore[assignment]


class RelayCluster(Cluster):
    """The cluster of the group workload with relay processes in the members' places."""

    atomic = True

    def start_member(self, slot: Slot) -> Worker:
        s = self.s
        args = [SRC, DST, GROUP, "--mode", slot.mode, "--atomic" if self.atomic else "--no-atomic",
                "--session-ms", str(s.session_ms), "--heartbeat-ms", str(s.heartbeat_ms)]  # fmt: skip
        if slot.crash_after and slot.incarnations == 0:
            args += ["--crash-after", str(slot.crash_after)]
        self.restart_at.pop(slot.name, None)
        return self.start_worker(slot, "member", "relay", *args)


def control_slot(cls: str) -> str:
    return f"c-{relay_check.MODE_FOR[cls]}"


class RelayFaults:
    """Faults aimed at several relays at once, beside the single ones of :class:`faults.Injector`."""

    def __init__(self, cluster: RelayCluster, injector: Injector, rng: random.Random) -> None:
        self.c, self.inj, self.rng = cluster, injector, rng

    def _several(self) -> list[Worker]:
        pool = sorted((w for w in self.c.members(current_only=True) if w.paused_since is None and w.ready),
                      key=lambda w: w.name)  # fmt: skip
        if len(pool) < 2:
            return pool
        return self.rng.sample(pool, self.rng.randint(2, len(pool)))

    def strike(self, kind: str) -> None:
        if kind in ("kill-many", "pause-many"):
            victims = self._several()
            if not victims:
                return
        if kind == "kill-many":
            for w in victims:
                self.c.kill(w)
            for w in victims:
                self.c.restart_at[w.slot.name] = time.monotonic() + self.rng.uniform(0.2, 3.0)
            self.inj._log("kill-many", procs=[w.name for w in victims])
        elif kind == "pause-many":
            long = self.rng.random() < 0.5
            seconds = self.inj.session_s * (self.rng.uniform(1.3, 2.5) if long else self.rng.uniform(0.2, 0.6))
            for w in victims:
                self.c.pause(w)
            for w in victims:
                self.inj.later(seconds, lambda w=w: self.c.resume(w))
            self.inj._log("pause-many", procs=[w.name for w in victims], seconds=round(seconds, 3), long=long)
        else:
            self.inj.inject(kind)


def _lag(admin: Admin, partitions: int) -> dict[int, int | None]:
    lag: dict[int, int | None] = dict.fromkeys(range(partitions))
    try:
        for p in admin.describe_group(GROUP).partitions:
            if p.topic == SRC:
                lag[p.partition] = p.lag
    except FacadeError:
        pass
    return lag


def _drain(cfg: RelayRunConfig, cluster: RelayCluster, runlog: EventLog, quiet: float) -> dict[str, float]:
    deadline = quiet + cfg.session_ms / 1000 + 20.0
    began = time.time()
    drained = None
    with Admin(cluster.broker.url) as admin:
        while True:
            cluster.supervise()
            lag = _lag(admin, cfg.partitions)
            now = time.time()
            if all(n == 0 for n in lag.values()):
                drained = now
                break
            if now >= deadline:
                break
            time.sleep(0.5)
    runlog.write("drain", quiet=quiet, deadline=deadline, drained=drained,
                 lag=[[SRC, p, n] for p, n in sorted(lag.items())])  # fmt: skip
    return {"drain_s": round(time.time() - began, 2), "drained_after_quiet_s": round(drained - quiet, 2) if drained else -1}


def _read_destination(url: str, partitions: int, directory: Path) -> int:
    """Write every record of the destination to the ``sink`` log, partition by partition."""
    sink = EventLog(directory / f"{relay_check.SINK}.jsonl")
    sink.write("start", role="sink", topic=DST)
    n = 0
    with Admin(url) as admin:
        for p in range(partitions):
            offset = 0
            while True:
                batch = admin.read_records(TopicPartition(DST, p), offset, 1000)
                if not batch:
                    break
                for m in batch:
                    key, _, seq = m.value.decode().rpartition(":")
                    sink.write("out", p=p, o=m.offset, k=key, s=int(seq))
                offset = batch[-1].offset + 1
                n += len(batch)
    sink.write("stop")
    sink.close()
    return n


def run(cfg: RelayRunConfig) -> RelayRunResult:
    """Run once; the logs stay in ``cfg.workdir`` (a new temporary directory if None)."""
    workdir = Path(cfg.workdir or tempfile.mkdtemp(prefix="chaos-relay-"))
    workdir.mkdir(parents=True, exist_ok=True)
    binary = cfg.server_binary or facade.server.server_binary()
    rng = random.Random(cfg.seed)
    settings = Settings(SRC, GROUP, cfg.partitions, cfg.session_ms, cfg.heartbeat_ms, 100, 0, cfg.keys, cfg.rate)
    runlog = EventLog(workdir / "runner.jsonl")
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k != "workdir"}
    runlog.write("config", workload="relay", binary=binary, **config)
    timings: dict[str, float] = {}
    began = time.monotonic()
    cluster = RelayCluster(binary, workdir, settings, runlog, cfg.seed)
    cluster.atomic = cfg.atomic
    injector = Injector(cluster, rng, cfg.faults, cfg.relays)
    faults = RelayFaults(cluster, injector, rng)
    try:
        with Admin(cluster.broker.url) as admin:
            admin.create_topic(SRC, partitions=cfg.partitions)
            admin.create_topic(DST, partitions=cfg.partitions)
        for i in range(cfg.relays):
            cluster.add_slot(f"r{i}")
        for cls in cfg.controls:
            mode = relay_check.MODE_FOR[cls]
            cluster.add_slot(control_slot(cls), mode=mode, **SLOT_OPTIONS.get(mode, {}))
        for slot in list(cluster.slots.values()):
            cluster.start_member(slot)
        for i in range(cfg.producers):
            cluster.start_producer(i)
        timings["setup_s"] = round(time.monotonic() - began, 2)

        start = time.monotonic()
        end = start + cfg.duration_s
        next_fault = start + rng.expovariate(1 / cfg.fault_interval_s) if cfg.faults else math.inf
        while (now := time.monotonic()) < end:
            cluster.supervise()
            injector.tick()
            if now >= next_fault:
                faults.strike(rng.choices(cfg.faults, [WEIGHTS[k] for k in cfg.faults])[0])
                next_fault = time.monotonic() + rng.expovariate(1 / cfg.fault_interval_s)
            time.sleep(0.05)
        timings["faults_s"] = round(time.monotonic() - start, 2)

        injector.quiesce()
        quiet = runlog.write("quiet")["t"]
        calm_end = time.monotonic() + cfg.calm_s
        while time.monotonic() < calm_end:
            cluster.supervise()
            time.sleep(0.05)
        stopping = time.monotonic()
        cluster.stop(cluster.producers(), timeout=60)
        timings["producers_stop_s"] = round(time.monotonic() - stopping, 2)
        timings.update(_drain(cfg, cluster, runlog, quiet))
        cluster.stop(cluster.members(), timeout=30)
        timings["destination_records"] = _read_destination(cluster.broker.url, cfg.partitions, workdir)
    finally:
        try:
            cluster.shutdown()
        finally:
            runlog.close()
    history = load(workdir)
    result = relay_check.check(history)
    timings["total_s"] = round(time.monotonic() - began, 2)
    caught = {cls: relay_check.caught(cls, result, history, control_slot(cls)) for cls in cfg.controls}
    return RelayRunResult(cfg, binary, workdir, result, history, injector.counts, timings, caught)


def render(r: RelayRunResult) -> str:
    """The text report of one run."""
    c = r.config
    lines = [
        f"chaos relay run: seed {c.seed}, {'atomic' if c.atomic else 'dedup ids'}, {c.relays} relays"
        + (f", controls {'+'.join(c.controls)}" if c.controls else "")
        + f", {c.duration_s:g} s of faults, server {Path(r.binary).name}",
        f"  logs: {r.workdir}",
        f"  times: {', '.join(f'{k} {v}' for k, v in r.timings.items())}",
        f"  faults injected ({sum(r.faults.values())}): "
        + (", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())) or "none"),
    ]
    lines += [f"  {k}: {v}" for k, v in r.result.figures.items()]
    lines.append("  anomalies: " + ", ".join(f"{cls} {len(v)}" for cls, v in r.result.anomalies.items()))
    for cls, found in r.result.anomalies.items():
        lines += [f"    {cls}: {a.what}" for a in found[:5]]
    lines += [f"  control {cls}: {'caught' if ok else 'NOT CAUGHT'}" for cls, ok in r.controls.items()]
    return "\n".join(lines)


def summary(r: RelayRunResult) -> dict[str, Any]:
    """JSON-ready figures of one run."""
    return {
        "seed": r.config.seed,
        "atomic": r.config.atomic,
        "timings": r.timings,
        "faults": dict(r.faults),
        "figures": r.result.figures,
        "anomalies": {cls: len(v) for cls, v in r.result.anomalies.items()},
        "controls": r.controls,
    }
