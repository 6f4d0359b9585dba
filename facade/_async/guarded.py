"""Reads of new records fenced by WATCH on the partitions' owner keys, without a script.

This module is the asyncio source of truth; facade/_sync/guarded.py is generated from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from .. import codec, keys
from .client import Connection

__all__ = ["GuardedReader"]


class GuardedReader:
    """Reads of new records without a script, fenced by WATCH on the partitions' owner keys.

    The ``fetch`` script checks the owner token and reads in one atomic step, but a script's reply
    costs the server about twice a plain XREADGROUP (every entry goes into Lua and back out). For
    the common case (at-least-once, new records, one server) this reader gets the same guarantee
    from a transaction on a connection of its own:

        WATCH <owner keys>; HGET <owner key> <group> ...      -> each must be this member's token
        MULTI; HSET ... (commits, handed-out marks riding along); XREADGROUP ... NOACK ... > ...;
        EXEC; WATCH <owner keys>; HGET ...                    -> watching again for the next read

    EXEC runs only if no owner key changed since the WATCH, and the HGETs after that WATCH showed
    this member's tokens, so the read and the writes happen while the member owns every partition
    read, as with the script. One round trip per read once watching; any doubt (a token that is
    not ours, an aborted EXEC, an error inside it) answers None and the caller reads through the
    script from its own position, whose FENCED / NOTOPIC replies say what happened.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._c: Any = None  # a connection taken from the pool, kept while watching
        self._watched: tuple[tuple[str, str], ...] = ()  # (owner key, token) watched and found ours
        self.enabled = not conn.cluster  # off on a cluster, and for good after a refusal (ACL)

    async def close(self) -> None:
        await self._drop(disconnect=False)

    async def _drop(self, disconnect: bool = True) -> None:
        c, self._c, self._watched = self._c, None, ()
        if c is not None:
            if disconnect:
                await c.disconnect()
            await self._conn.redis.connection_pool.release(c)

    async def _round(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if self._c is None:
            self._c = await self._conn.redis.connection_pool.get_connection()
        await self._c.send_packed_command(self._c.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await self._c.read_response())
            except ResponseError as exc:  # an error reply: the connection is still in step
                replies.append(exc)
        return replies

    async def read(
        self,
        group: str,
        parts: Sequence[tuple[str, str, str]],
        writes: Sequence[tuple[Any, ...]],
        count: int,
        context: str,
    ) -> list[tuple[list[Any], str]] | None:
        """New records of each part ``(stream, owner key, token)`` whose stream is not None, at most
        ``count`` per stream, as ``(entries, last ID)`` per part, after ``writes`` (commands that
        ride along: commits, the handed-out mark, on any of the parts), all in one transaction
        fenced by every part's owner token; None when the caller must use the fetch script
        instead (nothing was read then, nor written)."""
        if not self.enabled:
            return None
        owners = tuple((own, token) for _, own, token in parts)
        own_keys = [own for own, _ in owners]
        check = [("WATCH", *own_keys), *[("HGET", own, group) for own in own_keys]]
        streams = [stream for stream, _, _ in parts if stream is not None]
        try:
            if self._watched != owners:
                replies = await self._round([("UNWATCH",), *check])
                if isinstance(replies[1], ResponseError):  # e.g. NOPERM: ACL rules without WATCH
                    self.enabled = False
                    await self._drop(disconnect=False)
                    return None
                self._watched = owners if self._ours(replies[1:], owners) else ()
                if not self._watched:
                    return None
            read = ("XREADGROUP", "GROUP", group, keys.STREAM_CONSUMER, "COUNT", count, "NOACK", "STREAMS", *streams)
            reads = [(*read, *[">"] * len(streams))] if streams else [("PING",)]
            commands = [("MULTI",), *writes, *reads, ("EXEC",), *check]
            replies = await self._round(commands)
            self._conn.connected = True
        except RedisError as exc:
            await self._drop()
            raise self._conn._error(exc, context) from exc
        except BaseException:
            await self._drop()
            raise
        i = len(writes) + 1  # replies: MULTI, QUEUED..., the read's QUEUED, EXEC, WATCH, HGET...
        self._watched = owners if self._ours(replies[i + 2 :], owners) else ()
        if isinstance(replies[0], ResponseError) or any(isinstance(r, ResponseError) for r in replies[1 : i + 1]):
            # MULTI refused (ACL rules without it): the commands ran on their own, unfenced. The
            # fetch script does everything from now on, and the caller repeats this read there
            # from its own position (the writes are idempotent; what was read is read again).
            self.enabled = False
            await self._drop()
            return None
        done = replies[i + 1]
        if done is None:
            return None  # aborted: an owner key changed since the WATCH; nothing was read
        if not isinstance(done, list) or any(isinstance(r, Exception) for r in done):
            # Refused (EXECABORT, e.g. READONLY from a demoted primary; NOGROUP): nothing was read
            # or written. A fresh connection asks the pool (and Sentinel) where the primary is.
            await self._drop()
            return None
        reply = done[-1] if streams else None
        by_stream = {}
        for name, entries in codec.stream_replies(reply):
            by_stream[name.decode() if isinstance(name, bytes) else name] = entries
        out = []
        for stream, _, _ in parts:
            entries = by_stream.get(stream) or [] if stream is not None else []
            last = entries[-1][0] if entries else b""
            out.append((entries, last.decode() if isinstance(last, bytes) else last))
        return out

    @staticmethod
    def _ours(replies: Sequence[Any], owners: tuple[tuple[str, str], ...]) -> bool:
        """Whether a WATCH reply and the HGET replies after it say: watching, every token ours."""
        watch, tokens = replies[0], replies[1:]
        return not isinstance(watch, Exception) and len(tokens) == len(owners) and all(
            isinstance(t, (bytes, str)) and (t.decode() if isinstance(t, bytes) else t) == token
            for t, (_, token) in zip(tokens, owners)
        )
