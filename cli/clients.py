"""``facade consume``: the console consumer; and how commands stop on a signal (StopRequest).
``facade produce`` is in cli/produce.py."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

import click

from facade import (
    Admin,
    CommitFailedError,
    ConfigError,
    Consumer,
    ConsumerConfig,
    FacadeError,
    Message,
    RebalanceInProgressError,
    TopicPartition,
    UnknownMemberError,
)

from . import Settings, main, render
from .checks import check_broker

# How long one poll may block: bounds how late a Ctrl-C or the idle timeout is noticed.
POLL_MS = 500


class StopRequest:
    """SIGINT/SIGTERM set a flag the poll loop checks, so a batch is never cut in half.

    A second signal interrupts at once (KeyboardInterrupt), and so does the first inside
    :meth:`blocking` (a read of stdin that may wait for ever). Outside the main thread (where
    signal handlers cannot be installed) this does nothing and Ctrl-C behaves as usual.
    ``exit_status`` is what the command exits with once it stopped: 128 + the signal number
    (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process the signal killed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._blocking = False
        self._saved: dict[int, object] = {}

    @property
    def exit_status(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested or self._blocking:
            self.requested = True
            self.signum = self.signum or signum
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """While inside, a signal raises KeyboardInterrupt at once (``requested`` is set too)."""
        self._blocking = True
        try:
            yield
        finally:
            self._blocking = False

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _silence_stdout() -> None:
    # After EPIPE (`facade consume ... | head`), point stdout at /dev/null so the interpreter's
    # final flush does not print a BrokenPipeError traceback.
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.buffer.fileno())


def _commit(consumer: Consumer) -> None:
    try:
        consumer.commit()
    except (CommitFailedError, RebalanceInProgressError, UnknownMemberError) as exc:
        # The partitions moved before the commit landed: their new owner gets those records again
        # (at-least-once). Worth saying, not worth stopping for.
        click.echo(f"facade: warning: commit failed, records will be redelivered: {exc}", err=True)


@main.command(short_help="Read messages as a member of a consumer group.")
@click.argument("topics", nargs=-1, required=True, metavar="TOPIC [TOPIC ...]")
@click.option(
    "--group", "-g", required=True, metavar="G", help="Consumer group; members share the partitions."
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Where the group has no committed offset yet, start from the oldest stored record (default: new "
    "records only). A group that committed offsets continues from them (a note says so).",
)
@click.option("--max-messages", type=click.IntRange(min=1), metavar="N", help="Exit after N messages.")
@click.option(
    "--idle-timeout-ms",
    type=click.IntRange(min=0),
    metavar="MS",
    help="Exit after MS milliseconds without a new message (default: run until Ctrl-C).",
)
@click.option(
    "--format",
    "fmt",
    default="text",
    show_default=True,
    metavar="text|json|TEMPLATE",
    help="text: each value on its own line, as kafka-console-consumer prints. "
    "json: one object per line with topic, partition, offset, key, value, headers, timestamp_ms; "
    "a key, value or header value that is not UTF-8 comes base64-encoded as key_base64, "
    "value_base64 or in headers_base64. "
    f"TEMPLATE (kcat-like, e.g. '%t %p %o %k %v'): {render.TEMPLATE_HELP}; "
    "a newline follows unless the template ends with \\n.",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(min=100, max=3_600_000),
    metavar="MS",
    help="Leave the group's partitions to others after MS without a poll (default 10000).",
)
@click.option(
    "--group-instance-id",
    metavar="ID",
    callback=lambda ctx, param, value: _instance_id(value),
    help="Static membership: restarting with the same ID within the session timeout gets the same "
    "partitions back without a rebalance (and exiting does not leave the group).",
)
@click.option(
    "--guarantee",
    type=click.Choice(["at-most-once", "at-least-once", "exactly-once"]),
    default="at-least-once",
    show_default=True,
    help="at-most-once: never printed twice, a crash may lose some; at-least-once: never lost, a crash "
    "may print some again; exactly-once: also never re-printed after a commit, whatever replays it.",
)
@click.option(
    "--max-deliveries",
    type=click.IntRange(min=1, max=1_000_000),
    metavar="N",
    help="Move a record that failed N times (its consumer crashed while holding it alone) to TOPIC.dlq.",
)
@click.pass_obj
def consume(
    settings: Settings,
    topics: tuple[str, ...],
    group: str,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout_ms: int | None,
    fmt: str,
    session_timeout_ms: int | None,
    group_instance_id: str | None,
    guarantee: str,
    max_deliveries: int | None,
) -> None:
    """Read messages from TOPIC(s) as a member of consumer group G and print them.

    Start several with the same --group to share the partitions; each message goes
    to one of them. What has been printed is committed after every batch, so the
    next member of the group continues after it. Ctrl-C (or SIGTERM) commits, leaves the
    group and exits 130 (143).
    The text format prints values only; use --format json to see keys and headers.

    \b
    Examples:
      facade consume posts --group notifications --from-beginning
      facade consume posts --group audit --format json --max-messages 10
      facade consume posts orders --group etl --idle-timeout-ms 5000
      facade consume posts --group debug --format '%p %o %k=%v\\n'
      facade consume posts --group billing --guarantee exactly-once --group-instance-id billing-1
    """
    line = message_formatter(fmt)
    # What was printed is committed after each batch (below), not on a timer.
    options: dict[str, object] = {"guarantee": guarantee, "enable_auto_commit": False}
    if session_timeout_ms is not None:
        options["session_timeout_ms"] = session_timeout_ms
        # The default heartbeat (3 s) must fit well inside a short session.
        options["heartbeat_interval_ms"] = max(10, min(3000, session_timeout_ms // 3))
    if group_instance_id is not None:
        options["group_instance_id"] = group_instance_id
    if max_deliveries is not None:
        options["max_deliveries"] = max_deliveries
    check_broker(settings.url)
    with Admin(settings.url) as admin:
        # A typo fails at once (the SDK's consumer would wait for the topic to appear).
        partitions = {topic: admin.topic(topic).partitions for topic in topics}
    out = sys.stdout.buffer
    count = 0
    with (
        StopRequest() as stop,
        Consumer(
            list(topics),
            group,
            url=settings.url,
            auto_offset_reset="earliest" if from_beginning else "latest",
            **options,
        ) as consumer,
    ):
        if from_beginning:
            _note_committed_offsets(consumer, partitions)
        last_message = time.monotonic()
        try:
            while not stop.requested:
                wait_ms = POLL_MS
                if idle_timeout_ms is not None:
                    left_ms = idle_timeout_ms - (time.monotonic() - last_message) * 1000
                    if left_ms <= 0:
                        break
                    wait_ms = max(1, min(wait_ms, int(left_ms)))
                limit = None if max_messages is None else max_messages - count
                try:
                    batch = consumer.poll(timeout_ms=wait_ms, max_records=limit)
                except (RebalanceInProgressError, UnknownMemberError):
                    continue  # the group is moving partitions; the next poll follows it
                if not batch:
                    continue
                data = b"".join(map(line, batch))
                try:
                    out.write(data)
                    out.flush()
                except BrokenPipeError:
                    _silence_stdout()
                    break
                count += len(batch)
                last_message = time.monotonic()
                _commit(consumer)
                if max_messages is not None and count >= max_messages:
                    break
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, but still say what was printed
            _processed(count)
            raise
    # After a clean stop; not after an error, which stays one line.
    _processed(count)
    if stop.requested:  # committed and left the group, but it was a signal that ended it
        raise click.exceptions.Exit(stop.exit_status)


def _note_committed_offsets(consumer: Consumer, partitions: dict[str, int]) -> None:
    """--from-beginning is Kafka's: it applies only where the group has no committed offset yet.
    Say so when the group has some, rather than silently print only new records. (Committed
    offsets are what a consumer may read under its ACL rules; best effort all the same.)"""
    tps = [TopicPartition(t, p) for t, n in sorted(partitions.items()) for p in range(n)]
    try:
        committed = consumer.committed(tps)
    except FacadeError:
        return
    counts: dict[str, int] = {}
    for tp, offset in committed.items():
        if offset is not None:
            counts[tp.topic] = counts.get(tp.topic, 0) + 1
    if not counts:
        return
    group = consumer.group
    where = ", ".join(f"{t} ({n} partition{'' if n == 1 else 's'})" for t, n in sorted(counts.items()))
    first = min(counts)
    click.echo(
        f"facade: note: group {group} has committed offsets on {where}, so it continues from them there: "
        "--from-beginning only applies where a group has none (as in Kafka). To read everything again, "
        f"stop its members and run: facade groups reset-offsets {group} --topic {first} --to-earliest --execute",
        err=True,
    )


def _instance_id(value: str | None) -> str | None:
    """A usage error (exit 2) for an id Kafka's naming rules refuse, checked as the SDK checks it."""
    if value is not None:
        try:
            ConsumerConfig(group_instance_id=value)
        except ConfigError:
            raise click.BadParameter(
                f"{value!r}: use 1 to 249 characters from A-Z a-z 0-9 . _ -", param_hint="--group-instance-id"
            ) from None
    return value


def message_formatter(fmt: str) -> Callable[[Message], bytes]:
    """The bytes ``consume`` prints for one message (line ending included) in format ``fmt``."""
    if fmt == "json":
        return lambda m: render.message_json(m).encode() + b"\n"
    if fmt == "text":
        return lambda m: render.message_text(m) + b"\n"
    if "%" not in fmt:
        raise click.BadParameter(
            f"{fmt!r} is not text, json or a template with % fields ({render.TEMPLATE_HELP})",
            param_hint="--format",
        )
    try:
        return render.message_template(fmt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None


def _processed(count: int) -> None:
    s = "" if count == 1 else "s"
    click.echo(f"Processed a total of {count} message{s}", err=True)
