"""A TCP proxy between the workers and the broker, which the harness can cut at will.

It runs as its own process (``python -m <package>.proxy UPSTREAM_PORT``) so forwarding never
competes with the harness for one interpreter. Each worker gets a *route*: a port of its own on
127.0.0.1 that forwards to the broker, so a fault can cut every connection or isolate one worker.
The harness drives it over stdin, one command per line, and reads one reply line per command:

    route NAME            -> "ok PORT"      a new listening port for NAME
    cut NAME|*            -> "ok N"         abort every open connection of NAME (or of all routes)
    block NAME|* SECONDS  -> "ok N"         cut, and refuse new connections for SECONDS
    unblock               -> "ok"           accept connections on every route again
    quit                  -> "ok"

It exits when stdin closes (the harness is gone). It only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field

from . import procs


@dataclass
class _Route:
    server: asyncio.base_events.Server | None = None
    blocked_until: float = 0.0
    conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = field(default_factory=set)


class _ProxyServer:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.routes: dict[str, _Route] = {}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _serve(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < route.blocked_until:
            writer.transport.abort()  # isolated: the client sees its connection refused at once
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), timeout=5
            )
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()  # the broker is down (restarting): the client retries
            return
        conn = (writer, up_writer)
        route.conns.add(conn)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            route.conns.discard(conn)

    def _cut(self, names: list[str]) -> int:
        n = 0
        for name in names:
            for client, upstream in list(self.routes[name].conns):
                client.transport.abort()
                upstream.transport.abort()
                n += 1
        return n

    def _select(self, name: str) -> list[str]:
        if name == "*":
            return list(self.routes)
        if name not in self.routes:
            raise KeyError(f"no route {name!r}")
        return [name]

    async def command(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error empty command"
        op, args = words[0], words[1:]
        loop = asyncio.get_running_loop()
        if op == "route" and len(args) == 1:
            route = self.routes.setdefault(args[0], _Route())
            if route.server is None:
                route.server = await asyncio.start_server(
                    lambda r, w, route=route: self._serve(route, r, w), "127.0.0.1", 0
                )
            return f"ok {route.server.sockets[0].getsockname()[1]}"
        if op == "cut" and len(args) == 1:
            return f"ok {self._cut(self._select(args[0]))}"
        if op == "block" and len(args) == 2:
            names = self._select(args[0])
            for name in names:
                self.routes[name].blocked_until = loop.time() + float(args[1])
            return f"ok {self._cut(names)}"
        if op == "unblock" and not args:
            for route in self.routes.values():
                route.blocked_until = 0.0
            return "ok"
        if op == "quit":
            return "ok"
        return f"error unknown command {line!r}"

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode():
            try:
                reply = await self.command(line.strip())
            except (KeyError, ValueError, OSError) as exc:
                reply = f"error {exc}"
            sys.stdout.write(reply + "\n")
            sys.stdout.flush()
            if line.strip() == "quit":
                break
        for route in self.routes.values():
            if route.server is not None:
                route.server.close()
        self._cut(list(self.routes))


class Proxy:
    """The harness's handle on a proxy process."""

    def __init__(self, upstream_port: int) -> None:
        self._proc = procs.spawn(
            procs.module_argv("proxy", str(upstream_port)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=procs.module_env(),
        )

    def _ask(self, line: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write((line + "\n").encode())
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline().decode().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(f"proxy: {line!r} -> {reply or 'no reply (the proxy died)'}")
        return reply[2:].strip()

    def route(self, name: str) -> str:
        """A URL that reaches the broker through a route of its own, named ``name``."""
        return f"redis://127.0.0.1:{int(self._ask(f'route {name}'))}"

    def cut(self, name: str = "*") -> int:
        """Abort every open connection of route ``name`` (``*``: all); returns how many."""
        return int(self._ask(f"cut {name}"))

    def block(self, name: str, seconds: float) -> int:
        """Cut route ``name`` and refuse its new connections for ``seconds``."""
        return int(self._ask(f"block {name} {seconds:.3f}"))

    def unblock(self) -> None:
        """End every isolation now."""
        self._ask("unblock")

    def close(self) -> None:
        try:
            self._ask("quit")
        except (OSError, RuntimeError):
            pass
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()
        procs.reap(self._proc, timeout=5)


if __name__ == "__main__":
    asyncio.run(_ProxyServer(int(sys.argv[1])).main())
