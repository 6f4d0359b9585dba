"""Local servers on this machine, behind one interface (what ``facade server`` calls).

    embedded()                               the broker clients use with no URL (a unix socket)
    start_sentinel(data_dir, replicas=2, sentinels=3, ...)   a primary, replicas and sentinels
    start_cluster(data_dir, shards=3, replicas_per_shard=0, ...)   a Redis Cluster
    status(data_dir=None)  stop(data_dir=None)  kind(data_dir)  describe_dir(data_dir)

``data_dir=None`` means the embedded broker; a data directory holds a Sentinel topology or a
cluster, told apart by its state file. Every status has ``kind`` ("embedded", "sentinel",
"cluster"), ``url`` (what clients use), ``running`` and ``as_json()``.

The modules: _procs.py (binary, ports, spawn, pid files, lock, state files, stop, shared by all;
``server_binary``, ``spawn_server``, ``ping``, ``read_pid`` and ``stop_pids`` are exported for
other supervisors, such as the benchmark's throwaway server), embedded.py, sentinel.py and
cluster.py (what each starts and how it links it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ServerError
from . import cluster, embedded, sentinel
from ._procs import NodeStatus, ping, read_pid, root_of, server_binary, spawn_server, stop_pids
from .cluster import ClusterStatus, ShardStatus
from .embedded import EmbeddedInfo
from .sentinel import TopologyStatus

__all__ = [
    "ClusterStatus",
    "EmbeddedInfo",
    "NodeStatus",
    "ShardStatus",
    "Status",
    "TopologyStatus",
    "cluster",
    "describe_dir",
    "embedded",
    "kind",
    "ping",
    "read_pid",
    "sentinel",
    "server_binary",
    "spawn_server",
    "start_cluster",
    "start_embedded",
    "start_sentinel",
    "status",
    "stop",
    "stop_pids",
]

Status = EmbeddedInfo | TopologyStatus | ClusterStatus
_KINDS = {"sentinel": sentinel, "cluster": cluster}


def kind(data_dir: str | os.PathLike[str]) -> str | None:
    """What ``data_dir`` holds: "sentinel" (a primary with replicas and sentinels, or a lone
    primary), "cluster", or None."""
    root = root_of(data_dir)
    for name, module in _KINDS.items():
        if (root / module.STATE_FILE).exists():
            return name
    return None


def start_embedded() -> EmbeddedInfo:
    """Start the embedded broker unless it runs (quietly); its status."""
    embedded.ensure(quiet=True)
    return embedded.status()


def start_sentinel(data_dir: str | os.PathLike[str], **options: Any) -> TopologyStatus:
    """Start (or restart) a Sentinel topology in ``data_dir``; options as facade.local.sentinel.start."""
    return sentinel.start(data_dir, **options)


def start_cluster(data_dir: str | os.PathLike[str], **options: Any) -> ClusterStatus:
    """Start (or restart) a Redis Cluster in ``data_dir``; options as facade.local.cluster.start."""
    return cluster.start(data_dir, **options)


def describe_dir(data_dir: str | os.PathLike[str]) -> str:
    """What ``data_dir`` holds, in words, when it holds no topology or cluster (for the error that
    says so): missing, a file, empty, the embedded broker's home, or which files."""
    root = Path(data_dir)
    if not root.exists():
        return f"{data_dir} does not exist"
    if not root.is_dir():
        return f"{data_dir} is a file, not a directory"
    names = sorted(p.name for p in root.iterdir())
    if not names:
        return f"{data_dir} is empty"
    if {"server.lock", "server.pid", "facade.sock"} & set(names) and "data" in names:
        return (
            f"{data_dir} holds the embedded broker's files (it is a FACADE_HOME, not a topology): run the "
            f"command without --data-dir, with FACADE_HOME={data_dir}"
        )
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    states = " or ".join(m.STATE_FILE for m in _KINDS.values())
    return f"{data_dir} holds no topology or cluster (no {states}); it has {shown}"


def status(data_dir: str | os.PathLike[str] | None = None) -> Status:
    """The embedded broker's status, or that of what ``data_dir`` holds (ServerError: nothing,
    saying what is there instead)."""
    if data_dir is None:
        return embedded.status()
    found = kind(data_dir)
    if found is None:
        root = Path(data_dir)
        fresh = not root.exists() or (root.is_dir() and not any(root.iterdir()))
        hint = f"; start a topology there with `facade server start --data-dir {data_dir}`" if fresh else ""
        raise ServerError(f"{describe_dir(data_dir)}{hint}")
    return _KINDS[found].status(data_dir)


def stop(data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Stop the embedded broker, or every process of what ``data_dir`` holds; whether anything ran.
    The data stays, and is reloaded on the next start."""
    if data_dir is None:
        return embedded.stop()
    found = kind(data_dir)
    return found is not None and _KINDS[found].stop(data_dir)
