"""What the harness needs from the SDK, and how it copes with a version that lacks some of it.

The consumer is moving to Kafka's model. The harness codes against that target and falls back,
here and only here, where the installed facade does not have a piece yet: options are passed only
if ``ConsumerConfig`` has them, ``FencedInstanceIdError`` and ``group_metadata()`` are looked up
by name, and an ``on_lost`` callback is given only if the constructor takes one.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import facade
from facade import Consumer, ConsumerConfig


class _Never(Exception):
    """Stands in for an error class this facade does not have: never raised, so never caught."""


FencedInstanceIdError: type[BaseException] = getattr(facade, "FencedInstanceIdError", _Never)


def config_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(ConsumerConfig)}


def consumer_options(
    *,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    group_instance_id: str | None,
    max_poll_interval_ms: int | None = None,
) -> dict[str, Any]:
    """Consumer options for a group member: earliest, no auto-commit (the member commits after
    each batch), and the session (and poll interval) it is given."""
    fields = config_fields()
    options: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms,
    }
    if group_instance_id:
        options["group_instance_id"] = group_instance_id
    if "enable_auto_commit" in fields:
        options["enable_auto_commit"] = False
    if max_poll_interval_ms is not None:
        options["max_poll_interval_ms"] = max_poll_interval_ms
    return {k: v for k, v in options.items() if k in fields}


def make_consumer(
    topics: list[str],
    group: str,
    url: str,
    options: dict[str, Any],
    on_assign: Callable[[set], Any],
    on_revoke: Callable[[set], Any],
    on_lost: Callable[[set], Any],
) -> Consumer:
    callbacks: dict[str, Any] = {"on_assign": on_assign, "on_revoke": on_revoke}
    if "on_lost" in inspect.signature(Consumer.__init__).parameters:
        callbacks["on_lost"] = on_lost
    return Consumer(topics, group, url, **callbacks, **options)


def group_identity(consumer: Consumer) -> tuple[str, int]:
    """(member id, generation) as the consumer reports them; generation -1 when it cannot."""
    metadata = getattr(consumer, "group_metadata", None)
    if metadata is not None:
        try:
            md = metadata()
            return str(md.member_id), int(md.generation_id)
        except (facade.FacadeError, AttributeError, TypeError, ValueError):
            pass
    return str(getattr(consumer, "member_id", "")), -1
