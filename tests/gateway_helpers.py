"""A gateway for the real-client tests: ``facade.gateway.Gateway`` on a free loopback port, served
by its own event loop in a background thread, so blocking clients (confluent-kafka, kafka-python,
kcat) and asyncio ones (aiokafka, in their own loop) talk to it as to any Kafka broker.

    from gateway_helpers import running_gateway
    with running_gateway(url) as gw:
        Producer({"bootstrap.servers": gw.bootstrap})
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from facade.gateway import Gateway


class RunningGateway:
    """A started gateway and its loop thread."""

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.gateway = gateway
        self.loop = loop

    @property
    def bootstrap(self) -> str:
        host, port = self.gateway.advertised
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return self.gateway.port

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run ``coro`` on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.005)


class _ErrorLog(logging.Handler):
    """The gateway's records at ``level`` or above (with tracebacks), kept."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


@contextlib.contextmanager
def running_gateway(
    url: str, *, expect_errors: bool = False, fail_on: int = logging.ERROR, **options: Any
) -> Iterator[RunningGateway]:
    """A gateway on ``url`` listening on a free 127.0.0.1 port (``options`` go to Gateway). The
    test fails if the gateway logged at ``fail_on`` or above (an unexpected error; WARNING also
    catches closed connections), unless ``expect_errors``."""
    options.setdefault("port", 0)
    errors = _ErrorLog(fail_on)
    logging.getLogger("facade.gateway").addHandler(errors)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    gateway = Gateway(url, **options)
    try:
        asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(30)
        yield RunningGateway(gateway, loop)
        # A client retries past an error answer, so a test can pass over a failing handler: an
        # unexpected error (logged at ERROR with its traceback) fails the test by itself.
        assert expect_errors or not errors.records, "the gateway failed unexpectedly:\n" + "\n".join(errors.records)
    finally:
        logging.getLogger("facade.gateway").removeHandler(errors)
        # A connection the loop accepted but has not yet made a session of is dropped by asyncio
        # (3.11) with its socket open when the server closes under it (a ResourceWarning): let
        # the loop take what a client that just finished left in flight, then close.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_settle(), loop).result(10)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(gateway.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def consume_assigned(
    bootstrap: str, partitions: list[tuple[str, int, int]], count: int, timeout: float = 20, **config: Any
) -> list[Any]:
    """``count`` records read with a confluent-kafka consumer assigned ``partitions`` ((topic,
    partition, offset) each; no group protocol), in arrival order."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-no-commits", "enable.auto.commit": False,
                         "enable.partition.eof": False, **config})  # fmt: skip
    consumer.assign([TopicPartition(t, p, o) for t, p, o in partitions])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise AssertionError(f"consumer error: {msg.error()}")
            got.append(msg)
    finally:
        consumer.close()
    return got
