"""I/O primitives for the blocking flavour (hand-written; its asyncio twin is _async/_backend.py)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable

Lock = threading.RLock
sleep = time.sleep
monotonic = time.monotonic
Future = concurrent.futures.Future
IS_ASYNC = False


def new_future() -> concurrent.futures.Future:
    """A future the caller can wait on with ``.result(timeout)``."""
    return concurrent.futures.Future()


def resolve(fut: concurrent.futures.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def fail(fut: concurrent.futures.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Timer:
    """Run ``fn()`` once, on a daemon thread, after ``delay_s`` unless cancelled first."""

    def __init__(self, delay_s: float, fn: Callable[[], Any]) -> None:
        self._timer = threading.Timer(delay_s, fn)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if threading.current_thread() is not self._timer:
            self._timer.cancel()


def wait(fut: concurrent.futures.Future) -> Any:
    """The future's result, waiting for it."""
    return fut.result()


def maybe_await(value: Any) -> Any:
    """Callbacks of the blocking clients are plain functions: their result as is."""
    return value


BufferLock = threading.RLock


class RecordFuture:
    """One record's outcome: ``result(timeout)`` gives its RecordMetadata or raises its error.

    All records of a batch share one concurrent future (one per batch, not per record: cheap to
    create); the RecordMetadata is only built when asked for. ``get`` is kafka-python's name.
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: concurrent.futures.Future, index: int) -> None:
        self._batch = batch
        self._index = index

    def result(self, timeout: float | None = None) -> Any:
        """The RecordMetadata, waiting up to ``timeout`` seconds."""
        return _metadata(self._batch.result(timeout), self._index)

    get = result

    def done(self) -> bool:
        return self._batch.done()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The error, or None, waiting up to ``timeout`` seconds."""
        return self._batch.exception(timeout)

    def add_done_callback(self, fn: Callable[[RecordFuture], Any]) -> None:
        """Call ``fn(self)`` once the record is stored or failed."""
        self._batch.add_done_callback(lambda _: fn(self))


def _metadata(outcome: Any, index: int) -> Any:
    from ..accumulator import record_metadata

    return record_metadata(outcome, index)


class Task:
    """``fn(*args)`` running on a daemon thread of its own (see :func:`spawn`)."""

    __slots__ = ("future",)

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        threading.Thread(target=self._run, args=(fn, args), name="facade-prefetch", daemon=True).start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.future.set_result(fn(*args))
        except BaseException as exc:  # handed to join(), in the caller's thread
            self.future.set_exception(exc)


def spawn(fn: Callable[..., Any], *args: Any) -> Task:
    """Start ``fn(*args)`` now, beside the caller (a thread); :func:`join` gives its outcome."""
    return Task(fn, args)


def join(task: Task) -> Any:
    """The result of a :func:`spawn`-ed call (its exception raised), waiting for it."""
    return task.future.result()


class Periodic:
    """Call ``fn()`` on a daemon thread of its own until :meth:`stop`: at once, then again after
    the number of seconds each call returns (the group heartbeat, beside the application)."""

    def __init__(self, fn: Callable[[], float], name: str) -> None:
        self._stopped = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], float]) -> None:
        delay = 0.0
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopped:
                return
            delay = fn()

    def wake(self) -> None:
        """Make the next call now instead of after its delay."""
        self._wake.set()

    def stop(self) -> None:
        """Stop calling, and wait for a call under way to end (unless called from that call)."""
        self._stopped = True
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(30)


def gather(results: Iterable[Any]) -> list[Any]:
    """The results of some round trips (one per cluster shard): already run, one after another."""
    return list(results)


def cluster_ready(client: Any) -> None:
    """A blocking cluster client read its slot map when it was created: nothing to do."""
