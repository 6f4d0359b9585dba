"""``facade dashboard``: a live, full-screen view of topics, groups and the server.

The loop only gathers (cli/dashboard_data.py), draws (cli/dashboard_view.py) and reads keys;
``--once`` / ``--json`` print one frame with no terminal at all.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import Any

import click
from rich.live import Live

from facade import Admin, FacadeError, local, redact_url

from . import Settings, main, render
from .dashboard_data import Collector, Snapshot
from .dashboard_view import frame, pick_group, pick_topic, snapshot_json

ONCE_SAMPLE_GAP_S = 1.0
"""``--once`` samples twice, this far apart at most, so its rates are real."""


class _Keys:
    """Single key presses from a terminal stdin (cbreak mode, no echo); nothing otherwise."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: Any = None

    def __enter__(self) -> _Keys:
        if sys.stdin.isatty():
            import termios
            import tty

            self._fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str:
        """Keys pressed within ``timeout`` seconds ("" if none); sleeps when there is no terminal."""
        if self._fd is None:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return ""
        return os.read(self._fd, 64).decode("utf-8", "ignore")


def _broker(url: str | None) -> str:
    return redact_url(url) if url else f"embedded ({local.status().url})"


def _cycle(names: list[str], current: str | None, step: int) -> str | None:
    if not names:
        return None
    i = names.index(current) if current in names else 0
    return names[(i + step) % len(names)]


@main.command(short_help="Live view of topics, groups, lag and the server.")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1, max=3600),
    default=2.0,
    show_default=True,
    metavar="S",
    help="Seconds between samples.",
)
@click.option(
    "--topic", "-t", "topics", multiple=True, metavar="T", help="Show only topic T (and T.dlq); repeatable."
)
@click.option("--once", is_flag=True, help="Print one frame and exit (no terminal needed).")
@click.option("--json", "as_json", is_flag=True, help="Print one sample as a JSON object and exit.")
@click.pass_obj
def dashboard(settings: Settings, refresh: float, topics: tuple[str, ...], once: bool, as_json: bool) -> None:
    """A live, full-screen view: topics (partitions, messages, in/out rate in msg/s),
    one topic's partitions (length, first/last offset, owner, lag, pending, age of the
    oldest pending record), consumer groups (members, generation, lag and its trend,
    assignment), dead-letter topics and the server (memory, role, replicas, the
    primary Sentinel reports, failovers seen). Problems are listed at the top: lag
    growing, a group without members, records pending too long, memory near maxmemory.

    \b
    Keys: q quit, t / T next / previous topic, g next group, p pause, r refresh now.

    In is the growth of the records appended; out, of the records delivered to the
    groups (summed over groups). --once and --json sample twice (up to a second
    apart) so the rates are real, then print and exit.

    \b
    Example:
      facade dashboard
      facade dashboard --topic posts --refresh 1
      facade dashboard --once
      facade dashboard --json | jq '.groups[] | {group, lag}'
    """
    live = not (once or as_json)
    con = render.console()
    if live and not con.is_terminal:
        raise click.UsageError("the live view needs a terminal; use --once or --json to print one sample")
    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(Admin(settings.url))
        for t in topics:
            admin.topic(t)  # UnknownTopicError: one line, exit 1
        collector = Collector(admin, _broker(settings.url), topics or None)
        if not live:
            collector.collect()
            time.sleep(min(refresh, ONCE_SAMPLE_GAP_S))
            snap = collector.collect()
            if as_json:
                click.echo(render.json_line(snapshot_json(snap)))
            else:
                render.emit(frame(snap, keys_help=False))
            return
        _run_live(collector, con, refresh, stack)


def _run_live(collector: Collector, con: Any, refresh: float, stack: contextlib.ExitStack) -> None:
    keys = stack.enter_context(_Keys())
    snap = _sample(collector, None)
    view = stack.enter_context(
        Live(console=con, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
    )
    topic: str | None = None
    group: str | None = None
    paused = False
    next_sample = time.monotonic() + refresh
    while True:
        shown = pick_topic(snap, topic)
        topic = shown.name if shown else None
        shown_group = pick_group(snap, shown, group)
        group = shown_group.group if shown_group else None
        view.update(
            frame(
                snap, topic=topic, group=group, height=con.size.height, width=con.size.width, paused=paused
            ),
            refresh=True,
        )
        pressed = keys.read(max(0.05, next_sample - time.monotonic()) if not paused else 0.5)
        for key in pressed:
            if key in "qQ":
                return
            if key in "tT":
                names = [t.name for t in snap.topics if not t.is_dead_letters] or [
                    t.name for t in snap.topics
                ]
                topic = _cycle(names, topic, 1 if key == "t" else -1)
                group = None
            elif key == "g":
                readers = [g.group for g in snap.groups if shown is not None and g.group in shown.groups]
                group = _cycle(readers, group, 1)
            elif key in "pP ":
                paused = not paused
            elif key in "rR":
                next_sample = 0.0
        if not paused and time.monotonic() >= next_sample:
            snap = _sample(collector, snap)
            next_sample = time.monotonic() + refresh


def _sample(collector: Collector, last: Snapshot | None) -> Snapshot:
    """A new snapshot; on a broker error, the last one marked with the error (the view says
    what failed and keeps trying)."""
    try:
        return collector.collect()
    except FacadeError as exc:
        if last is None:
            raise
        return Snapshot(
            broker=last.broker,
            taken_ms=last.taken_ms,
            topics=last.topics,
            groups=last.groups,
            server=last.server,
            events=last.events,
            error=" ".join(str(exc).split()),
        )
