"""Progress bars for long work (large produce from a file, relay, dlq replay, bench): on a
terminal only.

A command asks for :func:`progress` and reports through the object it gets; when stderr is not
a terminal (a pipe, a file, CI, tests) that object does nothing, so output stays clean for
scripts. The bar goes to stderr and disappears when the work is done (the command's own summary
line stays).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import render

__all__ = ["Bar", "progress"]


class Bar:
    """What a command reports progress to. Without a terminal every method does nothing."""

    def __init__(self, bar: Progress | None = None, task: object = None) -> None:
        self._bar = bar
        self._task = task

    @property
    def shown(self) -> bool:
        """Whether a bar is on screen."""
        return self._bar is not None

    def advance(self, n: float = 1) -> None:
        """``n`` more units done."""
        if self._bar is not None:
            self._bar.advance(self._task, n)  # type: ignore[arg-type]

    def set(self, completed: float, description: str | None = None) -> None:
        """``completed`` units done in all (and optionally a new description)."""
        if self._bar is not None:
            kw = {} if description is None else {"description": description}
            self._bar.update(self._task, completed=completed, **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def progress(
    description: str, total: float | None = None, *, count: bool = True, console: Console | None = None
) -> Iterator[Bar]:
    """A transient progress bar on stderr, or a no-op :class:`Bar` when stderr is no terminal.

    With ``total`` it shows a bar, percent and time left; without, a spinner, the count done so
    far (unless ``count`` is false: work that reports no progress) and the time elapsed.
    """
    con = console or render.console(stderr=True)
    if not con.is_terminal:
        yield Bar()
        return
    if total is not None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
        )
    else:
        columns = (  # type: ignore[assignment]
            SpinnerColumn(),
            TextColumn("{task.description}"),
            *([TextColumn("{task.completed:,.0f}")] if count else []),
            TimeElapsedColumn(),
        )
    with Progress(*columns, console=con, transient=True) as bar:
        yield Bar(bar, bar.add_task(description, total=total))
