"""``facade groups``: list, describe, reset-offsets, delete (``kafka-consumer-groups``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from facade import Admin, ConfigError, TopicPartition, parse_datetime_ms, parse_duration_ms

from . import Settings, main, render
from . import groups_view as view


@main.group()
def groups() -> None:
    """Inspect consumer groups, move their offsets, delete them.

    \b
    Example:
      facade groups list
      facade groups describe notifications
      facade groups reset-offsets notifications --topic posts --by-duration PT15M --execute
    """


@groups.command("list", short_help="List consumer groups with their members and lag.")
@click.option("--json", "as_json", is_flag=True, help='Print [{"group","members","generation","lag"}].')
@click.pass_obj
def list_(settings: Settings, as_json: bool) -> None:
    """List every consumer group that ever joined, with its live member count, generation,
    the topics it reads and its total lag (records not delivered yet).

    \b
    Example:
      facade groups list
      facade groups list --json | jq -r '.[] | select(.members == 0) | .group'
    """
    with Admin(settings.url) as admin:
        described = [admin.describe_group(g) for g in admin.list_groups()]
    if as_json:
        click.echo(view.list_json(described))
    else:
        render.emit(view.list_table(described))


@groups.command("describe", short_help="Per-partition owner, offsets, lag and pending; the members.")
@click.argument("group")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see `facade groups --help`).")
@click.pass_obj
def describe(settings: Settings, group: str, as_json: bool) -> None:
    """Show GROUP like kafka-consumer-groups --describe: for every partition it reads, the
    owner, the committed offset, the log end, LAG (records not delivered yet) and PENDING
    (delivered, not committed); then its members with their assignment, and the generation.

    --json prints {"group", "generation", "members": [{"id", "partitions"}],
    "partitions": [{"topic", "partition", "owner", "committed", "log_end", "lag",
    "pending"}]}, a member's partitions as "topic:partition" strings.

    \b
    Example:
      facade groups describe notifications
      facade groups describe notifications --json | jq '.partitions[] | select(.lag > 0)'
    """
    with Admin(settings.url) as admin:
        desc = admin.describe_group(group)
    if as_json:
        click.echo(view.describe_json(desc))
    else:
        render.emit(view.describe_view(desc, int(time.time() * 1000)))


def _parsed(parse: Callable[[str], int], value: str | None, option: str) -> tuple[str, int] | None:
    """``(text, parsed ms)`` of a time option, or a usage error (exit 2) naming the option."""
    if value is None:
        return None
    try:
        return value, parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@groups.command("reset-offsets", short_help="Move a stopped group's positions on a topic.")
@click.argument("group")
@click.option("--topic", "-t", required=True, metavar="T", help="Topic whose partitions move (all of them).")
@click.option("--to-earliest", is_flag=True, help="Re-read everything still stored.")
@click.option("--to-latest", is_flag=True, help="Skip everything stored: only new records.")
@click.option(
    "--to-datetime",
    metavar="ISO8601",
    callback=lambda ctx, param, value: _parsed(parse_datetime_ms, value, "--to-datetime"),
    help="First record at or after this time, e.g. 2026-11-24T10:00:00Z (UTC when no offset is given).",
)
@click.option(
    "--by-duration",
    metavar="PnDTnHnM",
    callback=lambda ctx, param, value: _parsed(parse_duration_ms, value, "--by-duration"),
    help="First record at or after now minus this ISO 8601 duration (this machine's clock), e.g. PT15M, P1D.",
)
@click.option("--shift-by", type=int, metavar="N", help="Move N records forward (N > 0) or back (N < 0).")
@click.option(
    "--to-offset", type=click.IntRange(min=0), metavar="N", help="The next record read is the one at offset N."
)
@click.option(
    "--execute/--dry-run",
    default=False,
    help="Apply the change. Default --dry-run: print the plan, change nothing.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"group","executed","partitions":[...]}.')
@click.pass_obj
def reset_offsets(
    settings: Settings,
    group: str,
    topic: str,
    to_earliest: bool,
    to_latest: bool,
    to_datetime: tuple[str, int] | None,
    by_duration: tuple[str, int] | None,
    shift_by: int | None,
    to_offset: int | None,
    execute: bool,
    as_json: bool,
) -> None:
    """Set GROUP's committed offset on every partition of topic T. Give exactly one target.

    Prints, per partition, the current committed offset and the new one: the next
    record the group reads. Targets outside a partition's records are clamped to its
    first or last. Nothing changes without --execute. As in Kafka, this is refused while
    the group has live members (members that crashed and whose session expired do
    not count): stop its consumers first. All partitions change, or none.

    \b
    Example:
      facade groups reset-offsets notifications --topic posts --to-earliest
      facade groups reset-offsets notifications --topic posts --by-duration PT15M --execute
      facade groups reset-offsets notifications -t posts --to-datetime 2026-11-24T10:00:00Z --execute
      facade groups reset-offsets notifications -t posts --shift-by -100 --execute
    """
    chosen = [
        name
        for name, value in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-datetime", to_datetime),
            ("--by-duration", by_duration),
            ("--shift-by", shift_by),
            ("--to-offset", to_offset),
        )
        if value not in (None, False)
    ]
    if len(chosen) != 1:
        which = "none was given" if not chosen else f"got {', '.join(chosen)}"
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --by-duration, --shift-by, "
            f"--to-offset ({which})"
        )
    datetime_ms = None
    target = None
    if to_datetime is not None:
        datetime_ms = to_datetime[1]
        target = f"--to-datetime {to_datetime[0]}"
    elif by_duration is not None:
        datetime_ms = int(time.time() * 1000) - by_duration[1]
        target = f"--by-duration {by_duration[0]}"
    with Admin(settings.url) as admin:
        resets = admin.reset_offsets(
            group,
            topic,
            to_earliest=to_earliest,
            to_latest=to_latest,
            to_datetime_ms=datetime_ms,
            shift_by=shift_by,
            to_offset=to_offset,
            execute=execute,
        )
        ends = admin.list_offsets([TopicPartition(r.topic, r.partition) for r in resets], "latest")
    if as_json:
        click.echo(view.resets_json(group, resets, execute, datetime_ms))
    else:
        since = None if datetime_ms is None else (target or "", datetime_ms)
        render.emit(view.resets_view(group, resets, execute, since, ends))


@groups.command("delete", short_help="Delete a consumer group with no live members.")
@click.argument("group")
@click.pass_obj
def delete(settings: Settings, group: str) -> None:
    """Delete GROUP: its coordination state and its position on every partition.
    Refused while the group has live members. A group that joins again later
    starts from where its consumers' auto_offset_reset says.

    \b
    Example:
      facade groups delete notifications
    """
    with Admin(settings.url) as admin:
        admin.delete_group(group)
    click.echo(f"Deleted group {group}.")
