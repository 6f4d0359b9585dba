"""A partition's batch of records waiting to be sent, and the metadata of a record once stored.

Pure (no I/O): the producer fills batches with :meth:`Batch.add` and hands each one to
``scripts.produce`` (lua/produce.lua) as its ``plain`` or general form.
"""

from __future__ import annotations

import time
from typing import Any

from . import codec
from .records import CREATE_TIME, RecordMetadata, TopicConfig
from .scripts import Produced


class Batch:
    """Records for one partition waiting to be sent: produce.lua's record arguments, their create
    times as runs, and the one future they all share (each record's future points into it)."""

    __slots__ = ("args", "first_seq", "future", "n", "plain", "runs", "stamped", "topic")

    def __init__(self, topic: TopicConfig, future: Any) -> None:
        self.topic = topic
        self.args: list[Any] = []
        self.n = 0
        self.future = future
        self.first_seq = 0
        # While every record is a key and a value only, args holds just those (produce.lua's
        # "plain" form: a third of the arguments to pack, send and parse).
        self.plain = True
        # Create times as [ms, count] runs (records sent in one millisecond share one), or None
        # for a LogAppendTime topic, whose records carry no create time.
        self.stamped = topic.timestamp_type == CREATE_TIME
        self.runs: list[list[int]] = []

    def add(self, fields: list[bytes], dedup: bytes, timestamp_ms: int | None) -> int:
        """Add one record; returns its index in the batch."""
        if self.stamped:
            ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
            runs = self.runs
            if runs and runs[-1][0] == ms:
                runs[-1][1] += 1
            else:
                runs.append([ms, 1])
        if self.plain:
            if len(fields) == 4 and fields[0] is codec.KEY and not dedup:
                self.args += (fields[1], fields[3])
                index = self.n
                self.n += 1
                return index
            a = self.args  # the first other record: the batch so far into the general form
            self.args = [x for i in range(0, len(a), 2) for x in (b"", 4, codec.KEY, a[i], codec.VALUE, a[i + 1])]
            self.plain = False
        args = self.args
        args.append(dedup)
        args.append(len(fields))
        args += fields
        index = self.n
        self.n += 1
        return index

    def times(self) -> str:
        """produce.lua's create-time runs: "<ms> <count> ..." ("" for LogAppendTime)."""
        return " ".join(f"{ms} {count}" for ms, count in self.runs)

    def created(self, index: int) -> int | None:
        """The create time of the ``index``-th record (None for LogAppendTime)."""
        if not self.stamped:
            return None
        for ms, count in self.runs:
            if index < count:
                return ms
            index -= count
        return None


def record_metadata(outcome: Any, index: int) -> RecordMetadata:
    """The RecordMetadata of the ``index``-th record of a batch whose future resolved to
    ``(topic, partition, Produced or None (acks=0), Batch)``."""
    topic, partition, produced, batch = outcome
    if produced is None:
        return RecordMetadata(topic, partition, None, -1)
    created = batch.created(index) if batch is not None else None
    return RecordMetadata(topic, partition, produced.offset(index), produced.append_ms if created is None else created)


def parse_reply(reply: Any) -> Produced:
    """produce.lua's reply, read."""
    return Produced.parse(reply)
