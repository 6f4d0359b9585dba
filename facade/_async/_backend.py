"""I/O primitives for the asyncio flavour (hand-written; its blocking twin is _sync/_backend.py).

Everything else in this package is the one source of truth, rewritten into facade/_sync by
scripts/unasync.py; only what genuinely differs between asyncio and threads lives here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Lock = asyncio.Lock
sleep = asyncio.sleep
monotonic = time.monotonic
Future = asyncio.Future
IS_ASYNC = True


def new_future() -> asyncio.Future:
    """A future the caller can await."""
    return asyncio.get_running_loop().create_future()


def resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def fail(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
        # Nobody may ever await a fire-and-forget send's future: don't warn about it.
        fut.exception()


class Timer:
    """Run ``fn()`` (a coroutine function) once after ``delay_s`` unless cancelled first."""

    def __init__(self, delay_s: float, fn: Callable[[], Awaitable[Any]]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(delay_s, fn))

    @staticmethod
    async def _run(delay_s: float, fn: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.sleep(delay_s)
        await fn()

    def cancel(self) -> None:
        if asyncio.current_task() is not self._task:
            self._task.cancel()


async def wait(fut: asyncio.Future) -> Any:
    """The future's result, waiting for it."""
    return await fut


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if a callback returned an awaitable (callbacks may be sync or async)."""
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


class NoLock:
    """The producer's buffer lock under asyncio: buffers change between awaits only, so no lock."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


BufferLock = NoLock


class RecordFuture:
    """One record's outcome: ``await`` it for its RecordMetadata (or its error).

    All records of a batch share one asyncio future (one per batch, not per record: cheap to
    create); the RecordMetadata is only built when asked for.
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: asyncio.Future, index: int) -> None:
        self._batch = batch
        self._index = index

    def __await__(self) -> Any:
        outcome = yield from self._batch.__await__()
        return _metadata(outcome, self._index)

    def done(self) -> bool:
        return self._batch.done()

    def result(self) -> Any:
        """The RecordMetadata (the record must be done)."""
        return _metadata(self._batch.result(), self._index)

    def exception(self) -> BaseException | None:
        """The error, or None (the record must be done)."""
        return self._batch.exception()


def _metadata(outcome: Any, index: int) -> Any:
    from ..accumulator import record_metadata

    return record_metadata(outcome, index)


def spawn(fn: Callable[..., Awaitable[Any]], *args: Any) -> asyncio.Task:
    """Start ``fn(*args)`` now, beside the caller (a task); :func:`join` gives its outcome."""
    return asyncio.get_running_loop().create_task(fn(*args))


async def join(task: asyncio.Task) -> Any:
    """The result of a :func:`spawn`-ed call (its exception raised), waiting for it."""
    return await task


class Periodic:
    """Call ``fn()`` (a coroutine function) in a task of its own until :meth:`stop`: at once, then
    again after the number of seconds each call returns (the group heartbeat, beside the
    application)."""

    def __init__(self, fn: Callable[[], Awaitable[float]], name: str) -> None:
        self._stopped = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(fn), name=name)

    async def _run(self, fn: Callable[[], Awaitable[float]]) -> None:
        delay = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self._stopped:
                return
            delay = await fn()

    def wake(self) -> None:
        """Make the next call now instead of after its delay."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop calling, and wait for a call under way to end (unless called from that call)."""
        self._stopped = True
        self._wake.set()
        if asyncio.current_task() is not self._task:
            await self._task


async def gather(awaitables: Iterable[Awaitable[Any]]) -> list[Any]:
    """The results of some round trips (one per cluster shard), run concurrently."""
    return list(await asyncio.gather(*awaitables))


async def cluster_ready(client: Any) -> None:
    """Make a cluster client read its slot map (the asyncio one does so lazily, on first use)."""
    await client.initialize()
