"""The broker under test: a redis-server / valkey-server process the harness owns.

It listens on a free 127.0.0.1 port (never 6379) with AOF on and ``appendfsync always``: every
write is on disk before its reply leaves, so a restart, clean (SIGTERM) or not (``kill -9``), loses
nothing a client was told is stored. A restart keeps the port and the data directory.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from . import procs

START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 6379:
            return port


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a server answers PING on 127.0.0.1:``port`` (``-LOADING`` is not an answer yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Broker:
    """One server process; :meth:`restart` brings it back on the same port and data directory."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and procs.alive(self._proc)

    def start(self) -> Broker:
        for _ in range(1 if self.port else 3):  # a fresh port may be taken by someone else meanwhile
            port = self.port or free_port()
            if self._spawn(port):
                self.port = port
                return self
        raise RuntimeError(f"{self.binary} did not start; see {self.dir / 'server.log'}")

    def _spawn(self, port: int) -> bool:
        argv = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
        ]
        with open(self.dir / "server.log", "ab") as log:
            self._proc = procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not procs.alive(self._proc):
                procs.reap(self._proc)
                self._proc = None
                return False
            if ping(port):
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: a clean shutdown (the AOF is flushed; with fsync always it already was)."""
        if self._proc is not None:
            procs.signal_group(self._proc, signal.SIGTERM)
            procs.reap(self._proc, timeout)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        if self._proc is not None:
            procs.signal_group(self._proc, signal.SIGKILL)
            procs.reap(self._proc)
            self._proc = None

    def restart(self, hard: bool) -> float:
        """Stop (``kill -9`` if ``hard``) and start again; returns the seconds it was down."""
        began = time.monotonic()
        self.kill() if hard else self.stop()
        self.start()
        return time.monotonic() - began
