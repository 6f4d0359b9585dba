"""Checks a command makes before its work: that the broker answers, and that it keeps what is
written (a server that may evict keys would drop records without an error)."""

from __future__ import annotations

import click

from facade import Admin, FacadeError

__all__ = ["check_broker", "eviction_warning", "warn_if_evicting"]


def check_broker(url: str | None) -> None:
    """Fail fast, in one line, when the broker cannot be reached at all.

    Once running, clients ride out outages (reads retry for seconds, a consumer for
    reconnect_timeout_ms): right for a server restart, not for a typo in --url.
    """
    with Admin(url) as admin:
        admin.list_topics()


def eviction_warning(policy: str, maxmemory: int) -> str | None:
    """The warning for a server whose ``maxmemory-policy`` is ``policy``, or None when it never
    evicts (noeviction; "?" when the server would not say)."""
    if policy in ("noeviction", "?", ""):
        return None
    limit = f"{maxmemory} bytes" if maxmemory else "not set yet"
    return (
        f"the server's maxmemory-policy is {policy}: once it reaches maxmemory ({limit}) it evicts keys, "
        "and an evicted partition loses its records and offsets without an error; set "
        "maxmemory-policy noeviction on the server (CONFIG SET maxmemory-policy noeviction)"
    )


def warn_if_evicting(url: str | None) -> None:
    """One ``facade: warning:`` line on stderr when the server may evict what is written. Quiet
    when the server cannot be asked (an ACL without INFO, say): the write itself will tell."""
    try:
        with Admin(url) as admin:
            server = admin.describe_server()
    except FacadeError:
        return
    text = eviction_warning(server.maxmemory_policy, server.maxmemory)
    if text is not None:
        click.echo(f"facade: warning: {text}", err=True)
