"""Helpers for the Redis Cluster tests: a plain client per node, and moving a slot between shards
the way ``redis-cli --cluster reshard`` does (there is no redis-cli here).

Importable by test modules: ``from cluster_helpers import migrate_slot, node``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def node(port: int) -> redis.Redis:
    """A client for one node (no retries); the caller closes it (``with node(p) as r``)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0))


def node_id(port: int) -> str:
    with node(port) as r:
        return r.execute_command("CLUSTER", "MYID").decode()


def slot_owner(ports: list[int], slot: int) -> int:
    """Port of the primary serving ``slot``, as the node on ``ports[0]`` sees it."""
    with node(ports[0]) as r:
        for lo, hi, primary, *_ in r.execute_command("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                return int(primary[1])
    raise AssertionError(f"slot {slot} is not served")


def migrate_slot(
    slot: int,
    source: int,
    target: int,
    primaries: list[int],
    *,
    keys_per_step: int = 1,
    pause_s: float = 0.0,
    during: Callable[[], None] | None = None,
) -> int:
    """Move ``slot`` from the primary on port ``source`` to the one on ``target``: SETSLOT
    IMPORTING / MIGRATING, MIGRATE the keys ``keys_per_step`` at a time (``pause_s`` between
    steps, calling ``during()`` once the slot is migrating), then SETSLOT NODE on the target, the
    source and every other primary. Returns how many keys moved."""
    source_id, target_id = node_id(source), node_id(target)
    moved = 0
    with node(source) as src, node(target) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        if during is not None:
            during()
        while True:
            names = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, keys_per_step)
            if not names:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *names)
            moved += len(names)
            if pause_s:
                time.sleep(pause_s)
        for port in [target, source, *(p for p in primaries if p not in (source, target))]:
            with node(port) as r:
                r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return moved
