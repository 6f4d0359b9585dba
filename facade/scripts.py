"""The Lua scripts in lua/: read once, registered per client, called by name; and for each, the
one function that builds its call and the one type its reply is read into.

Each script's KEYS/ARGV contract is the comment block at the top of its file (and in
docs/design.md). ``lua/_lib.lua`` is a prelude loaded in front of every script, so helpers shared
by several scripts (server time, offset lookups, group positions, trimming) are written once.
redis-py's ``Script`` / ``AsyncScript`` objects hold each script's SHA and run single calls
(EVALSHA, reloading on NOSCRIPT); pipelines send EVALSHA themselves (``Connection.pipeline``).

Call sites never build ARGV lists by hand: they call the builder below, which returns a
:class:`Call` (script name, KEYS, ARGV) for ``Connection.script`` / ``Connection.pipeline``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import keys
from .errors import ServerError
from .records import TopicPartition

NAMES = (
    "produce",
    "partition_init",
    "topic_register",
    "claim",
    "release",
    "fetch",
    "commit",
    "transact",
    "set_position",
    "trim_before",
    "first_uncommitted",
    "topic_migrate",
    "kafka_join",
    "kafka_join_wait",
    "kafka_join_cancel",
    "kafka_sync",
    "kafka_heartbeat",
    "kafka_leave",
    "kafka_commit",
    "group_join",
    "group_heartbeat",
    "group_sync",
    "group_leave",
    "group_alive",
    "group_lock",
    "group_delete",
    "log_read",
)
PRELUDE = "_lib"


def lua_dir() -> Path:
    """Where the .lua files are: ``facade/lua`` in an installed wheel, ``lua/`` in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if (candidate / "produce.lua").is_file():
            return candidate
    raise ServerError(f"facade's Lua scripts are missing (looked in {here / 'lua'}); reinstall facade")


@functools.cache
def source(name: str) -> str:
    """The text sent to the server for script ``name``: its shebang line (flags) if any, then the
    prelude, then the script."""
    if name not in NAMES:
        raise KeyError(name)
    body = (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
    prelude = (lua_dir() / f"{PRELUDE}.lua").read_text(encoding="utf-8")
    if body.startswith("#!"):
        shebang, _, rest = body.partition("\n")
        return f"{shebang}\n{prelude}\n{rest}"
    return f"{prelude}\n{body}"


class Scripts:
    """The scripts registered on one client (sync ``redis.Redis`` or ``redis.asyncio.Redis``).

    Attribute access gives the redis-py Script object: ``scripts.produce(keys=[...], args=[...])``.
    """

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))


class Call(NamedTuple):
    """One script call: what ``Connection.script`` and ``Connection.pipeline`` run."""

    script: str
    keys: list[str]
    args: list[Any]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- partitions ----------------------------------------------------------------------------------


MAX_RECORDS_PER_CALL = 20_000
"""Records the Kafka gateway sends in one produce.lua call at most (all the batches of one
partition of one Produce request): a bound on one call's work, one XADD each while the server
serves nobody else. Measured (2026-11-29, this 2-core machine): 100,000 records of 100 bytes took
0.7 s (key and value only) and 1.4 s (the general form: headers, nulls) of Valkey's time, 0.85 s
and 1.6 s of Redis 7's; 20,000 is a fifth of that, twice librdkafka's default batch.num.messages.
Beyond it the partition is refused with MESSAGE_TOO_LARGE (the Java client splits its batch and
retries), nothing stored."""


SEQUENCE_LIMIT = 2**31
"""Producer sequences are Kafka's int32: from 0 to 2^31-1, after which they wrap to 0
(DefaultRecordBatch.incrementSequence); produce.lua computes a batch's last sequence modulo this."""
MAX_CREATE_TIME_MS = 2**53 - 1
"""The largest record create time produce.lua stores exactly (a Lua number is a double); larger
ones are refused (the gateway answers INVALID_TIMESTAMP; the SDK allows up to year 9999)."""


