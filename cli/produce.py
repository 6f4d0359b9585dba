"""``facade produce``: the console producer.

Messages come from the arguments or from stdin, one per line, read with a bounded read: a line
longer than ``--max-message-bytes`` is skipped as it streams by (never held in memory whole),
reported with its line number, and the lines after it are still sent. The summary says exactly
what the broker acknowledged; the exit status is 0 only when every message was stored, 1 when
some were not (each said), 130 on Ctrl-C (with what was acknowledged by then).
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import click

from facade import FacadeError, MessageTooLargeError, Producer, ProducerConfig

from . import CliError, Settings, hints, main, render
from .checks import check_broker, warn_if_evicting
from .clients import StopRequest
from .progress import progress

__all__ = ["parse_header", "split_key", "stdin_lines"]

# Skipped messages listed one by one before "... and N more".
MAX_LISTED = 10
# Below this, a file on stdin goes out too fast for a progress bar to be worth drawing.
PROGRESS_MIN_BYTES = 1 << 20
# How much of an over-long line is read at a time while skipping it.
SKIP_CHUNK = 1 << 16
DEFAULT_MAX_MESSAGE_BYTES = ProducerConfig().max_message_bytes
MAX_MESSAGE_BYTES_LIMIT = 512 * 1024 * 1024


def parse_header(text: str) -> tuple[str, str]:
    """``"K=V"`` -> ``("K", "V")``; the first ``=`` splits, so values may contain ``=``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r} is not K=V", param_hint="--header")
    return name, value


def split_key(line: bytes, separator: bytes) -> tuple[bytes, bytes] | None:
    """Kafka's ``parse.key``: the text before the first ``separator`` is the key, the rest the
    value; None when the line has no separator."""
    key, sep, value = line.partition(separator)
    return (key, value) if sep else None


@dataclass(frozen=True)
class Line:
    """One message read from stdin."""

    number: int
    """1-based line number."""
    data: bytes | None
    """The line without its ending; None when it was longer than the read limit (skipped)."""
    size: int
    """Its length in bytes, line ending excluded (for a skipped line: all of it, counted as it
    streamed by)."""


