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
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from facade import Message, RecordMetadata, TopicConfig, TopicDescription
from facade.server import EmbeddedInfo

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
    "message_text",
    "metadata_json",
    "status_json",
    "status_view",
    "topic_json",
    "topics_json",
    "topics_table",
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


def _headers_fields(headers: Mapping[str, bytes]) -> dict[str, Any]:
    plain: dict[str, str] = {}
    binary: dict[str, str] = {}
    for name, value in headers.items():
        text = _text_or_none(value)
        if text is None:
            binary[name] = base64.b64encode(value).decode("ascii")
        else:
            plain[name] = text
    out: dict[str, Any] = {"headers": plain}
    if binary:
        out["headers_base64"] = binary
    return out


def message_json(msg: Message) -> str:
    """``consume --format json``: one line per message.

    ``{"topic","partition","offset","key","value","headers","timestamp_ms"}``; a key or value that
    is not UTF-8 appears as ``key_base64`` / ``value_base64`` instead, and header values that are
    not UTF-8 move from ``headers`` to ``headers_base64``.
    """
    obj: dict[str, Any] = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
    obj.update(bytes_fields("key", msg.key))
    obj.update(bytes_fields("value", msg.value))
    obj.update(_headers_fields(msg.headers))
    obj["timestamp_ms"] = msg.timestamp_ms
    return json_line(obj)


def message_text(msg: Message) -> bytes:
    """``consume --format text``: the value, as raw bytes (what kafka-console-consumer prints)."""
    return msg.value


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
    """A TopicConfig as a JSON object."""
    return {
        "name": cfg.name,
        "partitions": cfg.partitions,
        "retention_ms": cfg.retention_ms,
        "max_len": cfg.max_len,
        "created_ms": cfg.created_ms,
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
    obj["partition_count"] = obj.pop("partitions")
    obj["partitions"] = [
        {
            "partition": p.partition,
            "length": p.length,
            "first_offset": p.first_offset,
            "last_offset": p.last_offset,
            "stream_key": p.stream_key,
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
    )  # fmt: skip
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("PARTITION", justify="right")
    table.add_column("LENGTH", justify="right")
    table.add_column("FIRST OFFSET")
    table.add_column("LAST OFFSET")
    table.add_column("STREAM KEY")
    for p in desc.partitions:
        table.add_row(
            str(p.partition), str(p.length), p.first_offset or "-", p.last_offset or "-", p.stream_key
        )
    groups = Text.assemble(("Groups: ", "bold"), ", ".join(desc.groups) if desc.groups else "(none)")
    return Group(head, table, groups)


# ---------------------------------------------------------------------------------------------
# Embedded server


def status_json(info: EmbeddedInfo) -> str:
    """``server status --json``."""
    return json_line(
        {"running": info.running, "url": info.url, "pid": info.pid, "home": info.home, "binary": info.binary}
    )


def status_view(info: EmbeddedInfo) -> RenderableType:
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
