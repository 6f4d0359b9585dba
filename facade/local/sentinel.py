"""Local replicated topologies: a primary, N replicas and M sentinels on loopback ports.

    start(data_dir, replicas=2, sentinels=3)   ->  TopologyStatus  (returns once all is linked)
    status(data_dir)                           ->  TopologyStatus  (the CURRENT primary)
    stop(data_dir)                             ->  bool            (SIGTERM, then SIGKILL)
    start_node(data_dir, port)                 ->  TopologyStatus  (bring one stopped process back)

Every process runs the server binary facade uses (``$FACADE_SERVER_BINARY`` or the bundled
Valkey; facade/local/_procs.py starts, watches and stops the processes), daemonized, listening on 127.0.0.1 only. Each
has its own directory under ``data_dir`` (``node-<port>/``, ``sentinel-<port>/``) holding its
config file, log, pid file and data; ``data_dir/topology.json`` records the layout. Sentinels
rewrite their config as they learn (and so does a data node Sentinel reconfigures), so each gets a
fresh file at every start.

Data nodes run with :data:`SAFE_SETTINGS` (the same ``compose.yaml`` uses; tests/test_compose.py
checks it): AOF fsynced every second, no eviction, and, when there are replicas, writes refused
unless a replica is connected and at most ``min-replicas-max-lag`` seconds behind, which bounds how
long a primary cut off from its replicas keeps accepting writes that a failover would discard.
Sentinels monitor the service ``facade`` with a quorum of a majority of them and the timeouts of
:func:`sentinel_settings`. See docs/replication.md for what this does and does not guarantee.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ServerError
from . import _procs
from ._procs import NodeStatus

__all__ = [
    "DEFAULT_DOWN_AFTER_MS",
    "SAFE_SETTINGS",
    "SERVICE",
    "NodeStatus",
    "TopologyStatus",
    "sentinel_settings",
    "server_settings",
    "start",
    "start_node",
    "status",
    "stop",
    "wait_healthy",
]

SERVICE = "facade"
"""The Sentinel service (master) name: ``redis+sentinel://.../facade``."""

DEFAULT_DOWN_AFTER_MS = 2000
"""How long a primary must be silent before a sentinel considers it down."""

SAFE_SETTINGS: dict[str, str] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "min-replicas-to-write": "1",
    "min-replicas-max-lag": "10",
    "repl-diskless-sync": "yes",
    "repl-diskless-sync-delay": "0",
}
"""Settings of every data node of a replicated topology (any of them may become the primary).

``min-replicas-to-write`` is 0 in a topology without replicas (see :func:`server_settings`).
``repl-diskless-sync-delay 0``: a replica that needs a full copy (a restarted node, a demoted
primary) gets it at once instead of after the default 5 s wait for more replicas.
"""

STATE_FILE = "topology.json"
START_TIMEOUT_S = 30.0


def server_settings(replicas: int) -> dict[str, str]:
    """The settings of the data nodes of a topology with ``replicas`` replicas."""
    settings = dict(SAFE_SETTINGS)
    if replicas == 0:
        settings["min-replicas-to-write"] = "0"
    return settings


def sentinel_settings(down_after_ms: int = DEFAULT_DOWN_AFTER_MS) -> dict[str, str]:
    """Per-service sentinel settings (``sentinel <name> facade <value>``) for fast failover.

    ``failover-timeout`` is three times ``down-after-milliseconds`` (at least 3 s): it bounds a
    stuck promotion, and a failed attempt is retried after twice that.
    """
    return {
        "down-after-milliseconds": str(down_after_ms),
        "failover-timeout": str(max(3 * down_after_ms, 3000)),
        "parallel-syncs": "1",
    }


def quorum(sentinels: int) -> int:
    """Sentinels that must agree the primary is down: a majority."""
    return sentinels // 2 + 1


