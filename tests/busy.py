"""A long script that holds a server (the server then answers BUSY to everyone else), for the tests
of what clients do meanwhile."""

from __future__ import annotations

import redis

# Spins for ARGV[1] ms of server time, writing nothing.
LONG_SCRIPT = """
local t = redis.call('TIME')
local stop = t[1] * 1000 + t[2] / 1000 + tonumber(ARGV[1])
repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 >= stop
return 1
"""


def refused_as_busy(r: redis.Redis) -> bool:
    """Whether ``r``'s server answers BUSY now."""
    try:
        r.get("probe")
    except redis.ResponseError as exc:
        return str(exc).startswith("BUSY")
    return False
