"""Partition assignment strategies (pure functions; any member may compute, all compute alike).

Input: members (id -> subscribed topics) and partition counts (topic -> n). Output: member id ->
sorted list of TopicPartition. Every partition of a subscribed topic goes to exactly one member
that subscribes to it; the result depends only on the input, never on who computes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .records import TopicPartition

__all__ = ["STRATEGIES", "assign"]


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


def _sticky(
    members: Mapping[str, Iterable[str]],
    counts: Mapping[str, int],
    previous: Mapping[str, Iterable[TopicPartition]] | None = None,
) -> dict[str, list[TopicPartition]]:
    """Kafka's (cooperative-)sticky idea: balanced, and moving as few partitions as possible.

    Members keep what they held in ``previous`` up to their fair share; only the surplus of
    over-full members and the partitions of departed members move, to the least-loaded members
    that subscribe to their topic.
    """
    subs = {m: set(members[m]) for m in sorted(members)}
    out: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    if not subs:
        return out
    universe = sorted(
        TopicPartition(t, p) for t in counts for p in range(counts[t]) if any(t in s for s in subs.values())
    )
    fair = -(-len(universe) // len(subs))  # ceil: nobody keeps more than this
    taken: set[TopicPartition] = set()
    for m, tps in sorted((previous or {}).items()):
        if m not in subs:
            continue
        for tp in sorted(tps):
            eligible = tp.topic in subs[m] and tp.topic in counts and tp.partition < counts[tp.topic]
            if eligible and tp not in taken and len(out[m]) < fair:
                out[m].append(tp)
                taken.add(tp)
    free = [tp for tp in universe if tp not in taken]
    # Hand out the rest, each to the least-loaded eligible member (ties: smallest id).
    for tp in free:
        eligible = [m for m in subs if tp.topic in subs[m]]
        target = min(eligible, key=lambda m: (len(out[m]), m))
        out[target].append(tp)
    # Even out: move from the most to the least loaded while the gap is more than one.
    while True:
        most = max(subs, key=lambda m: (len(out[m]), m))
        moved = False
        for least in sorted(subs, key=lambda m: (len(out[m]), m)):
            if len(out[most]) - len(out[least]) <= 1:
                break
            movable = [tp for tp in sorted(out[most], reverse=True) if tp.topic in subs[least]]
            if movable:
                out[most].remove(movable[0])
                out[least].append(movable[0])
                moved = True
                break
        if not moved:
            return out


STRATEGIES = ("cooperative-sticky", "range", "roundrobin")


def assign(
    strategy: str,
    members: Mapping[str, Iterable[str]],
    counts: Mapping[str, int],
    previous: Mapping[str, Iterable[TopicPartition]] | None = None,
) -> dict[str, list[TopicPartition]]:
    """Assign the partitions of ``counts`` to ``members`` with ``strategy``.

    ``previous`` (member -> partitions of the last assignment) makes "cooperative-sticky" sticky;
    the other strategies ignore it.
    """
    if strategy == "cooperative-sticky":
        result = _sticky(members, counts, previous)
    elif strategy == "roundrobin":
        result = _roundrobin(members, counts)
    else:
        result = _range(members, counts)
    return {m: sorted(tps) for m, tps in result.items()}
