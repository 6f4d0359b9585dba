"""Reading records of owned partitions, ahead of the application (prefetch).

This module is the asyncio source of truth; facade/_sync/fetcher.py is generated from it.

Reads go through guarded.GuardedReader where it can (at-least-once, one server: a WATCH-fenced
MULTI/EXEC with no script), else through lua/fetch.lua. Either way a read also carries what
rides along: an asynchronous commit, the offset of the last record handed to the application
(so that a handover counts deliveries right), and records given back with fail(). After a poll
that returned records, the next read starts at once, beside the application (a thread; a task
under asyncio); what it read waits in a buffer per partition until a poll hands it out.

The broker's read position is the stream group's last-delivered ID. When this member cannot be
sure where it is (a read whose reply was lost) or needs it elsewhere (fail(), buffered records
dropped), the next read passes ``start`` and the script moves it first.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import keys, offsets, scripts
from ..config import ConsumerConfig
from ..errors import CommitFailedError, FacadeError, UnknownTopicError
from ..records import TopicPartition
from ..subscription import PartitionState, Subscription
from . import _backend
from .client import Connection
from .guarded import GuardedReader

__all__ = ["Fetcher"]

# Most records one read may bring from one partition.
_MAX_READ = 10_000


class _Read(NamedTuple):
    """One partition's part of a read, as sent (a prefetch runs beside later changes)."""

    state: PartitionState
    token: str
    count: int
    start: int | None
    commit: int | None
    handed: str
    failed: tuple[tuple[int, int], ...]  # fail()ed offsets, each with its failure count


