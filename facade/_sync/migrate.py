# Generated from facade/_async/migrate.py by scripts/unasync.py: edit that file, not this one.
"""Carry a topic of the older key layout (layout 1: stream-ID offsets) over to dense offsets.

This module is the asyncio source of truth; facade/_sync/migrate.py is generated from it.

Each partition is copied record by record, a bounded chunk per round trip, into a new stream
whose IDs are ``"<ms>-<offset>"`` (the old ID's time, never going back; offsets 0, 1, 2, ... in
the old order), with the same fields (key, value, headers). Then ``topic_migrate`` puts the copy
in the old stream's place in one atomic step, if the old stream did not change meanwhile, with
each group's position converted: a group's committed offset is its first record not acknowledged
(the oldest pending one, else the one after the last delivered), so at-least-once holds (records
acknowledged after an unacknowledged one come again). When every partition is carried over, the
topic's config says layout 2 and the SDK reads it again. A run that stops half way is resumed by
running it again: a marker key says which partitions are done.

Idempotent-producer state and dedup ids are dropped (their windows restart); owner tokens of
the old layout too (the groups must have no live members: they are refused before anything is
written).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import keys, offsets, scripts
from ..descriptions import MigrationReport
from ..errors import GroupError, TopicError, from_redis
from ..records import TopicPartition
from .client import Connection, topic_to_json
from .groups import live_members

__all__ = ["migrate_topic"]

# Records copied per round trip.
CHUNK = 1000
# Copies of one partition restarted when the old stream keeps changing (an old producer runs).
ATTEMPTS = 3


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _field(info: Any, name: str) -> Any:
    if isinstance(info, dict):
        return info.get(name, info.get(name.encode()))
    pairs = dict(zip(info[::2], info[1::2]))
    return pairs.get(name, pairs.get(name.encode()))


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class _Boundary:
    """Counts the copied records that lie before one old ID: that count is an offset."""

    def __init__(self, old_id: str, inclusive: bool) -> None:
        self.key = _id_key(old_id)
        self.inclusive = inclusive
        self.count = 0

    def see(self, key: tuple[int, int]) -> None:
        if key < self.key or (self.inclusive and key == self.key):
            self.count += 1


def _group_boundaries(conn: Connection, tp: TopicPartition) -> tuple[dict[str, _Boundary], dict[str, _Boundary]]:
    """For each stream group of the old stream, where its committed offset will be; for each
    processed mark, where its offset will be (counted while copying)."""
    stream = keys.stream(tp.topic, tp.partition)
    context = f"reading the groups of {tp.topic}[{tp.partition}]"
    committed: dict[str, _Boundary] = {}
    for info in conn.command(context, "XINFO", "GROUPS", stream):
        group = _text(_field(info, "name"))
        if int(_field(info, "pending") or 0):
            summary = conn.command(context, "XPENDING", stream, group)
            oldest = summary["min"] if isinstance(summary, dict) else summary[1]
            committed[group] = _Boundary(_text(oldest), inclusive=False)
        else:
            committed[group] = _Boundary(_text(_field(info, "last-delivered-id")), inclusive=True)
    processed: dict[str, _Boundary] = {}
    raw = conn.command(context, "HGETALL", keys.processed(tp.topic, tp.partition))
    for group, mark in raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2]):
        mark = _text(mark)
        if "-" in mark:  # an old layout mark: the last processed ID
            processed[_text(group)] = _Boundary(mark, inclusive=True)
    return committed, processed


def _copy(conn: Connection, tp: TopicPartition, boundaries: list[_Boundary]) -> tuple[int, str]:
    """Copy the old stream into the migration copy; the number of records and the last old ID."""
    stream, copy = keys.stream(tp.topic, tp.partition), keys.migration_copy(tp.topic, tp.partition)
    context = f"copying {tp.topic}[{tp.partition}]"
    conn.command(context, "UNLINK", copy)
    start, count, last, last_ms = "-", 0, "", 0
    while True:
        entries = conn.command(context, "XRANGE", stream, start, "+", "COUNT", CHUNK)
        if not entries:
            return count, last
        calls = []
        for entry_id, fields in entries:
            last = _text(entry_id)
            key = _id_key(last)
            for b in boundaries:
                b.see(key)
            last_ms = max(last_ms, key[0])
            flat = [x for pair in (fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2])) for x in pair]
            calls.append(("XADD", copy, offsets.entry_id(last_ms, count), *flat))
            count += 1
        for reply in conn.commands(calls, context):
            if isinstance(reply, Exception):
                raise from_redis(reply, context) from reply
        start = "(" + last


def _migrate_partition(conn: Connection, tp: TopicPartition, groups: set[str]) -> int | None:
    """Carry one partition over; the records copied, or None when an earlier run did it."""
    context = f"migrating {tp.topic}[{tp.partition}]"
    if conn.command(context, "EXISTS", keys.migration_marker(tp.topic, tp.partition)):
        return None
    stream = keys.stream(tp.topic, tp.partition)
    for _ in range(ATTEMPTS):
        committed, processed = _group_boundaries(conn, tp)
        length, last = _copy(conn, tp, [*committed.values(), *processed.values()])
        call = scripts.topic_migrate(
            tp, length, last, {g: b.count for g, b in committed.items()}, {g: b.count for g, b in processed.items()}
        )
        done = int(conn.script(*call, context=context))
        if done < 0:
            continue  # the old stream changed during the copy
        conn.command(context, "UNLINK", keys.migration_old(tp.topic, tp.partition))
        groups.update(committed)
        return length if done else None
    raise TopicError(
        f"{context}: {stream} kept changing while it was copied ({ATTEMPTS} attempts): stop the producers and "
        "consumers of the older facade, then run `facade topics migrate` again (nothing was lost: the old "
        "stream is still in place)"
    )


def migrate_topic(conn: Connection, name: str) -> MigrationReport:
    """Carry topic ``name`` over from layout 1 to the current layout (see the module docstring)."""
    cfg = conn.topic(name, any_layout=True)
    if cfg.layout >= keys.LAYOUT_VERSION:
        markers = [keys.migration_marker(name, p) for p in range(cfg.partitions)]
        conn.commands([("UNLINK", m) for m in markers], f"migrating {name}")
        return MigrationReport(name, 0, 0, (), True)
    tps = [TopicPartition(name, p) for p in range(cfg.partitions)]
    # Groups reading the topic must be stopped: their members hold owner tokens of the old layout.
    readers: set[str] = set()
    for tp in tps:
        for info in conn.command(f"reading the groups of {name}", "XINFO", "GROUPS", keys.stream(name, tp.partition)):
            readers.add(_text(_field(info, "name")))
    for group in sorted(readers):
        if live_members(conn, group):
            raise GroupError(
                f"group {group!r} has live members reading {name!r}: stop its consumers (they run an older "
                "facade), then migrate; nothing was changed"
            )
    carried, records, groups = 0, 0, set[str]()
    for tp in tps:
        copied = _migrate_partition(conn, tp, groups)
        if copied is not None:
            carried, records = carried + 1, records + copied
    new = dataclasses.replace(cfg, layout=keys.LAYOUT_VERSION)
    conn.script(*scripts.topic_register(name, topic_to_json(new), "relayout"), context=f"migrating {name}")
    conn.commands([("UNLINK", keys.migration_marker(name, tp.partition)) for tp in tps], f"migrating {name}")
    return MigrationReport(name, carried, records, tuple(sorted(groups)), False)