class ProduceBatch(NamedTuple):
    """One batch of a produce.lua call: one producer sequence range, appended after the call's
    earlier batches, all of them or none."""

    producer_id: str
    """"" for a non-idempotent producer."""
    first_seq: int
    """The sequence number of the batch's first record (per producer id and partition, from 0 to
    ``SEQUENCE_LIMIT`` - 1; the sequence after the last is 0)."""
    count: int
    """Records in the batch (>= 1)."""
    plain: bool
    """``records`` is the plain form (key, value per record), else the general one."""
    times: str
    """Create times as runs "<ms> <count> ..." covering the batch ("" for LogAppendTime)."""
    records: list[Any]
    """The records' arguments (lua/produce.lua's header)."""


def produce_batches(
    tp: TopicPartition,
    batches: Sequence[ProduceBatch],
    *,
    max_len: int | None,
    retention_ms: int | None,
    acked: bool,
    producer_id_expiry_ms: int,
    dedup_window_ms: int,
    dedup_max_ids: int,
    replicas: int = 0,
) -> Call:
    """Append ``batches`` to ``tp`` in order, all or none: produce.lua checks every batch (shape,
    producer sequences, with ``replicas`` > 0 that many replicas in sync) before it writes any
    record. The reply, read with :meth:`Produced.parse_all`, has one :class:`Produced` per batch.

    ``producer_id_expiry_ms`` is the calling producer's own (it only ever sets its own ids'
    expiry); ``dedup_window_ms`` and ``dedup_max_ids`` must be the topic's (TopicConfig), the same
    for every caller: they decide how long everyone's dedup ids are remembered."""
    args: list[Any] = [
        max_len or "", retention_ms or "", "acked" if acked else "", producer_id_expiry_ms, dedup_window_ms,
        dedup_max_ids, replicas, len(batches),
    ]  # fmt: skip
    for b in batches:
        args += (b.producer_id, b.first_seq, b.count, "plain" if b.plain else "", b.times)
        args += b.records
    return Call("produce", keys.produce_keys(tp.topic, tp.partition), args)


def produce(
    tp: TopicPartition,
    *,
    max_len: int | None,
    retention_ms: int | None,
    acked: bool,
    producer_id: str,
    first_seq: int,
    producer_id_expiry_ms: int,
    dedup_window_ms: int,
    dedup_max_ids: int,
    count: int,
    plain: bool,
    times: str,
    records: list[Any],
    replicas: int = 0,
) -> Call:
    """Append one batch of ``count`` records (``records``: the plain or general form of
    produce.lua); with ``replicas`` > 0 only if that many replicas are in sync (acks="all").
    The SDK producer's call: :func:`produce_batches` with one batch (see there)."""
    return produce_batches(
        tp,
        [ProduceBatch(producer_id, first_seq, count, plain, times, records)],
        max_len=max_len,
        retention_ms=retention_ms,
        acked=acked,
        producer_id_expiry_ms=producer_id_expiry_ms,
        dedup_window_ms=dedup_window_ms,
        dedup_max_ids=dedup_max_ids,
        replicas=replicas,
    )


class Produced(NamedTuple):
    """produce.lua's reply: where the batch's records are, whether it was a retry, its append ms."""

    first: int
    """The first record's offset, when the batch's offsets are consecutive (else -1)."""
    offsets: tuple[int, ...]
    """Each record's offset when they are not consecutive (dedup ids dropped repeats), else ()."""
    duplicate: bool
    append_ms: int

    @classmethod
    def parse(cls, reply: Any) -> Produced:
        """The first (for the SDK: the only) batch of a produce.lua reply."""
        joined, duplicate, ms = _text(reply[0]), bool(int(reply[1])), int(reply[2])
        if "," in joined:
            return cls(-1, tuple(int(x) for x in joined.split(",")), duplicate, ms)
        return cls(int(joined), (), duplicate, ms)

    @classmethod
    def parse_all(cls, reply: Any) -> list[Produced]:
        """Each batch of a produce.lua reply (:func:`produce_batches`), in order."""
        return [cls.parse(reply[i : i + 3]) for i in range(0, len(reply), 3)]

    def offset(self, index: int) -> int:
        """The offset of the batch's ``index``-th record."""
        return self.first + index if self.first >= 0 else self.offsets[index]


def partition_init(topic: str, partition: int) -> Call:
    return Call("partition_init", [keys.stream(topic, partition)], [])