class Fetcher:
    """Fills per-partition buffers of read records and hands them out."""

    def __init__(self, conn: Connection, reader: GuardedReader, group: str, config: ConsumerConfig, sub: Subscription):
        self._conn = conn
        self._reader = reader
        self._group = group
        self._config = config
        self._sub = sub
        self._ready: dict[TopicPartition, list[Any]] = {}
        self._inflight: tuple[Any, list[_Read]] | None = None
        self._stale: set[TopicPartition] = set()  # partitions whose in-flight results are dropped
        self._rotation = 0
        # Not at-most-once (its reads commit what they read), nor with max_deliveries (which must
        # know exactly what the application was handed): there every read is a poll's own.
        self.prefetch = config.guarantee != "at-most-once" and config.max_deliveries is None
        self._noack = config.guarantee == "at-most-once"
        self.lost: set[TopicPartition] = set()  # found fenced or deleted: the consumer acts on it

    # -- buffers -------------------------------------------------------------------------------

    def forget(self, tp: TopicPartition) -> None:
        """Drop what was read from ``tp`` and not handed out, and what the read in flight brings
        from it. The broker's position is then ahead: the next read starts at the position."""
        self._ready.pop(tp, None)
        if self._inflight is not None:
            self._stale.add(tp)
        state = self._sub.get(tp)
        if state is not None:
            state.restart = state.position
            state.fetched = state.position

    def carries_commit(self) -> bool:
        """Whether the read in flight carries an asynchronous commit."""
        return self._inflight is not None and any(r.commit is not None for r in self._inflight[1])

    async def settle(self) -> None:
        """Finish the read in flight (before a seek, a commit, a revoke): its records are kept;
        if it failed, its partitions read again from their positions."""
        if self._inflight is None:
            return
        try:
            await self._collect()
        except FacadeError:
            self._restart_all()

    async def report(self, partitions: set[TopicPartition]) -> None:
        """Send what rides along (fail() reports) for these partitions now, before they are
        given up: a failure counts even when the consumer closes right after it."""
        reads = [
            _Read(s, s.token, 0, s.restart, None, "", s.reports())
            for tp, s in self._sub.owned.items()
            if tp in partitions and s.failed
        ]
        if reads:
            await self._apply(reads, await self._read(reads))

    def _restart_all(self) -> None:
        """After a read whose outcome is unknown: every partition reads again from its position."""
        for tp in list(self._ready):
            self._ready.pop(tp)
        for state in self._sub.owned.values():
            state.restart = state.position
            state.fetched = state.position

    # -- reading -------------------------------------------------------------------------------

    async def fetch(self, limit: int) -> list[tuple[PartitionState, list[Any]]]:
        """Up to ``limit`` read entries for the application, by partition: those a prefetch
        already read first, else a read now; then, after a non-empty one, the next read starts."""
        try:
            idle = False
            if self._inflight is not None:
                idle = await self._collect()
            taken = self._take(limit)
            # After an idle prefetch (it just looked) poll() waits for records, unless something
            # waits to ride along with a read.
            if not taken and (not idle or self._riders()):
                reads = self._plan(limit)
                if reads:
                    await self._apply(reads, await self._read(reads))
                    taken = self._take(limit)
            if taken and self.prefetch:
                reads = self._plan(limit)
                if reads:
                    self._inflight = (_backend.spawn(self._read, reads), reads)
                    await _backend.sleep(0)  # let it send its request before this batch is decoded
        except FacadeError:
            self._restart_all()
            raise
        return taken

    def _riders(self) -> bool:
        return any(s.async_commit is not None or s.failed for s in self._sub.owned.values())

    def _plan(self, limit: int) -> list[_Read]:
        """One read per owned partition that is not paused and has no records buffered; ``limit``
        records shared among them (never more in all). A partition with records buffered is
        only told what rides along (a read of 0 records), so that how far the application got
        is known on the broker however the records reached it."""
        riders = []
        for tp in self._sub.readable():
            state = self._sub.owned[tp]
            if not self._ready.get(tp):
                continue
            handed = "read" if state.alone else self._handed(state)
            if state.async_commit is not None or handed:
                riders.append(_Read(state, state.token, 0, None, state.async_commit, handed, ()))
        order = [tp for tp in self._sub.readable() if not self._ready.get(tp)]
        if not order:
            return self._survivors(riders) + riders
        # Start at a different partition each time so that one busy partition cannot starve others.
        self._rotation = (self._rotation + 1) % len(order)
        order = order[self._rotation :] + order[: self._rotation]
        if self._config.max_deliveries is not None:
            reads = self._plan_counted(order, limit)
            return self._survivors(reads + riders) + reads + riders
        share, extra = divmod(limit, len(order))
        reads = []
        for i, tp in enumerate(order):
            count = min(share + (1 if i < extra else 0), _MAX_READ)
            if count <= 0:
                continue
            state = self._sub.owned[tp]
            handed = self._handed(state)
            reads.append(_Read(state, state.token, count, state.restart, state.async_commit, handed, state.reports()))
        return reads + riders

    def _plan_counted(self, order: list[TopicPartition], limit: int) -> list[_Read]:
        """The reads of a poll with max_deliveries: each tells the broker that the records read
        are handed to the application now ("read"). Records handed out before a crash and not
        committed come back one at a time, and alone: one record in all, from one partition, so
        that a crash while the application holds it is a failure of that record and of no other
        (fetch.lua marks it "reads"; claim.lua counts the failure)."""
        for tp in order:
            state = self._sub.owned[tp]
            start = state.fetched if state.restart is None else state.restart
            if state.suspect(start):
                # Always from where this member is: the read hands out exactly the record it marks
                # (run twice after a lost reply, it reads and marks that record again).
                return [_Read(state, state.token, 1, start, state.async_commit, "reads", state.reports())]
        share, extra = divmod(limit, len(order))
        reads = []
        for i, tp in enumerate(order):
            count = min(share + (1 if i < extra else 0), _MAX_READ)
            if count > 0:
                state = self._sub.owned[tp]
                reads.append(_Read(state, state.token, count, state.restart, state.async_commit, "read", state.reports()))
        return reads

    def _survivors(self, planned: list[_Read]) -> list[_Read]:
        """With max_deliveries, a read of 0 records for each owned partition (paused ones too)
        that no planned read covers and that has something to tell: its record last handed out
        alone ("read": the application is back for more, so that record did not crash it; its mark
        must stop counting before anything else is handed out, or a crash on the next record would
        count against it too), an asynchronous commit or fail() reports (while one partition's
        records come back one at a time, the others are not read, and these must not wait for
        it). They go first in the pipeline, ahead of the read that hands out more."""
        if self._config.max_deliveries is None:
            return []
        told = {r.state.tp for r in planned}
        return [
            _Read(state, state.token, 0, None, state.async_commit, "read" if state.alone else "", state.reports())
            for tp, state in self._sub.owned.items()
            if tp not in told and (state.alone or state.async_commit is not None or state.failed)
        ]

    def _handed(self, state: PartitionState) -> str:
        """The handed-out mark to send ("" when the broker has it already)."""
        if self._noack or self._config.max_deliveries is not None or state.position - 1 <= state.handed_sent:
            return ""
        return str(state.position - 1)

    async def _read(self, reads: list[_Read]) -> list[Any]:
        """Each read's scripts.Fetched (or its error): through the guarded reader when it can,
        else the fetch script."""
        context = f"fetching for group {self._group}"
        guarded = (
            self._reader.enabled
            and self._config.guarantee == "at-least-once"
            and all(r.start is None and not r.failed and r.handed not in ("read", "reads") for r in reads)
        )
        if guarded:
            writes: list[tuple[Any, ...]] = []
            for r in reads:
                tp = r.state.tp
                if r.commit is not None:
                    writes.append(("HSET", keys.committed(tp.topic, tp.partition), self._group, r.commit))
                if r.handed:
                    writes.append(("HSET", keys.deliveries(tp.topic, tp.partition), self._group, r.handed))
            parts = [
                (keys.stream(r.state.tp.topic, r.state.tp.partition) if r.count else None,
                 keys.owners(r.state.tp.topic, r.state.tp.partition), r.token)
                for r in reads
            ]  # fmt: skip
            got = await self._reader.read(self._group, parts, writes, max(r.count for r in reads) or 1, context)
            if got is not None:
                return [scripts.Fetched(entries, "") for entries, _ in got]
            # Not read here: the script reads from this member's own positions.
            reads[:] = [r._replace(start=r.state.fetched if r.start is None else r.start) for r in reads]
        calls = [
            scripts.fetch(
                r.state.tp, self._group, r.token, r.count, start=r.start, commit=r.commit, handed=r.handed,
                failed=r.failed, noack=self._noack, policy=self._config.auto_offset_reset,
                where=(r.state.last_id, r.state.fetched) if r.count else None,
            )
            for r in reads
        ]  # fmt: skip
        results = await self._conn.pipeline(calls, context)
        return [r if isinstance(r, Exception) else scripts.Fetched.parse(r) for r in results]

    async def _collect(self) -> bool:
        """Wait for the read in flight and keep what it read. Returns whether it came back
        empty-handed from every partition it read, none dropped."""
        task, reads = self._inflight  # type: ignore[misc]
        self._inflight = None
        stale, self._stale = self._stale, set()
        try:
            results = await _backend.join(task)
        except FacadeError:
            for r in reads:
                r.state.restart = r.state.position
                r.state.fetched = r.state.position
                self._ready.pop(r.state.tp, None)
            raise
        kept = [(r, res) for r, res in zip(reads, results) if r.state.tp not in stale]
        await self._apply([r for r, _ in kept], [res for _, res in kept])
        return len(kept) == len(reads) and not any(isinstance(res, scripts.Fetched) and res.entries for _, res in kept)

    async def _apply(self, reads: list[_Read], results: list[Any]) -> None:
        """Buffer what each read brought and move on its partition's read position."""
        error: FacadeError | None = None
        for r, result in zip(reads, results):
            state = r.state
            if self._sub.get(state.tp) is not state or state.token != r.token:
                continue  # given up or claimed again meanwhile: its records reach its next reader
            if isinstance(result, (CommitFailedError, UnknownTopicError)):
                self.lost.add(state.tp)
                continue
            if isinstance(result, Exception):
                state.restart, state.fetched = state.position, state.position
                self._ready.pop(state.tp, None)
                error = error or result
                continue
            expected = state.fetched if r.start is None else r.start
            if r.start is not None and result.position is not None and result.position != r.start:
                # auto_offset_reset moved a start outside the log (trimmed meanwhile): the read
                # began there, as Kafka's does after an out-of-range position.
                expected = result.position
                if not self._ready.get(state.tp):
                    state.position = expected
            if r.start is not None and state.restart == r.start:
                state.restart = None
            if r.commit is not None:
                state.committed = r.commit
                if state.async_commit == r.commit:
                    state.async_commit = None
            if r.failed:
                reported = {o for o, _ in r.failed}
                state.failed = [o for o in state.failed if o not in reported]
            if r.handed and r.handed[0].isdigit():
                state.handed_sent = int(r.handed)
            entries = result.entries
            if r.handed in ("read", "reads"):
                state.alone = r.handed == "reads" and bool(entries)  # fetch.lua's "<offset>s" mark
            if not entries:
                if result.position_id:
                    state.last_id = result.position_id
                if r.start is not None:
                    state.fetched = expected
                continue
            first = offsets.offset_of(entries[0][0])
            if first > expected and (r.start is None or self._config.auto_offset_reset != "earliest"):
                # Records before ``first`` were not handed to this member. Either a read whose
                # reply was lost moved the group's position past them (redis-py sends a pipeline
                # again when its connection drops after sending), or retention trimmed them
                # meanwhile. Read again from ``expected``: the script reads what is there, and for
                # what was trimmed, auto_offset_reset decides, as in Kafka ("earliest" then reads
                # from the log start: that read passes ``start``, and its gap is accepted).
                state.restart = expected
                continue
            last = entries[-1][0]
            state.last_id = last.decode() if isinstance(last, bytes) else last
            state.fetched = offsets.offset_of(last) + 1
            self._ready.setdefault(state.tp, []).extend(entries)
        if error is not None:
            raise error

    def _take(self, limit: int) -> list[tuple[PartitionState, list[Any]]]:
        """Up to ``limit`` buffered entries, by partition, of owned partitions that are not paused,
        starting at a different partition each time; each partition's position moves past them."""
        tps = [tp for tp, ready in self._ready.items() if ready and tp not in self._sub.paused and tp in self._sub.owned]
        if not tps:
            return []
        start = self._rotation % len(tps)
        out = []
        want = limit
        for tp in tps[start:] + tps[:start]:
            if want <= 0:
                break
            ready = self._ready[tp]
            taken, self._ready[tp] = ready[:want], ready[want:]
            state = self._sub.owned[tp]
            out.append((state, taken))
            want -= len(taken)
            state.position = offsets.offset_of(taken[-1][0]) + 1
        return out
