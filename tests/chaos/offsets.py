"""The one place that knows what an offset looks like.

Today an offset is a Redis stream ID string, ``"<ms>-<seq>"``; soon it becomes a dense integer per
partition (0, 1, 2, ...). Everything in the harness orders, compares and steps offsets through
:func:`order_key` and :func:`successor`, which accept both, so the change of representation stays
local to this module.

An order key is a tuple: ``(n,)`` for an integer offset, ``(ms, seq)`` for a stream ID, and ``()``
for "before everything". Keys of one partition always have the same shape, so they compare the
way the offsets do.
"""

from __future__ import annotations

from typing import Any

Key = tuple
BEFORE_ALL: Key = ()

Offset = int | str


def order_key(offset: Any) -> Key:
    """A comparable key for ``offset``: an int, a digit string, or an ``"<ms>-<seq>"`` stream ID."""
    if isinstance(offset, bool):
        raise TypeError(f"not an offset: {offset!r}")
    if isinstance(offset, int):
        return (offset,)
    if isinstance(offset, (list, tuple)):  # a key that went through JSON
        return tuple(int(x) for x in offset)
    if isinstance(offset, bytes):
        offset = offset.decode()
    if isinstance(offset, str):
        text = offset.strip()
        if text.isdigit():
            return (int(text),)
        ms, sep, seq = text.partition("-")
        if sep and ms.isdigit() and seq.isdigit():
            return (int(ms), int(seq))
    raise ValueError(f"not an offset: {offset!r}")


def successor(key: Key) -> Key:
    """The smallest key after ``key``: Kafka's "next offset", the position a commit stores.

    For a stream ID there may be no record at ``(ms, seq + 1)``; the key is still a correct bound
    (greater than ``key``, at most the next real record), which is all the checker needs.
    """
    if not key:
        return key
    return key[:-1] + (key[-1] + 1,)


def beyond(offset: Offset) -> Offset:
    """An offset, in ``offset``'s own form, far past any record a run stores after it: a million
    records on, or an hour later for a stream ID (whose first part is the append time)."""
    key = order_key(offset)
    if len(key) == 1:
        return key[0] + 1_000_000 if isinstance(offset, int) else str(key[0] + 1_000_000)
    return f"{key[0] + 3_600_000}-0"


def show(key: Key) -> str:
    """A key printed the way the offset looked: ``"17-3"`` or ``"42"``; ``"-"`` for BEFORE_ALL."""
    if not key:
        return "-"
    return "-".join(str(x) for x in key)
