"""The demo's records, checks and renderers: pure functions, no threads, no broker.

cli/demo.py gathers a :class:`Snapshot` while the demo runs (the live view draws it) and a
:class:`Outcome` at the end (the summary draws it and decides the exit status).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "Kill",
    "MemberView",
    "Outcome",
    "Snapshot",
    "Violation",
    "build_outcome",
    "live_view",
    "order_violations",
    "summary_view",
]

# How many order violations the summary lists before "and N more".
MAX_LISTED = 8


@dataclass(frozen=True)
class Kill:
    """The member the demo killed, and where its partitions went."""

    member: str
    """Display name of the killed member."""
    at: float
    """Seconds into producing when it was killed."""
    partitions: tuple[int, ...]
    """Partitions it owned then."""
    moved_at: float | None = None
    """Seconds into producing when the others owned all of them (None: not yet)."""
    owners: Mapping[int, str] = field(default_factory=dict)
    """Partition -> the member that took it over."""

    @property
    def takeover_s(self) -> float | None:
        """How long after the kill its partitions were all owned again."""
        return None if self.moved_at is None else self.moved_at - self.at


@dataclass(frozen=True)
class MemberView:
    """One member of the demo's consumer group, as the live view shows it."""

    name: str
    """Display name ("member-1")."""
    member_id: str | None
    """The group member id, once joined."""
    partitions: tuple[int, ...]
    """Partitions it owns right now (when killed: those it owned then)."""
    consumed: int
    """Records of this run it has received."""
    killed: bool = False
    """Whether the demo killed it."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the live view draws at one instant."""

    topic: str
    group: str
    broker: str
    """Redacted URL, or "embedded (...)"."""
    phase: str
    """What is happening: "forming the group", "producing", "draining", "done"."""
    elapsed_s: float
    duration_s: float
    produced: int
    """Records acknowledged by the broker so far."""
    members: tuple[MemberView, ...]
    lengths: tuple[int, ...] = ()
    """Stored records per partition (index = partition); empty until first read."""
    kill: Kill | None = None
    """The member killed so far, if any."""


@dataclass(frozen=True)
class Violation:
    """A member received a key's sequence numbers out of order."""

    member: str
    key: str
    previous: int
    seq: int


@dataclass(frozen=True)
class Outcome:
    """The demo's result: what was produced and what each member received."""

    topic: str
    group: str
    broker: str
    elapsed_s: float
    produced: int
    consumed: Mapping[str, int]
    """Member name -> records of this run received (duplicates included)."""
    partitions: Mapping[str, tuple[int, ...]]
    """Member name -> partitions it owned at the end."""
    keys: int
    """Distinct keys produced."""
    duplicates: int
    lost: int
    """Produced and acknowledged, but received by no member."""
    violations: tuple[Violation, ...]
    older: int = 0
    """Records left over from earlier demo runs that were read and skipped."""
    errors: tuple[str, ...] = field(default=())
    """Failures of the producer or a member."""
    kill: Kill | None = None
    """The member the demo killed, and where its partitions went."""

    @property
    def total(self) -> int:
        return sum(self.consumed.values())

    @property
    def ok(self) -> bool:
        """Nothing lost, order kept per key, nothing failed, and the killed member's partitions
        moved (duplicates are allowed: at-least-once)."""
        moved = self.kill is None or self.kill.moved_at is not None
        return not self.lost and not self.violations and not self.errors and moved


def order_violations(received: Mapping[str, Sequence[tuple[str, int]]]) -> list[Violation]:
    """Each key's sequence numbers must strictly increase in what each member received.

    ``received`` maps a member name to the (key, seq) pairs it got, in arrival order.
    """
    out: list[Violation] = []
    for member, pairs in received.items():
        last: dict[str, int] = {}
        for key, seq in pairs:
            prev = last.get(key)
            if prev is not None and seq <= prev:
                out.append(Violation(member, key, prev, seq))
            last[key] = seq
    return out


def build_outcome(
    *,
    topic: str,
    group: str,
    broker: str,
    elapsed_s: float,
    produced: Iterable[tuple[str, int]],
    received: Mapping[str, Sequence[tuple[str, int]]],
    partitions: Mapping[str, tuple[int, ...]],
    older: int = 0,
    errors: Sequence[str] = (),
    kill: Kill | None = None,
) -> Outcome:
    """Compare what was acknowledged with what each member received."""
    produced_set = set(produced)
    counts: Counter[tuple[str, int]] = Counter()
    for pairs in received.values():
        counts.update(pairs)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(produced_set - counts.keys())
    return Outcome(
        topic=topic,
        group=group,
        broker=broker,
        elapsed_s=elapsed_s,
        produced=len(produced_set),
        consumed={m: len(p) for m, p in received.items()},
        partitions=dict(partitions),
        keys=len({k for k, _ in produced_set}),
        duplicates=duplicates,
        lost=lost,
        violations=tuple(order_violations(received)),
        older=older,
        errors=tuple(errors),
        kill=kill,
    )


def _parts(partitions: Iterable[int]) -> str:
    return ", ".join(map(str, partitions)) or "-"


def owned(partitions: Sequence[int]) -> str:
    """``"partition 2"``, ``"partitions 0, 3"``, ``"no partition"``: a list, never a count."""
    if not partitions:
        return "no partition"
    return f"partition{'' if len(partitions) == 1 else 's'} {_parts(partitions)}"


def _moves(kill: Kill) -> str:
    by_owner: dict[str, list[int]] = {}
    for p, member in sorted(kill.owners.items()):
        by_owner.setdefault(member, []).append(p)
    return ", ".join(f"{owned(ps)} to {member}" for member, ps in by_owner.items())


