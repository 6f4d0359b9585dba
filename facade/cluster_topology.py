"""Local Redis Cluster: K shards (a primary and R replicas each) on loopback ports.

    start(data_dir, shards=3, replicas_per_shard=0)  ->  ClusterStatus  (returns at cluster_state:ok)
    status(data_dir)                                 ->  ClusterStatus  (roles and slots as they are now)
    stop(data_dir)                                   ->  bool           (SIGTERM, then SIGKILL)

Every node runs the server binary facade uses (``facade.server.server_binary()``: that is
``$FACADE_SERVER_BINARY`` or the bundled Valkey), daemonized, listening on 127.0.0.1 only, with
cluster mode on (``nodes.conf`` in its own directory ``data_dir/node-<port>/``), AOF fsynced every
second and no eviction (see :data:`NODE_SETTINGS`). There is no redis-cli/valkey-cli here, so the
cluster is formed the way ``--cluster create`` does it, command by command: distinct config epochs,
``CLUSTER ADDSLOTSRANGE`` (16384 slots cut into K equal ranges), ``CLUSTER MEET``, then
``CLUSTER REPLICATE`` for the replicas. ``data_dir/cluster.json`` records the ports; a stopped
cluster started again reloads its ``nodes.conf`` files and its data.

Each node also has a cluster bus port. It is chosen explicitly (``--cluster-port``) rather than
left at port + 10000, which is out of range for the high ports the kernel hands out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServerError
from .server import _alive, _read_pid, ping, server_binary, spawn_server

__all__ = [
    "NODE_SETTINGS",
    "SLOTS",
    "ClusterStatus",
    "NodeStatus",
    "ShardStatus",
    "slot_ranges",
    "start",
    "status",
    "stop",
]

SLOTS = 16384
"""Hash slots in a Redis Cluster."""

NODE_SETTINGS: dict[str, str] = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": "5000",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "save": "",
    "maxmemory-policy": "noeviction",
    "repl-diskless-sync": "yes",
    "repl-diskless-sync-delay": "0",
}
"""Settings of every node (compose.cluster.yaml uses the same). ``cluster-node-timeout`` 5 s: a
failed primary is replaced by one of its replicas within seconds rather than the default 15 s.
``repl-diskless-sync-delay 0``: a replica gets its first full copy at once, not after 5 s."""

STATE_FILE = "cluster.json"
START_TIMEOUT_S = 30.0
MAX_SHARDS = 16
MAX_REPLICAS = 4
_QUERY_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class NodeStatus:
    """One node process."""

    port: int
    """TCP port on 127.0.0.1."""
    pid: int | None
    """Process id, or None when it is not running."""

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "pid": self.pid}


@dataclass(frozen=True)
class ShardStatus:
    """A primary, its replicas and the hash slots it serves."""

    primary: NodeStatus
    """The node serving the shard's slots now."""
    replicas: tuple[NodeStatus, ...]
    """Its replicas, by port."""
    slots: tuple[tuple[int, int], ...]
    """Inclusive slot ranges ``(low, high)`` the primary serves, ascending."""

    def as_json(self) -> dict[str, Any]:
        return {
            "primary": self.primary.as_json(),
            "replicas": [r.as_json() for r in self.replicas],
            "slots": [[lo, hi] for lo, hi in self.slots],
        }


