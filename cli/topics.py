"""``facade topics``: create, list, describe, delete, alter, migrate."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click

from facade import Admin, GroupError, TopicConfig, TopicExistsError

from . import CliError, Settings, main, render
from .checks import warn_if_evicting

# Kafka's and facade's limit on partitions per topic (facade.keys.MAX_PARTITIONS).
MAX_PARTITIONS = 1024
# A dead-letter topic is named <topic>.dlq (facade.keys.dead_letter_topic).
DLQ_SUFFIX = ".dlq"
# Defaults and bounds of the topic's dedup settings (facade.TopicConfig, facade/_async/topics.py).
DEFAULT_DEDUP_IDS, MAX_DEDUP_IDS = 100_000, 10_000_000
DEFAULT_DEDUP_WINDOW_MS, MAX_DEDUP_WINDOW_MS = 120_000, 10 * 365 * 86_400_000


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
    "--partitions",
    "-p",
    type=click.IntRange(1, MAX_PARTITIONS),
    required=True,
    metavar="N",
    help=f"Number of partitions (1-{MAX_PARTITIONS}).",
)
@click.option(
    "--retention-ms", type=click.IntRange(min=1), metavar="MS", help="Drop records older than MS milliseconds."
)
@click.option(
    "--max-len",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep about N records per partition (approximate trim).",
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
@click.option(
    "--dedup-window-ms",
    type=click.IntRange(1, MAX_DEDUP_WINDOW_MS),
    metavar="MS",
    help="How long a record's dedup id (send(dedup_id=...)) is remembered: a repeat within MS, "
    "from any producer, is dropped (default: 120000). The topic's setting, the same for every producer.",
)
@click.option(
    "--dedup-max-ids",
    type=click.IntRange(1, MAX_DEDUP_IDS),
    metavar="N",
    help="Dedup ids remembered at most per partition, the oldest forgotten first (default: 100000).",
)
@click.option(
    "--if-not-exists",
    is_flag=True,
    help="If the topic exists, leave it as it is and succeed (a warning says where its settings "
    "differ from those asked for).",
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
    dedup_window_ms: int | None,
    dedup_max_ids: int | None,
    if_not_exists: bool,
) -> None:
    """Create topic NAME with N partitions.

    Names use 1-249 characters from A-Z a-z 0-9 . _ - (as in Kafka). Without
    --retention-ms or --max-len records are kept until the topic is deleted.
    A name ending in .dlq is the dead-letter topic of the name before it: the
    command warns, since consumers with --max-deliveries write there.

    \b
    Example:
      facade topics create posts --partitions 5
      facade topics create posts --partitions 5 --if-not-exists
      facade topics create clicks --partitions 12 --retention-ms 86400000 --max-len 1000000
      facade topics create orders -p 4 --max-len 100000 --ack-retention
    """
    if name.endswith(DLQ_SUFFIX) and len(name) > len(DLQ_SUFFIX):
        origin = name[: -len(DLQ_SUFFIX)]
        click.echo(
            f"facade: warning: {name} is the dead-letter topic of {origin}: consumers of {origin} with "
            f"--max-deliveries move the records they give up on there, creating it if "
            "needed; create it yourself only to give it settings of its own",
            err=True,
        )
    warn_if_evicting(settings.url)
    with Admin(settings.url) as admin:
        try:
            cfg = admin.create_topic(
                name,
                partitions,
                retention_ms=retention_ms,
                max_len=max_len,
                ack_retention=ack_retention,
                timestamp_type=timestamp_type,
                dedup_window_ms=dedup_window_ms or DEFAULT_DEDUP_WINDOW_MS,
                dedup_max_ids=dedup_max_ids or DEFAULT_DEDUP_IDS,
            )
        except TopicExistsError:
            if not if_not_exists:
                raise CliError(
                    f"topic {name!r} already exists (`facade topics describe {name}` shows it); add "
                    "--if-not-exists to accept an existing topic"
                ) from None
            existing = admin.topic(name)
            _say_differences(existing, partitions, retention_ms, max_len, ack_retention, dedup_window_ms, dedup_max_ids)
            s = "" if existing.partitions == 1 else "s"
            click.echo(f"Topic {name} exists already ({existing.partitions} partition{s}); nothing changed.")
            return
    s = "" if cfg.partitions == 1 else "s"
    extra = " (retention waits for every group's acknowledgement)" if cfg.ack_retention else ""
    click.echo(f"Created topic {cfg.name} with {cfg.partitions} partition{s}{extra}.")


def _say_differences(
    cfg: TopicConfig,
    partitions: int,
    retention_ms: int | None,
    max_len: int | None,
    ack_retention: bool,
    dedup_window_ms: int | None,
    dedup_max_ids: int | None,
) -> None:
    asked = {"--partitions": partitions, "--retention-ms": retention_ms, "--max-len": max_len,
             "--ack-retention": ack_retention, "--dedup-window-ms": dedup_window_ms,
             "--dedup-max-ids": dedup_max_ids}  # fmt: skip
    for option in ("--dedup-window-ms", "--dedup-max-ids"):  # compared only when given
        if asked[option] is None:
            del asked[option]
    has = {"--partitions": cfg.partitions, "--retention-ms": cfg.retention_ms, "--max-len": cfg.max_len,
           "--ack-retention": cfg.ack_retention, "--dedup-window-ms": cfg.dedup_window_ms,
           "--dedup-max-ids": cfg.dedup_max_ids}  # fmt: skip
    differ = [f"{option} {has[option]} (asked for {asked[option]})" for option in asked if asked[option] != has[option]]
    if differ:
        click.echo(f"facade: warning: topic {cfg.name} exists with other settings: {', '.join(differ)}", err=True)


@topics.command("list", short_help="List topics.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead of a table.")
@click.pass_obj
def list_(settings: Settings, as_json: bool) -> None:
    """List topics with their partition count, retention and size limit.

    --json prints [{"name", "partition_count", "retention_ms", "max_len", "created_ms",
    "ack_retention", "timestamp_type", "dedup_window_ms", "dedup_max_ids"}]: the same
    object as `topics describe --json`, which adds "partitions" (one object per
    partition) and "groups".

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

    --json prints the object of `topics list --json` plus "partitions": [{"partition",
    "length", "log_start_offset", "log_end_offset", "stream_key", "shard"}] and "groups".

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
@click.option(
    "--force", is_flag=True, help="Delete it even while consumer groups with live members read it."
)
@click.pass_obj
def delete(settings: Settings, name: str, force: bool) -> None:
    """Delete topic NAME and all its records.

    Refused while a consumer group with live members reads it (they would lose its
    partitions under them): stop them first, or add --force.

    \b
    Example:
      facade topics delete posts
      facade topics delete posts --force
    """
    with Admin(settings.url) as admin:
        admin.topic(name)
        if not force:
            active = _active_groups(admin, name)
            if active:
                raise CliError(
                    f"topic {name} is read by consumer groups with live members: {', '.join(active)}; stop "
                    "them first, or add --force to delete it under them"
                )
        admin.delete_topic(name)
    click.echo(f"Deleted topic {name}.")


def _active_groups(admin: Admin, topic: str) -> list[str]:
    """``"group (N members)"`` for each group with live members subscribed to ``topic``."""
    active = []
    for group in admin.list_groups():
        try:
            members = [m for m in admin.describe_group(group).members if topic in m.topics]
        except GroupError:
            continue  # deleted meanwhile
        if members:
            active.append(f"{group} ({len(members)} member{'' if len(members) == 1 else 's'})")
    return active


@topics.command("alter")
@click.argument("name")
@click.option(
    "--partitions",
    "-p",
    type=click.IntRange(1, MAX_PARTITIONS),
    required=True,
    metavar="N",
    help="New, larger partition count.",
)
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
