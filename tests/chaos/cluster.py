"""The system under test: one broker, one proxy, and the worker processes the run starts.

Workers are named ``<slot>.<incarnation>``: a *slot* is a place in the group (``m0``, ``m1``, ...;
``j<n>`` for members that join and leave at once) and each process started for it is a new
incarnation. Static slots pass ``group_instance_id=<slot>``, so all their incarnations are one
static member. Every worker reaches the broker through a proxy route named after it, so faults
can cut or isolate one worker. Producers are slots ``p0``, ``p1``, ...
"""

from __future__ import annotations

import signal
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .events import EventLog
from .proxy import Proxy
from .server import Broker


@dataclass
class Slot:
    name: str
    role: str = "member"  # member | joiner (joins, leaves, never restarted) | producer | poison
    # (a worker of the dead-letter workload: tests/chaos/poison.py) | poison-producer
    static: bool = False
    mode: str = "normal"
    slow: bool = False  # start with the slow handler on
    crash_after: int = 0  # commit-then-crash: the first incarnation dies after this many batches
    async_commits: bool = False  # commit(asynchronous=True), and synchronously every fifth batch
    incarnations: int = 0
    wanted: bool = True  # restart it when its current process dies


@dataclass
class Worker:
    name: str
    slot: Slot
    role: str
    popen: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.time)
    paused_since: float | None = None
    slow: bool = False
    exited: int | None = None

    @property
    def alive(self) -> bool:
        return self.exited is None and procs.alive(self.popen)

    @property
    def ready(self) -> bool:
        """Whether it logged its start: its signal handlers are in place (SIGUSR1/2 would
        otherwise kill it)."""
        try:
            return self.log.stat().st_size > 0
        except FileNotFoundError:
            return False


@dataclass
class Settings:
    topic: str
    group: str
    partitions: int
    session_ms: int
    heartbeat_ms: int
    batch: int
    slow_ms: int
    keys: int
    rate: float


