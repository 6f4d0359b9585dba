"""The group consumer: membership, partition ownership, fetching and committing.

This module is the asyncio source of truth; facade/_sync/consumer.py is generated from it.

How a member works (docs/design.md, "Consumer groups"):

1. It joins the group (``group_join``), which starts a new generation.
2. On each heartbeat (``group_heartbeat``) it learns the generation and the stored assignment.
   When a generation has no assignment yet, the member computes one with the group's strategy
   and offers it (``group_sync``, compare-and-set on the generation; first writer wins).
3. It gives up partitions the assignment moved away (``on_revoke``, then ``release``), and claims
   those it gained (``claim``): a claim succeeds only when the partition is free or its holder
   has left the group, so two live members never own a partition at once.
4. ``poll`` reads through ``fetch``, which checks the member's owner token first, or for new
   records on one server through client.GuardedReader (the same check, by WATCH + MULTI/EXEC).
   A new owner first re-reads the partition's pending (delivered, uncommitted) records in order,
   then new ones. After a poll that returned records, the next read starts at once (prefetch).
5. ``commit`` acknowledges what was delivered, through ``commit_many`` (one server) or ``commit``
   per partition (Redis Cluster), again checking the token.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .. import codec, keys, offsets
from ..assignors import STRATEGIES, assign
from ..config import ConsumerConfig, build
from ..errors import (
    UnsupportedError,
    CommitFailedError,
    ConfigError,
    FacadeError,
    TopicExistsError,
    UnknownMemberError,
    UnknownTopicError,
    from_redis,
)
from ..partitioner import partition_for_key
from ..records import Message, OutputRecord, TopicPartition
from . import _backend
from .client import Connection, GuardedReader, TopicCache
from .groups import group_partition_state
from .topics import create_topic

log = logging.getLogger("facade")

__all__ = ["Consumer"]

# Most IDs one script call acknowledges (Lua's unpack() has a stack limit near 8000).
_ACK_CHUNK = 4000
# Outputs of commit(outputs=...) obey the producer's default record size limit.
_MAX_OUTPUT_BYTES = 1024 * 1024
_FETCH_MODES = {"at-least-once": "", "at-most-once": "noack", "exactly-once": "idempotent"}


def _token_parts(token: str) -> tuple[str, int]:
    """(member id, generation) of an owner token "member|generation|incarnation"."""
    parts = token.split("|")
    gen = parts[1] if len(parts) > 1 else ""
    return parts[0], int(gen) if gen.isdigit() else 0
# How often a member retries claiming a partition whose previous owner has not released it yet.
_CLAIM_RETRY_S = 0.05


class _Owned:
    """A partition this member owns: its owner token and where reading continues."""

    __slots__ = ("cursor", "handed", "last_id", "token")

    def __init__(self, token: str, last_id: str) -> None:
        self.token = token
        # "0" (or an ID) while re-reading pending records inherited from a previous owner, then ">".
        self.cursor = "0"
        # Newest ID delivered to the group: where a blocking wait for new records starts.
        self.last_id = last_id
        # Newest ID handed to the application (position()); behind last_id by what is prefetched.
        self.handed = last_id


class Consumer:
    """Read topics as one member of consumer group ``group``.

    Each partition is owned by one member of the group at a time. Records are at-least-once:
    delivered records are acknowledged only by :meth:`commit`; what a member received but did not
    commit is delivered again (first, in order) to whoever owns the partition next.

    ``on_assign(partitions)`` / ``on_revoke(partitions)`` are called with sets of
    :class:`TopicPartition` when this member gains or loses partitions; ``commit()`` inside
    ``on_revoke`` still works. Options are those of :class:`facade.ConsumerConfig`.
    """

    def __init__(
        self,
        topics: str | Iterable[str],
        group: str,
        url: str | None = None,
        *,
        config: ConsumerConfig | None = None,
        on_assign: Callable[[set[TopicPartition]], Any] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Any] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(topics, str):
            names = [topics]
        elif isinstance(topics, Iterable) and not isinstance(topics, (bytes, bytearray)):
            names = list(topics)
        else:
            raise ConfigError(f"topics must be a topic name or a list of names, not {type(topics).__name__}")
        if not names:
            raise ConfigError("subscribe to at least one topic")
        self.topics: tuple[str, ...] = tuple(sorted({keys.validate_name(t) for t in names}))
        self.group: str = keys.validate_name(group, "group")
        self.config: ConsumerConfig = build(ConsumerConfig, config, options)
        # Static members keep their id across restarts; dynamic ones get a fresh one.
        self.member_id: str = self.config.group_instance_id or (
            f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}".replace("|", "_")
        )
        # Distinguishes this process from an earlier one with the same static id: part of every
        # owner token, so a restarted static member fences its predecessor.
        self._incarnation = uuid.uuid4().hex[:8]
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._conn = Connection(url)
        self._reader = GuardedReader(self._conn)
        if self.config.max_deliveries is not None and getattr(self._conn, "cluster", False):
            raise UnsupportedError(
                "max_deliveries needs dead-lettering in one script across the source and <topic>.dlq "
                "partitions, which Redis Cluster cannot do; handle poison records in the application"
            )
        self._topic_cache = TopicCache(self._conn, self.config.metadata_max_age_ms)
        self._gkeys = keys.group_keys(self.group)
        self._session = self.config.session_timeout_ms
        self._hb_interval_s = self.config.heartbeat_interval_ms / 1000
        self._joined = False
        self._closed = False
        self._assignment_gen = ""  # the assignment generation this member follows
        self._assigned: set[TopicPartition] = set()
        self._assignment_members: set[str] = set()
        self._assignment_counts: dict[str, int] = {}  # partitions per topic the assignment covers
        self._paused: set[TopicPartition] = set()
        self._owned: dict[TopicPartition, _Owned] = {}
        self._to_claim: set[TopicPartition] = set()
        self._holders: dict[TopicPartition, str] = {}  # who held a partition we failed to claim
        self._blocked_since: dict[tuple[TopicPartition, str], float] = {}  # (partition, holder) -> first seen
        self._delivered: dict[TopicPartition, list[str]] = {}
        self._next_heartbeat = 0.0
        self._next_claim = 0.0
        self._rotation = 0
        self._buffer: list[Message] = []
        self._outage_since: float | None = None
        self._errors: dict[tuple[TopicPartition, str], str] = {}
        self._ack_later: dict[TopicPartition, list[str]] = {}  # commit(asynchronous=True)
        # Prefetch: the next fetch runs while the application works on the last poll's records
        # (not at-most-once, whose fetches acknowledge what they read, nor with max_deliveries,
        # which must count only what the application was handed). Records it read wait in
        # _ready until a poll hands them out; they are pending on the server meanwhile, so a
        # partition that changes hands before then has them delivered to its next owner.
        self._prefetch_ok = self.config.guarantee != "at-most-once" and self.config.max_deliveries is None
        self._inflight: tuple[Any, list[TopicPartition], list[str]] | None = None
        self._inflight_acks = False  # whether the prefetch in flight carries acknowledgements
        self._ready: dict[TopicPartition, list[tuple[bytes, Any, int]]] = {}  # (id, fields, count)
        self._stale: set[TopicPartition] = set()  # partitions whose in-flight results must be dropped

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer = await self.poll(timeout_ms=1000)
            self._buffer.reverse()
        return self._buffer.pop()

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently owns."""
        return set(self._owned)

    async def close(self) -> None:
        """Give up all partitions (``on_revoke`` runs first), leave the group, close connections.

        Uncommitted records are not committed: the next owner receives them again. A static member
        (``group_instance_id``) releases its partitions but stays in the group until its session
        times out.
        """
        if self._closed:
            return
        try:
            await self._settle()
            if self._joined:
                await self._revoke(set(self._owned))
                if self.config.group_instance_id is None:
                    await self._conn.script(
                        "group_leave", self._gkeys, [self.member_id], f"leaving group {self.group}"
                    )
                # A static member stays in the group until its session times out, so that a
                # restart in time gets the same partitions back without a rebalance.
                self._joined = False
        finally:
            self._closed = True
            try:
                await self._reader.close()
            finally:
                await self._conn.close()

    # -- group membership ----------------------------------------------------------------------

    async def _join(self) -> None:
        for topic in self.topics:
            await self._topic_cache.get(topic)  # UnknownTopicError names the missing topic
        meta = json.dumps({"topics": list(self.topics), "strategy": self.config.assignment_strategy})
        static = "static" if self.config.group_instance_id else ""
        await self._conn.script(
            "group_join", self._gkeys, [self.member_id, meta, self._session, static], f"joining group {self.group}"
        )
        await self._conn.command(
            f"joining group {self.group}", "HSETNX", keys.GROUPS, self.group, json.dumps({"layout": keys.LAYOUT_VERSION})
        )
        self._joined = True
        self._assignment_gen = ""
        self._next_heartbeat = 0.0

    async def _heartbeat(self) -> None:
        try:
            gen, agen, assignment, members = await self._conn.script(
                "group_heartbeat",
                self._gkeys,
                [self.member_id, self._session, self._assignment_gen],
                f"heartbeat to group {self.group}",
            )
        except UnknownMemberError:
            # Our session expired (we were paused or cut off): everything we held is gone.
            log.warning("facade: member %s of group %s expired; rejoining", self.member_id, self.group)
            await self._lose_all()
            await self._join()
            return
        self._next_heartbeat = _backend.monotonic() + self._hb_interval_s
        agen = agen.decode() if isinstance(agen, bytes) else str(agen)
        if str(gen) != agen:
            await self._offer_assignment(int(gen), members, json.loads(assignment) if assignment else {})
            self._next_heartbeat = 0.0  # read back what was stored, at once
            return
        if assignment:
            table = json.loads(assignment)
            self._assignment_gen = agen
            self._assignment_members = set(table)
            counts: dict[str, int] = {}
            for tps in table.values():
                for t, _ in tps:
                    counts[t] = counts.get(t, 0) + 1
            self._assignment_counts = counts
            mine = {TopicPartition(t, p) for t, p in table.get(self.member_id, [])}
            await self._reconcile(mine)
        await self._check_partition_counts()

    async def _check_partition_counts(self) -> None:
        """Rejoin (starting a new generation) when a subscribed topic gained partitions."""
        if not self._assignment_gen:
            return
        for topic in self.topics:
            try:
                count = (await self._topic_cache.get(topic)).partitions
            except UnknownTopicError:
                continue
            if count != self._assignment_counts.get(topic, 0):
                log.info("facade: topic %s now has %d partitions; group %s rebalances", topic, count, self.group)
                await self._join()
                return

    async def _offer_assignment(self, generation: int, members_flat: list[Any], previous: dict[str, Any]) -> None:
        subscriptions: dict[str, list[str]] = {}
        strategies: dict[str, str] = {}
        for i in range(0, len(members_flat), 2):
            member = members_flat[i].decode()
            meta = json.loads(members_flat[i + 1])
            subscriptions[member] = meta["topics"]
            strategies[member] = meta.get("strategy", "cooperative-sticky")
        # One strategy per generation, whoever computes: the one of the smallest member id.
        strategy = strategies[min(strategies)] if strategies else self.config.assignment_strategy
        counts: dict[str, int] = {}
        for topic in sorted({t for ts in subscriptions.values() for t in ts}):
            try:
                counts[topic] = (await self._topic_cache.get(topic)).partitions
            except UnknownTopicError:
                continue
        before = {m: [TopicPartition(t, p) for t, p in tps] for m, tps in previous.items()}
        table = assign(strategy if strategy in STRATEGIES else "range", subscriptions, counts, before)
        payload = json.dumps({m: [[tp.topic, tp.partition] for tp in tps] for m, tps in table.items()})
        await self._conn.script("group_sync", self._gkeys[:1], [generation, payload], f"syncing group {self.group}")

    async def _reconcile(self, mine: set[TopicPartition]) -> None:
        self._assigned = mine
        revoked = set(self._owned) - mine
        if revoked:
            await self._revoke(revoked)
        self._to_claim = mine - set(self._owned)
        self._next_claim = 0.0

    async def _revoke(self, partitions: set[TopicPartition]) -> None:
        if not partitions:
            return
        if self._on_revoke is not None:
            await _backend.maybe_await(self._on_revoke(set(partitions)))
        await self._flush_async_acks(partitions)
        calls = []
        for tp in sorted(partitions):
            owned = self._owned.pop(tp, None)
            self._delivered.pop(tp, None)
            self._forget_ready(tp)
            if owned is not None:
                calls.append(("release", [keys.owners(tp.topic, tp.partition)], [self.group, owned.token]))
        if calls:
            await self._conn.pipeline(calls, f"releasing partitions of group {self.group}")

    async def _lose_all(self) -> None:
        """Forget every partition without committing (another member may own them already)."""
        lost = set(self._owned)
        # Release what nobody took over yet (a CAS: harmless where a new owner holds it).
        await self._revoke(lost)
        self._to_claim.clear()
        self._joined = False

    async def _claim(self) -> None:
        self._next_claim = _backend.monotonic() + _CLAIM_RETRY_S
        start = "0" if self.config.auto_offset_reset == "earliest" else "$"
        wanted = sorted(self._to_claim)
        token = f"{self.member_id}|{self._assignment_gen}|{self._incarnation}"
        calls = []
        now = _backend.monotonic()
        for tp in wanted:
            holder = self._holders.get(tp, "")
            expected = ""
            if holder:
                holder_id, holder_gen = _token_parts(holder)
                if holder_gen > int(self._assignment_gen or 0):
                    # The holder claimed under a newer assignment than ours: we are the stale one.
                    self._next_heartbeat = 0.0
                else:
                    # Take over only from a member that is no longer in the group (left or
                    # expired), from an earlier process of this same static member, or from a
                    # live member that has not released a partition assigned elsewhere within a
                    # whole session (it would have seen the assignment several times over).
                    since = self._blocked_since.setdefault((tp, holder), now)
                    gone = (
                        holder_id not in self._assignment_members
                        or holder_id == self.member_id
                        or now - since > self._session / 1000
                    )
                    expected = holder if gone else ""
            calls.append(
                ("claim", [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition)],
                 [self.group, token, expected, start])
            )  # fmt: skip
        gained = set()
        for tp, result in zip(wanted, await self._conn.pipeline(calls, f"claiming partitions for {self.group}")):
            if isinstance(result, UnknownTopicError):
                self._to_claim.discard(tp)
                continue
            if isinstance(result, Exception):
                raise result
            ok, detail = result
            detail = detail.decode() if isinstance(detail, bytes) else detail
            if ok:
                self._owned[tp] = _Owned(token, detail)
                self._to_claim.discard(tp)
                self._holders.pop(tp, None)
                self._blocked_since = {k: v for k, v in self._blocked_since.items() if k[0] != tp}
                gained.add(tp)
            else:
                self._holders[tp] = detail
        if gained and self._on_assign is not None:
            await _backend.maybe_await(self._on_assign(gained))

    def _lost(self, partitions: set[TopicPartition]) -> None:
        """Partitions found fenced (another token holds them) or deleted: stop reading them and
        ask the group now. One the current assignment still gives us is claimed again: either
        its holder is moving off it, or it took it by mistake and the claim rules win it back."""
        for tp in partitions:
            self._owned.pop(tp, None)
            self._delivered.pop(tp, None)
            self._forget_ready(tp)
            if tp in self._assigned:
                self._to_claim.add(tp)
        self._next_heartbeat = 0.0

    async def _coordinate(self) -> None:
        if not self._joined:
            await self._join()
        now = _backend.monotonic()
        if now >= self._next_heartbeat:
            await self._heartbeat()
        if self._to_claim and _backend.monotonic() >= self._next_claim:
            await self._claim()

    # -- reading -------------------------------------------------------------------------------

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Message]:
        """Records from owned partitions: waits up to ``timeout_ms`` for at least one.

        Also keeps this member in the group (heartbeats) and follows rebalances, so call it at
        least every ``session_timeout_ms``.
        """
        if self._closed:
            raise ConfigError("the consumer is closed; create a new one")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or not timeout_ms >= 0:
            raise ConfigError(f"timeout_ms must be a number >= 0, got {timeout_ms!r}")
        limit = self.config.max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        deadline = _backend.monotonic() + timeout_ms / 1000
        while True:
            try:
                await self._coordinate()
                records = await self._fetch(limit)
                if records:
                    self._outage_since = None
                    return records
                remaining = deadline - _backend.monotonic()
                if remaining <= 0:
                    self._outage_since = None
                    return []
                await self._wait(min(remaining, max(0.0, self._next_heartbeat - _backend.monotonic()) + 0.001))
                self._outage_since = None
            except FacadeError as exc:
                self._reread_pending()
                await self._ride_out(exc)
            except BaseException:  # cancelled, interrupted: a fetch may have run all the same
                self._reread_pending()
                raise
                if _backend.monotonic() >= deadline:
                    return []

    async def _ride_out(self, exc: FacadeError) -> None:
        """Wait a little after a retriable failure (server restart, failover); re-raise anything
        else, or the failure itself once it has lasted ``reconnect_timeout_ms``."""
        if not exc.retriable or self._conn.unreachable(exc):
            raise exc
        now = _backend.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning("facade consumer %s: %s; retrying", self.member_id, exc)
        if now - self._outage_since >= self.config.reconnect_timeout_ms / 1000:
            self._outage_since = None
            raise exc
        await _backend.sleep(0.1)

    async def _fetch(self, limit: int) -> list[Message]:
        """Up to ``limit`` records for the application: those a prefetch already read first, else
        a fetch now; then, after a non-empty fetch, the next one starts (prefetch) while the
        application works on these."""
        idle = False
        if self._inflight is not None:
            idle = await self._collect()
        taken = self._take(limit)
        # After an idle prefetch (it just looked) poll() waits for records, unless acknowledgements
        # are waiting to ride along with a read.
        if not taken and (not idle or self._ack_later):
            order, calls = self._fetch_calls(limit)
            if calls:
                results = await self._read(calls, self._guarded_parts(order, calls))
                await self._apply(order, [self._owned[tp].token for tp in order], results)
                taken = self._take(limit)
        if taken and self._prefetch_ok:
            order, calls = self._fetch_calls(limit)
            if calls:
                tokens = [self._owned[tp].token for tp in order]
                task = _backend.spawn(self._read, calls, self._guarded_parts(order, calls))
                self._inflight = (task, order, tokens)
                self._inflight_acks = any(len(args) > 6 for _, _, args in calls)
                await _backend.sleep(0)  # let it send its request before this batch is decoded
        # Decoding comes last: the server works on the prefetch meanwhile.
        out: list[Message] = []
        noack = self.config.guarantee == "at-most-once"
        for tp, entries in taken:
            topic, partition = tp.topic, tp.partition
            batch = [codec.decode(topic, partition, entry_id, flat, count) for entry_id, flat, count in entries]
            out += batch
            if not noack:
                self._delivered.setdefault(tp, []).extend([m.offset for m in batch])
        return out

    def _guarded_parts(
        self, order: list[TopicPartition], calls: list[tuple[str, list[str], list[Any]]]
    ) -> list[tuple[str, str, str, list[Any]]] | None:
        """What the guarded reader needs for these fetch calls (taken now: a prefetch runs
        beside later changes), or None where only the script will do: another guarantee, or a
        partition still re-reading pending records."""
        if not self._reader.enabled or self.config.guarantee != "at-least-once":
            return None
        if any(self._owned[tp].cursor != ">" for tp in order):
            return None
        return [
            (keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition), args[1], args[6:])
            for tp, (_, _, args) in zip(order, calls)
        ]

    async def _read(
        self, calls: list[tuple[str, list[str], list[Any]]], parts: list[tuple[str, str, str, list[Any]]] | None
    ) -> list[Any]:
        """Results of the fetch calls (the script's {entries, counts, last} each): through the
        guarded reader when it can, else the fetch script."""
        context = f"fetching for group {self.group}"
        if parts is not None:
            count = max(args[2] for _, _, args in calls)
            got = await self._reader.read(self.group, parts, count, context)
            if got is not None:
                return [[entries, [], last] for entries, last in got]
        return await self._conn.pipeline(calls, context)

    def _fetch_calls(self, limit: int) -> tuple[list[TopicPartition], list[tuple[str, list[str], list[Any]]]]:
        """One fetch script call per owned partition that is not paused and has no records
        waiting in the prefetch buffer; ``limit`` records shared among them."""
        order = sorted(tp for tp in self._owned if tp not in self._paused and not self._ready.get(tp))
        if not order:
            return [], []
        # Start at a different partition each time so that one busy partition cannot starve others.
        self._rotation = (self._rotation + 1) % len(order)
        order = order[self._rotation :] + order[: self._rotation]
        # Split max_records exactly: never more in all, the remainder to the first partitions of
        # this (rotating) order, and none to the rest when there are more partitions than records.
        share, extra = divmod(limit, len(order))
        counts = {tp: share + (1 if i < extra else 0) for i, tp in enumerate(order)}
        order = [tp for tp in order if counts[tp] > 0]
        mode = _FETCH_MODES[self.config.guarantee]
        calls = []
        for tp in order:
            per = min(counts[tp], _ACK_CHUNK)  # what fetch.lua may have to acknowledge in one unpack()
            o = self._owned[tp]
            acks = self._ack_later.pop(tp, [])
            if len(acks) > _ACK_CHUNK:
                self._ack_later[tp] = acks[_ACK_CHUNK:]
                acks = acks[:_ACK_CHUNK]
            calls.append(
                ("fetch", keys.consume_keys(tp.topic, tp.partition),
                 [self.group, o.token, per, o.cursor, keys.STREAM_CONSUMER, mode, *acks])
            )  # fmt: skip
        return order, calls

    async def _collect(self) -> bool:
        """Wait for the prefetch in flight and keep what it read. A partition given up, taken
        over or re-read (fail) since it was sent is left out: what it read there is pending and
        reaches the partition's next reader. A failed prefetch raises as a fetch would. Returns
        whether it came back empty-handed from every partition it read, none left out."""
        task, order, tokens = self._inflight
        self._inflight = None
        self._inflight_acks = False
        results = await _backend.join(task)
        keep = [
            i for i, tp in enumerate(order)
            if tp not in self._stale and tp in self._owned and self._owned[tp].token == tokens[i]
        ]  # fmt: skip
        self._stale = set()
        kept = [results[i] for i in keep]
        await self._apply([order[i] for i in keep], [tokens[i] for i in keep], kept)
        return len(keep) == len(order) and not any(isinstance(r, list) and r[0] for r in kept)

    async def _settle(self) -> None:
        """Finish the prefetch in flight before changing what partitions this member reads: its
        outcome is kept, or if it failed, the partitions re-read their pending records."""
        if self._inflight is None:
            return
        try:
            await self._collect()
        except FacadeError:
            self._reread_pending()

    def _reread_pending(self) -> None:
        """A fetch may have run without its reply arriving (server died, failover): its records
        are pending, so read the pending list again after the last record kept."""
        for o in self._owned.values():
            if o.cursor == ">":
                o.cursor = o.last_id

    async def _apply(self, order: list[TopicPartition], tokens: list[str], results: list[Any]) -> None:
        """Keep the entries fetch calls returned in the prefetch buffer (decoded when handed out),
        move on each partition's cursor, and dead-letter records past max_deliveries."""
        lost = set()
        limit_deliveries = self.config.max_deliveries
        for tp, token, result in zip(order, tokens, results):
            if isinstance(result, (CommitFailedError, UnknownTopicError)):
                lost.add(tp)
                continue
            if isinstance(result, Exception):
                raise result
            entries, counts, last = result
            last = last.decode() if isinstance(last, bytes) else last
            o = self._owned[tp]
            if not entries:
                if o.cursor != ">":
                    o.cursor = ">"  # inherited pending records all re-delivered: now new ones
                elif last:
                    o.last_id = last  # everything read was skipped (already processed)
                    if not self._ready.get(tp):
                        o.handed = last
                continue
            ready = self._ready.setdefault(tp, [])
            dead = []
            if not counts:  # new records: delivered once
                ready += [(entry_id, flat, 1) for entry_id, flat in entries]
            else:
                for (entry_id, flat), count in zip(entries, counts):
                    if limit_deliveries is not None and count > limit_deliveries:
                        dead.append(codec.decode(tp.topic, tp.partition, entry_id, flat, count))
                    else:
                        ready.append((entry_id, flat, count))
            if o.cursor == ">":
                o.last_id = last
            else:
                o.cursor = last
            if dead:
                await self._dead_letter(tp, dead)
        if lost:
            self._lost(lost)

    def _take(self, limit: int) -> list[tuple[TopicPartition, list[tuple[bytes, Any, int]]]]:
        """Up to ``limit`` fetched entries (id, fields, delivery count) from the prefetch buffer,
        by partition, of partitions that are not paused, starting at a different partition each
        time."""
        tps = [tp for tp, ready in self._ready.items() if ready and tp not in self._paused]
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
            out.append((tp, taken))
            want -= len(taken)
            last = taken[-1][0]
            self._owned[tp].handed = last.decode() if isinstance(last, bytes) else last
        return out

    async def _dead_letter(self, tp: TopicPartition, dead: list[Message]) -> None:
        """Move records delivered more than max_deliveries times to ``<topic>.dlq``, atomically
        with their acknowledgement in the source."""
        name = f"{tp.topic}.dlq"
        source = await self._topic_cache.get(tp.topic)
        try:
            dlq = await self._topic_cache.get(name)
        except UnknownTopicError:
            try:
                await create_topic(self._conn, name, source.partitions)
            except TopicExistsError:
                pass
            dlq = await self._topic_cache.get(name)
        outputs = []
        for m in dead:
            headers: dict[str, Any] = dict(m.headers)
            headers.update({
                "dlq.topic": m.topic, "dlq.partition": str(m.partition), "dlq.offset": m.offset,
                "dlq.delivery_count": str(m.delivery_count),
                "dlq.error": self._errors.pop((tp, m.offset), ""),
            })  # fmt: skip
            outputs.append(OutputRecord(m, name, m.value, m.key, headers, tp.partition % dlq.partitions))
        await self._transact(tp, [m.offset for m in dead], "", outputs)
        log.warning("facade: %d record(s) of %s[%d] delivered more than %d times moved to %s",
                    len(dead), tp.topic, tp.partition, self.config.max_deliveries, name)

    def fail(self, message: Message, error: BaseException | str | None = None) -> None:
        """Give ``message`` back: it, and the records after it from the same partition, will be
        delivered again (with a higher delivery_count), so skip the rest of that partition in the
        current batch; commit() still commits what came before it. ``error`` is kept and written
        to the dead-letter header ``dlq.error`` if the record ends up there (``max_deliveries``)."""
        tp = message.topic_partition
        o = self._owned_or_raise(tp)
        if self.config.guarantee == "at-most-once":
            raise ConfigError("with guarantee='at-most-once' records are acknowledged when read: nothing to fail")
        if error is not None:
            self._errors[(tp, message.offset)] = str(error)[:500]
        ids = self._delivered.get(tp, [])
        start = offsets.parse(message.offset)
        self._delivered[tp] = [i for i in ids if offsets.parse(i) < start]
        # Re-read the partition's pending records from this one on (they are still pending),
        # prefetched ones included.
        self._forget_ready(tp)
        o.cursor = offsets.before(message.offset)

    def _forget_ready(self, tp: TopicPartition) -> None:
        """Drop what was prefetched from ``tp`` and not handed out yet, and whatever the prefetch in
        flight brings from it: those records stay pending on the server."""
        self._ready.pop(tp, None)
        if self._inflight is not None:
            self._stale.add(tp)

    async def _wait(self, seconds: float) -> None:
        """Sleep until new records may be there (blocking read on owned streams), or ``seconds``."""
        streams = {
            keys.stream(tp.topic, tp.partition): o.last_id
            for tp, o in self._owned.items()
            if o.cursor == ">" and tp not in self._paused
        }
        if self._to_claim:
            seconds = min(seconds, _CLAIM_RETRY_S)
        if not streams or seconds < 0.002:
            await _backend.sleep(max(0.0, min(seconds, 0.1)))
            return
        if self._conn.cluster:
            # One XREAD cannot span several hash slots (partitions): see Connection.wait_for_records.
            await self._conn.wait_for_records(f"waiting for records for group {self.group}", streams, seconds)
            return
        await self._conn.command(
            f"waiting for records for group {self.group}",
            "XREAD", "COUNT", 1, "BLOCK", max(1, int(seconds * 1000)),
            "STREAMS", *streams.keys(), *streams.values(),
        )  # fmt: skip

    # -- positions and flow ----------------------------------------------------------------------

    def _owned_or_raise(self, tp: TopicPartition) -> _Owned:
        if not isinstance(tp, TopicPartition):
            raise ConfigError(f"expected a TopicPartition, got {type(tp).__name__}")
        owned = self._owned.get(tp)
        if owned is None:
            raise ConfigError(
                f"{tp.topic}[{tp.partition}] is not assigned to this member (assigned: "
                f"{', '.join(f'{t.topic}[{t.partition}]' for t in sorted(self._owned)) or 'none'}); poll first"
            )
        return owned

    async def _set_position(self, tp: TopicPartition, last_delivered: str) -> str:
        self._owned_or_raise(tp)
        await self._settle()  # its reads must not land after the new position
        owned = self._owned_or_raise(tp)
        self._forget_ready(tp)
        start = "0" if self.config.auto_offset_reset == "earliest" else "$"
        _, new, _ = await self._conn.script(
            "set_position",
            [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition)],
            [self.group, owned.token, last_delivered, start],
            f"seeking {tp.topic}[{tp.partition}]",
        )
        new = new.decode() if isinstance(new, bytes) else new
        owned.cursor = ">"
        owned.last_id = owned.handed = new
        self._delivered.pop(tp, None)
        return new

    async def seek(self, partition: TopicPartition, offset: str) -> None:
        """Make ``offset`` the next record delivered from ``partition`` (owned by this member).

        Pending records before it count as consumed (they are acknowledged, as committing a
        Kafka offset commits what precedes it); records from it on are delivered again, and Redis
        restarts their ``delivery_count`` at 1.
        """
        await self._set_position(partition, offsets.before(offset))

    async def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Deliver ``partitions`` (default: all owned) again from their oldest stored record."""
        for tp in sorted(self._owned if partitions is None else partitions):
            await self._set_position(tp, "0-0")

    async def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Skip everything stored in ``partitions`` (default: all owned): only new records follow."""
        for tp in sorted(self._owned if partitions is None else partitions):
            await self._set_position(tp, "$")

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, str | None]:
        """For each partition, the offset of the first record appended at or after the time (ms),
        or None when there is none. Offsets carry their append time, so this is one XRANGE each."""
        out: dict[TopicPartition, str | None] = {}
        for tp, ms in timestamps.items():
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise ConfigError(f"timestamp for {tp} must be milliseconds since the epoch, got {ms!r}")
            found = await self._conn.command(
                "looking up offsets by time", "XRANGE", keys.stream(tp.topic, tp.partition), f"{ms}-0", "+", "COUNT", 1
            )
            out[tp] = found[0][0].decode() if found else None
        return out

    async def committed(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, str | None]:
        """For each partition (default: all owned), the offset up to which this group has
        committed everything, or None when it has committed nothing there yet."""
        out: dict[TopicPartition, str | None] = {}
        for tp in sorted(self._owned if partitions is None else partitions):
            state = await group_partition_state(self._conn, self.group, tp)
            out[tp] = state["committed"]
        return out

    def position(self, partition: TopicPartition) -> str:
        """Offset of the last record this member handed out from ``partition`` (records it
        prefetched but did not hand out yet are not counted), or where the group stood when the
        member got the partition ("0-0": nothing delivered yet)."""
        owned = self._owned_or_raise(partition)
        return owned.handed

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching from these owned partitions until resume(); membership goes on."""
        for tp in partitions:
            self._owned_or_raise(tp)
            self._paused.add(tp)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch from these partitions again."""
        for tp in partitions:
            self._paused.discard(tp)

    def paused(self) -> set[TopicPartition]:
        """The partitions paused by pause()."""
        return set(self._paused) & set(self._owned)

    # -- committing ----------------------------------------------------------------------------

    async def commit(self, outputs: Iterable[OutputRecord] = (), *, asynchronous: bool = False) -> None:
        """Acknowledge every record delivered so far; they will not be delivered again.

        ``asynchronous=True`` (Kafka's commitAsync): the acknowledgements travel with the next
        poll()'s read instead of a round trip of their own (or on revoke/close, whichever comes
        first). Cheaper, but a crash before then redelivers those records, and a fenced member
        learns of it from poll() rather than from commit(). Not with outputs or exactly-once.

        ``outputs`` (consume-transform-produce): records to append to other topics, each made from
        a delivered record (``OutputRecord.source``). The outputs of one input partition and the
        acknowledgement of its records take effect together or not at all (one script on one
        server: a single Redis or a Sentinel-managed primary).

        Raises CommitFailedError for partitions this member no longer owns (their records go to
        the new owner, and none of their outputs was written); the others are still committed.
        """
        if self._closed:
            raise ConfigError("the consumer is closed; create a new one")
        outputs = list(outputs)
        if self.config.guarantee == "at-most-once":
            if outputs:
                raise ConfigError("commit(outputs=...) needs guarantee 'at-least-once' or 'exactly-once'")
            return
        if asynchronous and not outputs and self.config.guarantee == "at-least-once":
            for tp, ids in self._delivered.items():
                self._ack_later.setdefault(tp, []).extend(ids)
            self._delivered = {}
            self._errors = {k: v for k, v in self._errors.items() if k[0] not in self._ack_later}
            return
        if self._inflight_acks:
            await self._settle()  # acknowledgements riding on the prefetch are part of this commit
        # Acknowledgements still waiting for a poll go now, in order, with the rest.
        for tp, ids in self._ack_later.items():
            self._delivered[tp] = ids + self._delivered.get(tp, [])
        self._ack_later = {}
        by_source: dict[TopicPartition, list[OutputRecord]] = {}
        for out in outputs:
            if not isinstance(out, OutputRecord):
                raise ConfigError(f"outputs must be OutputRecord objects, not {type(out).__name__}")
            by_source.setdefault(out.source.topic_partition, []).append(out)
        for tp, outs in by_source.items():
            missing = {o.source.offset for o in outs} - set(self._delivered.get(tp, []))
            if missing:
                raise ConfigError(
                    f"outputs made from {tp.topic}[{tp.partition}] records that are not delivered and "
                    f"uncommitted here ({', '.join(sorted(missing)[:3])}): commit outputs with their sources"
                )
        delivered, self._delivered = self._delivered, {}
        mark_all = self.config.guarantee == "exactly-once"
        calls: list[tuple[str, list[str], list[Any]]] = []
        tps: list[Any] = []  # per call: its partition, or (commit_many) the list of its partitions
        acks: list[tuple[TopicPartition, str, list[str]]] = []
        for tp, ids in delivered.items():
            o = self._owned.get(tp)
            if o is None or not ids:
                continue
            if tp in by_source:
                try:
                    transacts = await self._transact_calls(tp, o, ids, mark_all, by_source[tp])
                    for _, keys_, _ in transacts:
                        # On a cluster one script cannot span hash slots: refuse before sending.
                        self._conn.check_slots(f"committing outputs of {tp.topic}[{tp.partition}]", keys_)
                except FacadeError:
                    self._delivered = delivered  # nothing was sent: all of it is still to commit
                    raise
                for call in transacts:
                    calls.append(call)
                    tps.append(tp)
                continue
            acks.append((tp, o.token, ids))
        ack_calls, ack_tps = self._ack_calls(acks, mark_all)
        calls += ack_calls
        tps += ack_tps
        if not calls:
            return
        # Acknowledging twice changes nothing and transact recognises its own retry, so a failed
        # round trip is simply repeated.
        while True:
            try:
                results = await self._conn.pipeline(calls, f"committing for group {self.group}")
                retry = [r for r in results if isinstance(r, FacadeError) and r.retriable]
                if retry:
                    raise retry[0]  # e.g. NOREPLICAS on a new primary: the whole commit again
                self._outage_since = None
                break
            except FacadeError as exc:
                await self._ride_out(exc)
        self._errors = {k: v for k, v in self._errors.items() if k[0] not in delivered}
        by_partition: list[tuple[TopicPartition, Any]] = []
        for tp, result in zip(tps, results):
            if not isinstance(tp, list):
                by_partition.append((tp, result))
            elif isinstance(result, list):  # commit_many: one reply per partition (FENCED ones are errors)
                context = f"committing for group {self.group}"
                by_partition += [(t, from_redis(r, context) if isinstance(r, Exception) else r) for t, r in zip(tp, result)]
            else:
                by_partition += [(t, result) for t in tp]
        fenced = set()
        first_error: FacadeError | None = None
        for tp, result in by_partition:
            if isinstance(result, CommitFailedError):
                fenced.add(tp)
            elif isinstance(result, Exception) and first_error is None:
                first_error = result
        if fenced:
            self._lost(fenced)
            names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(fenced))
            raise CommitFailedError(
                f"commit refused for {names}: member {self.member_id} no longer owns them (another member "
                "took over after a rebalance or session timeout); their records will be delivered to the "
                "new owner, and this member rejoins on its next poll"
            )
        if first_error is not None:
            raise first_error

    async def _transact_calls(
        self, tp: TopicPartition, o: _Owned, ids: list[str], mark_all: bool, outs: list[OutputRecord]
    ) -> list[tuple[str, list[str], list[Any]]]:
        """transact script calls for one input partition: IDs in chunks, each chunk with the
        outputs made from its records (so every output commits together with its source)."""
        ids = sorted(ids, key=offsets.parse)
        calls = []
        for i in range(0, len(ids), _ACK_CHUNK):
            chunk = ids[i : i + _ACK_CHUNK]
            lo, hi = offsets.parse(chunk[0]), offsets.parse(chunk[-1])
            mine = [out for out in outs if lo <= offsets.parse(out.source.offset) <= hi]
            calls.append(await self._transact_call(tp, o, chunk, chunk[-1] if mark_all else "", mine))
        return calls

    async def _transact_call(
        self, tp: TopicPartition, o: _Owned, ids: list[str], mark: str, outs: list[OutputRecord]
    ) -> tuple[str, list[str], list[Any]]:
        streams: list[str] = []
        body: list[Any] = [len(outs)]
        for out in outs:
            cfg = await self._topic_cache.get(out.topic)
            fields, _ = codec.encode(out.key, out.value, out.headers, _MAX_OUTPUT_BYTES)
            if out.partition is not None:
                if not 0 <= out.partition < cfg.partitions:
                    raise ConfigError(f"output partition {out.partition} is out of range for {out.topic!r}")
                p = out.partition
            elif out.key is not None:
                p = partition_for_key(fields[1], cfg.partitions)
            else:
                # Keyless outputs follow their source, so a replay lands on the same partition.
                p = partition_for_key(out.source.offset.encode(), cfg.partitions)
            s = keys.stream(out.topic, p)
            if s not in streams:
                streams.append(s)
            # transact trims plainly; a topic with ack-aware retention is trimmed by its producers only.
            trim = ("", "") if cfg.ack_retention else (cfg.max_len or "", cfg.retention_ms or "")
            body += [4 + streams.index(s), *trim, len(fields), *fields]
        return (
            "transact",
            keys.consume_keys(tp.topic, tp.partition) + streams,
            [self.group, o.token, mark, len(ids), *ids, *body],
        )

    async def _transact(self, tp: TopicPartition, ids: list[str], mark: str, outs: list[OutputRecord]) -> None:
        """Run one transaction now (dead-lettering), retrying a lost reply."""
        o = self._owned_or_raise(tp)
        name, keys_, args = await self._transact_call(tp, o, ids, mark, outs)
        while True:
            try:
                await self._conn.script(name, keys_, args, f"dead-lettering from {tp.topic}[{tp.partition}]")
                self._outage_since = None
                return
            except FacadeError as exc:
                await self._ride_out(exc)

    def _ack_calls(
        self, acks: list[tuple[TopicPartition, str, list[str]]], mark_all: bool
    ) -> tuple[list[tuple[str, list[str], list[Any]]], list[Any]]:
        """Script calls acknowledging the IDs of each (partition, owner token, IDs), at most
        _ACK_CHUNK IDs per partition per call, and per call its partition or, for commit_many,
        the list of its partitions. One server: one commit_many call for all partitions (the n-th
        chunk of each in the n-th call), each partition checked on its own. Redis Cluster: one
        commit call per partition and chunk, whose keys share one slot. ``mark_all``: each chunk
        also moves the processed mark to its last ID (exactly-once)."""
        calls: list[tuple[str, list[str], list[Any]]] = []
        tps: list[Any] = []
        chunked = [(tp, token, [ids[i : i + _ACK_CHUNK] for i in range(0, len(ids), _ACK_CHUNK)]) for tp, token, ids in acks]
        if self._conn.cluster:
            for tp, token, chunks in chunked:
                for chunk in chunks:
                    mark = chunk[-1] if mark_all else ""
                    calls.append(("commit", keys.consume_keys(tp.topic, tp.partition), [self.group, token, mark, *chunk]))
                    tps.append(tp)
            return calls, tps
        for j in range(max((len(chunks) for _, _, chunks in chunked), default=0)):
            keys_: list[str] = []
            args: list[Any] = [self.group]
            members = []
            for tp, token, chunks in chunked:
                if j < len(chunks):
                    chunk = chunks[j]
                    keys_ += keys.consume_keys(tp.topic, tp.partition)
                    args += [token, chunk[-1] if mark_all else "", len(chunk), *chunk]
                    members.append(tp)
            calls.append(("commit_many", keys_, args))
            tps.append(members)
        return calls, tps

    async def _flush_async_acks(self, partitions: set[TopicPartition]) -> None:
        """Send the acknowledgements commit(asynchronous=True) left for these partitions."""
        acks = []
        for tp in sorted(partitions):
            ids = self._ack_later.pop(tp, [])
            o = self._owned.get(tp)
            if o is not None and ids:
                acks.append((tp, o.token, ids))
        calls, _ = self._ack_calls(acks, False)
        if calls:
            # Fenced partitions simply were not acknowledged: their new owner gets the records.
            await self._conn.pipeline(calls, f"committing for group {self.group}")