@dataclass(frozen=True)
class TopologyStatus:
    """A local topology as it is now."""

    url: str
    """What clients use: ``redis+sentinel://127.0.0.1:p1,.../facade`` with sentinels, else
    ``redis://127.0.0.1:<primary port>`` (add ``user:password@`` if the topology has a password)."""
    primary: NodeStatus
    """The current primary (as the sentinels, or the servers themselves, report it)."""
    replicas: tuple[NodeStatus, ...]
    """The other data nodes, running or not, by port."""
    sentinels: tuple[NodeStatus, ...]
    """The sentinels, by port."""
    data_dir: str
    """Where the topology keeps its state."""
    binary: str
    """The server binary it runs."""

    kind = "sentinel"

    @property
    def running(self) -> bool:
        """Whether every process runs."""
        return all(n.pid is not None for n in (self.primary, *self.replicas, *self.sentinels))

    def as_json(self) -> dict[str, Any]:
        """``{"url", "primary": {"port", "pid"}, "replicas": [...], "sentinels": [...]}``."""
        return {
            "url": self.url,
            "primary": self.primary.as_json(),
            "replicas": [n.as_json() for n in self.replicas],
            "sentinels": [n.as_json() for n in self.sentinels],
        }


# ---------------------------------------------------------------------------------------------
# Public functions


