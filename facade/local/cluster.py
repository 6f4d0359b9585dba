"""Local Redis Cluster: K shards (a primary and R replicas each) on loopback ports.

    start(data_dir, shards=3, replicas_per_shard=0)  ->  ClusterStatus  (returns at cluster_state:ok)
    status(data_dir)                                 ->  ClusterStatus  (roles and slots as they are now)
    stop(data_dir)                                   ->  bool           (SIGTERM, then SIGKILL)

Every node runs the server binary facade uses (``$FACADE_SERVER_BINARY`` or the bundled Valkey;
facade/local/_procs.py starts, watches and stops the processes), daemonized, listening on 127.0.0.1 only, with
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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ServerError
from . import _procs
from ._procs import NodeStatus

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
BUS_PORT_OFFSET = 10000
"""Cluster bus port of a node started on a given base port: its port + this (as Redis's default)."""


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

    kind = "cluster"

    @property
    def running(self) -> bool:
        """Whether every node runs."""
        return all(n.pid is not None for s in self.shards for n in (s.primary, *s.replicas))

    def as_json(self) -> dict[str, Any]:
        """``{"url", "shards": [{"primary": {"port", "pid"}, "replicas": [...], "slots": [[lo, hi]...]}]}``."""
        return {"url": self.url, "shards": [s.as_json() for s in self.shards]}


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The 16384 slots cut into ``shards`` contiguous ranges as equal as possible."""
    _procs.check_count("shards", shards, 1, SLOTS)
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
    _procs.check_count("shards", shards, 1, MAX_SHARDS)
    _procs.check_count("replicas_per_shard", replicas_per_shard, 0, MAX_REPLICAS)
    root = _procs.root_of(data_dir)
    with _procs.lock(root / "cluster.lock"):
        state = _read_state(root)
        fresh = state is None
        if state is not None:
            _procs.check_restart(
                root, "cluster", _ports(state), [p for p in _ports(state) if _pid(root, p) is not None],
                f"{len(state['shards'])} shards and {len(state['shards'][0]['replicas'])} replicas per shard",
                f"{shards} shards and {replicas_per_shard} replicas per shard", port,
            )  # fmt: skip
        else:
            count = shards * (1 + replicas_per_shard)
            ports, buses = _pick_ports(port, count)
            primaries = ports[:shards]
            rest = iter(ports[shards:])
            state = {
                "version": _procs.STATE_VERSION,
                "binary": binary or _procs.server_binary(),
                "shards": [
                    {"primary": p, "replicas": [next(rest) for _ in range(replicas_per_shard)]} for p in primaries
                ],
                "bus": {str(p): b for p, b in zip(ports, buses)},
            }
        _procs.check_free([q for p in _ports(state) for q in (p, state["bus"][str(p)])])
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
    root = _procs.root_of(data_dir)
    hint = "; start one with facade.local.start_cluster / `facade server start`"
    return _status(root, _procs.stored_state(root / STATE_FILE, "cluster", hint))


def stop(data_dir: str | os.PathLike[str], timeout: float = 15.0) -> bool:
    """Stop every node (SIGTERM, which flushes the AOF and nodes.conf; SIGKILL after ``timeout``
    s). Returns whether anything was running. Idempotent; the data stays."""
    root = _procs.root_of(data_dir)
    with _procs.lock(root / "cluster.lock"):
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
        ports = _procs.pick_ports(base, count, room=BUS_PORT_OFFSET)
        return ports, [p + BUS_PORT_OFFSET for p in ports]
    picked = _procs.pick_ports(None, 2 * count)
    return picked[:count], picked[count:]


def _ports(state: dict[str, Any]) -> list[int]:
    return [s["primary"] for s in state["shards"]] + [r for s in state["shards"] for r in s["replicas"]]


def _dir(root: Path, port: int) -> Path:
    return root / f"node-{port}"


def _pid(root: Path, port: int) -> int | None:
    return _procs.node_pid(_dir(root, port))


def _spawn_node(root: Path, state: dict[str, Any], port: int) -> None:
    directory = _dir(root, port)
    with contextlib.suppress(FileNotFoundError):
        (directory / "server.pid").unlink()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-port", str(state["bus"][str(port)])]
    for key, value in NODE_SETTINGS.items():
        args += [f"--{key}", value]
    _procs.spawn_server(
        state["binary"], directory, args, pidfile=directory / "server.pid", logfile=directory / "server.log"
    )


def _wait_answers(root: Path, port: int, deadline: float) -> None:
    log = _dir(root, port) / "server.log"
    _procs.wait_until(
        deadline,
        f"the node on port {port} did not come up",
        lambda: "" if _procs.ping(port=port) else f"last log line: {_procs.log_tail(log)}",
    )


def _stop_all(root: Path, state: dict[str, Any], timeout: float) -> None:
    _procs.stop_pids([pid for pid in (_pid(root, p) for p in _ports(state)) if pid is not None], timeout)


# ---------------------------------------------------------------------------------------------
# Forming the cluster


_query = _procs.query


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
    _procs.wait_until(deadline, "the nodes did not all meet", lambda: _meet_problem(ports))
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
    _procs.wait_until(deadline, "the cluster did not become ready", lambda: _ready_problem(state))


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


def _read_state(root: Path) -> dict[str, Any] | None:
    return _procs.read_state(root / STATE_FILE)


def _write_state(root: Path, state: dict[str, Any]) -> None:
    _procs.write_state(root / STATE_FILE, state)