def kill_lines(kill: Kill | None) -> list[str]:
    """What happened to the killed member and its partitions, in words."""
    if kill is None:
        return []
    lines = [f"{kill.at:4.1f}s  {kill.member} killed (SIGKILL), owning {owned(kill.partitions)}"]
    if kill.moved_at is None:
        lines.append("       its partitions move once its session times out")
    else:
        lines.append(f"{kill.moved_at:4.1f}s  {_moves(kill)}, {kill.takeover_s:.1f}s after the kill")
    return lines


def live_view(s: Snapshot) -> RenderableType:
    """The live view: progress line, the group's members, the partitions."""
    head = Text.assemble(
        ("posts service -> ", "bold"), (s.topic, "cyan"), (" -> group ", "bold"), (s.group, "cyan"),
        f"   broker {s.broker}",
    )  # fmt: skip
    consumed = sum(m.consumed for m in s.members)
    progress = Text.assemble(
        (f"{s.phase:<18}", "yellow"),
        f" {min(s.elapsed_s, s.duration_s):4.1f}s / {s.duration_s:.0f}s   ",
        ("produced ", "bold"), f"{s.produced:>6}   ",
        ("consumed ", "bold"), f"{consumed:>6}",
    )  # fmt: skip

    members = Table(title="consumer group members", title_justify="left", box=None, header_style="bold")
    members.add_column("MEMBER")
    members.add_column("ID")
    members.add_column("PARTITIONS")
    members.add_column("CONSUMED", justify="right")
    owner: dict[int, str] = {}
    for m in s.members:
        if m.killed:
            members.add_row(Text(m.name, "red"), Text("killed", "red"), f"(had {_parts(m.partitions)})", str(m.consumed))
            continue
        members.add_row(m.name, m.member_id or "joining...", _parts(m.partitions), str(m.consumed))
        for p in m.partitions:
            owner[p] = m.name

    parts = Table(title=f"{s.topic} partitions", title_justify="left", box=None, header_style="bold")
    parts.add_column("PARTITION", justify="right")
    parts.add_column("LENGTH", justify="right")
    parts.add_column("OWNER")
    for p, length in enumerate(s.lengths):
        parts.add_row(str(p), str(length), owner.get(p, "-"))

    grid = Table.grid(padding=(0, 4))
    grid.add_row(members, parts)
    events = [Text(line, "yellow") for line in kill_lines(s.kill)]
    return Group(head, progress, Text(""), grid, *([Text("")] + events if events else []))


def summary_view(o: Outcome) -> RenderableType:
    """The summary table printed at the end (also when stdout is not a terminal)."""
    table = Table(
        title=f"demo summary: topic {o.topic}, group {o.group}, {o.elapsed_s:.1f}s",
        title_justify="left",
        show_header=False,
        header_style="bold",
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("produced", str(o.produced), f"{o.keys} keys (users)")
    for name in sorted(o.consumed):
        if o.kill is not None and name == o.kill.member:
            note = f"killed at {o.kill.at:.1f}s, owning {owned(o.kill.partitions)}"
        else:
            note = f"owns {owned(o.partitions.get(name, ()))} at the end"
        table.add_row(f"consumed by {name}", str(o.consumed[name]), note)
    table.add_row("consumed in total", str(o.total), "")
    if o.kill is not None:
        if o.kill.moved_at is None:
            table.add_row("failover", Text("NOT DONE", "red"), f"{o.kill.member}'s partitions were not taken over")
        else:
            table.add_row("failover", Text(f"{o.kill.takeover_s:.1f}s", "green"), f"{_moves(o.kill)} after the kill")
    if o.duplicates:
        why = "what the killed member had received but not committed, delivered again (at-least-once)"
        if o.kill is None:
            why = "redelivered after a rebalance (at-least-once)"
    else:
        why = ""
    table.add_row("duplicates", str(o.duplicates), why)
    table.add_row("lost", Text(str(o.lost), "red" if o.lost else "green"), "acknowledged posts no member received")
    if o.violations:
        order = Text(f"VIOLATED ({len(o.violations)})", "red")
    else:
        order = Text("OK", "green")
    table.add_row("per-key order", order, "each key's sequence numbers increase at the member that got them")
    if o.older:
        table.add_row("skipped", str(o.older), "records from earlier demo runs")

    lines: list[RenderableType] = [table]
    for v in o.violations[:MAX_LISTED]:
        lines.append(Text(f"  order violation: {v.member} got {v.key} #{v.seq} after #{v.previous}", "red"))
    if len(o.violations) > MAX_LISTED:
        lines.append(Text(f"  ... and {len(o.violations) - MAX_LISTED} more", "red"))
    for e in o.errors:
        lines.append(Text(f"  error: {e}", "red"))
    if o.ok:
        crash = f" {o.kill.member} was killed, its partitions moved, and nothing was lost:" if o.kill else ""
        lines.append(
            Text(f"OK:{crash} every post reached the group and each user's posts arrived in order.", "green")
        )
    else:
        problems = []
        if o.lost:
            problems.append(f"{o.lost} lost")
        if o.violations:
            problems.append(f"{len(o.violations)} order violations")
        if o.errors:
            problems.append(f"{len(o.errors)} errors")
        if o.kill is not None and o.kill.moved_at is None:
            problems.append(f"{o.kill.member}'s partitions never moved")
        lines.append(Text(f"FAILED: {', '.join(problems)}.", "red"))
    return Group(*lines)
