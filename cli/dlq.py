"""``facade dlq``: the dead-letter topic ``<topic>.dlq`` of a topic: list it, replay it.

A consumer with ``max_deliveries`` (``facade consume --max-deliveries N``) moves a record that
failed N times (the consumer crashed while holding it alone) to ``<topic>.dlq`` with headers naming its origin (``dlq.topic``,
``dlq.partition``, ``dlq.offset``, ``dlq.delivery_count``, ``dlq.error``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from facade import Admin, Message, UnknownTopicError

from . import Settings, main, render
from .progress import progress

__all__ = ["dead_letters_json", "dead_letters_table"]

VALUE_WIDTH = 40
"""Characters of a value the table shows (``--json`` has it all)."""


def _header(msg: Message, name: str) -> str | None:
    raw = msg.headers.get(name)
    return None if raw is None else raw.decode("utf-8", "replace")


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def dead_letters_json(messages: Sequence[Message]) -> str:
    """``dlq list --json``: a JSON array; each element is the ``consume --format json`` object of
    the dead letter plus ``"dlq": {"topic", "partition", "offset", "delivery_count", "error"}``
    (where it came from and why), taken from its ``dlq.*`` headers."""
    out = []
    for m in messages:
        obj = json.loads(render.message_json(m))
        obj["dlq"] = {
            "topic": _header(m, "dlq.topic"),
            "partition": _int_or_none(_header(m, "dlq.partition")),
            "offset": _int_or_none(_header(m, "dlq.offset")),
            "delivery_count": _int_or_none(_header(m, "dlq.delivery_count")),
            "error": _header(m, "dlq.error"),
        }
        out.append(obj)
    return render.json_line(out)


def _short(data: bytes | None) -> str:
    if data is None:
        return "-"
    text = data.decode("utf-8", "replace")
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def dead_letters_table(topic: str, messages: Sequence[Message]) -> RenderableType:
    """``dlq list``: one row per dead letter: its origin, deliveries, error, key and value."""
    if not messages:
        return Text(f"no dead letters for {topic}")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("FROM")
    table.add_column("ORIGINAL OFFSET")
    table.add_column("DELIVERIES", justify="right")
    table.add_column("DEAD SINCE (UTC)")
    table.add_column("ERROR")
    table.add_column("KEY")
    table.add_column("VALUE")
    for m in messages:
        origin = f"{_header(m, 'dlq.topic') or topic}:{_header(m, 'dlq.partition') or '?'}"
        table.add_row(
            origin,
            _header(m, "dlq.offset") or "-",
            _header(m, "dlq.delivery_count") or "-",
            render.format_time_ms(m.timestamp_ms),
            Text(_header(m, "dlq.error") or "-", "red"),
            _short(m.key),
            _short(m.value),
        )
    return table


@main.group()
def dlq() -> None:
    """Dead letters: records a consumer gave up on (see consume --max-deliveries).

    They live in topic <TOPIC>.dlq, each with headers saying where it came from,
    how often it was delivered and the last error.

    \b
    Example:
      facade dlq list posts
      facade dlq replay posts
    """


def _dead_letter_topic_exists(admin: Admin, topic: str) -> bool:
    admin.topic(topic)  # the source must exist: UnknownTopicError otherwise
    try:
        admin.topic(f"{topic}.dlq")
    except UnknownTopicError:
        return False  # nothing was ever dead-lettered
    return True


@dlq.command("list", short_help="Show the dead letters of a topic.")
@click.argument("topic")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, metavar="N", help="Show at most N."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON array (consume's objects plus a dlq object)."
)
@click.pass_obj
def list_(settings: Settings, topic: str, limit: int, as_json: bool) -> None:
    """Show up to N dead letters of TOPIC, oldest first per partition: original
    partition and offset, delivery count, error, key and value.

    --json prints an array of the objects `consume --format json` prints, each with
    "dlq": {"topic", "partition", "offset", "delivery_count", "error"}.

    \b
    Example:
      facade dlq list posts
      facade dlq list posts --limit 10 --json | jq -r '.[].dlq.error'
    """
    with Admin(settings.url) as admin:
        dead = admin.dlq_list(topic, limit) if _dead_letter_topic_exists(admin, topic) else []
    if as_json:
        click.echo(dead_letters_json(dead))
    else:
        render.emit(dead_letters_table(topic, dead))


@dlq.command("replay", short_help="Send dead letters back to where they came from.")
@click.argument("topic")
@click.pass_obj
def replay(settings: Settings, topic: str) -> None:
    """Send every dead letter of TOPIC back to its original partition (key, value and
    headers as they were) and empty TOPIC.dlq. Safe to run again after a crash: a
    record already replayed is not stored twice.

    \b
    Example:
      facade dlq replay posts
    """
    with Admin(settings.url) as admin:
        if _dead_letter_topic_exists(admin, topic):
            with progress(f"replaying {topic}.dlq", count=False):
                moved = admin.dlq_replay(topic)
        else:
            moved = 0
    s = "" if moved == 1 else "s"
    click.echo(f"Replayed {moved} dead letter{s} to {topic}.")
