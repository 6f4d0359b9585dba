"""The fault injector: seeded random faults against the cluster, and undoing them afterwards.

Every fault is logged to the runner's log as ``fault`` {kind, ...} when it strikes. Faults that
last (a pause, an isolation, a slow spell, a member that joins and leaves) schedule their own end;
:meth:`Injector.quiesce` ends them all at once when the fault phase is over.

Kinds (``--faults``; all by default):

kill     ``kill -9`` of a member; its slot usually restarts 0.2-3 s later
pause    SIGSTOP for 0.2-0.6x (short) or 1.3-2.5x (long) the session timeout, then SIGCONT
cut      every connection through the proxy aborted at once
isolate  one member's connections cut and refused for 0.3-0.6x or 1.3-2.5x the session timeout
slow     a member's handler sleeps per record (a full batch then outlasts the session) for 5-15 s
static   a static member started again while its previous process still runs
churn    one to three members that join and leave again within 0.3-3 s
seek     a member seeks one of its partitions back, forward past its backlog, or past the end
reset    all members stopped (SIGTERM or kill -9), the group's offsets reset (to the earliest
         record, or to a few seconds ago) once it is empty, members started again
broker   the broker restarted (SIGTERM or kill -9; AOF with fsync always), same port and data
"""

from __future__ import annotations

import heapq
import itertools
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from facade import Admin, FacadeError

from . import procs
from .cluster import Cluster, Slot, Worker

WEIGHTS = {
    "kill": 3,
    "pause": 4,
    "cut": 2,
    "isolate": 2,
    "slow": 2,
    "static": 1,
    "churn": 2,
    "seek": 3,
    "reset": 0.5,
    "broker": 1,
}
KINDS = tuple(WEIGHTS)


