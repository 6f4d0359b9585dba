"""``facade dashboard``: a live, full-screen view of topics, groups and the server.

The loop only gathers (cli/dashboard_data.py), draws (cli/dashboard_view.py) and reads keys;
``--once`` / ``--json`` print one frame with no terminal at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import sys
import time
from dataclasses import dataclass
from typing import Any

import click
from rich.live import Live

from facade import Admin, FacadeError, local, parse_datetime_ms, parse_duration_ms, redact_url

from . import Settings, main, render
from .browser_view import browser_frame, browser_rows
from .dashboard_data import Collector, Page, Snapshot, offset_for_time, read_page
from .dashboard_view import (
    frame,
    ordered_groups,
    pick_group,
    pick_topic,
    snapshot_json,
)

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


@dataclass(frozen=True)
class LiveState:
    """What the live view shows, changed only by key presses (:func:`press`)."""

    topic: str | None = None
    """The topic chosen with t/T (None: the one with the most traffic)."""
    group: str | None = None
    """The group chosen with g/G (None: the busiest reading the topic)."""
    paused: bool = False
    panel: str = "partitions"
    """What the lower panel of a narrow screen shows: "partitions" or "members" (m)."""
    browsing: bool = False
    partition: int = 0
    """Browser: the partition shown."""
    start: int | None = None
    """Browser: the first offset asked for (None: the newest page, following new records)."""
    as_base64: bool = False
    prompt: str | None = None
    """Browser: "offset" or "time" while one is typed."""
    typed: str = ""
    jump_time: str | None = None
    """Browser: a time typed, for the loop to turn into an offset."""
    quit: bool = False
    refresh: bool = False


def _cycle(names: list[str], current: str | None, step: int) -> str | None:
    if not names:
        return None
    if current not in names:
        return names[0] if step > 0 else names[-1]
    return names[(names.index(current) + step) % len(names)]


def press(state: LiveState, key: str, snap: Snapshot, page: Page | None = None, rows: int = 20) -> LiveState:
    """The state after pressing ``key`` ("up", "down", "left", "right", "esc", "enter",
    "backspace" or a character) with ``snap`` (and the browser's ``page``) on screen."""
    r = dataclasses.replace
    if state.prompt is not None:  # typing an offset or a time
        if key == "esc":
            return r(state, prompt=None, typed="")
        if key == "enter":
            text = state.typed.strip()
            if not text:
                return r(state, prompt=None)
            if state.prompt == "offset":
                return r(state, prompt=None, typed="", start=int(text)) if text.isdigit() else r(state, typed="")
            return r(state, prompt=None, typed="", jump_time=text)
        if key == "backspace":
            return r(state, typed=state.typed[:-1])
        if len(key) == 1 and key.isprintable():
            return r(state, typed=state.typed + key)
        return state
    if key in ("q", "Q"):
        return r(state, quit=True)
    if key in ("p", "P", " "):
        return r(state, paused=not state.paused)
    if key in ("r", "R"):
        return r(state, refresh=True)
    shown = pick_topic(snap, state.topic)
    if state.browsing:
        size = max(1, rows)
        count = page.partitions if page else 1
        first = page.records[0].offset if page and page.records else (page.start if page else 0)
        if key in ("b", "esc"):
            return r(state, browsing=False)
        if key in ("]", "right", "l"):
            return r(state, partition=(state.partition + 1) % count, start=None)
        if key in ("[", "left", "h"):
            return r(state, partition=(state.partition - 1) % count, start=None)
        if key in ("n", "down", "pagedown", "j"):
            if page is None or not page.records or page.records[-1].offset + 1 >= page.log_end:
                return r(state, start=None)  # the newest page: it follows new records
            return r(state, start=page.records[-1].offset + 1)
        if key in ("N", "up", "pageup", "k"):
            return r(state, start=max(page.log_start if page else 0, first - size))
        if key in ("g", "home"):
            return r(state, start=page.log_start if page else 0)
        if key in ("e", "G", "end"):
            return r(state, start=None)
        if key == "o":
            return r(state, prompt="offset", typed="")
        if key == "@":
            return r(state, prompt="time", typed="")
        if key in ("x", "X"):
            return r(state, as_base64=not state.as_base64)
        return state
    if key in ("t", "T"):
        names = [t.name for t in snap.topics if not t.is_dead_letters] or [t.name for t in snap.topics]
        current = shown.name if shown else None
        return r(state, topic=_cycle(names, current, 1 if key == "t" else -1))
    if key in ("g", "G"):
        listed = [g.group for g in ordered_groups(snap)]
        current = pick_group(snap, shown, state.group)
        chosen = _cycle(listed, current.group if current else None, 1 if key == "g" else -1)
        topic = state.topic
        view = next((g for g in snap.groups if g.group == chosen), None)
        if view is not None and view.topics and (shown is None or shown.name not in view.topics):
            topic = view.topics[0]  # the partition panel follows the group to a topic it reads
        return r(state, group=chosen, topic=topic)
    if key in ("m", "M"):
        return r(state, panel="members" if state.panel == "partitions" else "partitions")
    if key in ("b", "B", "enter"):
        if shown is None:
            return state
        return r(state, browsing=True, topic=shown.name, partition=0, start=None)
    return state


_ESCAPES = {"[A": "up", "[B": "down", "[C": "right", "[D": "left", "[5~": "pageup", "[6~": "pagedown",
            "[H": "home", "[F": "end", "OA": "up", "OB": "down", "OC": "right", "OD": "left"}  # fmt: skip


def split_keys(text: str) -> list[str]:
    """Key presses from what a terminal sent: escape sequences as names ("up", "pagedown", ...),
    a lone ESC as "esc", Enter as "enter", Backspace as "backspace", the rest one character each."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            for seq, name in _ESCAPES.items():
                if text.startswith(seq, i + 1):
                    keys.append(name)
                    i += 1 + len(seq)
                    break
            else:
                keys.append("esc")
                i += 1
            continue
        keys.append({"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace"}.get(c, c))
        i += 1
    return keys


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
    oldest uncommitted record), consumer groups (members, generation, lag, its trend and
    a sparkline of its history), a group's members (client id, host, partitions) and
    progress, dead-letter topics and the server (memory, role, replicas, the primary
    Sentinel reports, failovers seen). Problems are listed at the top: lag growing, a
    group without members, records uncommitted too long, memory near maxmemory.

    Busy parts come first: the topic with traffic is selected, groups with members or lag
    are listed before idle ones; every topic and group is reached by moving the
    selection. From 140 columns on, two columns side by side.

    \b
    Keys: q quit, t / T next / previous topic, g / G next / previous group,
          m members (narrow screens), b browse the topic's records, p pause, r refresh.
    Browser: [ ] partition, n / N next / previous page, g first, e newest,
          o jump to an offset, @ jump to a time, x text / base64, b or Esc back.

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
    state = LiveState()
    page: Page | None = None
    page_key: tuple[Any, ...] | None = None
    next_sample = time.monotonic() + refresh
    while True:
        width, height = _terminal_size(con)
        if state.browsing:
            error = None
            if state.jump_time is not None:
                state, error = _jump_to_time(collector.admin, state)
                page_key = None
            wanted = (state.topic, state.partition, state.start, browser_rows(height))
            if wanted != page_key:
                page = _page(collector.admin, state, browser_rows(height), page)
                page_key = wanted
                if page is not None and page.partition != state.partition:
                    state = dataclasses.replace(state, partition=page.partition)
            if error and page is not None:
                page = dataclasses.replace(page, error=error)  # shown until the page is read again
            prompt = None
            if state.prompt is not None:
                hint = "digits, Enter" if state.prompt == "offset" else "ISO time (2026-11-29T10:00:00Z) or ago (PT5M), Enter"
                prompt = f"jump to {state.prompt} ({hint}; Esc cancels): {state.typed}_"
            shown = browser_frame(snap, page, height=height, width=width, as_base64=state.as_base64, prompt=prompt,
                                  paused=state.paused)  # fmt: skip
        else:
            shown = frame(snap, topic=state.topic, group=state.group, height=height, width=width, paused=state.paused,
                          panel=state.panel)  # fmt: skip
        view.update(shown, refresh=True)
        pressed = keys.read(max(0.05, next_sample - time.monotonic()) if not state.paused else 0.5)
        for key in split_keys(pressed):
            state = press(state, key, snap, page if state.browsing else None, browser_rows(height))
            if state.quit:
                return
        if state.refresh:
            state = dataclasses.replace(state, refresh=False)
            next_sample = 0.0
        if not state.paused and time.monotonic() >= next_sample:
            snap = _sample(collector, snap)
            page_key = None  # the browser re-reads its page with each sample (new records, trims)
            next_sample = time.monotonic() + refresh


def _terminal_size(con: Any) -> tuple[int, int]:
    """The terminal's size now (it may have been resized). The terminal is asked first: $COLUMNS
    and $LINES, which rich would prefer, are often stale or inherited (tmux, CI) in a full-screen
    view; the console is told, so that it draws to the same size."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return con.size.width, con.size.height
    con.size = (size.columns, size.lines)
    return size.columns, size.lines


def _page(admin: Admin, state: LiveState, rows: int, last: Page | None) -> Page | None:
    if state.topic is None:
        return None
    try:
        return read_page(admin, state.topic, state.partition, state.start, rows)
    except FacadeError as exc:
        if last is None:
            return None
        return dataclasses.replace(last, error=" ".join(str(exc).split()))


def _jump_to_time(admin: Admin, state: LiveState) -> tuple[LiveState, str | None]:
    """Turn the time typed in the browser into the first offset at or after it."""
    text = state.jump_time or ""
    state = dataclasses.replace(state, jump_time=None)
    try:
        if text.upper().startswith("P"):
            ms = int(time.time() * 1000) - parse_duration_ms(text)
        else:
            ms = parse_datetime_ms(text)
        offset = offset_for_time(admin, state.topic or "", state.partition, ms)
    except FacadeError as exc:
        return state, " ".join(str(exc).split())
    return dataclasses.replace(state, start=offset), None if offset is not None else f"no record at or after {text}"


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
