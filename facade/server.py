"""The embedded broker's functions under the names they had before facade.local existed.

New code imports facade.local (one interface for every local server); these names stay so that
code written against facade.server keeps working.
"""

from __future__ import annotations

from .local._procs import ping, server_binary, spawn_server
from .local.embedded import EmbeddedInfo, facade_home
from .local.embedded import ensure as ensure_embedded
from .local.embedded import status as embedded_status
from .local.embedded import stop as stop_embedded

__all__ = [
    "EmbeddedInfo",
    "embedded_status",
    "ensure_embedded",
    "facade_home",
    "ping",
    "server_binary",
    "spawn_server",
    "stop_embedded",
]