class Injector:
    def __init__(
        self, cluster: Cluster, rng: random.Random, kinds: tuple[str, ...], min_members: int
    ) -> None:
        self.c = cluster
        self.rng = rng
        self.kinds = kinds
        self.min_members = min_members
        self.session_s = cluster.s.session_ms / 1000
        self.counts: Counter = Counter()
        self._later: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._joiners = itertools.count()
        self._isolated: dict[str, float] = {}  # worker -> end of its isolation (monotonic)

    # -- scheduling ------------------------------------------------------------------------

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), fn))

    def tick(self) -> None:
        """Run the scheduled ends of faults that are due."""
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:
            heapq.heappop(self._later)[2]()

    def _log(self, kind: str, **fields: Any) -> None:
        self.counts[kind] += 1
        self.c.runlog.write("fault", kind=kind, **fields)

    def _member(
        self, *, current_only: bool = False, when: Callable[[Worker], bool] = lambda w: True
    ) -> Worker | None:
        pool = [
            w
            for w in self.c.members(current_only=current_only)
            if w.paused_since is None and w.ready and when(w)
        ]
        return self.rng.choice(sorted(pool, key=lambda w: w.name)) if pool else None

    # -- faults ----------------------------------------------------------------------------

    def inject(self, kind: str | None = None, target: str | None = None, **options: Any) -> bool:
        """Strike one fault (of ``kind``, at the member of slot ``target``, with ``options``, if given)."""
        if kind is None:
            kind = self.rng.choices(self.kinds, [WEIGHTS[k] for k in self.kinds])[0]
        worker = None
        if target is not None:
            worker = self.c.current.get(target)
            if worker is None or not worker.alive:
                return False
        return bool(getattr(self, f"_{kind}")(worker, **options))

    def _kill(self, w: Worker | None) -> bool:
        w = w or self._member()
        if w is None:
            return False
        live = len([m for m in self.c.members(current_only=True) if m is not w])
        self.c.kill(w)
        slot = w.slot
        restart = None
        if self.c.current.get(slot.name) is w and slot.wanted:
            if live < self.min_members or self.rng.random() < 0.75:
                restart = self.rng.uniform(0.2, 3.0)
                self.c.restart_at[slot.name] = time.monotonic() + restart
            else:
                slot.wanted = False  # stays down until the faults stop
        self._log("kill", proc=w.name, restart_s=restart)
        return True

    def _pause(self, w: Worker | None, long: bool | None = None) -> bool:
        w = w or self._member()
        if w is None:
            return False
        long = self.rng.random() < 0.5 if long is None else long
        seconds = self.session_s * (self.rng.uniform(1.3, 2.5) if long else self.rng.uniform(0.2, 0.6))
        self.c.pause(w)
        self.later(seconds, lambda: self.c.resume(w))
        self._log("pause", proc=w.name, seconds=round(seconds, 3), long=long)
        return True

    def _cut(self, _: Worker | None) -> bool:
        self._log("cut", connections=self.c.proxy.cut("*"))
        return True

    def _isolate(self, w: Worker | None) -> bool:
        now = time.monotonic()
        w = w or self._member(when=lambda w: self._isolated.get(w.name, 0.0) <= now)
        if w is None:
            return False
        long = self.rng.random() < 0.5
        seconds = self.session_s * (self.rng.uniform(1.3, 2.5) if long else self.rng.uniform(0.3, 0.6))
        self._isolated[w.name] = now + seconds
        self._log(
            "isolate",
            proc=w.name,
            seconds=round(seconds, 3),
            long=long,
            connections=self.c.proxy.block(w.name, seconds),
        )
        return True

    def _slow(self, w: Worker | None) -> bool:
        w = w or self._member(when=lambda w: not w.slow)
        if w is None:
            return False
        seconds = self.rng.uniform(5.0, 15.0)
        self.c.set_slow(w, True)
        self.later(seconds, lambda: self.c.set_slow(w, False))
        self._log("slow", proc=w.name, seconds=round(seconds, 3))
        return True

    def _static(self, w: Worker | None) -> bool:
        w = w or self._member(current_only=True, when=lambda w: w.slot.static)
        if w is None or not w.slot.static:
            return False
        new = self.c.start_member(w.slot)
        self._log("static", proc=w.name, new=new.name)
        return True

    def _churn(self, _: Worker | None) -> bool:
        names = []
        for _ in range(self.rng.choice([1, 1, 2, 3])):
            slot = self.c.add_slot(f"j{next(self._joiners)}", role="joiner", wanted=False)
            w = self.c.start_member(slot)
            self.later(self.rng.uniform(0.3, 3.0), lambda w=w: self.c.terminate(w))
            names.append(w.name)
        self._log("churn", procs=names)
        return True

    def _seek(self, w: Worker | None) -> bool:
        w = w or self._member()
        if w is None or not procs.signal_group(w.popen, signal.SIGUSR1):
            return False
        self._log("seek", proc=w.name)
        return True

    def _broker(self, _: Worker | None) -> bool:
        hard = self.rng.random() < 0.5
        down = self.c.broker.restart(hard)
        self._log("broker", hard=hard, down_s=round(down, 3))
        return True

    def _reset(self, _: Worker | None) -> bool:
        c = self.c
        hard = self.rng.random() < 0.5
        running = [
            s
            for s in c.slots.values()
            if s.role == "member"
            and s.wanted
            and c.current.get(s.name) is not None
            and c.current[s.name].alive
        ]
        for slot in running:
            slot.wanted = False
        members = c.members()
        if hard:
            for w in members:
                c.kill(w)
        c.stop(members, timeout=20)
        empty = self._wait_empty(self.session_s + 5.0)
        earliest = self.rng.random() < 0.5
        how: dict[str, Any] = (
            {"to_earliest": True}
            if earliest
            else {"to_datetime_ms": int(time.time() * 1000) - self.rng.randint(1000, 5000)}
        )
        self._log("reset", hard=hard, empty=empty, how=how)
        with Admin(c.broker.url) as admin:
            outcome, err = "ok", ""
            try:
                plan = admin.reset_offsets(c.s.group, c.s.topic, execute=False, **how)
                c.runlog.write("reset", topic=c.s.topic, targets=[[r.partition, r.target] for r in plan])
                try:
                    admin.reset_offsets(c.s.group, c.s.topic, execute=True, **how)
                except FacadeError as exc:
                    outcome, err = "error", f"{type(exc).__name__}: {exc}"[:300]
                    self.counts["reset failed midway"] += 1
                c.runlog.write("reset-end", outcome=outcome, err=err)
            except FacadeError as exc:
                c.runlog.write("reset-refused", err=f"{type(exc).__name__}: {exc}"[:300])
                self.counts["reset refused"] += 1
        for slot in running:
            slot.wanted = True
            c.start_member(slot)
        return True

    def _wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with Admin(self.c.broker.url) as admin:
            while time.monotonic() < deadline:
                try:
                    if not admin.describe_group(self.c.s.group).members:
                        return True
                except FacadeError:
                    pass
                time.sleep(0.25)
        return False

    # -- the end ---------------------------------------------------------------------------

    def quiesce(self) -> None:
        """End every fault now: resume, unblock, stop slow spells and joiners, restart members up
        to the minimum group size."""
        while self._later:
            heapq.heappop(self._later)[2]()
        self.c.proxy.unblock()
        for w in self.c.members():
            self.c.resume(w)
            self.c.set_slow(w, False)
        live = len(self.c.members(current_only=True))
        slots: list[Slot] = sorted(self.c.slots.values(), key=lambda s: s.name)
        for slot in slots:
            cur = self.c.current.get(slot.name)
            if slot.role != "member" or (cur is not None and cur.alive):
                continue
            if slot.wanted or live < self.min_members:
                slot.wanted = True
                self.c.start_member(slot)
                live += 1
