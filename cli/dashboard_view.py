"""Drawing ``facade dashboard``: pure functions from a Snapshot to rich renderables.

Nothing here talks to a broker or a terminal. :func:`frame` lays one screen out for a given
height (rows are cut, with a "… N more" line, so a frame fits 80x24 and uses more rows when there
are more); :func:`alerts` decides what needs attention and is tested on its own.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .dashboard_data import GroupPartitionRow, GroupView, Snapshot, TopicView
from .render import format_ms

__all__ = [
    "Alert",
    "alerts",
    "frame",
    "human_bytes",
    "human_count",
    "pick_group",
    "pick_topic",
    "snapshot_json",
]

PENDING_OLD_MS = 30_000
"""A record delivered this long ago and still not committed needs attention."""
MEMORY_WARN = 0.80
MEMORY_CRIT = 0.90
REPLICA_LAG_WARN_S = 10
MAX_ALERT_LINES = 3
"""Alert lines a frame shows before "+N more" (with a limited height)."""
KEYS_HELP = "q quit  t/T topic  g group  p pause  r refresh"


@dataclass(frozen=True)
class Alert:
    """Something that needs attention."""

    level: str
    """"crit" (red) or "warn" (yellow)."""
    text: str


# ---------------------------------------------------------------------------------------------
# Numbers


def human_count(n: int | None) -> str:
    """12345 -> "12345", 1234567 -> "1.2M" (short enough for narrow columns)."""
    if n is None:
        return "-"
    if abs(n) < 100_000:
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)  # pragma: no cover - unreachable


def human_rate(r: float | None) -> str:
    """Messages per second: "-" when unknown, else "0", "12.5", "3.4k"."""
    if r is None:
        return "-"
    if r < 0.05:
        return "0"
    if r < 1000:
        return f"{r:.1f}"
    return human_count(int(r))


def human_bytes(n: int | None) -> str:
    """Bytes as "512B", "1.5KB", "2.0MB", "3.1GB"."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}TB"  # pragma: no cover - unreachable


def _age(ms: int | None) -> str:
    return "-" if ms is None else format_ms(ms - ms % 1000 if ms >= 1000 else ms)


# ---------------------------------------------------------------------------------------------
# What needs attention


def alerts(s: Snapshot) -> list[Alert]:
    """Everything in ``s`` that needs attention, the most serious first."""
    out: list[Alert] = []
    if s.error:
        out.append(Alert("crit", f"cannot read the broker: {s.error}"))
    srv = s.server
    if srv is not None:
        if srv.maxmemory and srv.used_memory >= MEMORY_WARN * srv.maxmemory:
            level = "crit" if srv.used_memory >= MEMORY_CRIT * srv.maxmemory else "warn"
            pct = 100 * srv.used_memory / srv.maxmemory
            out.append(Alert(level, f"memory {pct:.0f}% of maxmemory: producers fail when it is full"))
        if srv.maxmemory_policy not in ("noeviction", "?"):
            out.append(
                Alert("crit", f"maxmemory-policy is {srv.maxmemory_policy}: the server may evict records")
            )
        if srv.role == "slave":
            out.append(Alert("warn", f"connected to a replica of {srv.primary_link}: writes are refused"))
        for r in srv.replicas:
            if r.state != "online":
                out.append(Alert("warn", f"replica {r.address} is {r.state}"))
            elif r.lag_s is not None and r.lag_s >= REPLICA_LAG_WARN_S:
                out.append(Alert("warn", f"replica {r.address} last acknowledged {r.lag_s}s ago"))
    for g in s.groups:
        if not g.members and (g.lag or g.pending):
            out.append(Alert("warn", f"group {g.group} has no members and lag {human_count(g.lag)}"))
        elif g.lag_delta is not None and g.lag_delta > 0 and g.lag:
            out.append(
                Alert(
                    "warn",
                    f"lag of group {g.group} is growing (+{human_count(g.lag_delta)} to {human_count(g.lag)})",
                )
            )
        old = [
            p
            for p in g.partitions
            if p.oldest_pending_ms is not None and p.oldest_pending_ms >= PENDING_OLD_MS
        ]
        if old:
            worst = max(old, key=lambda p: p.oldest_pending_ms or 0)
            out.append(
                Alert(
                    "warn",
                    f"group {g.group}: a record on {worst.topic}:{worst.partition} uncommitted for "
                    f"{_age(worst.oldest_pending_ms)} (appended, not committed)",
                )
            )
    for t in s.topics:
        if t.is_dead_letters and t.messages:
            out.append(Alert("warn", f"{t.messages} dead letter{'s' if t.messages != 1 else ''} in {t.name}"))
    for e in s.events[-2:]:
        out.append(Alert("warn", e))
    out.sort(key=lambda a: a.level != "crit")
    return out


# ---------------------------------------------------------------------------------------------
# Selection


