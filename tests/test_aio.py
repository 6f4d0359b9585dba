"""The asyncio twins (facade.aio) against a real server."""

from __future__ import annotations

import asyncio
import time

import pytest

from facade import CommitFailedError, MessageTooLargeError, TopicPartition, UnknownTopicError
from facade.aio import Admin, Consumer, Producer

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_produce_and_consume_with_three_members_in_one_loop(url):
    async def main():
        async with Admin(url) as admin:
            await admin.create_topic("posts", 5)
            assert [t.name for t in await admin.list_topics()] == ["posts"]
        async with Producer(url) as p:
            futs = [await p.send("posts", f"u{i % 10}:{i}", key=f"u{i % 10}") for i in range(500)]
            await p.flush()
            metas = [await f for f in futs]
            assert {m.partition for m in metas} <= set(range(5))
            with pytest.raises(MessageTooLargeError):
                await p.send("posts", b"x" * (2 * 1024 * 1024))
            with pytest.raises(UnknownTopicError):
                await p.send("missing", b"x")
        members = [Consumer("posts", "notifications", url, auto_offset_reset="earliest", **FAST) for _ in range(3)]
        got: list[list] = [[], [], []]

        async def consume(i, c):
            deadline = time.monotonic() + 20
            while sum(map(len, got)) < 500 and time.monotonic() < deadline:
                got[i] += await c.poll(timeout_ms=50)
                await c.commit()

        await asyncio.gather(*(consume(i, c) for i, c in enumerate(members)))
        owned = [c.assignment() for c in members]
        for c in members:
            await c.close()
        return got, owned

    got, owned = run(main())
    values = [m.value for ms in got for m in ms]
    assert len(values) == 500 and len(set(values)) == 500
    assert set().union(*owned) == {TopicPartition("posts", p) for p in range(5)}
    for ms in got:  # per-key order inside each member
        per_key: dict[bytes, list[int]] = {}
        for m in ms:
            per_key.setdefault(m.key, []).append(int(m.value.split(b":")[1]))
        assert all(v == sorted(v) for v in per_key.values())


def test_async_iteration_and_async_callbacks(url):
    async def main():
        async with Admin(url) as admin:
            await admin.create_topic("t", 1)
        async with Producer(url) as p:
            for i in range(3):
                await p.send("t", str(i))
        events = []

        async def on_assign(parts):
            events.append(("assign", parts))

        async with Consumer("t", "g", url, auto_offset_reset="earliest", on_assign=on_assign, **FAST) as c:
            out = []
            async for m in c:
                out.append(m.value)
                if len(out) == 3:
                    break
            await c.commit()
        return out, events

    out, events = run(main())
    assert out == [b"0", b"1", b"2"]
    assert events == [("assign", {TopicPartition("t", 0)})]


def test_async_fencing(url):
    import redis

    from facade import keys

    async def main():
        async with Admin(url) as admin:
            await admin.create_topic("t", 1)
        async with Producer(url) as p:
            await p.send_and_wait("t", b"x")
        c = Consumer("t", "g", url, auto_offset_reset="earliest", **FAST)
        try:
            while not await c.poll(timeout_ms=50):
                pass
            r = redis.Redis.from_url(url)
            r.hset(keys.owners("t", 0), "g", "other|7")
            r.close()
            with pytest.raises(CommitFailedError):
                await c.commit()
        finally:
            await c.close()

    run(main())
