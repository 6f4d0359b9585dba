"""Faster command packing for the gateway's Redis connections.

redis-py's asyncio connections pack commands in Python, argument by argument; a Produce of
thousands of records is an EVALSHA with two arguments per record, and that packing was the
largest cost after the record loops (docs/gateway.md, "Speed"). hiredis (a facade dependency
through ``redis[hiredis]``) packs a whole command in C; the blocking redis-py client already uses
it. Only the gateway's own connection pool is changed, by giving it a connection class whose
``pack_command`` calls hiredis: nothing global is patched.
"""

from __future__ import annotations

from typing import Any

__all__ = ["raw_stream_replies", "use_hiredis_packing"]


def raw_stream_replies(client: Any) -> None:
    """Have ``client`` return XRANGE / XREVRANGE / XREAD replies as the server sent them
    (``[[id, [field, value, ...]], ...]``, what scripts return too) instead of redis-py's dict per
    entry: Fetch packs them into record batches directly (facade.codec.decode reads both shapes)."""
    for command in ("XRANGE", "XREVRANGE", "XREAD"):
        client.set_response_callback(command, _raw)


def _raw(response: Any, **_options: Any) -> Any:
    return response


def _pack_command(self: Any, *args: Any) -> list[bytes]:
    import hiredis

    first = args[0]
    # "XINFO STREAM": the server wants two arguments.
    if (isinstance(first, str) and " " in first) or (isinstance(first, bytes) and b" " in first):
        args = (*first.split(), *args[1:])
    return [hiredis.pack_command(args)]


def use_hiredis_packing(client: Any) -> bool:
    """Make new connections of ``client`` (a single-server redis.asyncio.Redis) pack commands with
    hiredis. Returns whether it could (no hiredis, or a cluster client: left as it is)."""
    try:
        import hiredis

        hiredis.pack_command((b"PING",))
    except (ImportError, AttributeError):
        return False
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_class"):
        return False
    base = pool.connection_class
    pool.connection_class = type(f"Hiredis{base.__name__}", (base,), {"pack_command": _pack_command})
    return True
