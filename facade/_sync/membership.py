# Generated from facade/_async/membership.py by scripts/unasync.py: edit that file, not this one.
"""Group membership for one consumer: join, a background heartbeat, the assignment, and the claim
and release of partitions.

This module is the asyncio source of truth; facade/_sync/membership.py is generated from it.

Liveness is apart from processing, as in Kafka: a background heartbeat (a thread; a task under
asyncio) keeps the member's session for ``session_timeout_ms`` however long the application works
on a batch, while ``max_poll_interval_ms`` bounds the time between two poll() calls: a member
past it leaves the group (so its partitions move) and says which option to raise.

Each join starts a session with a fresh nonce; owner tokens are "<member id>|<nonce>". A session
the group ended (expired, left, or replaced by a newer process of a static member) never comes
back, so "this token's session ended" (group_alive) is a fact a claim can act on later.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from .. import keys, scripts
from ..assignors import STRATEGIES, assign
from ..config import ConsumerConfig
from ..errors import FacadeError, FencedInstanceIdError, TopicError, UnknownMemberError, UnknownTopicError
from ..records import TopicPartition
from . import _backend
from .client import Connection, TopicCache

log = logging.getLogger("facade")

__all__ = ["Membership"]

_HOST = socket.gethostname()[:60].replace("|", "_").replace(" ", "_")


class Membership:
    """This consumer's place in its group. The poll thread calls :meth:`join`, :meth:`claim`,
    :meth:`release`; the background heartbeat keeps the session and follows the assignment."""

    def __init__(
        self,
        conn: Connection,
        group: str,
        topics: tuple[str, ...],
        config: ConsumerConfig,
        topic_cache: TopicCache,
        protocol: str = "facade",
        owned: Any = None,
    ) -> None:
        self._conn = conn
        # () -> [(partition, owner token)] this member holds: given up at once when it leaves
        # for exceeding max_poll_interval_ms, so others take them and its late commits fail.
        self._owned = owned or (list)
        self.group = group
        self.topics = topics
        self.config = config
        self._topics = topic_cache
        self._protocol = protocol
        self.member_id = config.group_instance_id or ""
        self.nonce = ""
        self._joined = False
        self._state = _backend.BufferLock()  # fields shared with the heartbeat (a no-op under asyncio)
        self._io = _backend.Lock()  # one membership round trip at a time
        self._agen = ""  # generation of the assignment followed
        self._mine: set[TopicPartition] | None = None
        self._counts: dict[str, int] = {}  # partitions per subscribed topic the assignment covered
        self._ended: FacadeError | None = None  # why the session ended (poll() handles it)
        self.fatal: FacadeError | None = None  # FencedInstanceIdError: this process must stop
        self._in_poll = False
        self._last_poll = _backend.monotonic()
        self._next_metadata = 0.0
        self._periodic: Any = None
        self._closed = False
        self._beat_ok = _backend.monotonic()  # when the last heartbeat the group answered was sent

    # -- state the poll thread reads -----------------------------------------------------------

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def token(self) -> str:
        return keys.owner_token(self.member_id, self.nonce)

    @property
    def generation(self) -> int:
        """The generation whose assignment this member follows (-1 before it has one)."""
        return int(self._agen) if self._agen else -1

    def assignment(self) -> set[TopicPartition] | None:
        """This member's partitions in the current assignment (None: none received yet)."""
        with self._state:
            return None if self._mine is None else set(self._mine)

    def take_ended(self) -> FacadeError | None:
        """Why the session ended since the last call (expired, left after max_poll_interval_ms), or
        None. The caller gives up its partitions and joins again."""
        with self._state:
            ended, self._ended = self._ended, None
            return ended

    def notice(self, generation: int) -> None:
        """The group's generation, as seen by the poll loop: when it is not the one whose
        assignment this member follows, heartbeat now rather than at the next interval (the
        assignment changed: partitions to give up or to take)."""
        if generation != self.generation and self._periodic is not None:
            self._periodic.wake()

    def poll_started(self) -> None:
        self._in_poll = True
        self._last_poll = _backend.monotonic()

    def poll_ended(self) -> None:
        self._in_poll = False
        self._last_poll = _backend.monotonic()

    # -- joining and leaving -------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        return {"topics": list(self.topics), "strategy": self.config.assignment_strategy, "host": _HOST,
                "client_id": self.config.client_id}  # fmt: skip

    def join(self) -> None:
        """Start a new session in the group (and the heartbeat, the first time)."""
        with self._io:
            if self.config.group_instance_id is None:
                # A fresh id per session, as Kafka's coordinator gives one per join.
                self.member_id = f"{_HOST[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.nonce = uuid.uuid4().hex[:12]
            mode = "static" if self.config.group_instance_id else ""
            self._conn.script(
                *scripts.group_join(
                    self.group, self.member_id, self.nonce, self._metadata(), self.config.session_timeout_ms,
                    mode, self._protocol,
                ),
                context=f"joining group {self.group}",
            )  # fmt: skip
            self._conn.command(
                f"joining group {self.group}", "HSETNX", keys.GROUPS, self.group, f'{{"layout": {keys.LAYOUT_VERSION}}}'
            )
            with self._state:
                self._joined = True
                self._agen = ""
                self._mine = None
                self._ended = None
            self._next_metadata = 0.0
            self._beat_ok = _backend.monotonic()
        if self._periodic is None:
            self._periodic = _backend.Periodic(self._beat, f"facade-heartbeat-{self.group}")

    def leave(self) -> None:
        """End this session (clean shutdown). A static member stays in the group until its session
        times out, so that a restart in time gets the same partitions back without a rebalance."""
        if self._joined and self.config.group_instance_id is None:
            with self._io:
                self._conn.script(
                    *scripts.group_leave(self.group, self.member_id, self.nonce), context=f"leaving group {self.group}"
                )
        self._joined = False

    def stop(self) -> None:
        """Stop the heartbeat."""
        self._closed = True
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None

    # -- the heartbeat -------------------------------------------------------------------------

    def _beat(self) -> float:
        """One heartbeat round; returns the seconds until the next."""
        interval = self.config.heartbeat_interval_ms / 1000
        if self._closed or not self._joined:
            return interval
        idle = _backend.monotonic() - self._last_poll
        if not self._in_poll and idle * 1000 > self.config.max_poll_interval_ms:
            self._leave_for_poll_interval(idle)
            return interval
        try:
            return self._heartbeat(interval)
        except FencedInstanceIdError as exc:
            log.error("facade consumer %s of group %s: %s", self.member_id, self.group, exc)
            self._end(exc, fatal=True)
        except UnknownMemberError as exc:
            log.warning("facade consumer %s of group %s: session ended (%s); rejoining", self.member_id, self.group, exc)
            self._end(exc)
        except FacadeError as exc:
            if isinstance(exc, TopicError) and not isinstance(exc, UnknownTopicError):
                # A subscribed topic this consumer cannot read (made by an older facade): not a
                # blip; poll() raises it.
                log.error("facade consumer %s of group %s: %s", self.member_id, self.group, exc)
                nonce = self.nonce
                self._end(exc, fatal=True)
                try:
                    with self._io:
                        self._conn.script(*scripts.group_leave(self.group, self.member_id, nonce), context=str(exc))
                except FacadeError:
                    pass  # the session then ends at its deadline
                return interval
            # The session goes on until its deadline: try again soon (a failover, a blip).
            log.warning("facade consumer %s: heartbeat to group %s failed: %s", self.member_id, self.group, exc)
            return min(interval, 0.5)
        except Exception:  # a bug must not stop the heartbeat silently
            log.exception("facade consumer %s: heartbeat to group %s failed", self.member_id, self.group)
            return interval
        return interval

    def _end(self, reason: FacadeError, fatal: bool = False) -> None:
        with self._state:
            self._joined = False
            self._mine = None
            self._agen = ""
            self._ended = reason
            if fatal:
                self.fatal = reason

    def _leave_for_poll_interval(self, idle: float) -> None:
        reason = UnknownMemberError(
            f"member {self.member_id} of group {self.group} left the group: {idle:.1f} s passed between two "
            f"poll() calls, more than max_poll_interval_ms={self.config.max_poll_interval_ms}; its partitions "
            "moved to other members. Raise max_poll_interval_ms, or poll with smaller max_records"
        )
        log.warning("facade consumer: %s", reason)
        nonce = self.nonce
        self._end(reason)
        try:
            with self._io:
                self._conn.script(*scripts.group_leave(self.group, self.member_id, nonce), context=str(reason))
            self.release(list(self._owned()))
        except FacadeError as exc:  # the session then ends at its deadline
            log.warning("facade consumer %s: leaving group %s failed: %s", self.member_id, self.group, exc)

    def unsure(self) -> bool:
        """Whether the session may have ended without this member hearing of it: no heartbeat was
        answered for most of a session (the process was stopped, or cut off). The poll loop then
        asks the group before handing out anything it read earlier."""
        return self._joined and _backend.monotonic() - self._beat_ok > self.config.session_timeout_ms / 1000 * 0.8

    def confirm(self) -> None:
        """A heartbeat now, from the poll loop (see :meth:`unsure`)."""
        if self._periodic is not None:
            self._periodic.wake()
        self._beat()

    def _heartbeat(self, interval: float) -> float:
        with self._io:
            if not self._joined:
                return interval
            sent = _backend.monotonic()
            reply = self._conn.script(
                *scripts.group_heartbeat(self.group, self.member_id, self.nonce, self.config.session_timeout_ms, self._agen),
                context=f"heartbeat to group {self.group}",
            )
            self._beat_ok = sent
            beat = scripts.Heartbeat.parse(reply)
            if not beat.assignment_generation:
                self._offer(beat)
                return 0.01  # read back what was stored, at once
            if beat.assignment is not None:
                mine = set(beat.assignment.get(self.member_id, ()))
                counts: dict[str, int] = {}
                for tps in beat.assignment.values():
                    for tp in tps:
                        counts[tp.topic] = counts.get(tp.topic, 0) + 1
                with self._state:
                    self._agen = beat.assignment_generation
                    self._mine = mine
                    self._counts = counts
        if self._topics_changed():
            return 0.01
        return interval

    def _offer(self, beat: scripts.Heartbeat) -> None:
        """Compute the assignment of a generation that has none and offer it (group_sync: the
        first offer of a generation is stored; every member computes the same)."""
        subscriptions = {m: list(meta.get("topics", ())) for m, meta in beat.members.items()}
        strategies = {m: meta.get("strategy", "cooperative-sticky") for m, meta in beat.members.items()}
        # One strategy per generation, whoever computes: the one of the smallest member id.
        strategy = strategies[min(strategies)] if strategies else self.config.assignment_strategy
        counts = self._partition_counts(sorted({t for ts in subscriptions.values() for t in ts}))
        table = assign(strategy if strategy in STRATEGIES else "range", subscriptions, counts, beat.previous)
        self._conn.script(*scripts.group_sync(self.group, beat.generation, table), context=f"syncing group {self.group}")

    def _partition_counts(self, topics: list[str]) -> dict[str, int]:
        counts = {}
        for topic in topics:
            try:
                counts[topic] = (self._topics.get(topic)).partitions
            except UnknownTopicError:
                continue  # not created yet: no partitions until it is (then a rebalance)
        return counts

    def _topics_changed(self) -> bool:
        """Ask for a new generation when a subscribed topic gained partitions or appeared."""
        now = _backend.monotonic()
        if now < self._next_metadata or self._mine is None:
            return False
        self._next_metadata = now + self.config.metadata_max_age_ms / 1000
        counts = self._partition_counts(list(self.topics))
        if all(counts.get(t, 0) == self._counts.get(t, 0) for t in self.topics):
            return False
        log.info("facade: subscribed topics of group %s changed (%s); rebalancing", self.group, counts)
        with self._io:
            self._conn.script(
                *scripts.group_join(self.group, self.member_id, self.nonce, self._metadata(),
                                    self.config.session_timeout_ms, "rebalance", self._protocol),
                context=f"rebalancing group {self.group}",
            )  # fmt: skip
        return True

    # -- partitions ------------------------------------------------------------------------------

    def claim(
        self, tps: list[TopicPartition], policy: str, exactly_once: bool
    ) -> dict[TopicPartition, scripts.Claimed]:
        """Claim ``tps`` for this session; the partitions won. A partition held by a session the
        group ended is taken over; one a live session holds waits for that member's release."""
        token = self.token
        context = f"claiming partitions for group {self.group}"
        calls = [scripts.claim(tp, self.group, token, "", policy, exactly_once) for tp in tps]
        won: dict[TopicPartition, scripts.Claimed] = {}
        blocked: dict[TopicPartition, str] = {}
        for tp, result in zip(tps, self._conn.pipeline(calls, context)):
            if isinstance(result, UnknownTopicError):
                continue  # deleted meanwhile: the next assignment drops it
            if isinstance(result, Exception):
                raise result
            claimed = scripts.Claimed.parse(result)
            if claimed.ok:
                won[tp] = claimed
            else:
                blocked[tp] = claimed.holder
        if blocked:
            holders = sorted(set(blocked.values()))
            alive = self._conn.script(*scripts.group_alive(self.group, holders), context=context)
            ended = {h for h, a in zip(holders, alive) if not int(a)}
            retry = [tp for tp, holder in blocked.items() if holder in ended]
            calls = [scripts.claim(tp, self.group, token, blocked[tp], policy, exactly_once) for tp in retry]
            for tp, result in zip(retry, self._conn.pipeline(calls, context) if calls else []):
                if isinstance(result, Exception) and not isinstance(result, UnknownTopicError):
                    raise result
                if not isinstance(result, Exception) and (claimed := scripts.Claimed.parse(result)).ok:
                    won[tp] = claimed
        return won

    def release(self, owned: list[tuple[TopicPartition, str]], *, clean: bool = False) -> None:
        """Give up partitions (each only if the token is still the owner: a CAS); ``clean``: in
        good order, so a record handed out alone did not crash this consumer (release.lua)."""
        if owned:
            calls = [scripts.release(tp, self.group, token, clean=clean) for tp, token in owned]
            self._conn.pipeline(calls, f"releasing partitions of group {self.group}")