def start(
    data_dir: str | os.PathLike[str],
    *,
    replicas: int = 2,
    sentinels: int = 3,
    port: int | None = None,
    down_after_ms: int = DEFAULT_DOWN_AFTER_MS,
    password: str | None = None,
    binary: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> TopologyStatus:
    """Start a primary, ``replicas`` replicas and ``sentinels`` sentinels; return once replicas are
    linked and the sentinels agree on the primary and know each other.

    Ports are ``port``, ``port + 1``, ... (primary, replicas, then sentinels), or free ones the
    kernel picks when ``port`` is None. ``password`` protects every server and sentinel (the
    default user's password; not part of the status URL). A data_dir that held a stopped topology
    is started again with its ports and data, its last primary as the primary. Raises ServerError
    if one already runs there (or a port is taken), ConfigError for bad arguments.

    ``down_after_ms`` below 2000 makes failovers faster but, on Redis 7 and Valkey 9 alike,
    Sentinel then often declares the replica it just promoted down again a second later and
    fails over a second time (docs/replication.md).
    """
    _check_counts(replicas, sentinels, down_after_ms)
    root = _procs.root_of(data_dir)
    with _procs.lock(root / "topology.lock"):
        state = _read_state(root)
        if state is not None:
            _procs.check_restart(
                root, "topology", _ports(state), [p for p in _ports(state) if _pid(root, state, p) is not None],
                f"{len(state['nodes']) - 1} replicas and {len(state['sentinels'])} sentinels",
                f"{replicas} replicas and {sentinels} sentinels", port,
            )  # fmt: skip
            primary = int(state.get("primary") or state["nodes"][0])
            nodes = [primary] + [p for p in state["nodes"] if p != primary]
            sentinel_ports = list(state["sentinels"])
            password = state.get("password") if password is None else password
        else:
            ports = _procs.pick_ports(port, 1 + replicas + sentinels)
            nodes, sentinel_ports = ports[: 1 + replicas], ports[1 + replicas :]
        state = {
            "version": _procs.STATE_VERSION,
            "binary": binary or _procs.server_binary(),
            "service": SERVICE,
            "nodes": nodes,
            "sentinels": sentinel_ports,
            "primary": nodes[0],
            "down_after_ms": down_after_ms,
            "password": password,
            "pids": {},
        }
        _procs.check_free(nodes + sentinel_ports)
        _write_state(root, state)
        try:
            _spawn_node(root, state, nodes[0], replica_of=None)
            for p in nodes[1:]:
                _spawn_node(root, state, p, replica_of=nodes[0])
            deadline = time.monotonic() + timeout
            _wait_linked(root, state, nodes[0], nodes[1:], deadline)
            for p in sentinel_ports:
                _spawn_sentinel(root, state, p, nodes[0])
            _wait_sentinels(root, state, nodes[0], nodes[1:], sentinel_ports, deadline)
        except BaseException:
            _stop_all(root, state, timeout=5)
            raise
        _write_state(root, state)
        return _status(root, state)


def status(data_dir: str | os.PathLike[str]) -> TopologyStatus:
    """The topology in ``data_dir`` as it is now: which node is the primary (asked of the
    sentinels; without sentinels, of the servers), and which processes run."""
    root = _procs.root_of(data_dir)
    hint = "; start one with facade.local.start_sentinel / `facade server start`"
    return _status(root, _procs.stored_state(root / STATE_FILE, "topology", hint))


def stop(data_dir: str | os.PathLike[str], timeout: float = 15.0) -> bool:
    """Stop every process of the topology (SIGTERM, which flushes the AOF; SIGKILL after
    ``timeout`` s). Returns whether anything was running. Idempotent; the data stays."""
    root = _procs.root_of(data_dir)
    with _procs.lock(root / "topology.lock"):
        state = _read_state(root)
        if state is None:
            return False
        running = any(_pid(root, state, p) is not None for p in _ports(state))
        if running:
            with contextlib.suppress(ServerError):
                state["primary"] = _current_primary(root, state)  # where a later start resumes
        _stop_all(root, state, timeout)
        _write_state(root, state)
        return running


def start_node(data_dir: str | os.PathLike[str], port: int, timeout: float = START_TIMEOUT_S) -> TopologyStatus:
    """Start one stopped process of the topology again (after a crash or a kill).

    A data node rejoins as a replica of the current primary, and this returns once it is linked;
    a sentinel starts with a fresh config monitoring the current primary.
    """
    root = _procs.root_of(data_dir)
    with _procs.lock(root / "topology.lock"):
        state = _procs.stored_state(root / STATE_FILE, "topology")
        if port not in _ports(state):
            raise ServerError(f"port {port} is not part of the topology in {root} (ports {_ports(state)})")
        if _pid(root, state, port) is not None:
            raise ServerError(f"the process on port {port} already runs")
        primary = _current_primary(root, state)
        deadline = time.monotonic() + timeout
        if port in state["sentinels"]:
            _spawn_sentinel(root, state, port, primary)
        else:
            if port == primary:
                raise ServerError(
                    f"port {port} is still the primary as far as the sentinels know; wait for the failover "
                    "before restarting it, or start the whole topology again"
                )
            _spawn_node(root, state, port, replica_of=primary)
            _wait_linked(root, state, primary, [port], deadline)
        _write_state(root, state)
        return _status(root, state)


def wait_healthy(data_dir: str | os.PathLike[str], timeout: float = START_TIMEOUT_S) -> TopologyStatus:
    """Wait until every running data node replicates from the current primary and every running
    sentinel names it; return the status then."""
    root = _procs.root_of(data_dir)
    state = _procs.stored_state(root / STATE_FILE, "topology")
    deadline = time.monotonic() + timeout
    while True:
        try:
            primary = _current_primary(root, state)
            replicas = [p for p in state["nodes"] if p != primary and _pid(root, state, p) is not None]
            sentinel_ports = [p for p in state["sentinels"] if _pid(root, state, p) is not None]
            _wait_linked(root, state, primary, replicas, min(deadline, time.monotonic() + 2))
            _wait_sentinels(root, state, primary, replicas, sentinel_ports, min(deadline, time.monotonic() + 2))
            if _current_primary(root, state) == primary:
                return _status(root, state)
        except ServerError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Processes


def _check_counts(replicas: int, sentinels: int, down_after_ms: int) -> None:
    _procs.check_count("replicas", replicas, 0, 16)
    _procs.check_count("sentinels", sentinels, 0, 9)
    if sentinels and not replicas:
        raise ConfigError("sentinels need at least one replica to promote; use --replicas 1 or more")
    _procs.check_count("down_after_ms", down_after_ms, 100, 600_000)


def _ports(state: dict[str, Any]) -> list[int]:
    return [*state["nodes"], *state["sentinels"]]


def _dir(root: Path, state: dict[str, Any], port: int) -> Path:
    return root / (f"sentinel-{port}" if port in state["sentinels"] else f"node-{port}")


def _pid(root: Path, state: dict[str, Any], port: int) -> int | None:
    return _procs.node_pid(_dir(root, state, port), state.get("pids", {}).get(str(port)))


def _common_lines(directory: Path, port: int) -> list[str]:
    return [
        f"port {port}",
        "bind 127.0.0.1",
        f'dir "{directory}"',
        "daemonize yes",
        f'pidfile "{directory / "server.pid"}"',
        f'logfile "{directory / "server.log"}"',
    ]


def _spawn_node(root: Path, state: dict[str, Any], port: int, replica_of: int | None) -> None:
    directory = _dir(root, state, port)
    directory.mkdir(parents=True, exist_ok=True)
    lines = _common_lines(directory, port) + ['save ""']
    lines += [f"{k} {v}" for k, v in server_settings(len(state["nodes"]) - 1).items()]
    if state.get("password"):
        lines += [f"requirepass {_quote(state['password'])}", f"masterauth {_quote(state['password'])}"]
    conf = directory / "server.conf"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    # Role on the command line, not in the file: Sentinel rewrites the file when it reconfigures
    # the node, and a restarted node must follow whoever is the primary now.
    args = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of is not None else ["--replicaof", "no", "one"]
    _launch(root, state, port, [state["binary"], str(conf), *args])


def _spawn_sentinel(root: Path, state: dict[str, Any], port: int, primary: int) -> None:
    directory = _dir(root, state, port)
    directory.mkdir(parents=True, exist_ok=True)
    lines = _common_lines(directory, port)
    lines.append(f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {quorum(len(state['sentinels']))}")
    lines += [f"sentinel {k} {SERVICE} {v}" for k, v in sentinel_settings(state["down_after_ms"]).items()]
    if state.get("password"):
        # requirepass: clients and the other sentinels authenticate to this one; auth-pass: this
        # sentinel authenticates to the data nodes.
        lines += [f"requirepass {_quote(state['password'])}", f"sentinel auth-pass {SERVICE} {_quote(state['password'])}"]
    conf = directory / "sentinel.conf"  # fresh every start: the sentinel rewrites it as it runs
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    _launch(root, state, port, [state["binary"], str(conf), "--sentinel"])


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _launch(root: Path, state: dict[str, Any], port: int, cmd: list[str]) -> None:
    directory = _dir(root, state, port)
    with contextlib.suppress(FileNotFoundError):
        (directory / "server.pid").unlink()
    _procs.launch(cmd, f" on port {port}")
    deadline = time.monotonic() + 15
    while not _procs.ping(port=port):
        pid = _procs.read_pid(directory / "server.pid")
        if time.monotonic() > deadline or (pid is not None and not _procs.alive(pid)):
            last = _procs.log_tail(directory / "server.log")
            raise ServerError(f"the process on port {port} did not come up; last log line: {last}")
        time.sleep(0.02)
    pid = _procs.read_pid(directory / "server.pid")
    while pid is None and time.monotonic() < deadline:  # the pid file follows the listening socket
        time.sleep(0.01)
        pid = _procs.read_pid(directory / "server.pid")
    state.setdefault("pids", {})[str(port)] = pid


def _stop_all(root: Path, state: dict[str, Any], timeout: float) -> None:
    # Sentinels first, so that none starts a failover while the data nodes go down.
    for group in (state["sentinels"], state["nodes"]):
        _procs.stop_pids([pid for pid in (_pid(root, state, p) for p in group) if pid is not None], timeout)
    state["pids"] = {}


# ---------------------------------------------------------------------------------------------
# Asking the processes


def _query(state: dict[str, Any], port: int, *command: Any) -> Any:
    return _procs.query(port, *command, password=state.get("password"))


def _info(state: dict[str, Any], port: int) -> dict[str, Any]:
    return _query(state, port, "INFO", "replication")


def _current_primary(root: Path, state: dict[str, Any]) -> int:
    """The port the majority of answering sentinels name; without sentinels, the running node
    that says it is a master. ServerError when nobody can tell."""
    answers: Counter[int] = Counter()
    for p in state["sentinels"]:
        if _pid(root, state, p) is None:
            continue
        with contextlib.suppress(ServerError, TypeError, ValueError):
            _, port = _query(state, p, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            answers[int(port)] += 1
    if answers:
        return answers.most_common(1)[0][0]
    if state["sentinels"]:
        raise ServerError("no sentinel answers; cannot tell which node is the primary")
    for p in state["nodes"]:
        if _pid(root, state, p) is None:
            continue
        with contextlib.suppress(ServerError):
            if _info(state, p).get("role") == "master":
                return p
    raise ServerError("no running data node is a primary")


def _wait_linked(root: Path, state: dict[str, Any], primary: int, replicas: list[int], deadline: float) -> None:
    """Until each replica reports its link to ``primary`` up and the primary lists it online."""
    _procs.wait_until(
        deadline,
        f"the replicas did not link to the primary on port {primary}",
        lambda: _link_problem(state, primary, replicas),
    )


def _link_problem(state: dict[str, Any], primary: int, replicas: list[int]) -> str:
    info = _info(state, primary)
    if info.get("role") != "master":
        return f"port {primary} is a {info.get('role')}, not the primary"
    online = {
        int(v["port"]) for k, v in info.items() if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
    }
    for p in replicas:
        r = _info(state, p)
        if r.get("role") != "slave" or int(r.get("master_port", 0)) != primary or r.get("master_link_status") != "up":
            return f"port {p} is not replicating from {primary} yet"
        if p not in online:
            return f"the primary does not list port {p} as online yet"
    return ""


def _wait_sentinels(
    root: Path, state: dict[str, Any], primary: int, replicas: list[int], sentinel_ports: list[int], deadline: float
) -> None:
    """Until every sentinel names ``primary``, knows the replicas and the other sentinels (a
    failover needs a majority of sentinels that know each other)."""
    others = len(state["sentinels"]) - 1

    def problem() -> str:
        for p in sentinel_ports:
            m = _query(state, p, "SENTINEL", "MASTER", SERVICE)
            fields = m if isinstance(m, dict) else dict(zip(m[::2], m[1::2]))
            if int(fields.get("port", 0)) != primary or fields.get("flags") != "master":
                return f"sentinel {p} sees {fields.get('port')} ({fields.get('flags')}), not {primary}"
            if int(fields.get("num-slaves", 0)) < len(replicas):
                return f"sentinel {p} knows {fields.get('num-slaves')} of {len(replicas)} replicas"
            if int(fields.get("num-other-sentinels", 0)) < others:
                return f"sentinel {p} knows {fields.get('num-other-sentinels')} of {others} other sentinels"
        return ""

    _procs.wait_until(deadline, "the sentinels did not agree", problem)


def _status(root: Path, state: dict[str, Any]) -> TopologyStatus:
    try:
        primary = _current_primary(root, state)
    except ServerError:
        primary = int(state.get("primary") or state["nodes"][0])
    if state["sentinels"]:
        url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in sorted(state["sentinels"])) + f"/{SERVICE}"
    else:
        url = f"redis://127.0.0.1:{primary}"
    return TopologyStatus(
        url=url,
        primary=NodeStatus(primary, _pid(root, state, primary)),
        replicas=tuple(NodeStatus(p, _pid(root, state, p)) for p in sorted(state["nodes"]) if p != primary),
        sentinels=tuple(NodeStatus(p, _pid(root, state, p)) for p in sorted(state["sentinels"])),
        data_dir=str(root),
        binary=state["binary"],
    )


# ---------------------------------------------------------------------------------------------
# State file


def _read_state(root: Path) -> dict[str, Any] | None:
    return _procs.read_state(root / STATE_FILE)


def _write_state(root: Path, state: dict[str, Any]) -> None:
    _procs.write_state(root / STATE_FILE, state)