def stdin_lines(stream: IO[bytes], limit: int) -> Iterator[Line]:
    """One :class:`Line` per line of ``stream`` (``\\n`` or ``\\r\\n`` endings), reading at most
    ``limit`` bytes of a line plus its ending: a line longer than ``limit`` comes out with
    ``data=None``, read past in chunks, so memory stays bounded whatever stdin holds."""
    number = 0
    while True:
        chunk = stream.readline(limit + 2)  # + the line ending, \r\n at most
        if not chunk:
            return
        number += 1
        if chunk.endswith(b"\n") or len(chunk) < limit + 2:
            line = chunk[:-1] if chunk.endswith(b"\n") else chunk
            if line.endswith(b"\r") and chunk.endswith(b"\n"):
                line = line[:-1]
            yield Line(number, line if len(line) <= limit else None, len(line))
            continue
        size = len(chunk)
        tail = chunk[-2:]  # the last two bytes read, for the line ending
        while not chunk.endswith(b"\n"):
            chunk = stream.readline(SKIP_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            tail = (tail + chunk)[-2:]
        ending = 2 if tail == b"\r\n" else 1 if tail.endswith(b"\n") else 0
        yield Line(number, None, size - ending)


@dataclass
class Tally:
    """What happened to every message, for a report that is exact."""

    topic: str
    where: str
    """"line" (stdin) or "value" (arguments)."""
    limit: int
    sent: int = 0
    """Handed to the producer."""
    stored: int = 0
    """Acknowledged by the broker (with --acks 0: buffered)."""
    failed: int = 0
    """Sent, then refused or never confirmed."""
    error: BaseException | None = None
    """The first failure of a sent message."""
    skipped: list[tuple[int, int]] = field(default_factory=list)
    """(number, size) of messages over --max-message-bytes, not sent."""
    stopped_at: int | None = None
    """The message number reading stopped before (an error, or Ctrl-C), if it did."""

    def messages(self, n: int) -> str:
        return f"{n} message{'' if n == 1 else 's'}"

    def skipped_text(self) -> str:
        shown = ", ".join(str(n) for n, _ in self.skipped[:MAX_LISTED])
        more = f" and {len(self.skipped) - MAX_LISTED} more" if len(self.skipped) > MAX_LISTED else ""
        s = "" if len(self.skipped) == 1 else "s"
        return (
            f"{len(self.skipped)} {self.where}{s} over --max-message-bytes={self.limit} not sent "
            f"({self.where}{s} {shown}{more}; raise --max-message-bytes to send them)"
        )


class Pending:
    """Sent messages whose outcome is not known yet, in send order."""

    def __init__(self, tally: Tally, out: IO[bytes] | None) -> None:
        self._queue: collections.deque[tuple[Any, bytes | None]] = collections.deque()
        self._tally = tally
        self._out = out

    def add(self, future: Any, key: bytes | None) -> None:
        self._queue.append((future, key))

    def settle(self, block: bool) -> None:
        """Count finished sends from the front (printing acknowledgements with --json)."""
        t = self._tally
        while self._queue and (block or self._queue[0][0].done()):
            future, key = self._queue.popleft()
            error = future.exception()
            if error is not None:
                t.failed += 1
                t.error = t.error or error
                continue
            t.stored += 1
            if self._out is not None:
                self._out.write(render.metadata_json(future.result(), key).encode() + b"\n")
                self._out.flush()


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
    "--max-message-bytes",
    type=click.IntRange(1, MAX_MESSAGE_BYTES_LIMIT),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    metavar="N",
    help="Largest message (key + value + headers). A longer line is skipped without being read "
    "into memory, and reported; the lines after it are still sent.",
)
@click.option(
    "--partitioner",
    type=click.Choice(["sticky", "round-robin"]),
    default="sticky",
    show_default=True,
    help="Where messages without a key go: sticky (one partition per batch, then another) or "
    "round-robin (each to the next partition).",
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
    max_message_bytes: int,
    partitioner: str,
    as_json: bool,
    create: bool,
) -> None:
    """Send messages to TOPIC: each VALUE, or else one message per line of stdin.

    Keyed messages go to the partition chosen by Kafka's murmur2 hash of the key,
    so one key's messages keep their order. A summary line goes to stderr: how many
    messages the broker acknowledged, and any that were not sent (over
    --max-message-bytes) or not stored, by line number; then the exit status is 1.
    Ctrl-C stops reading, waits for what was sent, says how much was acknowledged,
    and exits 130.

    \b
    Examples:
      facade produce posts "hello" --key user-1
      printf 'user-1:hi\\nuser-2:hey\\n' | facade produce posts --key-separator :
      facade produce posts '{"id": 7}' --header source=web --json
      facade produce images --max-message-bytes 16777216 < image-lines.b64
    """
    if key is not None and key_separator is not None:
        raise click.UsageError("use either --key or --key-separator, not both")
    if key_separator == "":
        raise click.BadParameter("must not be empty", param_hint="--key-separator")
    header_map = [parse_header(h) for h in headers] or None  # a name may repeat, as in Kafka
    sep = key_separator.encode() if key_separator is not None else None
    fixed_key = key.encode() if key is not None else None

    interactive = False
    file_bytes = None
    lines: Iterable[Line]
    if values:
        lines = (Line(i, v.encode(), len(v.encode())) for i, v in enumerate(values, 1))
        where = "value"
    else:
        # The separator is not part of the message: a line may be that much longer.
        lines = stdin_lines(sys.stdin.buffer, max_message_bytes + len(sep or b""))
        where = "line"
        # Someone typing: send each line at once and report it before the next is typed.
        interactive = sys.stdin.isatty()
        file_bytes = _remaining_file_bytes(sys.stdin.buffer)

    check_broker(settings.url)
    warn_if_evicting(settings.url)
    tally = Tally(topic, where, max_message_bytes)
    pending = Pending(tally, sys.stdout.buffer if as_json else None)
    producer = Producer(
        settings.url, acks=acks, auto_create=create, max_message_bytes=max_message_bytes, partitioner=partitioner
    )
    bad_line: str | None = None
    with StopRequest() as stop, contextlib.ExitStack() as stack:
        # A big file on stdin gets a progress bar (by bytes read) when stderr is a terminal.
        bar = stack.enter_context(progress(f"producing to {topic}", file_bytes)) if file_bytes else None
        source = iter(lines)
        try:
            while not stop.requested and tally.error is None:
                try:
                    with stop.blocking():  # Ctrl-C while waiting for input stops at once
                        line = next(source)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    tally.stopped_at = tally.sent + len(tally.skipped) + 1
                    break
                if bar is not None:
                    bar.advance(line.size + 1)
                if line.data is None:
                    tally.skipped.append((line.number, line.size))
                    _warn_skipped(tally, line.number, line.size)
                    continue
                msg_key, value = fixed_key, line.data
                if sep is not None:
                    parts = split_key(value, sep)
                    if parts is None:
                        shown = value[:80].decode("utf-8", "replace")
                        bad_line = (
                            f"no key separator {key_separator!r} in {where} {line.number}: {shown!r} (with "
                            "--key-separator every message is a key, the separator, then the value)"
                        )
                        tally.stopped_at = line.number
                        break
                    msg_key, value = parts
                try:
                    future = producer.send(topic, value, key=msg_key, headers=header_map)
                except MessageTooLargeError as exc:  # the key and headers count too
                    tally.skipped.append((line.number, exc.size or line.size))
                    _warn_skipped(tally, line.number, exc.size or line.size)
                    continue
                tally.sent += 1
                pending.add(future, msg_key)
                if interactive:
                    producer.flush()
                pending.settle(block=interactive)
            if stop.requested and tally.stopped_at is None:
                tally.stopped_at = tally.sent + len(tally.skipped) + 1
            # Whatever was sent is still delivered and counted (a second Ctrl-C stops waiting).
            producer.flush()
            pending.settle(block=True)
            producer.close()
        except KeyboardInterrupt:
            pending.settle(block=False)
            unknown = tally.sent - tally.stored - tally.failed
            click.echo(
                f"Interrupted: {tally.messages(tally.stored)} acknowledged by the broker (to {topic}); "
                f"{unknown} sent but not acknowledged yet (they may or may not be stored).",
                err=True,
            )
            raise click.exceptions.Exit(stop.exit_status) from None
    _report(tally, bad_line, stop, settings.url)