class Cluster:
    def __init__(self, binary: str, workdir: Path, settings: Settings, runlog: EventLog, seed: int) -> None:
        self.s = settings
        self.workdir = workdir
        self.runlog = runlog
        self.seed = seed
        self.broker = Broker(binary, workdir / "broker").start()
        self.proxy = Proxy(self.broker.port)
        self.slots: dict[str, Slot] = {}
        self.workers: dict[str, Worker] = {}
        self.current: dict[str, Worker] = {}  # slot -> its newest process
        self.restart_at: dict[str, float] = {}  # slot -> when to start it again (monotonic)
        self.poison: dict[str, Any] = {}  # the dead-letter workload's topic, group and options

    # -- starting --------------------------------------------------------------------------

    def start_worker(self, slot: Slot, role: str, module: str, *args: str, slow: bool = False) -> Worker:
        """Start ``python -m <package>.<module> URL *args LOG --name <slot>.<n>`` as the slot's
        newest process, its URL a proxy route of its own."""
        slot.incarnations += 1
        name = f"{slot.name}.{slot.incarnations}"
        log = self.workdir / f"{name}.jsonl"
        url = self.proxy.route(name)
        err = open(self.workdir / f"{name}.err", "wb")  # noqa: SIM115 - the child holds it; closed below
        try:
            popen = procs.spawn(
                procs.module_argv(module, url, *args, str(log), "--name", name),
                stderr=err,
                env=procs.module_env(),
            )
        finally:
            err.close()
        worker = Worker(name, slot, role, popen, log, slow=slow)
        self.workers[name] = worker
        self.current[slot.name] = worker
        return worker

    def start_producer(self, index: int) -> Worker:
        slot = self.slots.setdefault(f"p{index}", Slot(f"p{index}", role="producer", wanted=False))
        return self.start_worker(
            slot,
            "producer",
            "producer",
            self.s.topic,
            "--keys",
            str(self.s.keys),
            "--rate",
            str(self.s.rate),
            "--seed",
            str(self.seed * 1000 + index),
        )

    def start_poison_producer(self, topic: str, rate: float) -> Worker:
        """The dead-letter workload's producer: its log names role ``poison-producer``."""
        slot = self.slots.setdefault("pp", Slot("pp", role="poison-producer", wanted=False))
        return self.start_worker(
            slot, "poison-producer", "producer", topic, "--keys", str(self.s.keys), "--rate", str(rate),
            "--seed", str(self.seed * 1000 + 999), "--role", "poison-producer",
        )  # fmt: skip

    def start_poison(self, slot: Slot) -> Worker:
        """A worker of the dead-letter workload (tests/chaos/poison.py) for ``slot``."""
        p = self.poison
        self.restart_at.pop(slot.name, None)
        return self.start_worker(
            slot, "poison", "poison", p["group"], p["topic"], "--mode", slot.mode,
            "--max-deliveries", str(p["max_deliveries"]), "--session-ms", str(p["session_ms"]),
            "--heartbeat-ms", str(max(10, p["session_ms"] // 10)),
        )  # fmt: skip

    def start_slot(self, slot: Slot) -> Worker:
        return self.start_poison(slot) if slot.role == "poison" else self.start_member(slot)

    def add_slot(self, name: str, **options: Any) -> Slot:
        slot = Slot(name, **options)
        self.slots[name] = slot
        return slot

    def start_member(self, slot: Slot) -> Worker:
        s = self.s
        args = [
            s.group,
            s.topic,
            "--mode",
            slot.mode,
            "--session-ms",
            str(s.session_ms),
            "--heartbeat-ms",
            str(s.heartbeat_ms),
            "--batch",
            str(s.batch),
            "--slow-ms",
            str(s.slow_ms),
            "--seed",
            str(zlib.crc32(f"{self.seed}/{slot.name}/{slot.incarnations}".encode())),
        ]
        if slot.static:
            args += ["--instance", slot.name]
        if slot.async_commits:
            args.append("--async-commits")
        if slot.slow:
            args.append("--slow")
        if slot.crash_after and slot.incarnations == 0:
            args += ["--crash-after", str(slot.crash_after)]
        self.restart_at.pop(slot.name, None)
        return self.start_worker(slot, "member", "member", *args, slow=slot.slow)

    # -- what is running -------------------------------------------------------------------

    def members(self, *, current_only: bool = False) -> list[Worker]:
        """Live member processes (all of them, or only each slot's newest)."""
        pool = self.current.values() if current_only else self.workers.values()
        return [w for w in pool if w.role == "member" and w.alive]

    def producers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.role == "producer" and w.alive]

    def of_role(self, role: str) -> list[Worker]:
        """Live workers of ``role`` (poison, poison-producer, ...)."""
        return [w for w in self.workers.values() if w.role == role and w.alive]

    def supervise(self) -> None:
        """Note exits, and restart slots that want to run once their restart time has come."""
        now = time.monotonic()
        for w in self.workers.values():
            if w.exited is None and not procs.alive(w.popen):
                w.exited = procs.reap(w.popen, timeout=1)
                self.runlog.write("exited", proc=w.name, code=w.exited)
                if self.current.get(w.slot.name) is w and w.slot.wanted and w.role in ("member", "poison"):
                    # A worker that crashed on a poison record comes back soon, as a supervisor would.
                    self.restart_at.setdefault(w.slot.name, now + (0.2 if w.role == "poison" else 1.0))
        for name, when in list(self.restart_at.items()):
            slot = self.slots[name]
            cur = self.current.get(name)
            if when <= now and slot.wanted and not (cur is not None and cur.alive):
                self.runlog.write("restart", slot=name)
                self.start_slot(slot)

    # -- acting on processes ---------------------------------------------------------------

    def pause(self, w: Worker) -> None:
        if w.paused_since is None and procs.signal_group(w.popen, signal.SIGSTOP):
            w.paused_since = time.time()

    def resume(self, w: Worker) -> None:
        if w.paused_since is not None:
            procs.signal_group(w.popen, signal.SIGCONT)
            self.runlog.write("resumed", proc=w.name, since=w.paused_since)
            w.paused_since = None

    def set_slow(self, w: Worker, slow: bool) -> None:
        if w.slow != slow and procs.signal_group(w.popen, signal.SIGUSR2):
            w.slow = slow

    def kill(self, w: Worker) -> None:
        procs.signal_group(w.popen, signal.SIGKILL)
        self.resume(w)  # bookkeeping only: a killed process is no longer stopped

    def terminate(self, w: Worker) -> None:
        """SIGCONT and SIGTERM without waiting (:meth:`supervise` notes the exit)."""
        self.resume(w)
        procs.signal_group(w.popen, signal.SIGTERM)

    def stop(self, workers: list[Worker], timeout: float = 20.0) -> None:
        """SIGTERM (after SIGCONT) and wait; whatever does not exit in time is killed."""
        for w in workers:
            self.resume(w)
            procs.signal_group(w.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in workers:
            if w.exited is None:
                w.exited = procs.reap(w.popen, timeout=max(0.1, deadline - time.monotonic()))
                self.runlog.write("exited", proc=w.name, code=w.exited)

    def shutdown(self) -> None:
        try:
            self.stop([w for w in self.workers.values() if w.exited is None], timeout=15)
        finally:
            try:
                self.proxy.close()
            finally:
                self.broker.stop()
