"""Rendering for ``facade groups``: pure functions from SDK records to JSON and rich renderables.

JSON shapes (stable; scripts rely on them):

``groups list --json``
    ``[{"group", "members", "generation", "lag"}]``; ``members`` is the count of live members,
    ``lag`` the records not yet delivered over every partition (null when the server cannot tell).
``groups describe G --json``
    ``{"group", "generation", "members": [{"id", "partitions"}], "partitions": [{"topic",
    "partition", "owner", "committed", "log_end", "lag", "pending"}]}``; a member's
    ``partitions`` are ``"topic:partition"`` strings (``["posts:0", "posts:3"]``).
``groups reset-offsets ... --json``
    ``{"group", "executed", "partitions": [{"topic", "partition", "current", "target"}]}``, and
    with --to-datetime or --by-duration ``"since_ms"``: the time the targets were found for (ms
    since the epoch, UTC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from facade import GroupDescription, OffsetReset, TopicPartition

from .render import format_ms, format_time_ms, json_line

__all__ = [
    "describe_json",
    "describe_view",
    "list_json",
    "list_table",
    "partition_label",
    "resets_json",
    "resets_view",
]


def partition_label(tp: TopicPartition) -> str:
    """``"posts:3"``: how a member's partitions appear in JSON and tables."""
    return f"{tp.topic}:{tp.partition}"


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def list_json(groups: Sequence[GroupDescription]) -> str:
    """``groups list --json``."""
    return json_line(
        [
            {"group": g.group, "members": len(g.members), "generation": g.generation, "lag": g.lag}
            for g in groups
        ]
    )


def list_table(groups: Sequence[GroupDescription]) -> RenderableType:
    """``groups list``: one row per group (or a line saying there are none)."""
    if not groups:
        return Text("no consumer groups")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("GROUP")
    table.add_column("MEMBERS", justify="right")
    table.add_column("GENERATION", justify="right")
    table.add_column("TOPICS")
    table.add_column("LAG", justify="right")
    for g in groups:
        topics = sorted({p.topic for p in g.partitions})
        members = Text(str(len(g.members)), "yellow" if not g.members else "")
        table.add_row(g.group, members, str(g.generation), ",".join(topics) or "-", _num(g.lag))
    return table


def describe_json(d: GroupDescription) -> str:
    """``groups describe G --json`` (shape in the module docstring)."""
    return json_line(
        {
            "group": d.group,
            "generation": d.generation,
            "members": [
                {"id": m.member_id, "host": m.host, "client_id": m.client_id,
                 "partitions": [partition_label(tp) for tp in m.partitions]}
                for m in d.members
            ],
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "owner": p.owner,
                    "committed": p.committed,
                    "position": p.position,
                    "log_start": p.log_start_offset,
                    "log_end": p.log_end_offset,
                    "lag": p.lag,
                }
                for p in d.partitions
            ],
        }
    )


def describe_view(d: GroupDescription, now_ms: int) -> RenderableType:
    """``groups describe G``: like ``kafka-consumer-groups --describe``: a header, the partition
    table (committed offset, log end offset, LAG, owner) and the members with their assignment.

    ``now_ms`` (epoch ms) turns session deadlines into "expires in".
    """
    head = Text.assemble(
        ("Group: ", "bold"), d.group,
        ("  Generation: ", "bold"), str(d.generation),
        ("  Members: ", "bold"), (str(len(d.members)), "" if d.members else "yellow"),
        ("  Lag: ", "bold"), _num(d.lag),
    )  # fmt: skip
    parts = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (
        ("TOPIC", "left"),
        ("PARTITION", "right"),
        ("CURRENT-OFFSET", "right"),
        ("LOG-END-OFFSET", "right"),
        ("LAG", "right"),
        ("OWNER", "left"),
    ):
        parts.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in d.partitions:
        parts.add_row(
            p.topic,
            str(p.partition),
            "-" if p.committed is None else str(p.committed),
            str(p.log_end_offset),
            _num(p.lag),
            p.owner or Text("-", "yellow"),
        )
    if not d.partitions:
        parts = Text("(the group has not read any partition yet)")  # type: ignore[assignment]
    if d.members:
        members: RenderableType = Table(box=None, pad_edge=False, header_style="bold")
        members.add_column("MEMBER")  # type: ignore[union-attr]
        members.add_column("TOPICS")  # type: ignore[union-attr]
        members.add_column("PARTITIONS")  # type: ignore[union-attr]
        members.add_column("SESSION EXPIRES IN", justify="right")  # type: ignore[union-attr]
        for m in d.members:
            members.add_row(  # type: ignore[union-attr]
                m.member_id,
                ",".join(m.topics) or "-",
                ",".join(partition_label(tp) for tp in m.partitions) or "-",
                format_ms(max(0, m.session_deadline_ms - now_ms)),
            )
    else:
        members = Text("Consumer group has no active members.", "yellow")
    return Group(head, Text(""), parts, Text(""), members)


def resets_json(group: str, resets: Sequence[OffsetReset], executed: bool, since_ms: int | None = None) -> str:
    """``groups reset-offsets ... --json`` (shape in the module docstring)."""
    obj: dict[str, object] = {
        "group": group,
        "executed": executed,
        "partitions": [
            {"topic": r.topic, "partition": r.partition, "current": r.current, "target": r.target} for r in resets
        ],
    }
    if since_ms is not None:
        obj["since_ms"] = since_ms
    return json_line(obj)


def resets_view(
    group: str,
    resets: Sequence[OffsetReset],
    executed: bool,
    since: tuple[str, int] | None = None,
    ends: Mapping[TopicPartition, int] | None = None,
) -> RenderableType:
    """``groups reset-offsets``: the plan (or what was done), one row per partition.

    NEW-OFFSET is the group's new committed offset: the offset of the next record it reads;
    with ``ends`` (log end offsets) TO-READ says how many records that leaves to read. ``since``
    (the option as given, and the time it stands for) heads a time target with the time in UTC.
    """
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TOPIC")
    table.add_column("PARTITION", justify="right")
    table.add_column("CURRENT-OFFSET", justify="right")
    table.add_column("NEW-OFFSET", justify="right")
    if ends is not None:
        table.add_column("TO-READ", justify="right")
    for r in resets:
        row = [r.topic, str(r.partition), "-" if r.current is None else str(r.current), str(r.target)]
        if ends is not None:
            end = ends.get(TopicPartition(r.topic, r.partition))
            row.append("-" if end is None else str(max(0, end - r.target)))
        table.add_row(*row)
    if executed:
        tail = Text(f"Offsets of group {group} reset.", "green")
    else:
        tail = Text("Dry run: nothing changed. Add --execute to apply.", "yellow")
    if since is None:
        return Group(table, tail)
    option, ms = since
    head = Text(
        f"{option}: the first record appended at or after {format_time_ms(ms)} (UTC); where none is, the "
        "log end (nothing to read)"
    )
    return Group(head, table, tail)