def _warn_skipped(tally: Tally, number: int, size: int) -> None:
    if len(tally.skipped) <= MAX_LISTED:
        click.echo(
            f"facade: warning: {tally.where} {number} is {size} bytes, over --max-message-bytes={tally.limit}: "
            "not sent",
            err=True,
        )


def _report(tally: Tally, bad_line: str | None, stop: Any, url: str | None) -> None:
    """The summary on stderr, and the exit status: 130 after Ctrl-C, 1 if anything was not
    stored, else 0."""
    t = tally
    if stop.requested:
        rest = f"; {t.where}s from {t.stopped_at} on were not read" if t.stopped_at else ""
        skipped = f"; {t.skipped_text()}" if t.skipped else ""
        click.echo(
            f"Interrupted: {t.messages(t.stored)} acknowledged by the broker (to {t.topic}){rest}{skipped}.",
            err=True,
        )
        raise click.exceptions.Exit(stop.exit_status)
    problems = []
    if bad_line is not None:
        problems.append(f"{bad_line}; it and the {t.where}s after it were not sent")
    if t.failed:
        error = hints.message(t.error, "produce", url) if isinstance(t.error, FacadeError) else str(t.error)
        problems.append(f"{t.messages(t.failed)} not stored: {error}")
    if t.skipped:
        problems.append(t.skipped_text())
    if not problems:
        click.echo(f"Produced {t.messages(t.stored)} to {t.topic}.", err=True)
        return
    raise CliError(f"produced {t.stored} of {t.sent + len(t.skipped) + (bad_line is not None)} "
                   f"{t.where}s to {t.topic}; {'; '.join(problems)}")  # fmt: skip
