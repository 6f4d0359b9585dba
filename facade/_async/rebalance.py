"""Following the group: what the membership decided (an assignment, a session that ended, a
lost partition) turned into this consumer's partitions: claim what it gained, revoke what it gives
up (on_revoke, commit, release), lose what was taken away (on_lost, no commit). The consumer calls
:meth:`Rebalance.follow` at every step of its poll loop.

This module is the asyncio source of truth; facade/_sync/rebalance.py is generated from it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import ConsumerConfig
from ..errors import CommitFailedError, FacadeError
from ..records import TopicPartition
from ..subscription import PartitionState, Subscription
from . import _backend
from .committer import Committer
from .fetcher import Fetcher
from .membership import Membership

log = logging.getLogger("facade")

__all__ = ["CLAIM_RETRY_S", "Rebalance"]

CLAIM_RETRY_S = 0.05
"""How often a member retries claiming a partition whose previous owner has not released it yet."""

Callback = Callable[[set[TopicPartition]], Any] | None


class Rebalance:
    """This consumer's side of the group's rebalances (see the module docstring)."""

    def __init__(
        self,
        config: ConsumerConfig,
        sub: Subscription,
        membership: Membership,
        fetcher: Fetcher,
        committer: Committer,
        metrics: Any,
        ride_out: Callable[[FacadeError], Awaitable[None]],
        on_assign: Callback,
        on_revoke: Callback,
        on_lost: Callback,
    ) -> None:
        self.config = config
        self._sub = sub
        self._m = membership
        self._fetcher = fetcher
        self._committer = committer
        self._metrics = metrics
        self._ride_out = ride_out
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._next_claim = 0.0
        self._next_auto_commit = _backend.monotonic() + config.auto_commit_interval_ms / 1000

    async def follow(self) -> None:
        """One step of following the group: confirm the session when unsure (before anything read
        earlier is handed out), raise a fatal error (fenced, for good), lose what an ended session
        or a fenced read took away, join when not in the group, revoke what the assignment moved
        away, claim what it gained (again every CLAIM_RETRY_S while a previous owner holds on),
        and with ``enable_auto_commit`` commit in the background what earlier polls returned."""
        m = self._m
        if m.unsure():
            await m.confirm()  # before anything read earlier is handed out
        if m.fatal is not None:
            raise m.fatal
        ended = m.take_ended()
        if ended is not None and self._sub.owned:
            await self.lose(set(self._sub.owned))
        if not m.joined:
            await m.join()
        lost = self._fetcher.lost
        if lost:
            self._fetcher.lost = set()
            await self.lose(lost & set(self._sub.owned))
        target = m.assignment()
        self._metrics.generation(m.generation)
        if target is not None:
            revoked = set(self._sub.owned) - target
            if revoked:
                await self.revoke(revoked)
            missing = target - set(self._sub.owned)
            if missing != self._sub.to_claim:
                self._sub.to_claim = missing
                self._next_claim = 0.0
        if self._sub.to_claim and _backend.monotonic() >= self._next_claim:
            await self._claim()
        if self.config.enable_auto_commit and _backend.monotonic() >= self._next_auto_commit:
            self._next_auto_commit = _backend.monotonic() + self.config.auto_commit_interval_ms / 1000
            if self.config.guarantee != "at-most-once":
                self._committer.commit_later(self._committer.wanted(None))

    async def _claim(self) -> None:
        self._next_claim = _backend.monotonic() + CLAIM_RETRY_S
        won = await self._m.claim(
            sorted(self._sub.to_claim), self.config.auto_offset_reset, self.config.guarantee == "exactly-once"
        )
        token = self._m.token
        for tp, claimed in won.items():
            self._sub.add(PartitionState(tp, token, claimed.position, claimed.position_id, claimed.redelivered,
                                         claimed.failures))  # fmt: skip
        if won and self._on_assign is not None:
            await _backend.maybe_await(self._on_assign(set(won)))

    async def revoke(self, partitions: set[TopicPartition], *, clean: bool = True) -> None:
        """Give up partitions the assignment moved away: on_revoke, auto-commit, release (clean:
        this consumer was not crashed by what it was handed; see release.lua)."""
        if not partitions:
            return
        await self._fetcher.settle()
        if self._on_revoke is not None:
            await _backend.maybe_await(self._on_revoke(set(partitions)))
        await self._fetcher.report(partitions)
        if self.config.enable_auto_commit and self.config.guarantee != "at-most-once":
            wanted = {tp: v for tp, v in self._committer.wanted(None).items() if tp in partitions}
            try:
                await self._committer.commit_now(wanted, self._ride_out)
            except CommitFailedError as exc:  # taken over already: the new owner has them
                self._metrics.fenced()
                log.warning("facade consumer %s: %s", self._m.member_id, exc)
        else:
            await self._flush_async_commits(partitions)
        owned = [(tp, s.token) for tp in sorted(partitions) if (s := self._drop(tp)) is not None]
        await self._m.release(owned, clean=clean)

    async def _flush_async_commits(self, partitions: set[TopicPartition]) -> None:
        pending = {tp: (s.async_commit, "") for tp, s in self._sub.owned.items() if tp in partitions and s.async_commit is not None}
        if pending:
            try:
                await self._committer.commit_now(pending, self._ride_out)  # type: ignore[arg-type]
            except CommitFailedError as exc:
                log.warning("facade consumer %s: %s", self._m.member_id, exc)

    async def lose(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away without a revoke (session ended, fenced, topic deleted): no
        commit is possible; on_lost runs, and the next assignment says what to claim again."""
        if not partitions:
            return
        await self._fetcher.settle()
        callback = self._on_lost or self._on_revoke
        if callback is not None:
            await _backend.maybe_await(callback(set(partitions)))
        owned = [(tp, s.token) for tp in sorted(partitions) if (s := self._drop(tp)) is not None]
        try:
            await self._m.release(owned)  # a CAS: harmless where a new owner holds them
        except FacadeError:
            pass
        target = self._m.assignment() or set()
        self._sub.to_claim |= partitions & target
        self._next_claim = 0.0

    def _drop(self, tp: TopicPartition) -> PartitionState | None:
        self._fetcher.forget(tp)
        return self._sub.drop(tp)
