"""Committing: offsets (Kafka's commit model), outputs with their inputs, dead letters.

This module is the asyncio source of truth; facade/_sync/committer.py is generated from it.

A committed offset is per (group, partition) and cumulative: committing offset N covers every
record before N, so a commit that was lost or failed is covered by the next one, and after a
handover or restart the group reads from the committed offset on, in offset order. Each commit
is fenced in Lua by the committer's owner token.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .. import codec, keys, scripts
from ..config import ConsumerConfig
from ..errors import CommitFailedError, ConfigError, FacadeError, TopicExistsError, UnknownTopicError
from ..partitioner import partition_for_key
from ..records import LOG_APPEND_TIME, Message, OffsetAndMetadata, OutputRecord, TopicPartition
from ..subscription import PartitionState, Subscription
from .client import Connection, TopicCache
from .fetcher import Fetcher
from .topics import create_topic

log = logging.getLogger("facade")

__all__ = ["Committer"]

# Outputs of commit(outputs=...) obey the producer's default record size limit.
_MAX_OUTPUT_BYTES = 1024 * 1024
# Values one transact call may carry (Lua's unpack() stack holds about 8000).
_MAX_TRANSACT_ARGS = 6000
_MAX_METADATA = 4096


class Committer:
    """Commits for one consumer."""

    def __init__(
        self,
        conn: Connection,
        group: str,
        config: ConsumerConfig,
        sub: Subscription,
        topics: TopicCache,
        fetcher: Fetcher,
    ) -> None:
        self._conn = conn
        self._group = group
        self._config = config
        self._sub = sub
        self._topics = topics
        self._fetcher = fetcher
        self._mark = config.guarantee == "exactly-once"
        self._txn = itertools.count()
        self._id = uuid.uuid4().hex[:12]  # with a counter, unique ids for commits and transactions
        self.max_output_bytes = _MAX_OUTPUT_BYTES

    # -- offsets -------------------------------------------------------------------------------

    def wanted(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None
    ) -> dict[TopicPartition, tuple[int, str]]:
        """What a commit covers: the given offsets (each must be an owned partition), or the
        position of every owned partition that moved since its last commit."""
        if offsets is None:
            return {
                tp: (s.position, "")
                for tp, s in self._sub.owned.items()
                if s.position != s.committed
            }
        out = {}
        for tp, value in offsets.items():
            if not isinstance(tp, TopicPartition):
                raise ConfigError(f"commit offsets are keyed by TopicPartition, not {type(tp).__name__}")
            offset, metadata = (value.offset, value.metadata) if isinstance(value, OffsetAndMetadata) else (value, "")
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ConfigError(f"offset to commit for {tp.topic}[{tp.partition}] must be an integer >= 0, got {offset!r}")
            if not isinstance(metadata, str) or len(metadata) > _MAX_METADATA:
                raise ConfigError(f"commit metadata must be a str of at most {_MAX_METADATA} characters")
            if tp not in self._sub.owned:
                raise CommitFailedError(
                    f"cannot commit {tp.topic}[{tp.partition}]: it is not assigned to this member (assigned: "
                    f"{_names(self._sub.owned) or 'none'})"
                )
            out[tp] = (offset, metadata)
        return out

    def commit_later(self, wanted: dict[TopicPartition, tuple[int, str]]) -> None:
        """commit(asynchronous=True): the offsets ride on the next read of each partition. One not
        confirmed yet is simply replaced: commits are cumulative."""
        for tp, (offset, _) in wanted.items():
            self._sub.owned[tp].async_commit = offset

    async def commit_now(self, wanted: dict[TopicPartition, tuple[int, str]], ride_out: Any) -> None:
        """Store ``wanted`` now; CommitFailedError for partitions this member no longer owns (the
        others are committed)."""
        if self._fetcher.carries_commit():
            await self._fetcher.settle()  # an older asynchronous commit must not land after this one
        items = []
        for tp, (offset, metadata) in sorted(wanted.items()):
            state = self._sub.owned.get(tp)
            if state is not None:
                items.append((tp, state.token, offset, self._mark, metadata))
                state.async_commit = None  # covered by this one
        if not items:
            return
        # One id per call: a retry of a call whose reply was lost is recognised as applied.
        commit_id = f"{self._id}#c{next(self._txn)}"
        if self._conn.cluster:  # one script cannot span hash slots: one call per partition
            groups = [[i] for i in items]
        else:
            groups = [items[i : i + 1000] for i in range(0, len(items), 1000)]
        calls = [scripts.commit(self._group, g, f"{commit_id}.{n}") for n, g in enumerate(groups)]
        while True:
            try:
                results = await self._conn.pipeline(calls, f"committing for group {self._group}")
                retry = [r for r in results if isinstance(r, FacadeError) and r.retriable]
                if retry:
                    raise retry[0]  # e.g. NOREPLICAS on a new primary: the whole commit again
                break
            except FacadeError as exc:
                await ride_out(exc)
        fenced: set[TopicPartition] = set()
        first_error: FacadeError | None = None
        for group, result in zip(groups, results):
            replies = result if isinstance(result, list) else [result] * len(group)
            for (tp, token, offset, _, _), reply in zip(group, replies):
                state = self._sub.owned.get(tp)
                if isinstance(reply, Exception):
                    error = reply if isinstance(reply, FacadeError) else CommitFailedError(str(reply))
                    if isinstance(error, CommitFailedError) or "FENCED" in str(reply):
                        fenced.add(tp)
                    elif first_error is None:
                        first_error = error
                elif state is not None and state.token == token:
                    state.committed = offset
                    state.forget_below(offset)
        if fenced:
            self._fetcher.lost |= fenced
            raise CommitFailedError(
                f"commit refused for {_names(fenced)}: this member no longer owns them (another member took them "
                "over after a rebalance or session timeout); their records go to the new owner from its committed "
                "offset, and this member follows the group on its next poll"
            )
        if first_error is not None:
            raise first_error

    # -- outputs and dead letters --------------------------------------------------------------

    async def commit_outputs(self, outputs: Iterable[OutputRecord], ride_out: Any) -> None:
        """Append ``outputs`` and commit their source partitions' positions, each source
        partition in one transaction (all or nothing); when large, in chunks, each committing up to
        its last source record, sent one after another (a failed chunk stops its partition)."""
        by_source: dict[TopicPartition, list[OutputRecord]] = {}
        for out in outputs:
            if not isinstance(out, OutputRecord):
                raise ConfigError(f"outputs must be OutputRecord objects, not {type(out).__name__}")
            by_source.setdefault(out.source.topic_partition, []).append(out)
        for tp, outs in by_source.items():
            state = self._sub.owned.get(tp)
            if state is None:
                raise CommitFailedError(f"cannot commit outputs of {tp.topic}[{tp.partition}]: not assigned to this member")
            late = [o.source.offset for o in outs if o.source.offset >= state.position]
            if late:
                raise ConfigError(
                    f"outputs made from {tp.topic}[{tp.partition}] records not handed out here yet (offsets "
                    f"{', '.join(map(str, late[:3]))}): commit outputs with their sources"
                )
        if self._fetcher.carries_commit():
            await self._fetcher.settle()
        # Round j carries the j-th chunk of each source partition: a partition's chunks go one
        # round trip after another, each sent only once the one before it was applied. So every
        # round trip holds at most one transaction per partition, and a round trip sent again
        # (a lost reply; redis-py also resends a pipeline whose connection dropped after sending)
        # finds each partition's last transaction id to be its own and writes nothing twice.
        rounds: list[list[tuple[PartitionState, int, scripts.Call]]] = []
        for tp, outs in by_source.items():
            state = self._sub.owned[tp]
            for j, (chunk, commit) in enumerate(await self._chunks(state, outs)):
                if j == len(rounds):
                    rounds.append([])
                rounds[j].append((state, commit, await self._transact(state, commit, [], chunk)))
        for round_ in rounds:
            for _, _, call in round_:
                self._conn.check_slots(f"committing outputs of group {self._group}", call.keys)
        fenced: set[TopicPartition] = set()
        stopped: set[TopicPartition] = set()  # a chunk failed: the partition's later chunks are not sent
        first_error: Exception | None = None
        for round_ in rounds:
            round_ = [x for x in round_ if x[0].tp not in stopped]
            if not round_:
                break
            results = await self._run([call for _, _, call in round_], ride_out)
            for (state, commit, _), result in zip(round_, results):
                if isinstance(result, Exception):
                    stopped.add(state.tp)
                    if isinstance(result, CommitFailedError):
                        fenced.add(state.tp)
                    elif first_error is None:
                        first_error = result
                elif self._sub.get(state.tp) is state:
                    state.committed = commit
                    state.async_commit = None
        if fenced:
            self._fetcher.lost |= fenced
            raise CommitFailedError(
                f"commit refused for {_names(fenced)}: this member no longer owns them; none of their outputs "
                "was written, and the new owner reads their records again"
            )
        if first_error is not None:
            raise first_error

    async def _chunks(self, state: PartitionState, outs: list[OutputRecord]) -> list[tuple[list[scripts.Output], int]]:
        """Outputs in source-offset order, in chunks of one transaction each: each chunk commits
        up to its last source record, the last one the whole position."""
        encoded = sorted([(o.source.offset, await self._encode(o)) for o in outs], key=lambda x: x[0])
        chunks: list[tuple[list[scripts.Output], int]] = []
        current: list[scripts.Output] = []
        size = 0
        for i, (source, out) in enumerate(encoded):
            cost = 6 + len(out.fields)
            if current and size + cost > _MAX_TRANSACT_ARGS and source != encoded[i - 1][0]:
                chunks.append((current, source))
                current, size = [], 0
            current.append(out)
            size += cost
        chunks.append((current, state.position))
        return chunks

    async def _encode(self, out: OutputRecord) -> scripts.Output:
        cfg = await self._topics.get(out.topic)
        fields, _ = codec.encode(out.key, out.value, out.headers, self.max_output_bytes)
        if out.partition is not None:
            if isinstance(out.partition, bool) or not isinstance(out.partition, int) or not 0 <= out.partition < cfg.partitions:
                raise ConfigError(f"output partition {out.partition!r} is out of range for {out.topic!r}")
            p = out.partition
        elif out.key is not None:
            p = partition_for_key(fields[1], cfg.partitions)
        else:
            # Keyless outputs follow their source, so a replay lands on the same partition.
            p = partition_for_key(f"{out.source.topic}/{out.source.partition}/{out.source.offset}".encode(), cfg.partitions)
        created = None if cfg.timestamp_type == LOG_APPEND_TIME else (
            out.timestamp_ms if out.timestamp_ms is not None else out.source.timestamp_ms
        )  # fmt: skip
        # transact trims plainly; a topic with ack-aware retention is trimmed by its producers only.
        trim = (None, None) if cfg.ack_retention else (cfg.max_len, cfg.retention_ms)
        return scripts.Output(keys.stream(out.topic, p), trim[0], trim[1], created, fields)

    async def _transact(
        self, state: PartitionState, commit: int | None, dead: list[int], outputs: list[scripts.Output]
    ) -> scripts.Call:
        return scripts.transact(
            state.tp, self._group, state.token, f"{self._id}#t{next(self._txn)}",
            commit=commit, mark=self._mark and commit is not None, dead=dead, outputs=outputs,
            need=self._config.max_deliveries if dead else None,
        )  # fmt: skip

    async def _run(self, calls: list[scripts.Call], ride_out: Any) -> list[Any]:
        """Run transactions, repeating a round trip that failed (each recognises its own retry)."""
        while True:
            try:
                results = await self._conn.pipeline(calls, f"committing outputs of group {self._group}")
                if not any(isinstance(r, FacadeError) and r.retriable for r in results):
                    return results
                raise next(r for r in results if isinstance(r, FacadeError) and r.retriable)
            except FacadeError as exc:
                await ride_out(exc)

    async def dead_letter(
        self, state: PartitionState, dead: list[Message], errors: dict[int, str], ride_out: Any
    ) -> set[int]:
        """Move records to the dead-letter topic, atomically with marking them dead (a later
        delivery skips them); the committed offset is left to the application's commits.

        transact.lua takes only records whose failures on the broker reached max_deliveries; when
        it refuses some, nothing moves, this member's counts are corrected from the broker's, the
        others are sent again, and the offsets it refused are returned (the caller hands them out
        instead). Returns the offsets of the records to hand out: none when all moved."""
        tp = state.tp
        name = keys.dead_letter_topic(tp.topic)
        source = await self._topics.get(tp.topic)
        try:
            dlq = await self._topics.get(name)
        except UnknownTopicError:
            try:
                await create_topic(self._conn, name, source.partitions)
            except TopicExistsError:
                pass
            dlq = await self._topics.get(name)
        outputs = []
        for m in dead:
            headers = [*m.headers, ("dlq.topic", m.topic.encode()), ("dlq.partition", str(m.partition).encode()),
                       ("dlq.offset", str(m.offset).encode()), ("dlq.delivery_count", str(m.delivery_count).encode()),
                       ("dlq.error", errors.get(m.offset, "").encode())]  # fmt: skip
            out = OutputRecord(m, name, m.value, m.key, headers, tp.partition % dlq.partitions, m.timestamp_ms)
            outputs.append(await self._encode(out))
        call = await self._transact(state, None, [m.offset for m in dead], outputs)
        result = (await self._run([call], ride_out))[0]
        if isinstance(result, Exception):
            raise result
        refused = scripts.Transacted.parse(result).refused
        if refused:
            for offset, failures in refused:
                state.failures[offset] = -1 if failures is None else failures
            log.warning("facade: the broker counts fewer failures for %s[%d] offsets %s than max_deliveries=%d; "
                        "they are handed out instead of dead-lettered", tp.topic, tp.partition,
                        ", ".join(str(o) for o, _ in refused), self._config.max_deliveries)  # fmt: skip
            back = {o for o, failures in refused if failures is not None}
            rest = [m for m in dead if m.offset not in {o for o, _ in refused}]
            return back | (await self.dead_letter(state, rest, errors, ride_out) if rest else set())
        for m in dead:
            state.failures[m.offset] = -1
        log.warning("facade: %d record(s) of %s[%d] failed %d times; moved to %s", len(dead), tp.topic, tp.partition,
                    self._config.max_deliveries, name)  # fmt: skip
        return set()


def _names(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
