"""``facade relay``: copy one topic into another through a consumer group (facade.relay)."""

from __future__ import annotations

import click

import facade
from facade import Admin, ConfigError, FacadeError, UnknownTopicError

from . import CliError, Settings, main
from .progress import progress


def _key_from(value: str | None) -> str | None:
    if value is None or value in ("key", "value") or (value.startswith("header:") and len(value) > 7):
        return value
    raise click.BadParameter(f"{value!r} is not key, value or header:NAME", param_hint="--key-from")


@main.command(short_help="Copy a topic into another, with no loss and no duplicate.")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option(
    "--group",
    "-g",
    required=True,
    metavar="G",
    help="Consumer group that reads SRC (its position is the relay's).",
)
@click.option(
    "--exactly-once/--at-least-once",
    default=True,
    show_default=True,
    help="exactly-once: outputs and input commits land together, so a crash or restart neither loses "
    "nor doubles anything. at-least-once: a crash between the two may copy some records twice.",
)
@click.option(
    "--idle-timeout-ms",
    type=click.IntRange(min=0),
    metavar="MS",
    help="Exit after MS milliseconds without a new record (default: run until Ctrl-C).",
)
@click.option(
    "--key-from",
    callback=lambda ctx, param, value: _key_from(value),
    metavar="key|value|header:NAME",
    help="Key of the copies (so the partition in DST): the record's key (default), its value, "
    "or the value of header NAME (keyless when missing).",
)
@click.option("--max-messages", type=click.IntRange(min=1), metavar="N", help="Exit after copying N records.")
@click.option(
    "--create",
    is_flag=True,
    help="Create DST if it does not exist, with as many partitions as SRC (as produce --create does).",
)
@click.pass_obj
def relay(
    settings: Settings,
    source: str,
    destination: str,
    group: str,
    exactly_once: bool,
    idle_timeout_ms: int | None,
    key_from: str | None,
    max_messages: int | None,
    create: bool,
) -> None:
    """Copy every record of topic SRC into topic DST, as a member of consumer group G.

    Keys, values and headers are kept; the key chooses the partition in DST (Kafka's
    murmur2), so per-key order carries over. Start it again with the same --group and it
    continues where it stopped; several with one group share SRC's partitions. A count
    of copied records goes to stderr at the end.

    A record of SRC is committed only once its copy is stored. If a copy cannot be stored
    (DST out of memory past the delivery timeout, say), the command stops with the error and
    those records stay uncommitted: run it again to copy them. A record whose copy would be
    larger than 16 MiB (--key-from value on a huge value) goes to SRC.dlq with the error,
    and the relay goes on.

    \b
    Example:
      facade relay posts posts-archive --group archiver --idle-timeout-ms 5000 --create
      facade relay clicks clicks-by-user --group rekey --key-from header:user-id
    """
    with Admin(settings.url) as admin:
        try:
            src = admin.topic(source)
        except UnknownTopicError:
            raise CliError(
                f"topic {source!r} does not exist (the source SRC; `facade topics list` shows the topics)"
            ) from None
        try:
            admin.topic(destination)
        except UnknownTopicError:
            if not create:
                raise
            cfg = admin.create_topic(destination, src.partitions, exist_ok=True)
            s = "" if cfg.partitions == 1 else "s"
            click.echo(f"Created topic {destination} with {cfg.partitions} partition{s} (as {source}).", err=True)
    done = [0]

    def on_batch(copied: int) -> None:
        done[0] = copied
        bar.set(copied)

    with progress(f"relaying {source} -> {destination}") as bar:
        try:
            stats = facade.relay(
                source,
                destination,
                group,
                settings.url,
                exactly_once=exactly_once,
                key_from=key_from,
                idle_timeout_ms=idle_timeout_ms,
                max_messages=max_messages,
                on_batch=on_batch,
            )
        except FacadeError as exc:
            if isinstance(exc, ConfigError):
                raise  # refused before anything was read
            s = "" if done[0] == 1 else "s"
            click.echo(
                f"Relayed {done[0]} record{s} from {source} to {destination} before the error below; "
                "the records of the failed batch are not committed: run the same command again to copy them.",
                err=True,
            )
            raise
    s = "" if stats.copied == 1 else "s"
    dead = f"; {stats.dead_lettered} could not be copied and went to {stats.dead_letter_topic}" if stats.dead_lettered else ""
    click.echo(
        f"Relayed {stats.copied} record{s} from {source} to {destination} in {stats.elapsed_s:.1f}s{dead}.",
        err=True,
    )
