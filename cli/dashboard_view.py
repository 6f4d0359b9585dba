"""Drawing ``facade dashboard``: pure functions from a Snapshot to rich renderables.

Nothing here talks to a broker or a terminal. :func:`frame` lays one screen out for a given
height and width: busy parts first (the topic with traffic selected, groups with members or lag
listed before idle ones), rows shared among the sections so that a frame fits 80x24, every row
of a section reachable by moving the selection (the window follows it), and from WIDE columns on
two columns side by side so a 160x45 terminal is filled. The message browser is drawn by
cli/browser_view.py; what needs attention is decided in cli/dashboard_alerts.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .dashboard_alerts import (
    MEMORY_CRIT,
    MEMORY_WARN,
    PENDING_OLD_MS,
    age_text,
    alerts,
    human_bytes,
    human_count,
    human_rate,
)
from .dashboard_data import GroupPartitionRow, GroupView, Snapshot, TopicView
from .render import format_ms

__all__ = [
    "frame",
    "header",
    "new_table",
    "ordered_groups",
    "pick_group",
    "pick_topic",
    "share_rows",
    "snapshot_json",
    "sparkline",
]

MAX_ALERT_LINES = 3
"""Alert lines a frame shows before "+N more" (with a limited height)."""
KEYS_HELP = "q quit  t/T topic  g/G group  m members  b browse  p pause  r refresh"
WIDE = 140
"""From this many columns on, the frame is two columns side by side."""


# ---------------------------------------------------------------------------------------------
# Selection and order


def ordered_groups(s: Snapshot) -> list[GroupView]:
    """Groups as the table lists them: busy ones (members, lag or pending records) first, then
    idle ones, each by name."""
    return sorted(s.groups, key=lambda g: (not g.busy, g.group))


def _traffic(t: TopicView, lag: int) -> tuple[float, int, int]:
    return ((t.in_rate or 0.0) + (t.out_rate or 0.0), lag, t.messages)


def pick_topic(s: Snapshot, name: str | None) -> TopicView | None:
    """The topic the partition panel shows: ``name`` if shown, else the one with the most traffic
    (records in and out per second, then lag, then records stored); dead-letter topics only when
    there is nothing else."""
    topics = [t for t in s.topics if not t.is_dead_letters] or list(s.topics)
    for t in topics:
        if t.name == name:
            return t
    if not topics:
        return None
    lags = _topic_lags(s)
    return max(topics, key=lambda t: _traffic(t, lags.get(t.name) or 0))


def pick_group(s: Snapshot, topic: TopicView | None, name: str | None) -> GroupView | None:
    """The selected group: ``name`` if it exists, else the busiest group reading ``topic``
    (members, then lag), else the first group listed."""
    for g in s.groups:
        if g.group == name:
            return g
    readers = [g for g in ordered_groups(s) if topic is not None and (g.group in topic.groups or topic.name in g.topics)]
    if readers:
        return max(readers, key=lambda g: (bool(g.members), g.lag or 0))
    listed = ordered_groups(s)
    return listed[0] if listed else None


def _topic_lags(s: Snapshot) -> dict[str, int | None]:
    lags: dict[str, int | None] = {}
    for g in s.groups:
        for p in g.partitions:
            if p.topic in lags and lags[p.topic] is None:
                continue
            lags[p.topic] = None if p.lag is None else (lags.get(p.topic) or 0) + p.lag
    return lags


# ---------------------------------------------------------------------------------------------
# Pieces


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int], width: int) -> str:
    """The last ``width`` values as block characters, scaled from 0 to their maximum ("" for none;
    all-zero values are the lowest block)."""
    shown = list(values)[-width:] if width > 0 else []
    if not shown:
        return ""
    top = max(shown)
    if top <= 0:
        return SPARKS[0] * len(shown)
    return "".join(SPARKS[min(len(SPARKS) - 1, round(v / top * (len(SPARKS) - 1)))] if v > 0 else SPARKS[0]
                   for v in shown)  # fmt: skip


def share_rows(room: int, wanted: Sequence[int]) -> list[int]:
    """Split ``room`` rows among sections that want ``wanted`` rows each: every section with
    something to show gets at least one, none more than it wants, and what one does not need
    goes to the others (water filling)."""
    give = [0] * len(wanted)
    open_ = [i for i, w in enumerate(wanted) if w > 0]
    left = room
    while open_ and left > 0:
        share = max(1, left // len(open_))
        done = []
        for i in open_:
            take = min(share, wanted[i] - give[i], left)
            give[i] += take
            left -= take
            if give[i] >= wanted[i]:
                done.append(i)
            if left <= 0:
                break
        open_ = [i for i in open_ if i not in done]
        if not done and share == 1 and left <= 0:
            break
    return give


def _fit(rows: list[tuple[Any, ...]], limit: int | None, keep: int = 0) -> tuple[list[tuple[Any, ...]], int, int]:
    """At most ``limit`` lines for ``rows``: the rows shown (a window that includes row ``keep``),
    how many are above it and how many below (one line then says so; it counts against
    ``limit``)."""
    if limit is None or len(rows) <= limit:
        return rows, 0, 0
    room = max(1, limit - 1)
    start = min(max(0, keep - room + 1), len(rows) - room)
    return rows[start : start + room], start, len(rows) - room - start


def _with_more(table: Table, rows: list[tuple[Any, ...]], above: int, below: int, what: str) -> RenderableType:
    for row in rows:
        table.add_row(*row)
    if not (above or below):
        return table
    parts = []
    if above:
        parts.append(f"↑ {above} above")
    if below:
        parts.append(f"↓ {below} below")
    return Group(table, Text(f"{'  '.join(parts)}  ({what})", "dim", no_wrap=True, overflow="ellipsis"))


def new_table(*columns: tuple[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    return table


def _names(names: Sequence[str], room: int = 22) -> str:
    """A list of names that fits ``room`` characters ("a,b,c" or "12: a,b,…"), so a long list
    never squeezes the other columns out of a table."""
    text = ",".join(names)
    if len(text) <= room:
        return text
    head = f"{len(names)}: "
    return head + text[: room - len(head) - 1] + "…"


def header(s: Snapshot, paused: bool, mode: str = "") -> Text:
    clock = time.strftime("%H:%M:%S", time.localtime(s.taken_ms / 1000))
    return Text.assemble(
        ("facade dashboard", "bold"), "  ", s.broker, "  ", clock,
        (f"  {mode}", "bold cyan") if mode else "",
        ("  PAUSED", "bold yellow") if paused else "",
    )  # fmt: skip


def _server_line(s: Snapshot) -> Text:
    srv = s.server
    if srv is None:
        return Text(f"server: {s.server_error or 'unknown'}", "dim")
    if srv.maxmemory:
        ratio = srv.used_memory / srv.maxmemory
        style = "red" if ratio >= MEMORY_CRIT else "yellow" if ratio >= MEMORY_WARN else ""
        memory = Text(f"{human_bytes(srv.used_memory)}/{human_bytes(srv.maxmemory)}", style)
    else:
        memory = Text(f"{human_bytes(srv.used_memory)} (no limit)")
    parts: list[Any] = [
        (srv.version, "bold"), f"  {srv.role}", "  mem ", memory,
        ("" if srv.maxmemory_policy == "noeviction" else f" {srv.maxmemory_policy}", "red"),
        f"  up {format_ms(srv.uptime_s * 1000)}",
    ]  # fmt: skip
    if srv.primary_link:
        parts.append(f"  primary {srv.primary_link}")
    if srv.replicas:
        lags = ",".join(human_bytes(r.offset_lag) for r in srv.replicas)
        bad = any(r.state != "online" for r in srv.replicas)
        parts.append((f"  replicas {len(srv.replicas)} (behind {lags})", "yellow" if bad else ""))
    elif srv.role == "master":
        parts.append("  replicas 0")
    if srv.sentinel_primary:
        epoch = "" if srv.config_epoch is None else f" epoch {srv.config_epoch}"
        parts.append(f"  sentinels: primary {srv.sentinel_primary}{epoch}")
    return Text.assemble(*parts)


def _offset(o: int | None) -> str:
    return "-" if o is None else str(o)


# ---------------------------------------------------------------------------------------------
# Tables


def _topics_table(s: Snapshot, selected: TopicView | None, limit: int | None) -> RenderableType:
    topics = [t for t in s.topics if not t.is_dead_letters]
    if not topics:
        return Text("no topics", "dim")
    lag_by_topic = _topic_lags(s)
    table = new_table(
        ("TOPIC", "left"), ("PARTS", "right"), ("MESSAGES", "right"), ("IN/s", "right"),
        ("OUT/s", "right"), ("LAG", "right"), ("GROUPS", "left"),
    )  # fmt: skip
    rows = []
    keep = 0
    for i, t in enumerate(topics):
        if t is selected:
            keep = i
        busy = bool(t.in_rate or t.out_rate)
        name = Text(("> " if t is selected else "  ") + t.name, "bold cyan" if t is selected else "bold" if busy else "")
        rows.append(
            (
                name,
                str(len(t.partitions)),
                human_count(t.messages),
                human_rate(t.in_rate),
                human_rate(t.out_rate),
                human_count(lag_by_topic.get(t.name)),
                _names(t.groups) or Text("-", "dim"),
            )
        )
    return _with_more(table, *_fit(rows, limit, keep), "t/T: topic")


def _partitions_table(topic: TopicView | None, group: GroupView | None, limit: int | None) -> RenderableType:
    if topic is None:
        return Text("")
    reads = group is not None and (group.group in topic.groups or topic.name in group.topics)
    title = Text.assemble(
        ("partitions of ", "bold"), (topic.name, "bold cyan"),
        ("  group ", "bold"), (group.group, "bold cyan") if reads and group else ("(none selected reads it)", "dim"),
    )  # fmt: skip
    title.no_wrap, title.overflow = True, "ellipsis"
    table = new_table(
        ("P", "right"), ("LENGTH", "right"), ("FIRST", "right"), ("LAST", "right"), ("OWNER", "left"),
        ("LAG", "right"), ("PEND", "right"), ("OLDEST", "right"),
    )  # fmt: skip
    by_partition: dict[int, GroupPartitionRow] = {}
    if reads and group is not None:
        by_partition = {p.partition: p for p in group.partitions if p.topic == topic.name}
    rows = []
    # The busiest partitions first: lag, then records stored.
    order = sorted(topic.partitions, key=lambda p: (-((by_partition.get(p.partition) or _NO_ROW).lag or 0), p.partition))
    for p in order:
        g = by_partition.get(p.partition)
        old = g is not None and g.oldest_pending_ms is not None and g.oldest_pending_ms >= PENDING_OLD_MS
        rows.append(
            (
                str(p.partition),
                human_count(p.length),
                _offset(p.first_offset),
                _offset(p.last_offset),
                (_short_member(g.owner) if g.owner else Text("-", "yellow")) if g else "-",
                human_count(g.lag) if g else "-",
                str(g.pending) if g else "-",
                Text(age_text(g.oldest_pending_ms) if g else "-", "yellow" if old else ""),
            )
        )
    return Group(title, _with_more(table, *_fit(rows, limit), "busiest first"))


_NO_ROW = GroupPartitionRow("", 0, None, None, 0, 0, None)


def _short_member(member_id: str) -> str:
    # Dynamic ids are "<host>-<pid>-<random>": the random tail tells members apart.
    return member_id if len(member_id) <= 16 else "…" + member_id[-12:]


def _groups_table(s: Snapshot, selected: GroupView | None, limit: int | None, history: int) -> RenderableType:
    if not s.groups:
        return Text("no consumer groups", "dim")
    table = new_table(
        ("GROUP", "left"), ("MEM", "right"), ("GEN", "right"), ("TOPICS", "left"), ("LAG", "right"),
        ("TREND", "right"), ("LAG HISTORY", "left"), ("PEND", "right"), ("OLDEST", "right"),
    )  # fmt: skip
    rows = []
    keep = 0
    for i, g in enumerate(ordered_groups(s)):
        if g is selected:
            keep = i
        growing = g.lag_delta is not None and g.lag_delta > 0 and bool(g.lag)
        trend = "-" if g.lag_delta is None else f"{g.lag_delta:+d}"
        oldest = g.oldest_pending_ms
        style = "bold cyan" if g is selected else "" if g.busy else "dim"
        rows.append(
            (
                Text(("> " if g is selected else "  ") + g.group, style),
                Text(str(len(g.members)), "bold yellow" if not g.members and g.lag else ""),
                str(g.generation),
                _names(g.topics, 16) or "-",
                Text(human_count(g.lag), "yellow" if growing else ""),
                Text(trend, "yellow" if growing else ""),
                Text(sparkline(g.lag_history, history), "yellow" if growing else "cyan"),
                str(g.pending),
                Text(age_text(oldest), "yellow" if oldest is not None and oldest >= PENDING_OLD_MS else ""),
            )
        )
    return _with_more(table, *_fit(rows, limit, keep), "g/G: group")


def _members_table(group: GroupView | None, limit: int | None) -> RenderableType:
    if group is None:
        return Text("")
    title = Text.assemble(("members of ", "bold"), (group.group, "bold cyan"), f"  generation {group.generation}")
    title.no_wrap, title.overflow = True, "ellipsis"
    if not group.members:
        return Group(title, Text("no live members", "yellow" if group.lag else "dim"))
    table = new_table(("MEMBER", "left"), ("CLIENT ID", "left"), ("HOST", "left"), ("PARTITIONS", "left"))
    for column, least in zip(table.columns, (14, 9, 8)):
        column.min_width = least  # the partition list gives way first
    rows = [
        (
            _short_member(m.member_id),
            m.client_id or "-",
            m.host or "-",
            _partition_list(m.partitions) or Text("-", "dim"),
        )
        for m in group.members
    ]
    return Group(title, _with_more(table, *_fit(rows, limit), "members"))


def _progress_table(group: GroupView | None, limit: int | None) -> RenderableType:
    """Where the selected group stands on every partition it reads (kafka-consumer-groups
    --describe), the most lagging first."""
    if group is None or not group.partitions:
        return Text("")
    title = Text.assemble(("progress of ", "bold"), (group.group, "bold cyan"), "  lag ", human_count(group.lag))
    title.no_wrap, title.overflow = True, "ellipsis"
    table = new_table(
        ("TOPIC:P", "left"), ("COMMITTED", "right"), ("LAG", "right"), ("PEND", "right"), ("OLDEST", "right"),
        ("OWNER", "left"),
    )  # fmt: skip
    rows = [
        (
            f"{p.topic}:{p.partition}",
            _offset(p.committed),
            human_count(p.lag),
            str(p.pending),
            age_text(p.oldest_pending_ms),
            _short_member(p.owner) if p.owner else Text("-", "yellow" if p.lag else "dim"),
        )
        for p in sorted(group.partitions, key=lambda p: (-(p.lag or 0), p.topic, p.partition))
    ]
    return Group(title, _with_more(table, *_fit(rows, limit), "most lagging first"))


def _partition_list(assigned: Sequence[str]) -> str:
    """``["posts:0", "posts:1", "audit:0"]`` -> "posts:0,1 audit:0"."""
    by_topic: dict[str, list[str]] = {}
    for tp in assigned:
        topic, _, partition = tp.rpartition(":")
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{t}:{','.join(ps)}" for t, ps in by_topic.items())


def _dead_letters_line(s: Snapshot) -> Text | None:
    dead = [t for t in s.topics if t.is_dead_letters]
    if not dead:
        return None
    parts: list[Any] = [("dead letters: ", "bold")]
    for i, t in enumerate(dead):
        parts += ["  " if i else "", (f"{t.name} {t.messages}", "red" if t.messages else "")]
    return Text.assemble(*parts)


# ---------------------------------------------------------------------------------------------
# The frame


def _alert_lines(s: Snapshot, limited: bool) -> list[Text]:
    found = alerts(s)
    shown = found[:MAX_ALERT_LINES] if limited else found
    lines = [
        Text(("! " if a.level == "crit" else "* ") + a.text, "bold red" if a.level == "crit" else "yellow")
        for a in shown
    ]
    if len(found) > len(shown):
        lines[-1].append(f"  (+{len(found) - len(shown)} more)", "dim")
    return lines


def frame(
    s: Snapshot,
    *,
    topic: str | None = None,
    group: str | None = None,
    height: int | None = None,
    width: int | None = None,
    paused: bool = False,
    keys_help: bool = True,
    panel: str = "partitions",
) -> RenderableType:
    """One dashboard screen. ``topic`` / ``group``: the selection (None: the busiest);
    ``height`` (rows) and ``width`` (columns) lay it out to fit, two columns side by side from
    WIDE columns on; None shows everything, one section under the other (``--once``). ``panel``:
    what the lower panel of a narrow screen shows, "partitions" or "members" (``m``)."""
    shown_topic = pick_topic(s, topic)
    shown_group = pick_group(s, shown_topic, group)
    lines = [header(s, paused), _server_line(s), *_alert_lines(s, height is not None)]
    if height is not None:
        for line in lines:  # one screen row each, whatever the width: the row budget counts on it
            line.no_wrap = True
            line.overflow = "ellipsis"
    dead = _dead_letters_line(s)
    if dead is not None:
        dead.no_wrap, dead.overflow = True, "ellipsis"
    footer: list[RenderableType] = [dead] if dead is not None else []
    if keys_help:
        footer.append(Text(KEYS_HELP, "dim", no_wrap=True, overflow="ellipsis"))
    n_topics = len([t for t in s.topics if not t.is_dead_letters])
    n_parts = len(shown_topic.partitions) if shown_topic else 0
    n_groups = len(s.groups)
    n_members = max(1, len(shown_group.members)) if shown_group else 0
    room = None if height is None else height - len(lines) - len(footer)
    wide = width is not None and width >= WIDE and height is not None
    history = 16 if wide else 10

    if wide:
        assert room is not None
        # Left: topics, the selected topic's partitions and the selected group's progress on all it
        # reads; right: groups over the selected group's members. Per column: a blank line before
        # it, a header per table, a title and a blank line per lower panel.
        n_progress = len(shown_group.partitions) if shown_group else 0
        left_rows = share_rows(room - 5 - (3 if n_progress else 0), [n_topics, n_parts, n_progress])
        right_rows = share_rows(room - 5, [n_groups, n_members])
        left = Group(
            _topics_table(s, shown_topic, left_rows[0]), Text(""),
            _partitions_table(shown_topic, shown_group, left_rows[1]),
            *((Text(""), _progress_table(shown_group, left_rows[2])) if n_progress else ()),
        )  # fmt: skip
        right = Group(
            _groups_table(s, shown_group, right_rows[0], history), Text(""),
            _members_table(shown_group, right_rows[1]),
        )  # fmt: skip
        columns = Table.grid(expand=True, padding=(0, 2))
        columns.add_column(ratio=1)
        columns.add_column(ratio=1)
        columns.add_row(left, right)
        return Group(*lines, Text(""), columns, *_pad(room, left_rows, right_rows), *footer)

    limits: list[int | None] = [None, None, None]
    lower = n_members if panel == "members" else n_parts
    if room is not None:
        # Blank lines between sections (3), two table headers, the lower panel's title and header.
        limits = list(share_rows(room - 7, [n_topics, n_groups, lower]))
    body: list[RenderableType] = [*lines, Text("")]
    body += [_topics_table(s, shown_topic, limits[0]), Text("")]
    body += [_groups_table(s, shown_group, limits[1], history), Text("")]
    if panel == "members":
        body.append(_members_table(shown_group, limits[2]))
    else:
        body.append(_partitions_table(shown_topic, shown_group, limits[2]))
    return Group(*body, *footer)


def _pad(room: int | None, *columns: list[int]) -> list[Text]:
    """Blank lines that keep the footer at the bottom of a wide screen."""
    if room is None:
        return []
    used = max(sum(c) + (3 if len(c) > 2 and c[2] else 0) for c in columns) + 5
    return [Text("")] * max(0, room - used)


def snapshot_json(s: Snapshot) -> dict[str, Any]:
    """``dashboard --json``: the snapshot as plain data, with the derived totals and the alerts."""
    obj = dataclasses.asdict(s)
    for t, view in zip(obj["topics"], s.topics):
        t["messages"] = view.messages
        t["dead_letters"] = view.is_dead_letters
    for g, view in zip(obj["groups"], s.groups):
        g["pending"] = view.pending
        g["oldest_pending_ms"] = view.oldest_pending_ms
    obj["alerts"] = [dataclasses.asdict(a) for a in alerts(s)]
    return obj