def topic_register(name: str, config_json: str, mode: str) -> Call:
    return Call("topic_register", [keys.TOPICS], [name, config_json, mode])


def claim(tp: TopicPartition, group: str, token: str, expected: str, policy: str, exactly_once: bool) -> Call:
    return Call(
        "claim",
        [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition),
         keys.committed(tp.topic, tp.partition), keys.processed(tp.topic, tp.partition),
         keys.deliveries(tp.topic, tp.partition)],
        [group, token, expected, policy, "exactly-once" if exactly_once else ""],
    )  # fmt: skip


class Claimed(NamedTuple):
    """claim.lua's reply."""

    ok: bool
    position: int
    """The next offset the new owner reads (ok)."""
    redelivered: tuple[tuple[int, int], ...]
    """Offset ranges handed out once more before a handover (ok): each adds a delivery."""
    failures: dict[int, int]
    """Offset -> failures counted towards max_deliveries; -1 for a record already dead-lettered."""
    holder: str
    """The token holding the partition (not ok)."""
    position_id: str = ""
    """The stream group's last-delivered ID (ok): where a blocking XREAD waits from."""

    @classmethod
    def parse(cls, reply: Any) -> Claimed:
        if not int(reply[0]):
            return cls(False, -1, (), {}, _text(reply[1]))
        ranges = _text(reply[2]).split()
        fails = _text(reply[3]).split()
        return cls(
            True,
            int(reply[1]),
            tuple((int(ranges[i]), int(ranges[i + 1])) for i in range(0, len(ranges), 2)),
            {int(fails[i]): (-1 if fails[i + 1] == "d" else int(fails[i + 1])) for i in range(0, len(fails), 2)},
            "",
            _text(reply[4]),
        )


def release(tp: TopicPartition, group: str, token: str, *, clean: bool = False) -> Call:
    """Give up ``tp``; ``clean``: in good order (a revoke, close()), so a record handed out alone
    did not crash the consumer (see release.lua)."""
    return Call(
        "release",
        [keys.owners(tp.topic, tp.partition), keys.deliveries(tp.topic, tp.partition)],
        [group, token, "clean" if clean else ""],
    )


def fetch(
    tp: TopicPartition,
    group: str,
    token: str,
    count: int,
    *,
    start: int | None = None,
    commit: int | None = None,
    handed: str = "",
    failed: Sequence[int | tuple[int, int]] = (),
    noack: bool = False,
    policy: str = "earliest",
    where: tuple[str, int] | None = None,
) -> Call:
    """Read up to ``count`` records; ``start``: from this offset; ``commit``: commit this offset
    first; ``handed``: "read", "reads" or "<offset>" (see fetch.lua); ``failed``: offsets fail()ed,
    each bare (one more failure) or as (offset, its failure count with this one): a report sent
    again after a lost reply then counts once; ``where`` (without ``start``): the (last-delivered
    ID, offset) the caller's reads left the position at, so that a read run twice reads the same
    records."""
    reports = " ".join(f"{f[0]}:{f[1]}" if isinstance(f, tuple) else str(f) for f in failed)
    return Call(
        "fetch",
        [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition),
         keys.committed(tp.topic, tp.partition), keys.deliveries(tp.topic, tp.partition)],
        [group, token, count, "" if start is None else start, "" if commit is None else commit, handed,
         reports, "noack" if noack else "", policy,
         "" if where is None or start is not None else f"{where[0]} {where[1]}"],
    )  # fmt: skip


class Fetched(NamedTuple):
    """fetch.lua's reply (and a guarded read's): entries, the position ID after a move, and where
    a read given a start offset started (None without one)."""

    entries: list[Any]
    position_id: str
    position: int | None = None

    @classmethod
    def parse(cls, reply: Any) -> Fetched:
        at = reply[2] if len(reply) > 2 else ""
        return cls(reply[0], _text(reply[1]), None if at in ("", b"") else int(at))