@dataclass(frozen=True)
class ClusterStatus:
    """A local cluster as it is now."""

    url: str
    """What clients use: ``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`` (every node)."""
    shards: tuple[ShardStatus, ...]
    """One per primary, ordered by their first slot (a primary without slots last)."""
    data_dir: str
    """Where the cluster keeps its state."""
    binary: str
    """The server binary it runs."""

    @property
    def running(self) -> bool:
        """Whether every node runs."""
        return all(n.pid is not None for s in self.shards for n in (s.primary, *s.replicas))

    def as_json(self) -> dict[str, Any]:
        """``{"url", "shards": [{"primary": {"port", "pid"}, "replicas": [...], "slots": [[lo, hi]...]}]}``."""
        return {"url": self.url, "shards": [s.as_json() for s in self.shards]}


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The 16384 slots cut into ``shards`` contiguous ranges as equal as possible."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= SLOTS:
        raise ServerError(f"shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    bounds = [round(i * SLOTS / shards) for i in range(shards + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(shards)]


# ---------------------------------------------------------------------------------------------
# Public functions


def start(
    data_dir: str | os.PathLike[str],
    *,
    shards: int,
    replicas_per_shard: int = 0,
    port: int | None = None,
    binary: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> ClusterStatus:
    """Start a cluster of ``shards`` primaries with ``replicas_per_shard`` replicas each; return once
    every node reports ``cluster_state:ok``, agrees on who serves each slot, and every replica is
    linked to its primary.

    Ports are ``port``, ``port + 1``, ... (primaries first, then replicas shard by shard; cluster
    bus ports ``port + 10000``, ...), or free ones the kernel picks when ``port`` is None. A
    data_dir that holds a stopped cluster is started again with its ports and data. Raises
    ServerError if one already runs there.
    """
    for name, value, low, high in (("shards", shards, 1, MAX_SHARDS), ("replicas_per_shard", replicas_per_shard, 0, MAX_REPLICAS)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ServerError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    root = Path(data_dir).expanduser().resolve()
    with _lock(root):
        state = _read_state(root)
        fresh = state is None
        if state is not None:
            running = [p for p in _ports(state) if _pid(root, p) is not None]
            if running:
                raise ServerError(
                    f"a cluster already runs in {root} (nodes on ports {', '.join(map(str, running))}); "
                    "stop it first (facade.cluster_topology.stop / `facade server stop --data-dir`), or use another data dir"
                )
            layout = (len(state["shards"]), len(state["shards"][0]["replicas"]))
            if layout != (shards, replicas_per_shard):
                raise ServerError(
                    f"{root} holds a stopped cluster with {layout[0]} shards and {layout[1]} replicas per shard; "
                    "start it with the same counts, or use another data dir"
                )
            if port is not None and port != min(_ports(state)):
                raise ServerError(f"{root} holds a cluster on ports from {min(_ports(state))}, not {port}")
        else:
            count = shards * (1 + replicas_per_shard)
            ports, buses = _pick_ports(port, count)
            primaries = ports[:shards]
            rest = iter(ports[shards:])
            state = {
                "version": 1,
                "binary": binary or server_binary(),
                "shards": [
                    {"primary": p, "replicas": [next(rest) for _ in range(replicas_per_shard)]} for p in primaries
                ],
                "bus": {str(p): b for p, b in zip(ports, buses)},
            }
        for p in _ports(state):
            for q in (p, state["bus"][str(p)]):
                if not _port_free(q):
                    raise ServerError(f"port {q} on 127.0.0.1 is taken; pick another --port or stop what uses it")
        _write_state(root, state)
        deadline = time.monotonic() + timeout
        try:
            for p in _ports(state):
                _spawn_node(root, state, p)
            for p in _ports(state):
                _wait_answers(root, p, deadline)
            if fresh:
                _form(state, deadline)
            _wait_ready(state, deadline)
        except BaseException:
            _stop_all(root, state, timeout=5)
            raise
        return _status(root, state)


def status(data_dir: str | os.PathLike[str]) -> ClusterStatus:
    """The cluster in ``data_dir`` as it is now: roles and slots as a running node reports them
    (a replica promoted by a failover is shown as its shard's primary), else as started."""
    root = Path(data_dir).expanduser().resolve()
    state = _read_state(root)
    if state is None:
        raise ServerError(f"no cluster in {root}; start one with facade.cluster_topology.start / `facade server start`")
    return _status(root, state)


def stop(data_dir: str | os.PathLike[str], timeout: float = 15.0) -> bool:
    """Stop every node (SIGTERM, which flushes the AOF and nodes.conf; SIGKILL after ``timeout``
    s). Returns whether anything was running. Idempotent; the data stays."""
    root = Path(data_dir).expanduser().resolve()
    with _lock(root):
        state = _read_state(root)
        if state is None:
            return False
        running = any(_pid(root, p) is not None for p in _ports(state))
        _stop_all(root, state, timeout)
        return running


# ---------------------------------------------------------------------------------------------
# Processes


def _pick_ports(base: int | None, count: int) -> tuple[list[int], list[int]]:
    """``count`` client ports and as many cluster bus ports."""
    if base is not None:
        if isinstance(base, bool) or not isinstance(base, int) or not 1 <= base or base + count + 10000 > 65535:
            raise ServerError(f"port must be an integer from 1 to {65535 - 10000 - count}, got {base!r}")
        ports = list(range(base, base + count))
        return ports, [p + 10000 for p in ports]
    picked: list[int] = []
    while len(picked) < 2 * count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            p = sock.getsockname()[1]
        if p not in picked and p not in (6379, 16379, 26379):
            picked.append(p)
    return picked[:count], picked[count:]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: a port whose last connections linger in TIME_WAIT is free to it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(state: dict[str, Any]) -> list[int]:
    return [s["primary"] for s in state["shards"]] + [r for s in state["shards"] for r in s["replicas"]]


def _dir(root: Path, port: int) -> Path:
    return root / f"node-{port}"


def _pid(root: Path, port: int) -> int | None:
    pid = _read_pid(_dir(root, port) / "server.pid")
    return pid if _alive(pid) else None


def _spawn_node(root: Path, state: dict[str, Any], port: int) -> None:
    directory = _dir(root, port)
    with contextlib.suppress(FileNotFoundError):
        (directory / "server.pid").unlink()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-port", str(state["bus"][str(port)])]
    for key, value in NODE_SETTINGS.items():
        args += [f"--{key}", value]
    spawn_server(
        state["binary"], directory, args, pidfile=directory / "server.pid", logfile=directory / "server.log"
    )


def _wait_answers(root: Path, port: int, deadline: float) -> None:
    while not ping(port=port):
        if time.monotonic() > deadline:
            raise ServerError(f"the node on port {port} did not come up; last log line: {_log_tail(_dir(root, port))}")
        time.sleep(0.02)


def _log_tail(directory: Path) -> str:
    with contextlib.suppress(OSError, IndexError):
        return (directory / "server.log").read_text(errors="replace").strip().splitlines()[-1]
    return "(none)"


def _stop_all(root: Path, state: dict[str, Any], timeout: float) -> None:
    pids = [pid for pid in (_pid(root, p) for p in _ports(state)) if pid is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a stopped (SIGSTOP) process acts on SIGTERM only once resumed
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Forming the cluster


def _query(port: int, *command: Any) -> Any:
    """One command to 127.0.0.1:``port``, or ServerError."""
    import redis

    try:
        with redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=_QUERY_TIMEOUT_S,
            socket_connect_timeout=_QUERY_TIMEOUT_S,
            decode_responses=True,
        ) as client:
            return client.execute_command(*command)
    except redis.RedisError as exc:
        raise ServerError(f"port {port}: {exc}") from exc


def _form(state: dict[str, Any], deadline: float) -> None:
    """Assign slots, introduce the nodes to each other, attach the replicas."""
    ranges = slot_ranges(len(state["shards"]))
    for epoch, (shard, (lo, hi)) in enumerate(zip(state["shards"], ranges), start=1):
        # Distinct config epochs up front, as redis-cli does: otherwise the nodes settle the
        # collision among themselves, which takes a while longer.
        _query(shard["primary"], "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        _query(shard["primary"], "CLUSTER", "ADDSLOTSRANGE", lo, hi)
    ports = _ports(state)
    first = ports[0]
    for p in ports[1:]:
        _query(p, "CLUSTER", "MEET", "127.0.0.1", first, state["bus"][str(first)])
    _until(deadline, "the nodes did not all meet", lambda: _meet_problem(ports))
    for shard in state["shards"]:
        primary_id = _query(shard["primary"], "CLUSTER", "MYID")
        for r in shard["replicas"]:
            _query(r, "CLUSTER", "REPLICATE", primary_id)


def _meet_problem(ports: list[int]) -> str:
    for p in ports:
        nodes = _parse_nodes(_query(p, "CLUSTER", "NODES"))
        if len(nodes) < len(ports):
            return f"port {p} knows {len(nodes)} of {len(ports)} nodes"
        if any("handshake" in n["flags"] or "noaddr" in n["flags"] for n in nodes):
            return f"port {p} is still shaking hands"
    return ""


def _wait_ready(state: dict[str, Any], deadline: float) -> None:
    _until(deadline, "the cluster did not become ready", lambda: _ready_problem(state))


def _ready_problem(state: dict[str, Any]) -> str:
    """Why the cluster is not ready yet ("" when it is): every node must say cluster_state:ok with
    all slots assigned, agree on every node's role and slots, and every replica must be linked."""
    ports = _ports(state)
    views = set()
    for p in ports:
        info = _query(p, "CLUSTER", "INFO")
        fields = dict(line.split(":", 1) for line in str(info).splitlines() if ":" in line)
        if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != str(SLOTS):
            return f"port {p} reports cluster_state:{fields.get('cluster_state')}, {fields.get('cluster_slots_ok')} slots ok"
        nodes = _parse_nodes(_query(p, "CLUSTER", "NODES"))
        if len(nodes) != len(ports):
            return f"port {p} knows {len(nodes)} of {len(ports)} nodes"
        views.add(tuple(sorted((n["port"], n["role"], n["primary_port"], n["slots"]) for n in nodes)))
        if len(views) > 1:
            return f"port {p} does not see the same roles and slots as port {ports[0]} yet"
    (view,) = views
    for port, role, primary_port, _ in view:
        if role == "replica":
            fields = _query(port, "INFO", "replication")
            if fields.get("master_link_status") != "up" or int(fields.get("master_port", 0)) != primary_port:
                return f"replica {port} is not linked to its primary {primary_port} yet"
    return ""


def _until(deadline: float, what: str, problem_of: Any) -> None:
    problem = ""
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


def _parse_nodes(text: str) -> list[dict[str, Any]]:
    """CLUSTER NODES as dicts: id, port, flags, role, primary_id, primary_port, slots (ranges)."""
    nodes = []
    for line in str(text).splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        flags = set(parts[2].split(","))
        ranges = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being imported or migrated: not served yet
                continue
            lo, _, hi = item.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        nodes.append({
            "id": parts[0],
            "port": int(address.rsplit(":", 1)[1]) if ":" in address and address.rsplit(":", 1)[1] else 0,
            "flags": flags,
            "role": "primary" if "master" in flags else "replica" if "slave" in flags else "?",
            "primary_id": parts[3] if parts[3] != "-" else None,
            "slots": tuple(_merge(ranges)),
        })  # fmt: skip
    ports = {n["id"]: n["port"] for n in nodes}
    for n in nodes:
        n["primary_port"] = ports.get(n["primary_id"], 0) if n["primary_id"] else 0
    return nodes


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _status(root: Path, state: dict[str, Any]) -> ClusterStatus:
    ports = _ports(state)
    nodes = None
    for p in ports:
        if _pid(root, p) is None:
            continue
        with contextlib.suppress(ServerError):
            nodes = [n for n in _parse_nodes(_query(p, "CLUSTER", "NODES")) if n["port"] in ports]
            break
    if nodes:
        primaries = [n for n in nodes if n["role"] == "primary"]
        primaries.sort(key=lambda n: (not n["slots"], n["slots"][:1], n["port"]))
        shards = tuple(
            ShardStatus(
                NodeStatus(n["port"], _pid(root, n["port"])),
                tuple(
                    NodeStatus(r["port"], _pid(root, r["port"]))
                    for r in sorted(nodes, key=lambda r: r["port"])
                    if r["role"] == "replica" and r["primary_id"] == n["id"]
                ),
                n["slots"],
            )
            for n in primaries
        )
    else:
        ranges = slot_ranges(len(state["shards"]))
        shards = tuple(
            ShardStatus(
                NodeStatus(s["primary"], _pid(root, s["primary"])),
                tuple(NodeStatus(r, _pid(root, r)) for r in s["replicas"]),
                (rng,),
            )
            for s, rng in zip(state["shards"], ranges)
        )
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    return ClusterStatus(url, shards, str(root), state["binary"])


# ---------------------------------------------------------------------------------------------
# State file


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "cluster.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(root: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((root / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServerError(f"{root / STATE_FILE} is unreadable ({exc}); remove the data dir to start afresh") from exc
    if state.get("version") != 1:
        raise ServerError(f"{root / STATE_FILE} was written by another facade version")
    return state


def _write_state(root: Path, state: dict[str, Any]) -> None:
    path = root / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)
