"""The one ``error: ...`` line of a failed command, with a hint that fits the command.

The SDK's messages speak the SDK's language (``auto_create=True``, ``min_insync_replicas``); a
person at the command line needs the command's own options instead, and a hint that makes
sense for what they ran (``topics delete nope`` has nothing to create). This module turns a
FacadeError into that line, by the error's class and the fields it carries, never by its text.
"""

from __future__ import annotations

from facade import (
    Admin,
    FacadeError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    UnknownTopicError,
)

__all__ = ["message"]

# Commands that can create the topic they write to, and how.
_CREATES = {
    "produce": "or add --create to make it with 1 partition",
    "relay": "or add --create to make it with the partitions of SRC",
}
# Commands for which the missing topic is simply a typo or gone: no "create it".
_LOOKS_UP = {"topics delete", "topics describe", "topics alter", "dlq list", "dlq replay"}


def message(exc: FacadeError, command: str | None, url: str | None) -> str:
    """The text after ``error: `` for ``exc`` raised while running ``command`` ("topics
    delete", "produce", ...; None when unknown) against ``url``."""
    if isinstance(exc, UnknownTopicError) and exc.topic is not None:
        return _unknown_topic(exc.topic, command)
    if isinstance(exc, MessageTooLargeError) and exc.size is not None:
        return f"a message of {exc.size} bytes exceeds --max-message-bytes={exc.limit}; nothing was sent"
    if isinstance(exc, NotEnoughReplicasError):
        return _replicas(exc, url)
    return str(exc) or type(exc).__name__


def _unknown_topic(topic: str, command: str | None) -> str:
    text = f"topic {topic!r} does not exist"
    if command in _LOOKS_UP:
        return f"{text} (`facade topics list` shows the topics)"
    create = f"create it with `facade topics create {topic} --partitions N`"
    if command in _CREATES:
        return f"{text}; {create}, {_CREATES[command]}"
    return f"{text}; {create} (`facade topics list` shows the topics)"


def _replicas(exc: NotEnoughReplicasError, url: str | None) -> str:
    if exc.required is not None:
        head = (
            f"only {exc.confirmed} of the {exc.required} replicas --acks all waits for confirmed the write within "
            f"{exc.timeout_ms} ms, retried until the delivery timeout (30 s); what the primary has could be lost "
            "in a failover. Use --acks 1, or bring the replicas back"
        )
    else:
        head = str(exc)
    return f"{head}; {_replica_list(url)}"


def _replica_list(url: str | None) -> str:
    """What the primary says of its replicas, for an error about them (best effort)."""
    try:
        with Admin(url, reconnect_timeout_ms=2000) as admin:
            replicas = admin.describe_server().replicas
    except FacadeError:
        return "the primary could not be asked about its replicas"
    if not replicas:
        return "no replica is connected to the primary"
    parts = []
    for r in replicas:
        lag = f", {r.lag_s} s since its last acknowledgement" if r.lag_s is not None else ""
        parts.append(f"{r.address} ({r.state}{lag})")
    return f"replicas connected to the primary: {', '.join(parts)}"
