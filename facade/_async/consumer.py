"""The group consumer: its public API and the poll loop, orchestrating its parts.

This module is the asyncio source of truth; facade/_sync/consumer.py is generated from it.

The parts (as aiokafka splits its consumer):

- ``facade/subscription.py``: what this member owns, positions, delivery state (pure);
- ``membership.py``: join, the background heartbeat, the assignment, claim and release;
- ``rebalance.py``: following the group (claim what was gained, revoke or lose what went);
- ``fetcher.py``: reads (guarded or scripted), prefetch, buffers;
- ``committer.py``: commits (Kafka's cumulative committed offsets), outputs, dead letters.

``Consumer.poll`` follows the assignment (revoking, then claiming), hands out buffered or freshly
read records, and waits on the owned streams when there are none. Details: docs/design.md,
"Consumer groups".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from .. import codec, keys, metrics, scripts, serializers, tracing
from ..config import ConsumerConfig, build
from ..errors import CommitFailedError, ConfigError, FacadeError, UnsupportedError
from ..offsets import offset_of
from ..offsets import validate as validate_offset
from ..records import (
    GroupMetadata,
    Message,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    OutputRecord,
    TopicPartition,
)
from ..subscription import PartitionState, Subscription
from . import _backend, logs
from .client import Connection, TopicCache
from .committer import Committer
from .fetcher import Fetcher
from .guarded import GuardedReader
from .membership import Membership
from .rebalance import CLAIM_RETRY_S, Rebalance

log = logging.getLogger("facade")

__all__ = ["Consumer"]

# The longest single wait for records: the poll loop then looks at the assignment again.
_WAIT_SLICE_S = 0.25
# How often an idle poll loop reads the group's generation, to follow a rebalance sooner than the
# next heartbeat.
_GENERATION_CHECK_S = 0.5


def _arguments(args: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(topics, group, url)`` from Consumer's positional arguments, in either order
    (``url, topics, group`` or ``topics, group, url``), and its keywords (taken out of ``named``).
    The URL-first order is recognised by its first argument: a URL (``scheme://``, which no topic
    name can contain), or None for the embedded broker."""
    given = {name: named.pop(name) for name in ("topics", "group", "url") if name in named}
    if len(args) > 3:
        raise TypeError(f"Consumer() takes at most 3 positional arguments ({len(args)} given)")
    def is_url(value: Any) -> bool:
        return isinstance(value, str) and "://" in value

    # None first is the embedded broker's URL, unless a URL comes in url's own place (then it is
    # a missing topic list, which the checks below report).
    url_first = bool(args) and (
        is_url(args[0]) or (args[0] is None and "url" not in given and not (len(args) == 3 and is_url(args[2])))
    )
    for name, value in zip(("url", "topics", "group") if url_first else ("topics", "group", "url"), args):
        if name in given:
            raise TypeError(f"Consumer() got multiple values for argument {name!r}")
        given[name] = value
    missing = [name for name in ("topics", "group") if name not in given]
    if missing:
        raise TypeError(
            f"Consumer() is missing {' and '.join(missing)}: Consumer(url, topics, group), "
            "Consumer(topics, group, url) or Consumer(topics, group=..., url=...)"
        )
    return given["topics"], given["group"], given.get("url")


