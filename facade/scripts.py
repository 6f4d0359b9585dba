"""The Lua scripts in lua/: read once, registered per client, called by name.

Each script's KEYS/ARGV contract is the comment block at the top of its file (and in
docs/design.md). redis-py's ``Script`` / ``AsyncScript`` objects hold each script's SHA and run single
calls (EVALSHA, reloading on NOSCRIPT after a server restart or SCRIPT FLUSH); pipelines send
EVALSHA themselves and reload the same way (``Connection.pipeline``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from .errors import ServerError

NAMES = (
    "produce",
    "partition_init",
    "topic_register",
    "claim",
    "release",
    "fetch",
    "commit",
    "commit_many",
    "transact",
    "group_join",
    "group_heartbeat",
    "group_sync",
    "group_leave",
    "group_delete",
    "set_position",
)


def lua_dir() -> Path:
    """Where the .lua files are: ``facade/lua`` in an installed wheel, ``lua/`` in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if (candidate / "produce.lua").is_file():
            return candidate
    raise ServerError(f"facade's Lua scripts are missing (looked in {here / 'lua'}); reinstall facade")


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    if name not in NAMES:
        raise KeyError(name)
    return (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The scripts registered on one client (sync ``redis.Redis`` or ``redis.asyncio.Redis``).

    Attribute access gives the redis-py Script object: ``scripts.produce(keys=[...], args=[...],
    client=pipeline)``.
    """

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))