def commit(group: str, items: Iterable[tuple[TopicPartition, str, int, bool, str]], commit_id: str = "") -> Call:
    """Commit offsets: each item is (partition, owner token, offset, raise processed mark,
    metadata); ``commit_id`` makes a retry after a lost reply recognisable. One server only when
    the items span several partitions (hash slots)."""
    keys_: list[str] = []
    args: list[Any] = [group, commit_id]
    for tp, token, offset, mark, metadata in items:
        keys_ += [keys.owners(tp.topic, tp.partition), keys.committed(tp.topic, tp.partition),
                  keys.processed(tp.topic, tp.partition), keys.deliveries(tp.topic, tp.partition)]  # fmt: skip
        args += [token, offset, "mark" if mark else "", metadata]
    return Call("commit", keys_, args)


def set_position(
    tp: TopicPartition, group: str, token: str, target: int | str, policy: str, *, commit: bool, exactly_once: bool
) -> Call:
    """Seek (``token`` of the owner) or reset (``token`` "", with ``commit``) to ``target``: an
    offset, "earliest", "latest" or "time:<ms>"."""
    return Call(
        "set_position",
        [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition),
         keys.committed(tp.topic, tp.partition), keys.processed(tp.topic, tp.partition)],
        [group, token, target, policy, "commit" if commit else "", "exactly-once" if exactly_once else ""],
    )  # fmt: skip


class Positioned(NamedTuple):
    """set_position.lua's reply."""

    previous: int | None
    position: int
    position_id: str

    @classmethod
    def parse(cls, reply: Any) -> Positioned:
        previous = int(reply[0])
        return cls(None if previous < 0 else previous, int(reply[1]), _text(reply[2]))


def trim_before(tp: TopicPartition, offset: int | None, limit: int = 10_000) -> Call:
    """Remove records below ``offset`` (None: all stored), at most ``limit`` per call."""
    return Call("trim_before", [keys.stream(tp.topic, tp.partition)], ["" if offset is None else offset, limit])


def first_uncommitted(tp: TopicPartition, group: str) -> Call:
    """The offset and append ms of ``group``'s oldest uncommitted record on ``tp`` (read only)."""
    return Call("first_uncommitted", [keys.stream(tp.topic, tp.partition), keys.committed(tp.topic, tp.partition)], [group])


def topic_migrate(
    tp: TopicPartition,
    length: int,
    last_id: str,
    committed: Mapping[str, int],
    processed: Mapping[str, int],
) -> Call:
    """Put the dense copy of a layout-1 partition in its place, if the old stream still has
    ``length`` records ending at ``last_id`` ("" when empty); with each group's committed offset
    and processed mark converted. Answers 1 (done now) or 0 (done before)."""
    args: list[Any] = [length, last_id, len(committed)]
    for group, offset in committed.items():
        args += (group, offset)
    for group, offset in processed.items():
        args += (group, offset)
    return Call("topic_migrate", keys.migrate_keys(tp.topic, tp.partition), args)


class Output(NamedTuple):
    """One output of a transaction, encoded: its stream, retention, create time, fields."""

    stream: str
    max_len: int | None
    retention_ms: int | None
    created_ms: int | None
    fields: list[bytes]


def transact(
    tp: TopicPartition,
    group: str,
    token: str,
    txn: str,
    *,
    commit: int | None,
    mark: bool,
    dead: Sequence[int],
    outputs: Sequence[Output],
    need: int | None = None,
) -> Call:
    """``dead``: offsets moved to the dead letters, each of which must have failed ``need``
    (max_deliveries) times; the script refuses the whole call otherwise (Transacted.refused)."""
    streams: list[str] = []
    body: list[Any] = [len(outputs)]
    for out in outputs:
        if out.stream not in streams:
            streams.append(out.stream)
        body += [
            6 + streams.index(out.stream), out.max_len or "", out.retention_ms or "",
            "" if out.created_ms is None else out.created_ms, len(out.fields), *out.fields,
        ]  # fmt: skip
    return Call(
        "transact",
        [keys.stream(tp.topic, tp.partition), keys.owners(tp.topic, tp.partition),
         keys.committed(tp.topic, tp.partition), keys.processed(tp.topic, tp.partition),
         keys.deliveries(tp.topic, tp.partition), *streams],
        [group, token, txn, "" if commit is None else commit, "mark" if mark else "", "" if need is None else need,
         len(dead), *dead, *body],
    )  # fmt: skip