def pick_topic(s: Snapshot, name: str | None) -> TopicView | None:
    """The topic the partition panel shows: ``name`` if shown, else the first (dead-letter
    topics last)."""
    topics = [t for t in s.topics if not t.is_dead_letters] or list(s.topics)
    for t in topics:
        if t.name == name:
            return t
    return topics[0] if topics else None


def pick_group(s: Snapshot, topic: TopicView | None, name: str | None) -> GroupView | None:
    """The group whose progress the partition panel shows: ``name`` if it reads ``topic``, else
    the first that does."""
    if topic is None:
        return None
    readers = [g for g in s.groups if g.group in topic.groups or topic.name in g.topics]
    for g in readers:
        if g.group == name:
            return g
    return readers[0] if readers else None


# ---------------------------------------------------------------------------------------------
# The frame


def _fit(rows: list[tuple[Any, ...]], limit: int | None, keep: int = 0) -> tuple[list[tuple[Any, ...]], int]:
    """At most ``limit`` lines for ``rows``: the rows shown (a window that includes row ``keep``)
    and how many were left out (one line then says so, and counts against ``limit``)."""
    if limit is None or len(rows) <= limit:
        return rows, 0
    room = max(1, limit - 1)
    start = min(max(0, keep - room + 1), len(rows) - room)
    return rows[start : start + room], len(rows) - room


def _with_more(table: Table, rows: list[tuple[Any, ...]], hidden: int) -> RenderableType:
    for row in rows:
        table.add_row(*row)
    if not hidden:
        return table
    return Group(table, Text(f"… {hidden} more", "dim"))


