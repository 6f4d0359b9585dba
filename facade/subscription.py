"""What a consumer holds: its owned partitions, their positions and delivery state. Pure (no I/O).

The consumer's parts share this one object instead of fields spread over a class: membership
says what the member should own, the fetcher reads into it, the committer commits from it.

Per owned partition (:class:`PartitionState`):

- ``position``: Kafka's position, the offset of the next record handed to the application;
- ``fetched``: the offset the broker's read position is at after this member's reads (ahead of
  ``position`` by what is prefetched); ``restart``: where the next read must start instead, when
  the broker's position is not known (a read whose reply was lost) or must move back (fail());
- ``committed``: the committed offset this member last stored (or found when it claimed);
- the delivery state claim.lua returned: offset ranges handed out once more before a handover
  (each adds one to ``delivery_count``) and failures counted towards ``max_deliveries``.
"""

from __future__ import annotations

from .records import TopicPartition

__all__ = ["PartitionState", "Subscription"]


class PartitionState:
    """One partition this member owns (see the module docstring)."""

    __slots__ = (
        "alone",
        "async_commit",
        "committed",
        "failed",
        "failures",
        "fetched",
        "handed_sent",
        "last_id",
        "position",
        "redelivered",
        "restart",
        "token",
        "tp",
    )

    def __init__(
        self,
        tp: TopicPartition,
        token: str,
        position: int,
        last_id: str = "0-0",
        redelivered: tuple[tuple[int, int], ...] = (),
        failures: dict[int, int] | None = None,
    ) -> None:
        self.tp = tp
        self.token = token
        self.position = position
        self.fetched = position
        # The stream entry ID the broker's read position is at: a blocking wait for new records
        # starts there.
        self.last_id = last_id
        self.restart: int | None = None
        self.committed: int | None = None
        self.async_commit: int | None = None  # commit(asynchronous=True) waiting to ride on a read
        self.failed: list[int] = []  # fail()ed offsets not reported to the broker yet
        self.handed_sent = -1  # the handed-out mark last sent to the broker
        # max_deliveries: the broker marks this partition's last record as handed out alone
        # ("<offset>s"), so that a crash now counts as its failure
        self.alone = False
        self.redelivered = list(redelivered)
        self.failures = dict(failures or {})

    def delivery_count(self, offset: int) -> int:
        """How many times the record at ``offset`` has been handed to the application, counting
        this time."""
        count = 1
        for low, high in self.redelivered:
            if low <= offset <= high:
                count += 1
        return count

    def suspect(self, offset: int) -> bool:
        """Whether ``offset`` was handed out before and not committed (hand such records out one
        at a time with max_deliveries, to find the one that crashes the consumer)."""
        return any(low <= offset <= high for low, high in self.redelivered)

    def failure_count(self, offset: int) -> int:
        """Failures of the record at ``offset`` so far; -1 when it was dead-lettered already."""
        return self.failures.get(offset, 0)

    def give_back(self, offset: int) -> None:
        """The application failed the record at ``offset``: it and the records after it are
        handed out again, and the failure counts."""
        self.failed.append(offset)
        self.redelivered.append((offset, offset))
        if self.failures.get(offset, 0) >= 0:
            self.failures[offset] = self.failures.get(offset, 0) + 1
        self.position = offset
        self.restart = offset

    def reports(self) -> tuple[tuple[int, int], ...]:
        """The fail() reports to send: each offset with its failure count, this failure
        included (so that fetch.lua counts a report sent twice once)."""
        return tuple((o, max(1, self.failures.get(o, 1))) for o in self.failed)

    def forget_below(self, offset: int) -> None:
        """Drop delivery state below a committed offset (those records never come back)."""
        self.redelivered = [(a, b) for a, b in self.redelivered if b >= offset]
        self.failures = {o: n for o, n in self.failures.items() if o >= offset}


class Subscription:
    """The topics a consumer reads and the partitions it owns now."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self.owned: dict[TopicPartition, PartitionState] = {}
        self.paused: set[TopicPartition] = set()
        self.to_claim: set[TopicPartition] = set()

    def readable(self) -> list[TopicPartition]:
        """Owned partitions that are not paused, in order."""
        return sorted(tp for tp in self.owned if tp not in self.paused)

    def get(self, tp: TopicPartition) -> PartitionState | None:
        return self.owned.get(tp)

    def add(self, state: PartitionState) -> None:
        self.owned[state.tp] = state
        self.to_claim.discard(state.tp)

    def drop(self, tp: TopicPartition) -> PartitionState | None:
        self.paused.discard(tp)
        return self.owned.pop(tp, None)