class Transacted(NamedTuple):
    """transact.lua's reply: the outputs' offsets, or that this transaction was applied before,
    or the offsets it refused to dead-letter (nothing written then)."""

    offsets: list[int]
    applied_before: bool
    refused: tuple[tuple[int, int | None], ...] = ()
    """(offset, its failures so far, None when dead-lettered already) of each record not due for
    the dead letters."""

    @classmethod
    def parse(cls, reply: Any) -> Transacted:
        if int(reply[1]) == 2:
            words = _text(reply[2]).split()
            return cls([], False, tuple((int(o), None if f == "d" else int(f)) for o, f in zip(words[::2], words[1::2])))
        return cls([int(x) for x in reply[0]], int(reply[1]) == 1)


# -- Kafka-protocol groups (facade gateway) ------------------------------------------------------
# Each kafka_* script answers a list led by a Kafka error name ("none", "unknown_member_id", ...;
# "wait": not ready, call again), which the gateway turns into the error code.


def kafka_join(
    group: str,
    member: str,
    minted: str,
    *,
    require_known: bool,
    instance: str,
    protocol_type: str,
    described: dict[str, Any],
    protocols: Sequence[str],
    packed: bytes,
    digest: str,
    token: str,
    session_ms: int,
    rebalance_ms: int,
    initial_delay_ms: int,
    max_members: int,
) -> Call:
    """JoinGroup's first step (``minted``: the id a member that sent "" gets). ``described``:
    what `facade groups describe` shows of the member (topics, host, client_id); ``protocols``:
    the protocol names in the client's order; ``packed``: the protocols with their metadata
    (opaque to the script); ``digest``: a digest of them; ``token``: names this JoinGroup for
    :func:`kafka_join_cancel`."""
    return Call(
        "kafka_join",
        list(keys.kafka_group_keys(group)),
        [member, minted, "1" if require_known else "", instance, protocol_type,
         json.dumps(described, separators=(",", ":"), sort_keys=True), session_ms, rebalance_ms,
         initial_delay_ms, max_members, digest, packed, token, *protocols],
    )  # fmt: skip


def kafka_join_wait(group: str, member: str) -> Call:
    return Call("kafka_join_wait", list(keys.kafka_group_keys(group))[:4], [member])


def kafka_join_cancel(group: str, member: str, token: str) -> Call:
    """Withdraw ``member``'s JoinGroup named ``token`` if it still waits (its client went away)."""
    return Call("kafka_join_cancel", list(keys.kafka_group_keys(group))[:4], [member, token])


class KafkaJoined(NamedTuple):
    """kafka_join_wait.lua's answer once the generation is formed."""

    generation: int
    protocol_name: str
    leader: str
    protocol_type: str
    members: list[tuple[str, str]]
    """The leader's answer only: (member id, instance id or ""); their metadata is read apart
    (facade/gateway/coordinator.py member_metadata)."""

    @classmethod
    def parse(cls, reply: Any) -> KafkaJoined:
        flat = [_text(x) for x in reply[5]]
        pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return cls(int(reply[1]), _text(reply[2]), _text(reply[3]), _text(reply[4]), pairs)


def kafka_sync(
    group: str,
    member: str,
    instance: str,
    generation: int,
    protocol_type: str,
    protocol_name: str,
    described: dict[str, list[TopicPartition]] | None,
    assignments: Sequence[tuple[str, bytes]],
) -> Call:
    args: list[Any] = [member, instance, generation, protocol_type, protocol_name,
                       assignment_json(described) if described is not None else ""]  # fmt: skip
    for m, blob in assignments:
        args += [m, blob]
    return Call("kafka_sync", list(keys.kafka_group_keys(group))[:4], args)


def kafka_heartbeat(group: str, member: str, instance: str, generation: int) -> Call:
    return Call("kafka_heartbeat", list(keys.kafka_group_keys(group))[:4], [member, instance, generation])


def kafka_leave(group: str, leaving: Sequence[tuple[str, str]]) -> Call:
    """``leaving``: (member id, instance id or "") pairs."""
    return Call("kafka_leave", list(keys.kafka_group_keys(group))[:4], [x for pair in leaving for x in pair])


