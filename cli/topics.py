"""``facade topics``: create, list, describe, delete, alter, migrate."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click

from facade import Admin

from . import Settings, main, render


@main.group()
def topics() -> None:
    """Create, list, describe, delete and grow topics.

    \b
    Example:
      facade topics create posts --partitions 5 --retention-ms 604800000
      facade topics list
    """


@topics.command("create")
@click.argument("name")
@click.option(
    "--partitions", "-p", type=int, required=True, metavar="N", help="Number of partitions (1-1024)."
)
@click.option("--retention-ms", type=int, metavar="MS", help="Drop records older than MS milliseconds.")
@click.option(
    "--max-len", type=int, metavar="N", help="Keep about N records per partition (approximate trim)."
)
@click.option(
    "--ack-retention",
    is_flag=True,
    help="Retention never drops a record some consumer group has not acknowledged yet "
    "(the topic may grow past its limits while a group lags).",
)
@click.option(
    "--timestamp-type",
    type=click.Choice(["CreateTime", "LogAppendTime"]),
    default="CreateTime",
    show_default=True,
    help="What a record's timestamp is: the time the producer gave (or send() time), or the "
    "broker's append time (Kafka's message.timestamp.type).",
)
@click.pass_obj
def create(
    settings: Settings,
    name: str,
    partitions: int,
    retention_ms: int | None,
    max_len: int | None,
    ack_retention: bool,
    timestamp_type: str,
) -> None:
    """Create topic NAME with N partitions.

    Names use 1-249 characters from A-Z a-z 0-9 . _ - (as in Kafka). Without
    --retention-ms or --max-len records are kept until the topic is deleted.

    \b
    Example:
      facade topics create posts --partitions 5
      facade topics create clicks --partitions 12 --retention-ms 86400000 --max-len 1000000
      facade topics create orders -p 4 --max-len 100000 --ack-retention
    """
    with Admin(settings.url) as admin:
        cfg = admin.create_topic(
            name,
            partitions,
            retention_ms=retention_ms,
            max_len=max_len,
            ack_retention=ack_retention,
            timestamp_type=timestamp_type,
        )
    s = "" if cfg.partitions == 1 else "s"
    extra = " (retention waits for every group's acknowledgement)" if cfg.ack_retention else ""
    click.echo(f"Created topic {cfg.name} with {cfg.partitions} partition{s}{extra}.")


@topics.command("list", short_help="List topics.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead of a table.")
@click.pass_obj
def list_(settings: Settings, as_json: bool) -> None:
    """List topics with their partition count, retention and size limit.

    \b
    Example:
      facade topics list
      facade topics list --json | jq -r '.[].name'
    """
    with Admin(settings.url) as admin:
        configs = admin.list_topics()
    if as_json:
        click.echo(render.topics_json(configs))
    else:
        render.emit(render.topics_table(configs))


@topics.command("describe", short_help="Show a topic's partitions, offsets and groups.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_obj
def describe(settings: Settings, name: str, as_json: bool) -> None:
    """Show topic NAME: settings, each partition's length, first and last offset and
    stream key, and the consumer groups reading it.

    \b
    Example:
      facade topics describe posts
      facade topics describe posts --json | jq '.partitions[].length'
    """
    with Admin(settings.url) as admin:
        desc = admin.describe_topic(name)
    if as_json:
        click.echo(render.description_json(desc))
    else:
        render.emit(render.description_view(desc))


@topics.command("delete")
@click.argument("name")
@click.pass_obj
def delete(settings: Settings, name: str) -> None:
    """Delete topic NAME and all its records.

    \b
    Example:
      facade topics delete posts
    """
    with Admin(settings.url) as admin:
        admin.delete_topic(name)
    click.echo(f"Deleted topic {name}.")


@topics.command("alter")
@click.argument("name")
@click.option("--partitions", "-p", type=int, required=True, metavar="N", help="New, larger partition count.")
@click.pass_obj
def alter(settings: Settings, name: str, partitions: int) -> None:
    """Raise topic NAME's partition count to N (it can only grow).

    As in Kafka, keys map to different partitions from then on: per-key order
    holds only among records produced after the change.

    \b
    Example:
      facade topics alter posts --partitions 8
    """
    with Admin(settings.url) as admin:
        before = admin.topic(name).partitions
        with _sdk_warnings_muted():  # the SDK logs the same warning; Kafka's wording is printed instead
            cfg = admin.alter_partitions(name, partitions)
    click.echo(render.ALTER_WARNING, err=True)
    click.echo(f"Topic {cfg.name} now has {cfg.partitions} partitions (was {before}).")


@topics.command("migrate")
@click.argument("name")
@click.pass_obj
def migrate(settings: Settings, name: str) -> None:
    """Carry topic NAME, made by an older facade (stream-ID offsets), over to
    Kafka's dense offsets (0, 1, 2, ...), keeping its records in order and each
    consumer group's position.

    Stop the older facade's producers and consumers of NAME first. Safe to run
    again if it was interrupted; a topic that needs nothing is left alone.

    \b
    Example:
      facade topics migrate posts
    """
    with Admin(settings.url) as admin:
        report = admin.migrate_topic(name)
    if report.already:
        click.echo(f"Topic {name} already has dense offsets; nothing to do.")
        return
    groups = ", ".join(report.groups) or "none"
    click.echo(
        f"Migrated topic {name}: {report.records} records in {report.partitions} partitions now have dense "
        f"offsets; group positions carried over: {groups}."
    )


@contextlib.contextmanager
def _sdk_warnings_muted() -> Iterator[None]:
    log = logging.getLogger("facade")
    saved = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(saved)
