"""A throwaway server for one benchmark run: its own directory and a free loopback port.

Persistence is off (no AOF, no RDB snapshots): both sides of every figure run on the same server,
and the ratio is meant to measure client-side cost, not the disk.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import redis

from facade import local

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """The benchmark could not run, or a workload did not do what it claims (counts disagree)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (the OS picks it, never 6379)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchServer:
    """Start ``binary`` on a free loopback port on enter; stop it and remove its files on exit."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = 0
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> BenchServer:
        self._dir = Path(tempfile.mkdtemp(prefix="facade-bench-"))
        self.port = free_port()
        try:
            local.spawn_server(
                self.binary,
                self._dir,
                [
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--maxmemory-policy", "noeviction",
                ],
                pidfile=self._dir / "server.pid",
                logfile=self._dir / "server.log",
            )  # fmt: skip
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not local.ping(port=self.port):
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.binary} did not answer on {self.port} in {READY_TIMEOUT_S}s")
                time.sleep(0.02)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def info(self) -> dict[str, str]:
        """Server name and version, as INFO reports them (Valkey also reports a redis_version)."""
        client = redis.Redis.from_url(self.url)
        try:
            info = client.info("server")
        finally:
            client.close()
        name = str(info.get("server_name") or "redis")
        version = str(info.get("valkey_version") or info.get("redis_version") or "?")
        return {"name": name, "version": version, "binary": self.binary}

    def __exit__(self, *exc: object) -> None:
        if self._dir is None:
            return
        pid = _read_pid(self._dir / "server.pid")
        if pid is not None:
            _stop(pid)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None


def _read_pid(pidfile: Path) -> int | None:
    # The daemonized server writes its pidfile shortly after the launcher returns.
    deadline = time.monotonic() + 2.0
    while (pid := local.read_pid(pidfile)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def _stop(pid: int) -> None:
    local.stop_pids([pid], STOP_TIMEOUT_S)