def kafka_commit(
    group: str, member: str, instance: str, generation: int, offsets: Sequence[tuple[TopicPartition, int, str]]
) -> Call:
    """Commit ``offsets`` ((partition, offset, metadata)); none: only check the member."""
    return Call(
        "kafka_commit",
        [*list(keys.kafka_group_keys(group))[:4], *(keys.committed(tp.topic, tp.partition) for tp, _, _ in offsets)],
        [group, member, instance, generation, *(x for _, offset, meta in offsets for x in (offset, meta))],
    )


# -- groups --------------------------------------------------------------------------------------


def group_join(
    group: str, member: str, nonce: str, metadata: dict[str, Any], session_ms: int, mode: str, protocol: str
) -> Call:
    """Join (``mode`` "" or "static") or ask for a new generation (``mode`` "rebalance")."""
    return Call(
        "group_join",
        list(keys.group_keys(group)),
        [member, nonce, json.dumps(metadata, separators=(",", ":"), sort_keys=True), session_ms, mode, protocol],
    )


def group_heartbeat(group: str, member: str, nonce: str, session_ms: int, known_generation: str) -> Call:
    return Call("group_heartbeat", list(keys.group_keys(group)), [member, nonce, session_ms, known_generation])


class Heartbeat(NamedTuple):
    """group_heartbeat.lua's reply."""

    generation: int
    assignment_generation: str
    """The generation of the current assignment, "" while the generation has none."""
    assignment: dict[str, list[TopicPartition]] | None
    """The current assignment when it changed for this member, else None."""
    members: dict[str, dict[str, Any]]
    """While there is no assignment: member -> metadata, for computing one."""
    previous: dict[str, list[TopicPartition]]
    """While there is no assignment: the last one (sticky strategies start from it)."""

    @classmethod
    def parse(cls, reply: Any) -> Heartbeat:
        gen, agen, assignment, flat, previous = reply
        members = {}
        for i in range(0, len(flat), 2):
            _, _, meta = _text(flat[i + 1]).partition(" ")
            members[_text(flat[i])] = json.loads(meta)
        return cls(
            int(gen),
            _text(agen),
            parse_assignment(assignment) if assignment else None,
            members,
            parse_assignment(previous) if previous else {},
        )


def parse_assignment(raw: Any) -> dict[str, list[TopicPartition]]:
    """member -> partitions, from an assignment's JSON."""
    return {m: [TopicPartition(t, p) for t, p in tps] for m, tps in json.loads(raw).items()}


def assignment_json(table: dict[str, list[TopicPartition]]) -> str:
    return json.dumps({m: [[tp.topic, tp.partition] for tp in tps] for m, tps in sorted(table.items())},
                      separators=(",", ":"))  # fmt: skip


def group_sync(group: str, generation: int, table: dict[str, list[TopicPartition]]) -> Call:
    return Call("group_sync", list(keys.group_keys(group))[:2], [generation, assignment_json(table)])


def group_leave(group: str, member: str, nonce: str) -> Call:
    return Call("group_leave", list(keys.group_keys(group)), [member, nonce])


def group_alive(group: str, tokens: Sequence[str]) -> Call:
    return Call("group_alive", list(keys.group_keys(group)), list(tokens))


def group_lock(group: str, lock: bool, ms: int = 30_000) -> Call:
    return Call("group_lock", list(keys.group_keys(group)), ["lock" if lock else "unlock", ms])


def group_delete(group: str) -> Call:
    return Call("group_delete", list(keys.kafka_group_keys(group)), [])


# -- the Kafka gateway ---------------------------------------------------------------------------


def log_read(tp: TopicPartition, offset: int, count: int, hint: str = "") -> Call:
    """Up to ``count`` records of ``tp`` from ``offset`` on, outside any group, with the log's
    bounds; ``hint``: the entry ID of record ``offset - 1`` if known (skips the search)."""
    return Call("log_read", [keys.stream(tp.topic, tp.partition)], [offset, count, hint])


class LogRead(NamedTuple):
    """log_read.lua's reply: the log's bounds and raw entries ([ID, [field, value, ...]])."""

    log_start: int
    high_watermark: int
    last_id: bytes
    entries: list[Any]

    @classmethod
    def parse(cls, reply: Any) -> LogRead:
        return cls(int(reply[0]), int(reply[1]), reply[2], reply[3])
