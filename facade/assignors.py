"""Partition assignment strategies (pure functions; any member may compute, all compute alike).

Input: members (id -> subscribed topics) and partition counts (topic -> n). Output: member id ->
sorted list of TopicPartition. Every partition of a subscribed topic goes to exactly one member
that subscribes to it; the result depends only on the input, never on who computes it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .records import TopicPartition

__all__ = ["assign", "STRATEGIES"]


def _range(members: Mapping[str, Iterable[str]], counts: Mapping[str, int]) -> dict[str, list[TopicPartition]]:
    """Kafka's RangeAssignor: per topic, contiguous blocks; the first members get one extra."""
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    for topic in sorted(counts):
        subs = sorted(m for m, topics in members.items() if topic in topics)
        if not subs:
            continue
        n = counts[topic]
        share, extra = divmod(n, len(subs))
        start = 0
        for i, m in enumerate(subs):
            size = share + (1 if i < extra else 0)
            out[m].extend(TopicPartition(topic, p) for p in range(start, start + size))
            start += size
    return out


def _roundrobin(
    members: Mapping[str, Iterable[str]], counts: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Kafka's RoundRobinAssignor: all partitions in order, dealt to subscribing members in turn."""
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    order = sorted(members)
    subs = {m: set(members[m]) for m in order}
    i = 0
    for topic in sorted(counts):
        if not any(topic in s for s in subs.values()):
            continue
        for p in range(counts[topic]):
            while topic not in subs[order[i % len(order)]]:
                i += 1
            out[order[i % len(order)]].append(TopicPartition(topic, p))
            i += 1
    return out


STRATEGIES = {"range": _range, "roundrobin": _roundrobin}


def assign(
    strategy: str, members: Mapping[str, Iterable[str]], counts: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Assign the partitions of ``counts`` to ``members`` with ``strategy`` ("range"|"roundrobin")."""
    result = STRATEGIES[strategy](members, counts)
    return {m: sorted(tps) for m, tps in result.items()}
