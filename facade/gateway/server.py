"""The gateway's listener: accept Kafka clients, read frames, dispatch them, write whole replies.

One asyncio task per client connection reads a frame (``int32 size`` + that many bytes), answers
it and only then reads the next, so replies leave in request order, as Kafka's do. A size prefix
that is not positive or is above ``Limits.max_request_bytes`` closes the connection before
anything else is read; so does a header or body that does not parse, an API key nobody knows,
or a request other than ApiVersions/SASL before SASL authentication; a refused
SaslAuthenticate is answered, then the connection closes. A reply is one
``write()`` of a complete frame: a client never sees part of one. No failure of one connection
reaches another or the listener.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import ssl
from typing import Any

from .. import keys
from .._async.admin import Admin
from .._async.client import Connection, TopicCache
from ..errors import ConfigError
from . import apis, protocol
from .api_versions import unsupported_version_body
from .context import Limits, RequestContext, Session, node_id_for
from .errors import kafka_error
from .packing import raw_stream_replies, use_hiredis_packing
from .protocol import ErrorCode, ProtocolError

__all__ = ["Gateway", "run"]

log = logging.getLogger("facade.gateway")

_SASL_KEYS = (17, 36)  # SaslHandshake, SaslAuthenticate
_CLOSE = object()
MAX_COALESCED = 64
"""Produce requests of one connection answered with one Redis pipeline, at most."""
MAX_QUEUED_FRAMES = 128
MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""Frames (and their bytes) read ahead of the one being answered, per connection, at most: then
reading waits (one frame is always taken, whatever its size up to the request limit)."""


def _is_produce(buf: bytes) -> bool:
    """Whether a frame is a Produce request of a version the gateway answers (v3-v11)."""
    return buf[:2] == b"\x00\x00" and len(buf) >= 10 and 3 <= int.from_bytes(buf[2:4], "big") <= 11


class _Frames:
    """The frames read from one connection and not yet answered (a bounded FIFO)."""

    def __init__(self) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    async def put(self, buf: bytes) -> None:
        while self._items and (
            len(self._items) >= MAX_QUEUED_FRAMES or self._bytes + len(buf) > MAX_QUEUED_BYTES
        ):
            self._room.clear()
            await self._room.wait()
        self._items.append(buf)
        self._bytes += len(buf)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next frame; None once the connection ended and every frame was taken."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self.pop()

    def pop(self) -> bytes:
        buf = self._items.popleft()
        self._bytes -= len(buf)
        self._room.set()
        return buf

    def peek_is(self, test: Any) -> bool:
        return bool(self._items) and test(self._items[0])


TOPIC_CACHE_MS = 1_000
"""How long a topic's config is reused before it is read again (a new partition count or a
deleted topic shows within this)."""


