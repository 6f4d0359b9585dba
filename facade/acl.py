"""Least-privilege Redis ACL users for facade: one rule set per role.

    from facade import acl
    acl.rules("producer")                       # ACL SETUSER rule tokens
    acl.acl_command("producer", "orders-api", "s3cret")
    # 'ACL SETUSER orders-api reset on ">s3cret" resetkeys %R~facade:{meta}:topics ...'

Roles (combine them for a user that needs several: ``rules("consumer", "producer")``):

``producer``
    Send records (``Producer``: idempotent sequences, ``dedup_id``, retention trims, acks="all").
    Reads topic configs; cannot create, alter or delete topics, cannot read records, and cannot
    touch consumer groups. ``auto_create=True`` creates topics, which is the admin's right: give
    such a producer ``rules("producer", "admin")``, or create its topics beforehand.
``consumer``
    Read as a member of a consumer group (``Consumer``: join, heartbeat, leave, poll, commit,
    seek, committed, offsets_for_times, pause/resume). Cannot append records, trim or delete
    anything, create topics, or list other groups. A consumer that also writes records
    (``commit(outputs=...)``, dead-lettering with ``max_deliveries``, ``relay``) needs
    ``rules("consumer", "producer")``, plus ``admin`` if the dead-letter topic ``<topic>.dlq``
    does not exist yet.
``admin``
    Manage topics and groups (``Admin``: create, list, describe, alter, delete topics; list,
    describe, reset offsets of, delete groups; list dead letters). Cannot produce or consume;
    ``dlq_replay`` re-sends records, so it needs ``rules("admin", "producer")``.

Why these exact commands: facade runs its Lua scripts with EVALSHA, and Redis checks every
``redis.call`` inside a script against the caller's ACL (commands and keys), and EVALSHA itself
requires read-and-write access to every key it is given. So each role lists the commands its
scripts call as well as those the SDK sends directly, and has read-write access to the keys of
the scripts it runs. Loading a script (SCRIPT LOAD) cannot widen a user's rights for the same
reason: a script can do nothing its caller could not do directly.

What is refused surfaces as :class:`facade.PermissionDeniedError`; a forbidden write is refused
before the script changes anything. Needs Redis 7.0+ or Valkey 7.2+ (read-only key patterns
``%R~``, subcommand rules ``+xinfo|groups``).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import keys
from .errors import ConfigError

__all__ = ["ROLES", "acl_command", "rules"]

ROLES = ("producer", "consumer", "admin")
LATEST = (7, 2)
"""The server version rules() assumes by default: Redis 7.2+ or any Valkey."""

_P = keys.PREFIX

# Every role: what redis-py sends on each connection, and how facade runs its scripts.
_COMMON = (
    # redis-py: PING (health checks every 30 s), SELECT (a /db in the URL). AUTH and HELLO need no
    # rule. (CLIENT SETINFO, sent on connect, is added for servers that know it: see rules().)
    "+ping", "+select",
    # facade's Lua scripts through redis-py's Script: EVALSHA, and after a restart or SCRIPT FLUSH
    # SCRIPT EXISTS + SCRIPT LOAD (before pipelines) or SCRIPT LOAD on NOSCRIPT. No EVAL.
    "+evalsha", "+script|load", "+script|exists",
    # The server clock: every script that stamps or expires something calls TIME.
    "+time",
)  # fmt: skip

_PRODUCER_KEYS = (
    # Topic configs (partition count, retention): read only, so no topic can be created,
    # altered or deleted.
    f"%R~{_P}:{{meta}}:topics",
    # Per partition, what the produce script touches: the stream, idempotent-producer state
    # (:pid, :pidx) and dedup ids (:dedup, :dedupx). Not :own/:done (consumer groups).
    f"~{_P}:{{*}}:log", f"~{_P}:{{*}}:pid", f"~{_P}:{{*}}:pidx", f"~{_P}:{{*}}:dedup", f"~{_P}:{{*}}:dedupx",
)  # fmt: skip
_PRODUCER_COMMANDS = (
    # Topic lookup (HGET); produce.lua: EXISTS (topic still there), XADD, then XTRIM (retention).
    "+hget", "+exists", "+xadd", "+xtrim",
    # produce.lua, retention that spares unacknowledged records: how far each group has read
    # (XINFO GROUPS, XPENDING summary) and the stream length. Group names and pending IDs, not
    # records: a producer still cannot read what others sent.
    "+xinfo|groups", "+xpending", "+xlen",
    # produce.lua, idempotence and dedup ids: sequence state and its expiry.
    "+hset", "+hdel", "+zadd", "+zrem", "+zscore", "+zrangebyscore", "+zcard", "+zpopmin",
    # acks="all": INFO replication (how many replicas) and WAIT after the writes. acks_fsync
    # (WAITAOF, Redis 7.2+ / Valkey 8+) is added by rules(..., acks_fsync=True).
    "+info", "+wait",
)  # fmt: skip

_CONSUMER_KEYS = (
    f"%R~{_P}:{{meta}}:topics",
    # HSETNX registers the group for `facade groups list`; write only: other groups stay unlisted.
    f"%W~{_P}:{{meta}}:groups",
    # Per partition: the stream (read, and its Redis consumer group), the owner tokens (:own) and
    # the processed marks (:done). Not the producer state.
    f"~{_P}:{{*}}:log", f"~{_P}:{{*}}:own", f"~{_P}:{{*}}:done",
    # Group coordination: generation and assignment, members, session deadlines.
    f"~{_P}:{{g/*}}:state", f"~{_P}:{{g/*}}:members", f"~{_P}:{{g/*}}:deadlines",
)  # fmt: skip
_CONSUMER_COMMANDS = (
    # Topic lookup, group registration; owner tokens (claim, release, fetch, commit); marks.
    "+hget", "+hsetnx", "+hset", "+hdel",
    # group_join / group_heartbeat / group_leave / group_sync: members, deadlines, generation.
    "+hexists", "+hmget", "+hgetall", "+hincrby", "+zadd", "+zrem", "+zscore", "+zrangebyscore",
    # claim / fetch / commit / set_position (seek): the stream's consumer group. No XADD, XTRIM,
    # XDEL or DEL: a consumer never writes or deletes records.
    "+exists", "+xgroup|create", "+xgroup|setid", "+xreadgroup", "+xack", "+xpending",
    "+xinfo|groups", "+xinfo|stream",
    # poll's blocking wait (XREAD BLOCK), offsets_for_times and committed() (XRANGE, XREVRANGE).
    "+xread", "+xrange", "+xrevrange",
)  # fmt: skip

_ADMIN_KEYS = (
    # Every facade key: topics are created and deleted, groups reset and deleted.
    f"~{_P}:*",
)
_ADMIN_COMMANDS = (
    # Topic and group registries: create (HEXISTS, topic_register: HGET, HSET), list (HGETALL,
    # HKEYS), delete (HDEL); group state for describe (HMGET, HGETALL) and resets (HSETNX).
    "+hget", "+hgetall", "+hkeys", "+hexists", "+hmget", "+hset", "+hsetnx", "+hdel",
    # partition_init: EXISTS, XGROUP CREATE ... MKSTREAM then DESTROY (an empty stream); delete
    # topic: DEL of each partition's keys; delete group: group_delete (ZCOUNT, DEL), XGROUP DESTROY.
    "+exists", "+del", "+xgroup|create", "+xgroup|destroy", "+zcount",
    # describe topic / group: lengths, ends, groups, pending, live members (ZRANGEBYSCORE).
    "+xlen", "+xrange", "+xrevrange", "+xinfo|groups", "+xinfo|stream", "+xpending", "+zrangebyscore",
    # reset offsets (set_position): move the group, acknowledge what lies before the new position.
    "+xgroup|setid", "+xack",
    # dlq_replay removes replayed dead letters (re-sending them needs the producer role).
    "+xdel",
)  # fmt: skip

_ROLES = {
    "producer": (_PRODUCER_KEYS, _PRODUCER_COMMANDS),
    "consumer": (_CONSUMER_KEYS, _CONSUMER_COMMANDS),
    "admin": (_ADMIN_KEYS, _ADMIN_COMMANDS),
}


def _roles(role: str | Iterable[str]) -> list[str]:
    chosen = [role] if isinstance(role, str) else list(role)
    if not chosen:
        raise ConfigError(f"give at least one role: {', '.join(ROLES)}")
    for r in chosen:
        if r not in _ROLES:
            raise ConfigError(f"unknown role {r!r}: use {', '.join(ROLES)}")
    return chosen


def _version(server_version: object) -> tuple[int, ...]:
    if server_version is None:
        return LATEST
    if isinstance(server_version, str):
        parts = server_version.strip().split(".")
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ConfigError(f"bad server version {server_version!r}: write it like 7.2 or 7.0.15")
        server_version = tuple(int(p) for p in parts)
    if not isinstance(server_version, tuple) or not all(isinstance(p, int) for p in server_version):
        raise ConfigError(f"server_version must be a tuple like (7, 2) or a string like '7.2', got {server_version!r}")
    if server_version < (7, 0):
        raise ConfigError(
            f"facade's ACL rules need Redis 7.0+ or Valkey 7.2+ (read-only key patterns %R~), not {server_version}"
        )
    return server_version


def rules(*roles: str, acks_fsync: bool = False, server_version: tuple[int, ...] | str | None = None) -> list[str]:
    """The ``ACL SETUSER`` rule tokens for a user with ``roles`` (one or more of :data:`ROLES`).

    The tokens start from nothing (``resetkeys``, ``resetchannels``, ``-@all``), so applying them
    to an existing user replaces its key and command rights (not its password or on/off state).

    ``server_version`` (Redis numbering, e.g. ``(7, 0)`` or ``"7.0"``; any Valkey counts as 7.2+;
    default: 7.2 or later): servers before 7.2 refuse rules for commands they do not have, so
    CLIENT SETINFO (sent by redis-py on connect) is left out for them. ``acks_fsync=True`` adds
    WAITAOF, for producers with ``acks_fsync`` (Redis 7.2+ / Valkey 8+).
    """
    chosen = _roles(roles)
    version = _version(server_version)
    key_rules: list[str] = []
    commands: list[str] = list(_COMMON)
    if version >= (7, 2):
        # Without it the refusal is harmless (redis-py ignores it) but fills ACL LOG.
        commands.append("+client|setinfo")
    for r in chosen:
        k, c = _ROLES[r]
        key_rules += k
        commands += c
    if acks_fsync:
        if version < (7, 2):
            raise ConfigError("acks_fsync uses WAITAOF, which needs Redis 7.2+ or Valkey 8+")
        commands.append("+waitaof")
    return ["resetkeys", *_dedupe(key_rules), "resetchannels", "-@all", *_dedupe(commands)]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def quote(token: str) -> str:
    """``token`` as one redis-cli argument: double-quoted, with ``\\``, ``"`` and every
    non-printable or non-ASCII byte escaped (``\\xHH`` of its UTF-8 bytes)."""
    out = []
    for b in token.encode("utf-8"):
        c = chr(b)
        if c in '\\"':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


def acl_command(
    role: str | Iterable[str],
    user: str,
    password: str,
    *,
    acks_fsync: bool = False,
    server_version: tuple[int, ...] | str | None = None,
) -> str:
    """A one-line ``ACL SETUSER`` for redis-cli (at its prompt, or piped: ``... | redis-cli``)
    creating or redefining ``user`` with ``password`` and the rules of ``role`` (a role name or
    several). ``reset`` first: whatever the user could do before is replaced. ``acks_fsync`` and
    ``server_version`` are those of :func:`rules`.

    The user name and the password are quoted for redis-cli, so any characters are safe. Connect
    with ``redis://USER:PASSWORD@host:port`` (percent-encode special characters in the URL).
    """
    chosen = _roles(role)
    if not isinstance(user, str) or not user:
        raise ConfigError("the ACL user name must be a non-empty string")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in user):
        raise ConfigError(f"the ACL user name {user!r} must not contain spaces or control characters")
    if not isinstance(password, str) or not password:
        raise ConfigError("the ACL password must be a non-empty string")
    tokens = ["ACL", "SETUSER", quote(user), "reset", "on", quote(">" + password)]
    tokens += rules(*chosen, acks_fsync=acks_fsync, server_version=server_version)
    return " ".join(tokens)
