"""``facade produce`` and ``facade consume``: the console producer and consumer."""

from __future__ import annotations

import collections
import contextlib
import io
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import IO

import click

from facade import (
    Admin,
    CommitFailedError,
    Consumer,
    Message,
    Producer,
    RebalanceInProgressError,
    UnknownMemberError,
)

from . import CliError, Settings, main, render
from .progress import progress

# How long one poll may block: bounds how late a Ctrl-C or the idle timeout is noticed.
POLL_MS = 500


def check_broker(url: str | None) -> None:
    """Fail fast, in one line, when the broker cannot be reached at all.

    Once running, clients ride out outages (reads retry for seconds, a consumer for
    reconnect_timeout_ms): right for a server restart, not for a typo in --url.
    """
    with Admin(url) as admin:
        admin.list_topics()


# ---------------------------------------------------------------------------------------------
# produce


def parse_header(text: str) -> tuple[str, str]:
    """``"K=V"`` -> ``("K", "V")``; the first ``=`` splits, so values may contain ``=``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not K=V", param_hint="--header")
    return name, value


def split_key(line: bytes, separator: bytes, where: str) -> tuple[bytes, bytes]:
    """Kafka's ``parse.key``: the text before the first ``separator`` is the key, the rest the value.

    A line without the separator is an error, as in kafka-console-producer.
    """
    key, sep, value = line.partition(separator)
    if not sep:
        shown = line[:80].decode("utf-8", "replace")
        raise CliError(
            f"no key separator {separator.decode('utf-8', 'replace')!r} in {where}: {shown!r} "
            "(every message needs KEY<sep>VALUE with --key-separator; earlier messages were sent)"
        )
    return key, value


def stdin_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """One message per line of ``stream``, without its line ending (``\\n`` or ``\\r\\n``)."""
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line


def _settle(pending: collections.deque, out: IO[bytes] | None, block: bool) -> int:
    """Take finished sends off the front of ``pending`` (in send order), print them with --json.

    A failed send raises its error here. Returns how many were settled.
    """
    done = 0
    while pending and (block or pending[0][0].done()):
        fut, key = pending.popleft()
        md = fut.result()
        if out is not None:
            out.write(render.metadata_json(md, key).encode() + b"\n")
            out.flush()
        done += 1
    return done


@main.command(short_help="Send messages to a topic (arguments or stdin lines).")
@click.argument("topic")
@click.argument("values", nargs=-1, metavar="[VALUE ...]")
@click.option("--key", "-k", metavar="K", help="Key of every message (messages with one key stay in order).")
@click.option(
    "--key-separator",
    metavar="SEP",
    help="Each message is KEY<SEP>VALUE: the text before the first SEP is its key (Kafka's parse.key). "
    "A message without SEP is an error.",
)
@click.option("--header", "-H", "headers", multiple=True, metavar="K=V", help="Add a header; repeatable.")
@click.option(
    "--acks",
    type=click.Choice(["0", "1", "all"]),
    default="1",
    show_default=True,
    help="0: don't wait for the write; 1: the server has it; all: its replicas have it too.",
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"topic","partition","offset","key"} per message.'
)
@click.option("--create", is_flag=True, help="Create the topic (1 partition) if it does not exist.")
@click.pass_obj
def produce(
    settings: Settings,
    topic: str,
    values: tuple[str, ...],
    key: str | None,
    key_separator: str | None,
    headers: tuple[str, ...],
    acks: str,
    as_json: bool,
    create: bool,
) -> None:
    """Send messages to TOPIC: each VALUE, or else one message per line of stdin.

    Keyed messages go to the partition chosen by Kafka's murmur2 hash of the key,
    so one key's messages keep their order. A summary line goes to stderr.

    \b
    Examples:
      facade produce posts "hello" --key user-1
      printf 'user-1:hi\\nuser-2:hey\\n' | facade produce posts --key-separator :
      facade produce posts '{"id": 7}' --header source=web --json
    """
    if key is not None and key_separator is not None:
        raise click.UsageError("use either --key or --key-separator, not both")
    if key_separator == "":
        raise click.BadParameter("must not be empty", param_hint="--key-separator")
    header_map = dict(parse_header(h) for h in headers) or None
    sep = key_separator.encode() if key_separator is not None else None
    fixed_key = key.encode() if key is not None else None

    interactive = False
    file_bytes = None
    if values:
        messages: Iterable[bytes] = (v.encode() for v in values)
        where = "value"
    else:
        messages = stdin_lines(sys.stdin.buffer)
        where = "line"
        # Someone typing: send each line at once and report it before the next is typed.
        interactive = sys.stdin.isatty()
        file_bytes = _remaining_file_bytes(sys.stdin.buffer)
    out = sys.stdout.buffer if as_json else None

    check_broker(settings.url)
    sent = 0
    pending: collections.deque[tuple[Future, bytes | None]] = collections.deque()
    with contextlib.ExitStack() as stack:
        producer = stack.enter_context(Producer(settings.url, acks=acks, auto_create=create))
        # A big file on stdin gets a progress bar (by bytes read) when stderr is a terminal.
        bar = stack.enter_context(progress(f"producing to {topic}", file_bytes)) if file_bytes else None
        try:
            for number, value in enumerate(messages, 1):
                if bar is not None:
                    bar.advance(len(value) + 1)
                msg_key = fixed_key
                if sep is not None:
                    msg_key, value = split_key(value, sep, f"{where} {number}")
                pending.append((producer.send(topic, value, key=msg_key, headers=header_map), msg_key))
                sent += 1
                if interactive:
                    producer.flush()
                _settle(pending, out, block=interactive)
        finally:
            # Whatever was sent before an error is still delivered and reported.
            producer.flush()
            _settle(pending, out, block=True)
    s = "" if sent == 1 else "s"
    click.echo(f"Produced {sent} message{s} to {topic}.", err=True)


# Below this, a file on stdin goes out too fast for a progress bar to be worth drawing.
PROGRESS_MIN_BYTES = 1 << 20


def _remaining_file_bytes(stream: IO[bytes]) -> int | None:
    """Bytes left in ``stream`` when it is a regular file of at least PROGRESS_MIN_BYTES, else None."""
    try:
        fd = stream.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        left = st.st_size - os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return left if left >= PROGRESS_MIN_BYTES else None


# ---------------------------------------------------------------------------------------------
# consume


class StopRequest:
    """SIGINT/SIGTERM set a flag the poll loop checks, so a batch is never cut in half.

    A second signal interrupts at once (KeyboardInterrupt). Outside the main thread (where
    signal handlers cannot be installed) this does nothing and Ctrl-C behaves as usual.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

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
    help="Where the group has no position yet, start from the oldest stored record (default: new records only).",
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
    help="Move a record delivered more than N times (its consumer keeps crashing on it) to TOPIC.dlq.",
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
    next member of the group continues after it. Ctrl-C commits and leaves the group.
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
        for topic in topics:
            admin.topic(topic)  # a typo fails at once (the SDK's consumer would wait for it)
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