class Gateway:
    """A Kafka-protocol server over facade's Redis layout.

    ``url``: the broker (None: ``$FACADE_URL``, else the embedded broker). ``host``/``port``: where
    to listen (port 0: a free port, see :attr:`port` after :meth:`start`). ``advertise``: the
    ``(host, port)`` clients are told to connect to (default: the listening address).
    ``ssl_context``: TLS on the listener. ``sasl_plain``: require SASL/PLAIN, checked as the
    client's Redis ACL user (each session then runs its Redis commands as that user).
    ``auto_create_partitions``: partitions of a topic created on a Metadata request for an
    unknown one (0: never create).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 9092,
        advertise: tuple[str, int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sasl_plain: bool = False,
        auto_create_partitions: int = 1,
        limits: Limits | None = None,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {port!r}")
        if advertise is not None and not 1 <= advertise[1] <= 65535:
            raise ConfigError(f"advertised port must be 1..65535, got {advertise[1]!r}")
        if (
            not isinstance(auto_create_partitions, int)
            or not 0 <= auto_create_partitions <= keys.MAX_PARTITIONS
        ):
            raise ConfigError(
                f"auto_create_partitions must be 0..{keys.MAX_PARTITIONS}, got {auto_create_partitions!r}"
            )
        self.url = url
        self.host = host
        self.port = port
        self._advertise = advertise
        self.ssl_context = ssl_context
        self.sasl_plain = sasl_plain
        self.auto_create_partitions = auto_create_partitions
        self.limits = limits or Limits()
        self.conn: Connection | None = None
        self.admin: Admin | None = None
        self.topics: TopicCache | None = None
        self.cluster_id = ""
        self.node_id = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self.extra: dict[str, Any] = {}
        """Caches an API module keeps for the whole gateway (its own key), e.g. the replica count."""
        self.principals: dict[tuple[str, str], Session] = {}
        """SASL: one Redis connection per (user, password digest), shared by its sessions."""

    @property
    def advertised(self) -> tuple[str, int]:
        """The ``(host, port)`` clients are told to use for this gateway."""
        return self._advertise or (self.host, self.port)

    async def start(self) -> None:
        """Connect to Redis and start listening."""
        self.conn = Connection(self.url)
        use_hiredis_packing(self.conn.redis)
        raw_stream_replies(self.conn.redis)
        self.admin = Admin.over(self.conn)
        self.topics = TopicCache(self.conn, TOPIC_CACHE_MS)
        self.cluster_id = await self._cluster_id()
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.ssl_context, limit=2**20
        )
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        self.node_id = node_id_for(*self.advertised)
        log.info(
            "gateway listening on %s:%d, advertising %s:%d (node %d)",
            self.host,
            self.port,
            *self.advertised,
            self.node_id,
        )

    async def _cluster_id(self) -> str:
        """The cluster id shared by every gateway on this Redis (made by the first one)."""
        assert self.conn is not None
        import base64
        import uuid

        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        await self.conn.command("naming the cluster", "SET", keys.CLUSTER_ID, candidate, "NX")
        value = await self.conn.read("naming the cluster", "GET", keys.CLUSTER_ID)
        return value.decode() if isinstance(value, bytes) else str(value)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening, end every client connection, close the Redis connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for session in list(self.principals.values()):
            await session.conn.close()
        self.principals.clear()
        if self.conn is not None:
            await self.conn.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert (
            task is not None and self.conn is not None and self.admin is not None and self.topics is not None
        )
        self._sessions.add(task)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        session = Session(peer, self.conn, self.admin, self.topics, authenticated=not self.sasl_plain)
        frames = _Frames()
        reading = asyncio.create_task(self._read_frames(reader, frames, peer, session))
        try:
            while True:
                buf = await frames.get()
                if buf is None:
                    break
                # Produce requests already waiting behind this one go to Redis together, in order
                # (one pipeline): a client with many requests in flight is not served one round
                # trip at a time.
                batch = [buf]
                if _is_produce(buf) and session.authenticated:
                    while len(batch) < MAX_COALESCED and frames.peek_is(_is_produce):
                        batch.append(frames.pop())
                outs = (
                    await self._answer_batch(session, batch)
                    if len(batch) > 1
                    else [await self._answer(session, buf)]
                )
                replies = [out for out in outs if out is not None and out is not _CLOSE]
                if replies:
                    writer.write(b"".join(replies))
                    await writer.drain()
                if _CLOSE in outs or session.close_after_reply:
                    break
        except (ConnectionError, ssl.SSLError):
            pass  # the client went away (or broke TLS): nothing to answer
        except asyncio.CancelledError:
            pass  # gateway closing
        except Exception:
            log.exception("closing %s after an unexpected error", peer)
        finally:
            reading.cancel()
            self._sessions.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass

    async def _read_frames(self, reader: asyncio.StreamReader, frames: _Frames, peer: str, session: Session) -> None:
        """Read whole frames into ``frames`` (None at the end: closed, or a size out of bounds);
        at the end, ``session.gone`` is set (a waiting JoinGroup stops waiting)."""
        try:
            while True:
                head = await reader.readexactly(4)
                size = int.from_bytes(head, "big", signed=True)
                if not 0 < size <= self.limits.max_request_bytes:
                    log.warning(
                        "closing %s: request size %d outside 1..%d bytes",
                        peer,
                        size,
                        self.limits.max_request_bytes,
                    )
                    break
                await frames.put(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            frames.close()
            session.gone.set()

    async def _answer_batch(self, session: Session, bufs: list[bytes]) -> list[Any]:
        """Answers to several Produce frames, their writes in one pipeline (in frame order)."""
        from . import produce

        ctxs, requests = [], []
        for buf in bufs:
            try:
                header = protocol.read_header(buf, protocol.is_flexible)
                cls = protocol.request_class(header.api_key, header.api_version)
                assert cls is not None
                requests.append(protocol.decode(cls, buf, header.body_offset))
            except Exception:  # noqa: BLE001 - kio raises several types: answer (or close) one by one
                return [await self._answer(session, b) for b in bufs]
            ctxs.append(RequestContext(self, session, header.api_key, header.api_version, header.correlation_id,
                                       header.client_id))  # fmt: skip
        try:
            responses = await produce.handle_batch(ctxs, requests)
        except Exception as exc:  # as _answer: each request gets the API error response
            code = kafka_error(exc)
            if code == ErrorCode.unknown_server_error:
                log.exception("Produce from %s failed", session.peer)
            return [
                protocol.frame(
                    c.correlation_id, protocol.error_response(0, c.api_version, code), c.api_version >= 9
                )
                for c in ctxs
            ]
        return [
            None if r is None else protocol.frame(c.correlation_id, r, c.api_version >= 9)
            for c, r in zip(ctxs, responses)
        ]

    async def _answer(self, session: Session, buf: bytes) -> Any:
        """The reply frame to ``buf``, None for no reply, or _CLOSE."""
        if session.raw_sasl_next:
            from .sasl import raw_token

            return await raw_token(self, session, buf)
        try:
            header = protocol.read_header(buf, protocol.is_flexible)
        except ProtocolError as exc:
            log.warning("closing %s: %s", session.peer, exc)
            return _CLOSE
        key, version, corr = header.api_key, header.api_version, header.correlation_id
        api = apis.TABLE.get(key)
        cls = protocol.request_class(key, version)
        if api is None or not api.min_version <= version <= api.max_version:
            if key == 18:
                return protocol.frame(corr, unsupported_version_body(), False)
            if cls is None:
                log.warning(
                    "closing %s: API key %d version %d is not a Kafka request the gateway knows",
                    session.peer,
                    key,
                    version,
                )
                return _CLOSE
            code = (
                ErrorCode.coordinator_not_available
                if key in apis.PLACEHOLDERS
                else ErrorCode.unsupported_version
            )
            log.info("answering API key %d v%d from %s with %s", key, version, session.peer, code.name)
            return protocol.frame(corr, protocol.error_response(key, version, code), cls.__flexible__)
        if not session.authenticated and key not in (18, *_SASL_KEYS):
            log.warning("closing %s: API key %d before SASL authentication", session.peer, key)
            return _CLOSE
        assert cls is not None
        try:
            request = protocol.decode(cls, buf, header.body_offset)
        except Exception as exc:  # noqa: BLE001 - kio raises several types for malformed bodies
            log.warning("closing %s: malformed %s v%d request: %s", session.peer, api.name, version, exc)
            return _CLOSE
        ctx = RequestContext(self, session, key, version, corr, header.client_id)
        try:
            response = await api.handle(ctx, request)
        except Exception as exc:
            code = kafka_error(exc)
            if code == ErrorCode.unknown_server_error:
                log.exception("%s v%d from %s failed", api.name, version, session.peer)
            else:
                log.info("%s v%d from %s: %s", api.name, version, session.peer, exc)
            return protocol.frame(
                corr, protocol.error_response(key, version, code), cls.__flexible__ and key != 18
            )
        if response is None:
            return None
        body = response if isinstance(response, (bytes, bytearray)) else protocol.encode(response)
        return protocol.frame(corr, body, cls.__flexible__ and key != 18)


def run(gateway: Gateway, ready: Any = None) -> None:
    """Start ``gateway`` and serve until interrupted (Ctrl-C, SIGTERM); ``ready(gateway)`` is
    called once it listens. Blocks: the ``facade gateway`` command."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with gateway:
            # Everything loaded so far (modules, the codec's schemas) lives as long as the process:
            # out of the collector's sight, a full collection stops costing tens of milliseconds
            # of every client's latency (docs/gateway.md, "Speed").
            gc.freeze()
            if ready is not None:
                ready(gateway)
            await stop.wait()

    asyncio.run(main())
