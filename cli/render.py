"""Rendering for the CLI: pure functions from SDK records to strings and rich renderables.

Nothing here talks to a broker, and apart from ``console()``/``emit()`` (which only print) nothing
does I/O, so every output format is unit-testable without a terminal. Commands gather data, call
one of these, and print the result.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from facade import Message, RecordMetadata, TopicConfig, TopicDescription, local, redact_url

__all__ = [
    "bytes_fields",
    "console",
    "description_json",
    "description_view",
    "emit",
    "format_ms",
    "format_time_ms",
    "json_line",
    "message_json",
    "message_template",
    "message_text",
    "metadata_json",
    "status_json",
    "status_view",
    "topic_json",
    "topics_json",
    "topics_table",
    "topology_json",
    "topology_view",
]

# Kafka's kafka-topics.sh prints this when partitions are added; we print it verbatim.
ALTER_WARNING = (
    "WARNING: If partitions are increased for a topic that has a key, the partition logic or ordering "
    "of the messages will be affected"
)


def console(*, stderr: bool = False) -> Console:
    """A rich Console on stdout (or stderr) as it is *now* (tests swap sys.stdout).

    Colour is off when the stream is not a terminal (rich's default) or ``NO_COLOR`` is set to
    anything, including the empty string (https://no-color.org). Output to a pipe or file is not
    wrapped at 80 columns (``$COLUMNS`` still wins), so tables stay one row per line.
    """
    stream = sys.stderr if stderr else sys.stdout
    con = Console(
        file=stream,
        no_color=True if "NO_COLOR" in os.environ else None,
        highlight=False,
        soft_wrap=False,
    )
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = PIPE_WIDTH
    return con


PIPE_WIDTH = 200
"""Line width when printing to a pipe or file."""


def emit(renderable: RenderableType, *, stderr: bool = False) -> None:
    """Print ``renderable``; to a pipe or file without the trailing blanks tables pad lines with."""
    con = console(stderr=stderr)
    if con.is_terminal:
        con.print(renderable)
        return
    with con.capture() as captured:
        con.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    con.file.write(text + "\n")
    con.file.flush()


# ---------------------------------------------------------------------------------------------
# JSON lines


def json_line(obj: Any) -> str:
    """One compact JSON document on one line (non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _text_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def bytes_fields(name: str, data: bytes | None) -> dict[str, Any]:
    """``{name: text}`` for UTF-8 (or None) ``data``, else ``{name + "_base64": base64}``."""
    if data is None:
        return {name: None}
    text = _text_or_none(data)
    if text is not None:
        return {name: text}
    return {f"{name}_base64": base64.b64encode(data).decode("ascii")}


def _headers_fields(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    plain: list[list[str | None]] = []
    binary: list[list[str]] = []
    for name, value in headers:
        if value is None:  # Kafka's null header value (written by a Kafka client)
            plain.append([name, None])
            continue
        text = _text_or_none(value)
        if text is None:
            binary.append([name, base64.b64encode(value).decode("ascii")])
        else:
            plain.append([name, text])
    out: dict[str, Any] = {"headers": plain}
    if binary:
        out["headers_base64"] = binary
    return out


def message_json(msg: Message) -> str:
    """``consume --format json``: one line per message.

    ``{"topic","partition","offset","key","value","headers","timestamp_ms","timestamp_type"}``;
    ``headers`` is a list of ``[name, value]`` pairs (a name may repeat); a key or value that
    is not UTF-8 appears as ``key_base64`` / ``value_base64`` instead, and headers whose value is
    not UTF-8 move from ``headers`` to ``headers_base64`` (also ``[name, base64]`` pairs).
    """
    obj: dict[str, Any] = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
    obj.update(bytes_fields("key", msg.key))
    obj.update(bytes_fields("value", msg.value))
    obj.update(_headers_fields(msg.headers))
    obj["timestamp_ms"] = msg.timestamp_ms
    obj["timestamp_type"] = msg.timestamp_type
    return json_line(obj)


def message_text(msg: Message) -> bytes:
    """``consume --format text``: the value, as raw bytes (what kafka-console-consumer prints); a
    null value (a Kafka tombstone) prints as nothing."""
    return msg.value or b""


TEMPLATE_HELP = (
    "%t topic, %p partition, %o offset, %k key, %v value, %h headers (k=v,k2=v2), %T timestamp (ms), "
    "%c delivery count, %% a percent sign; \\n newline, \\t tab, \\\\ backslash"
)

_FIELDS: dict[str, Callable[[Message], bytes]] = {
    "t": lambda m: m.topic.encode(),
    "p": lambda m: str(m.partition).encode(),
    "o": lambda m: str(m.offset).encode(),
    "k": lambda m: m.key or b"",
    "v": lambda m: m.value or b"",
    "h": lambda m: b",".join(k.encode() + b"=" + (v or b"") for k, v in m.headers),
    "T": lambda m: str(m.timestamp_ms).encode(),
    "c": lambda m: str(m.delivery_count).encode(),
}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def message_template(template: str) -> Callable[[Message], bytes]:
    """``consume --format '%t %p %o %k %v'``: a kcat-like template compiled to a function.

    Each message prints the template with its fields filled in (see TEMPLATE_HELP), followed by a
    newline unless the template already ends with ``\\n``. A null key prints as nothing. Raises
    ValueError naming the first unknown ``%`` or ``\\`` sequence.
    """
    parts: list[bytes | Callable[[Message], bytes]] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        c = template[i]
        nxt = template[i + 1] if i + 1 < len(template) else ""
        if c == "%":
            if nxt == "%":
                literal.append("%")
            elif nxt in _FIELDS:
                if literal:
                    parts.append("".join(literal).encode())
                    literal = []
                parts.append(_FIELDS[nxt])
            else:
                shown = nxt if nxt.isprintable() else nxt.encode("unicode_escape").decode()
                raise ValueError(f"unknown field %{shown} at position {i + 1}; use {TEMPLATE_HELP}")
            i += 2
        elif c == "\\" and nxt in _ESCAPES:
            literal.append(_ESCAPES[nxt])
            i += 2
        else:
            literal.append(c)
            i += 1
    if not template.endswith("\\n"):
        literal.append("\n")
    if literal:
        parts.append("".join(literal).encode())
    # Adjacent constant parts were merged above, so a message costs one call per field.
    fixed = tuple(parts)

    def render_one(msg: Message) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(msg) for p in fixed)

    return render_one


def metadata_json(md: RecordMetadata, key: bytes | None) -> str:
    """``produce --json``: one line per acknowledged message ``{"topic","partition","offset","key"}``."""
    obj: dict[str, Any] = {"topic": md.topic, "partition": md.partition, "offset": md.offset}
    obj.update(bytes_fields("key", key))
    return json_line(obj)


# ---------------------------------------------------------------------------------------------
# Topics


def format_ms(ms: int | None) -> str:
    """A duration in ms as a short human string: 604800000 -> "7d", 90000 -> "1m30s"."""
    if ms is None:
        return "forever"
    if ms < 1000:
        return f"{ms}ms"
    seconds, rest_ms = divmod(ms, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    if rest_ms:
        parts.append(f"{rest_ms}ms")
    return "".join(parts)


def format_time_ms(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC time to the second ("-" for 0/unknown)."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def topic_json(cfg: TopicConfig) -> dict[str, Any]:
    """A TopicConfig as a JSON object (``topics list --json``). Its partition count is
    ``partition_count``: ``partitions``, where it appears (``topics describe --json``), is always
    the list of partition objects."""
    return {
        "name": cfg.name,
        "partition_count": cfg.partitions,
        "retention_ms": cfg.retention_ms,
        "max_len": cfg.max_len,
        "created_ms": cfg.created_ms,
        "ack_retention": cfg.ack_retention,
        "timestamp_type": cfg.timestamp_type,
        "dedup_window_ms": cfg.dedup_window_ms,
        "dedup_max_ids": cfg.dedup_max_ids,
    }


def topics_json(configs: Iterable[TopicConfig]) -> str:
    """``topics list --json``: one JSON array of topic objects."""
    return json_line([topic_json(c) for c in configs])


def topics_table(configs: Iterable[TopicConfig]) -> RenderableType:
    """``topics list``: a table of topics (or a line saying there are none)."""
    configs = list(configs)
    if not configs:
        return Text("no topics")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TOPIC")
    table.add_column("PARTITIONS", justify="right")
    table.add_column("RETENTION", justify="right")
    table.add_column("MAX LEN", justify="right")
    table.add_column("CREATED (UTC)")
    for c in configs:
        table.add_row(
            c.name,
            str(c.partitions),
            format_ms(c.retention_ms),
            "-" if c.max_len is None else str(c.max_len),
            format_time_ms(c.created_ms),
        )
    return table


def description_json(desc: TopicDescription) -> str:
    """``topics describe --json``: the topic's settings, partitions and groups as one object."""
    obj = topic_json(desc.config)
    obj["partitions"] = [
        {
            "partition": p.partition,
            "length": p.length,
            "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset,
            "stream_key": p.stream_key,
            "shard": p.shard,
        }
        for p in desc.partitions
    ]
    obj["groups"] = list(desc.groups)
    return json_line(obj)


def description_view(desc: TopicDescription) -> RenderableType:
    """``topics describe``: a header line, the partition table and the groups."""
    c = desc.config
    total = sum(p.length for p in desc.partitions)
    head = Text.assemble(
        ("Topic: ", "bold"), c.name,
        ("  Partitions: ", "bold"), str(c.partitions),
        ("  Records: ", "bold"), str(total),
        ("\nRetention: ", "bold"), format_ms(c.retention_ms),
        ("  Max len: ", "bold"), "-" if c.max_len is None else str(c.max_len),
        ("  Created: ", "bold"), format_time_ms(c.created_ms),
        ("  Ack retention: ", "bold"), "on" if c.ack_retention else "off",
        ("  Timestamps: ", "bold"), c.timestamp_type,
        ("\nDedup ids: ", "bold"), f"{format_ms(c.dedup_window_ms)} window, at most {c.dedup_max_ids} per partition",
    )  # fmt: skip
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("PARTITION", justify="right")
    table.add_column("LENGTH", justify="right")
    table.add_column("LOG-START-OFFSET", justify="right")
    table.add_column("LOG-END-OFFSET", justify="right")
    table.add_column("STREAM KEY")
    sharded = any(p.shard for p in desc.partitions)
    if sharded:
        table.add_column("SHARD")
    for p in desc.partitions:
        row = [str(p.partition), str(p.length), str(p.log_start_offset), str(p.log_end_offset), p.stream_key]
        table.add_row(*row, *([p.shard or "-"] if sharded else []))
    groups = Text.assemble(("Groups: ", "bold"), ", ".join(desc.groups) if desc.groups else "(none)")
    return Group(head, table, groups)


# ---------------------------------------------------------------------------------------------
# Embedded server


def status_json(info: local.EmbeddedInfo) -> str:
    """``server status --json``."""
    return json_line(
        {"running": info.running, "url": info.url, "pid": info.pid, "home": info.home, "binary": info.binary}
    )


def status_view(info: local.EmbeddedInfo) -> RenderableType:
    """``server status``: running or not, URL, pid, data directory, binary."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "embedded broker", Text("running", "green") if info.running else Text("not running", "yellow")
    )
    table.add_row("url", info.url)
    table.add_row("pid", str(info.pid) if info.pid else "-")
    table.add_row("data dir", info.home)
    table.add_row("binary", info.binary or "-")
    return table


# ---------------------------------------------------------------------------------------------
# Local topologies (facade.local), drawn from their as_json()


def topology_json(status: Any) -> str:
    """``server status --data-dir D --json``: the status object's ``as_json()`` as one line."""
    return json_line(status.as_json())


def _node_text(node: Any) -> Text:
    if isinstance(node, Mapping) and "port" in node:
        pid = node.get("pid")
        where = f"127.0.0.1:{node['port']}"
        extra = {k: v for k, v in node.items() if k not in ("port", "pid")}
        tail = "".join(f" {k}={v}" for k, v in extra.items() if not isinstance(v, (list, dict)))
        if pid:
            return Text.assemble(where, f"  pid {pid}{tail}")
        return Text.assemble(where, ("  stopped", "red"), tail)
    if isinstance(node, Mapping):
        return Text(", ".join(f"{k}={v}" for k, v in node.items()))
    return Text("-" if node is None else str(node))


def topology_view(status: Any) -> RenderableType:
    """``server status --data-dir D``: one row per key of ``as_json()``; nodes as host:port and
    pid (red "stopped" when not running), lists of nodes one per line."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in status.as_json().items():
        if isinstance(value, list):
            if not value:
                table.add_row(key, "-")
            for i, item in enumerate(value):
                if isinstance(item, Mapping) and isinstance(item.get("primary"), Mapping):
                    # a cluster shard: its primary with its slots, then its replicas, indented
                    slots = ",".join(f"{lo}-{hi}" for lo, hi in item.get("slots") or [])
                    line = _node_text(item["primary"])
                    if slots:
                        line.append(f"  slots {slots}")
                    table.add_row(key if i == 0 else "", line)
                    for sub in item.get("replicas") or []:
                        table.add_row("", Text.assemble("  replica ", _node_text(sub)))
                else:
                    table.add_row(key if i == 0 else "", _node_text(item))
        else:
            table.add_row(key, _node_text(value) if isinstance(value, Mapping) else redact_text(value))
    return table


def redact_text(value: Any) -> Text:
    """A scalar as text, URLs with their password hidden."""
    return Text(redact_url(value) if isinstance(value, str) else "-" if value is None else str(value))