class Consumer:
    """Read topics as one member of consumer group ``group``.

    Each partition is owned by one member of the group at a time. The group's committed offset of
    a partition (Kafka's: the next record to read) decides what its next owner reads: records are
    at-least-once by default, and with ``enable_auto_commit`` (the default, as in Kafka) each
    poll() commits what earlier polls returned.

    ``on_assign(partitions)`` / ``on_revoke(partitions)`` are called with sets of
    :class:`TopicPartition` when this member gains or gives up partitions (``commit()`` inside
    ``on_revoke`` still works); ``on_lost(partitions)`` when they were taken away without a
    revoke (its session ended; commits are refused then), default ``on_revoke``. Options are
    those of :class:`facade.ConsumerConfig`.

    The URL may come first, as ``Producer(url)`` and ``Admin(url)`` take it:
    ``Consumer(url, topics, group)``; ``Consumer(topics, group, url)`` and keywords
    (``Consumer("posts", group="g", url=url)``) work too. ``url``: the broker (None:
    ``$FACADE_URL``, else the embedded broker).
    """

    @overload
    def __init__(
        self,
        topics: str | Iterable[str],
        group: str,
        url: str | None = None,
        *,
        config: ConsumerConfig | None = None,
        on_assign: Callable[[set[TopicPartition]], Any] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Any] | None = None,
        on_lost: Callable[[set[TopicPartition]], Any] | None = None,
        **options: Any,
    ) -> None: ...

    @overload
    def __init__(
        self,
        url: str | None,
        topics: str | Iterable[str],
        group: str,
        *,
        config: ConsumerConfig | None = None,
        on_assign: Callable[[set[TopicPartition]], Any] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Any] | None = None,
        on_lost: Callable[[set[TopicPartition]], Any] | None = None,
        **options: Any,
    ) -> None: ...

    def __init__(
        self,
        *args: Any,
        config: ConsumerConfig | None = None,
        on_assign: Callable[[set[TopicPartition]], Any] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Any] | None = None,
        on_lost: Callable[[set[TopicPartition]], Any] | None = None,
        **options: Any,
    ) -> None:
        topics, group, url = _arguments(args, options)
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
        self._conn = Connection(url)
        if self.config.max_deliveries is not None and self._conn.cluster:
            raise UnsupportedError(
                "max_deliveries needs dead-lettering in one script across the source and dead-letter "
                "partitions, which Redis Cluster cannot do; handle poison records in the application"
            )
        self._reader = GuardedReader(self._conn)
        self._topics = TopicCache(self._conn, self.config.metadata_max_age_ms)
        self._sub = Subscription(self.topics)
        self._membership = Membership(
            self._conn, self.group, self.topics, self.config, self._topics,
            owned=lambda: [(tp, s.token) for tp, s in list(self._sub.owned.items())],
        )  # fmt: skip
        self._fetcher = Fetcher(self._conn, self._reader, self.group, self.config, self._sub)
        self._committer = Committer(self._conn, self.group, self.config, self._sub, self._topics, self._fetcher)
        self._key_deserializer = serializers.deserializer(self.config.key_deserializer, "key_deserializer")
        self._value_deserializer = serializers.deserializer(self.config.value_deserializer, "value_deserializer")
        self._buffer: list[Message] = []
        self._errors: dict[tuple[TopicPartition, int], str] = {}
        self._next_generation_check = 0.0
        self._outage_since: float | None = None
        self._closed = False
        self._metrics = metrics.ConsumerMetrics(self.config.client_id, self.group, self.topics) if self.config.metrics else metrics.OFF
        self._tracing = tracing.ConsumerTracing(self.config.client_id, self.group) if self.config.tracing else tracing.OFF
        self._rebalance = Rebalance(
            self.config, self._sub, self._membership, self._fetcher, self._committer, self._metrics, self._ride_out,
            on_assign, on_revoke, on_lost,
        )  # fmt: skip

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Leaving the block with an exception (a handler that raised) is a crash for delivery
        # counting: a record handed out alone then counts towards max_deliveries.
        crashed = exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, SystemExit))
        await self._close(clean=not crashed)

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer = await self.poll(timeout_ms=1000)
            self._buffer.reverse()
        return self._buffer.pop()

    @property
    def member_id(self) -> str:
        """This member's id in the group (a new one per session; the group_instance_id if static)."""
        return self._membership.member_id

    def group_metadata(self) -> GroupMetadata:
        """Group, generation and member id of this consumer (Kafka's groupMetadata())."""
        return GroupMetadata(
            self.group, self._membership.generation, self._membership.member_id, self.config.group_instance_id
        )

    def metrics(self) -> dict[str, Any]:
        """What this consumer did (with ``metrics=True``; {} otherwise), as plain data: records
        and bytes handed out per topic, poll sizes, end-to-end latency, errors, rebalances,
        commits and fenced commits."""
        return self._metrics.as_dict() if self._metrics.enabled else {}

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently owns."""
        return set(self._sub.owned)

    async def close(self) -> None:
        """Commit (with auto-commit), give up every partition (``on_revoke`` runs first), leave the
        group, close connections. Records not committed go to the next owner. A static member
        (``group_instance_id``) stays in the group until its session times out."""
        await self._close(clean=True)

    async def _close(self, *, clean: bool) -> None:
        if self._closed:
            return
        try:
            await self._fetcher.settle()
            if self._membership.joined and self._membership.fatal is None:
                await self._rebalance.revoke(set(self._sub.owned), clean=clean)
                await self._membership.leave()
        finally:
            self._closed = True
            try:
                await self._membership.stop()
                await self._reader.close()
            finally:
                await self._conn.close()

    # -- reading -------------------------------------------------------------------------------

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Message]:
        """Records from owned partitions: waits up to ``timeout_ms`` for at least one.

        Also follows rebalances (heartbeats run in the background). Call it at least every
        ``max_poll_interval_ms``; with ``enable_auto_commit`` it commits what earlier polls
        returned. While the broker is unreachable it returns [] at the timeout, and raises once
        the outage lasted ``reconnect_timeout_ms``.
        """
        if self._closed:
            raise ConfigError("the consumer is closed; create a new one")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or not timeout_ms >= 0:
            raise ConfigError(f"timeout_ms must be a number >= 0, got {timeout_ms!r}")
        limit = self.config.max_poll_records if max_records is None else max_records
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"max_records must be a positive integer, got {max_records!r}")
        deadline = _backend.monotonic() + timeout_ms / 1000
        started_ns = tracing.now_ns()
        self._membership.poll_started()
        try:
            while True:
                try:
                    await self._rebalance.follow()
                    taken = await self._fetcher.fetch(limit)
                    if taken and self._membership.unsure():
                        # Stopped while reading (SIGSTOP, a paused VM) for most of a session: ask
                        # the group first; if the session ended, what was read goes to the next
                        # owner (from the committed offset) instead of being handed out here.
                        await self._membership.confirm()
                        if not self._membership.joined or self._membership.fatal is not None:
                            continue
                    records = await self._hand_out(taken)
                    self._outage_since = None
                    if records:
                        self._metrics.consumed(records)
                        self._tracing.received(records, started_ns)
                        return records
                    remaining = deadline - _backend.monotonic()
                    if remaining <= 0:
                        return []
                    await self._wait(remaining)
                except FacadeError as exc:
                    self._metrics.error(exc)
                    if not exc.retriable or self._conn.unreachable(exc):
                        raise
                    if self._outage(exc):
                        self._outage_since = None
                        raise
                    remaining = deadline - _backend.monotonic()
                    if remaining <= 0:
                        return []  # as Kafka's poll: nothing within the timeout (the outage goes on)
                    await _backend.sleep(min(0.1, remaining))
        finally:
            self._membership.poll_ended()

    def _outage(self, exc: FacadeError) -> bool:
        """Note a retriable failure; whether it has lasted reconnect_timeout_ms."""
        if self._outage_since is None:
            self._outage_since = _backend.monotonic()
            log.warning("facade consumer %s: %s; retrying", self.member_id, exc)
        return self._outage_lasted()

    def _outage_lasted(self) -> bool:
        return (
            self._outage_since is not None
            and _backend.monotonic() - self._outage_since >= self.config.reconnect_timeout_ms / 1000
        )

    async def _ride_out(self, exc: FacadeError) -> None:
        """For commits: wait a little after a retriable failure; re-raise anything else, or the
        failure itself once it has lasted ``reconnect_timeout_ms``."""
        if not exc.retriable or self._conn.unreachable(exc) or self._outage(exc):
            self._outage_since = None
            raise exc
        await _backend.sleep(0.1)

    async def _hand_out(self, taken: list[tuple[PartitionState, list[Any]]]) -> list[Message]:
        """Decode read entries into Messages: delivery counts, and records due for the dead
        letters moved there instead of handed out."""
        out: list[Message] = []
        limit = self.config.max_deliveries
        for state, entries in taken:
            tp = state.tp
            topic, partition = tp.topic, tp.partition
            if not state.redelivered and not state.failures:
                out += [codec.decode(topic, partition, eid, flat) for eid, flat in entries]
                continue
            mine = []
            for eid, flat in entries:
                m = codec.decode(topic, partition, eid, flat, state.delivery_count(offset_of(eid)))
                if state.failure_count(m.offset) >= 0:  # else moved to the dead letters before
                    mine.append(m)
            dead = [m for m in mine if limit is not None and state.failure_count(m.offset) >= limit]
            kept: set[int] = set()
            if dead:
                errors = {m.offset: self._errors.get((tp, m.offset), "") for m in dead}
                kept = await self._committer.dead_letter(state, dead, errors, self._ride_out)
                for m in dead:
                    if m.offset not in kept:
                        self._errors.pop((tp, m.offset), None)
            moved = {m.offset for m in dead} - kept
            out += [m for m in mine if m.offset not in moved]
        if self._key_deserializer is not None or self._value_deserializer is not None:
            # After the dead letters (they keep the stored bytes); a failure is the record's own.
            c = self.config
            out = [serializers.deserialize(m, self._key_deserializer, c.key_deserializer, self._value_deserializer,
                                           c.value_deserializer) for m in out]  # fmt: skip
        return out

    async def _wait(self, seconds: float) -> None:
        """Sleep until new records may be there (a blocking read on owned streams), or
        ``seconds``, or the next look at the assignment."""
        seconds = min(seconds, CLAIM_RETRY_S if self._sub.to_claim else _WAIT_SLICE_S)
        if self._membership.joined and _backend.monotonic() >= self._next_generation_check:
            self._next_generation_check = _backend.monotonic() + _GENERATION_CHECK_S
            generation = await self._conn.command(
                f"reading group {self.group}", "HGET", keys.group_state(self.group), "generation"
            )
            self._membership.notice(int(generation or 0))
        streams = {keys.stream(tp.topic, tp.partition): self._sub.owned[tp].last_id for tp in self._sub.readable()}
        if not streams or seconds < 0.002:
            await _backend.sleep(max(0.0, seconds))
            return
        context = f"waiting for records for group {self.group}"
        if self._conn.cluster:
            # One XREAD cannot span several hash slots (partitions): see Connection.wait_for_records.
            await self._conn.wait_for_records(context, streams, seconds)
            return
        await self._conn.command(
            context, "XREAD", "COUNT", 1, "BLOCK", max(1, int(seconds * 1000)), "STREAMS", *streams, *streams.values()
        )

    # -- committing ----------------------------------------------------------------------------

    async def commit(
        self,
        outputs: Iterable[OutputRecord] = (),
        *,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None,
        asynchronous: bool = False,
    ) -> None:
        """Commit the position of every owned partition: every record poll() returned so far is
        done, and is not delivered again after a handover (Kafka's commitSync()).

        ``offsets``: commit these offsets instead (Kafka's commitSync(offsets); the next record to
        read, optionally with metadata). ``asynchronous=True`` (commitAsync): the commit rides on
        the next read instead of a round trip of its own; a commit that is lost is covered by the
        next one (commits are cumulative), and close() and rebalances flush it.

        ``outputs`` (consume-transform-produce): records to append to other topics, each made from
        a record poll() returned (``OutputRecord.source``); a source partition's outputs and its
        commit take effect together or not at all (one script: a single Redis or a
        Sentinel-managed primary).

        Raises CommitFailedError for partitions this member no longer owns (their records go to
        the new owner from its committed offset); the others are still committed.
        """
        if self._closed:
            raise ConfigError("the consumer is closed; create a new one")
        outputs = list(outputs)
        if self.config.guarantee == "at-most-once":
            if outputs:
                raise ConfigError("commit(outputs=...) needs guarantee 'at-least-once' or 'exactly-once'")
            return
        if outputs:
            if asynchronous or offsets is not None:
                raise ConfigError("commit(outputs=...) commits positions synchronously: no offsets=, no asynchronous=")
            await self._committer.commit_outputs(outputs, self._ride_out)
            return
        wanted = self._committer.wanted(offsets)
        if asynchronous:
            self._committer.commit_later(wanted)
            return
        try:
            await self._committer.commit_now(wanted, self._ride_out)
        except CommitFailedError:
            self._metrics.fenced()
            raise
        self._metrics.committed()
        self._outage_since = None

    def fail(self, message: Message, error: BaseException | str | None = None) -> None:
        """Give ``message`` back: it, and the records after it from its partition, are handed out
        again (so skip the rest of that partition in the current batch), with a higher
        delivery_count; the failure counts towards ``max_deliveries``, and ``error`` goes into
        the dead-letter header ``dlq.error`` if the record ends up there."""
        tp = message.topic_partition
        state = self._owned_or_raise(tp)
        if self.config.guarantee == "at-most-once":
            raise ConfigError("with guarantee='at-most-once' records are committed when read: nothing to fail")
        if not isinstance(message.offset, int) or message.offset >= state.position:
            raise ConfigError(f"fail() takes a record poll() returned from {tp.topic}[{tp.partition}]")
        if error is not None:
            self._errors[(tp, message.offset)] = str(error)[:500]
        self._fetcher.forget(tp)
        state.give_back(message.offset)

    # -- positions and offsets -----------------------------------------------------------------

    def _owned_or_raise(self, tp: TopicPartition) -> PartitionState:
        if not isinstance(tp, TopicPartition):
            raise ConfigError(f"expected a TopicPartition, got {type(tp).__name__}")
        state = self._sub.get(tp)
        if state is None:
            raise ConfigError(
                f"{tp.topic}[{tp.partition}] is not assigned to this member (assigned: "
                f"{', '.join(f'{t.topic}[{t.partition}]' for t in sorted(self._sub.owned)) or 'none'}); poll first"
            )
        return state

    async def _set_position(self, tp: TopicPartition, target: int | str) -> int:
        self._owned_or_raise(tp)
        await self._fetcher.settle()  # its reads must not land after the new position
        state = self._owned_or_raise(tp)
        reply = await self._conn.script(
            *scripts.set_position(tp, self.group, state.token, target, self.config.auto_offset_reset,
                                  commit=False, exactly_once=self.config.guarantee == "exactly-once"),
            context=f"seeking {tp.topic}[{tp.partition}]",
        )  # fmt: skip
        moved = scripts.Positioned.parse(reply)
        self._fetcher.forget(tp)
        state.position = state.fetched = moved.position
        state.restart = None
        state.last_id = moved.position_id
        return moved.position

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record handed out from ``partition`` (owned by this member).
        An offset outside the partition's records is resolved by ``auto_offset_reset`` (Kafka's
        OffsetOutOfRange handling); nothing is committed until commit()."""
        await self._set_position(partition, validate_offset(offset))

    async def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Hand out ``partitions`` (default: all owned) again from their oldest stored record."""
        for tp in sorted(self._sub.owned if partitions is None else partitions):
            await self._set_position(tp, "earliest")

    async def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Skip everything stored in ``partitions`` (default: all owned): only new records follow."""
        for tp in sorted(self._sub.owned if partitions is None else partitions):
            await self._set_position(tp, "latest")

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record poll() hands out from ``partition`` (Kafka's position)."""
        return self._owned_or_raise(partition).position

    async def committed(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int | None]:
        """The group's committed offset of each partition (default: all owned): the next record
        its next owner reads; None when the group committed nothing there."""
        tps = sorted(self._sub.owned if partitions is None else partitions)
        replies = await self._conn.commands(
            [("HGET", keys.committed(tp.topic, tp.partition), self.group) for tp in tps], "reading committed offsets"
        )
        out: dict[TopicPartition, int | None] = {}
        for tp, raw in zip(tps, replies):
            if isinstance(raw, Exception):
                raise FacadeError(f"reading committed offsets: {raw}")
            out[tp] = None if raw is None else int((raw.decode() if isinstance(raw, bytes) else raw).split(" ", 1)[0])
        return out

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log start offset (oldest stored record) of each partition."""
        return {tp: lo.start for tp, lo in (await logs.log_offsets(self._conn, partitions)).items()}

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end offset (the next offset appended) of each partition."""
        return {tp: lo.end for tp, lo in (await logs.log_offsets(self._conn, partitions)).items()}

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition, the first record appended at or after the time (ms since the
        epoch), or None when there is none."""
        return await logs.offsets_for_times(self._conn, timestamps)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop handing out records of these owned partitions until resume(); membership goes on."""
        for tp in partitions:
            self._owned_or_raise(tp)
            self._sub.paused.add(tp)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Hand out records of these partitions again."""
        for tp in partitions:
            self._sub.paused.discard(tp)

    def paused(self) -> set[TopicPartition]:
        """The partitions paused by pause()."""
        return set(self._sub.paused) & set(self._sub.owned)