def _table(*columns: tuple[str, str]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    return table


def _header(s: Snapshot, paused: bool) -> Text:
    clock = time.strftime("%H:%M:%S", time.localtime(s.taken_ms / 1000))
    return Text.assemble(
        ("facade dashboard", "bold"), "  ", s.broker, "  ", clock,
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


def _topics_table(s: Snapshot, selected: TopicView | None, limit: int | None) -> RenderableType:
    topics = [t for t in s.topics if not t.is_dead_letters]
    if not topics:
        return Text("no topics", "dim")
    lag_by_topic: dict[str, int | None] = {}
    for g in s.groups:
        for p in g.partitions:
            if p.topic in lag_by_topic and lag_by_topic[p.topic] is None:
                continue
            lag_by_topic[p.topic] = None if p.lag is None else (lag_by_topic.get(p.topic) or 0) + p.lag
    table = _table(
        ("TOPIC", "left"), ("PARTS", "right"), ("MESSAGES", "right"), ("IN/s", "right"),
        ("OUT/s", "right"), ("LAG", "right"), ("GROUPS", "left"),
    )  # fmt: skip
    rows = []
    keep = 0
    for i, t in enumerate(topics):
        if t is selected:
            keep = i
        name = Text(("> " if t is selected else "  ") + t.name, "bold cyan" if t is selected else "")
        rows.append(
            (
                name,
                str(len(t.partitions)),
                human_count(t.messages),
                human_rate(t.in_rate),
                human_rate(t.out_rate),
                human_count(lag_by_topic.get(t.name)),
                ",".join(t.groups) or Text("-", "dim"),
            )
        )
    return _with_more(table, *_fit(rows, limit, keep))


def _partitions_table(topic: TopicView | None, group: GroupView | None, limit: int | None) -> RenderableType:
    if topic is None:
        return Text("")
    title = Text.assemble(
        ("partitions of ", "bold"), (topic.name, "bold cyan"),
        ("  group ", "bold"), (group.group, "bold cyan") if group else ("(none reads it)", "dim"),
    )  # fmt: skip
    table = _table(
        ("P", "right"), ("LENGTH", "right"), ("FIRST", "left"), ("LAST", "left"), ("OWNER", "left"),
        ("LAG", "right"), ("PEND", "right"), ("OLDEST", "right"),
    )  # fmt: skip
    by_partition: dict[int, GroupPartitionRow] = {}
    if group is not None:
        by_partition = {p.partition: p for p in group.partitions if p.topic == topic.name}
    rows = []
    for p in topic.partitions:
        g = by_partition.get(p.partition)
        old = g is not None and g.oldest_pending_ms is not None and g.oldest_pending_ms >= PENDING_OLD_MS
        rows.append(
            (
                str(p.partition),
                human_count(p.length),
                "-" if p.first_offset is None else str(p.first_offset),
                "-" if p.last_offset is None else str(p.last_offset),
                (g.owner or Text("-", "yellow")) if g else "-",
                human_count(g.lag) if g else "-",
                str(g.pending) if g else "-",
                Text(_age(g.oldest_pending_ms) if g else "-", "yellow" if old else ""),
            )
        )
    return Group(title, _with_more(table, *_fit(rows, limit)))


def _short_member(member_id: str) -> str:
    # Dynamic ids are "<host>-<pid>-<random>": the random tail tells members apart.
    return member_id if len(member_id) <= 12 else "…" + member_id[-8:]


def _groups_table(s: Snapshot, limit: int | None, width: int | None) -> RenderableType:
    if not s.groups:
        return Text("no consumer groups", "dim")
    table = _table(
        ("GROUP", "left"), ("MEMBERS", "right"), ("GEN", "right"), ("TOPICS", "left"), ("LAG", "right"),
        ("TREND", "right"), ("PEND", "right"), ("OLDEST", "right"), ("ASSIGNMENT", "left"),
    )  # fmt: skip
    # The assignment gets what the other columns leave (about 60 characters); None: all of it.
    room = None if width is None else max(8, width - 62)
    rows = []
    for g in s.groups:
        growing = g.lag_delta is not None and g.lag_delta > 0 and bool(g.lag)
        trend = "-" if g.lag_delta is None else f"{g.lag_delta:+d}"
        oldest = g.oldest_pending_ms
        assignment = " ".join(
            f"{_short_member(m.member_id)}={','.join(p.rsplit(':', 1)[1] for p in m.partitions) or '-'}"
            for m in g.members
        )
        if room is not None and len(assignment) > room:
            assignment = assignment[: room - 1] + "…"
        rows.append(
            (
                g.group,
                Text(str(len(g.members)), "bold yellow" if not g.members else ""),
                str(g.generation),
                ",".join(g.topics) or "-",
                Text(human_count(g.lag), "yellow" if growing else ""),
                Text(trend, "yellow" if growing else ""),
                str(g.pending),
                Text(_age(oldest), "yellow" if oldest is not None and oldest >= PENDING_OLD_MS else ""),
                assignment or Text("-", "dim"),
            )
        )
    return _with_more(table, *_fit(rows, limit))


def _dead_letters_line(s: Snapshot) -> Text | None:
    dead = [t for t in s.topics if t.is_dead_letters]
    if not dead:
        return None
    parts: list[Any] = [("dead letters: ", "bold")]
    for i, t in enumerate(dead):
        parts += ["  " if i else "", (f"{t.name} {t.messages}", "red" if t.messages else "")]
    return Text.assemble(*parts)


def frame(
    s: Snapshot,
    *,
    topic: str | None = None,
    group: str | None = None,
    height: int | None = None,
    width: int | None = None,
    paused: bool = False,
    keys_help: bool = True,
) -> RenderableType:
    """One dashboard screen. ``topic`` / ``group`` choose the partition panel; ``height`` (rows)
    cuts tables to fit and ``width`` (columns) shortens the assignment column; None shows
    everything (``--once``)."""
    shown_topic = pick_topic(s, topic)
    shown_group = pick_group(s, shown_topic, group)
    found = alerts(s)
    alert_lines: list[Text] = []
    shown_alerts = found if height is None else found[:MAX_ALERT_LINES]
    for a in shown_alerts:
        alert_lines.append(
            Text(
                ("! " if a.level == "crit" else "* ") + a.text, "bold red" if a.level == "crit" else "yellow"
            )
        )
    if len(found) > len(shown_alerts):
        alert_lines[-1].append(f"  (+{len(found) - len(shown_alerts)} more)", "dim")
    dead = _dead_letters_line(s)

    topic_rows = part_rows = group_rows = None
    if height is not None:
        fixed = 2 + len(alert_lines) + 8 + (1 if dead else 0) + (1 if keys_help else 0)
        room = max(3, height - fixed)
        n_topics = len([t for t in s.topics if not t.is_dead_letters])
        n_parts = len(shown_topic.partitions) if shown_topic else 0
        topic_rows = min(n_topics, max(1, room // 4))
        group_rows = min(len(s.groups), max(1, room // 4))
        part_rows = max(1, min(n_parts, room - topic_rows - group_rows))
        # Rows the partitions do not need go back to the other two.
        spare = room - topic_rows - group_rows - part_rows
        extra_topics = min(spare, n_topics - topic_rows)
        topic_rows += max(0, extra_topics)
        group_rows += max(0, min(spare - max(0, extra_topics), len(s.groups) - group_rows))

    lines = [_header(s, paused), _server_line(s), *alert_lines]
    if height is not None:
        for line in lines:  # one screen row each, whatever the width: the row budget counts on it
            line.no_wrap = True
            line.overflow = "ellipsis"
    body: list[RenderableType] = [*lines, Text("")]
    body += [_topics_table(s, shown_topic, topic_rows), Text("")]
    body += [_partitions_table(shown_topic, shown_group, part_rows), Text("")]
    body.append(_groups_table(s, group_rows, width))
    if dead is not None:
        body.append(dead)
    if keys_help:
        body.append(Text(KEYS_HELP, "dim"))
    return Group(*body)


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
