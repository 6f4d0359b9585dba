"""Drawing the dashboard's message browser (``b``): a page of one partition's records, pure
functions from a Snapshot and a Page (cli/dashboard_data.py) to rich renderables."""

from __future__ import annotations

import base64
import time

from rich.console import Group, RenderableType
from rich.text import Text

from .dashboard_data import Page, Snapshot
from .dashboard_view import header, new_table

__all__ = ["BROWSER_KEYS", "browser_frame", "browser_rows", "value_text"]


def value_text(value: bytes | None, as_base64: bool) -> Text:
    """A key or value as text when it is printable UTF-8 (and ``as_base64`` is off), else as
    base64 marked ``b64:``."""
    if value is None:
        return Text("-", "dim")
    if not as_base64:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and (text.isprintable() or not text.strip("\t\n\r ")):
            return Text(text.replace("\n", "⏎"))
    return Text("b64:" + base64.b64encode(value).decode(), "magenta")


def _time(ms: int) -> str:
    if ms < 0:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


BROWSER_KEYS = "[ ] partition  n/↓ next  N/↑ previous  o offset  @ time  e end  x base64  b/esc back  q quit"


def browser_frame(
    s: Snapshot,
    page: Page | None,
    *,
    height: int | None = None,
    width: int | None = None,
    as_base64: bool = False,
    prompt: str | None = None,
    paused: bool = False,
) -> RenderableType:
    """The message browser: a page of one partition's records (offset, time, key, value as text
    or base64, headers), with where it stands in the partition and a prompt line."""
    head = header(s, paused, "browse")
    head.no_wrap, head.overflow = True, "ellipsis"
    if page is None:
        return Group(head, Text("no topic to browse", "dim"))
    where = Text.assemble(
        ("topic ", "bold"), (page.topic, "bold cyan"), ("  partition ", "bold"),
        (f"{page.partition}", "bold cyan"), f" of 0..{page.partitions - 1}",
        f"  offsets {page.log_start}..{page.log_end - 1 if page.log_end else '-'}",
        f"  showing {page.records[0].offset}..{page.records[-1].offset}" if page.records else "  (no records here)",
        ("  base64" if as_base64 else "  text", "dim"),
    )  # fmt: skip
    where.no_wrap, where.overflow = True, "ellipsis"
    table = new_table(("OFFSET", "right"), ("TIME", "left"), ("KEY", "left"), ("VALUE", "left"), ("HEADERS", "left"))
    table.columns[2].max_width = 24
    table.columns[3].ratio = 2  # what room is left goes to the value, a third of it to the headers
    table.columns[4].ratio = 1
    table.expand = width is not None
    for r in page.records:
        headers = " ".join(f"{n}={value_text(v, as_base64).plain}" for n, v in r.headers)
        table.add_row(str(r.offset), _time(r.timestamp_ms), value_text(r.key, as_base64), value_text(r.value, as_base64),
                      Text(headers or "-", "dim"))  # fmt: skip
    bottom = Text(prompt, "bold yellow") if prompt is not None else Text(BROWSER_KEYS, "dim")
    bottom.no_wrap, bottom.overflow = True, "ellipsis"
    parts: list[RenderableType] = [head, where]
    if page.error:
        parts.append(Text(page.error, "bold red", no_wrap=True, overflow="ellipsis"))
    parts += [Text(""), table]
    if height is not None:
        used = len(parts) - 1 + 1 + len(page.records)
        parts += [Text("")] * max(0, height - used - 1)
    parts.append(bottom)
    return Group(*parts)


def browser_rows(height: int) -> int:
    """Records a browser page shows on a screen ``height`` rows tall."""
    return max(1, height - 6)
