"""Least-privilege Redis ACL users for facade: one rule set per role.

    from facade import acl
    acl.rules("producer")                    # ACL SETUSER rule tokens
    acl.acl_command("producer", "orders-api", "s3cret")
    # 'ACL SETUSER "orders-api" reset on ">s3cret" clearselectors resetkeys resetchannels -@all ...'

or from a shell: ``facade acl print --role producer --user orders-api | redis-cli``.

Roles (a user that needs several gets them all: ``rules("consumer", "producer")``):

``producer``
    Send records (``Producer``: idempotent sequences, ``dedup_id``, retention, acks=0/1/"all";
    Kafka producers through ``facade gateway`` authenticated as this user, idempotent too).
    Reads topic configs; cannot create, alter or delete topics, cannot read records, cannot touch
    consumer groups. ``auto_create=True`` creates topics, which is the admin's right: give such a
    producer ``rules("producer", "admin")``, or create its topics beforehand.
``consumer``
    Read as a member of a consumer group (``Consumer``: join, heartbeat, leave, poll, commit,
    seek, committed, offsets_for_times; Kafka consumers' Fetch through ``facade gateway``), and, as in Kafka where it takes READ on the group, reset
    the offsets of a group that has no live member (``Admin.reset_offsets``). Cannot append, trim
    or delete records, create or delete topics, delete groups, or list other groups. A consumer
    that also writes records (``commit(outputs=...)``, dead-lettering with ``max_deliveries``,
    ``relay``) needs ``rules("consumer", "producer")``, plus ``admin`` if the dead-letter topic
    ``<topic>.dlq`` does not exist yet.
``admin``
    Manage topics and groups (``Admin``: create, list, describe, alter, delete topics; list,
    describe, reset offsets of, delete groups; list dead letters; describe the server). Cannot
    produce or consume;
    ``dlq_replay`` re-sends records, so it needs ``rules("admin", "producer")``.

How the rules are built, and why:

- facade runs Lua scripts with EVALSHA, and Redis checks every ``redis.call`` inside a script
  against the caller's ACL (command and keys), so a role lists the commands its scripts call as
  well as those the SDK sends. EVALSHA itself needs read-write access to every key it is given.
  Loading a script (SCRIPT LOAD) cannot widen a user's rights: a script can do nothing its
  caller could not do directly.
- Redis does not undo a script's earlier writes when a later call in it is refused. So each role
  is a set of **selectors** ``(keys commands)``: a command is allowed only on the keys of a
  selector that also allows the command. Write commands are granted on exactly the keys the
  role writes with them (a consumer may HSET owner tokens and group state, but HSETNX only on
  the group registry and nothing on the topic registry). A script a role is not meant to run is
  then refused before it starts (EVALSHA's key check) or at its first write, never halfway (one
  exception: ``partition_init`` run by a consumer, through ``Admin.alter_partitions``, creates
  the new partition's empty stream before it is refused).
- Keyless commands (PING, TIME, SCRIPT LOAD, ...) are allowed at the top level.

Refusals surface as :class:`facade.PermissionDeniedError` (a refusal inside a script is reported
by the server without the NOPERM code, and comes out as a plain BrokerError until
``errors.from_redis`` recognises it). Needs Redis 7.0+ or Valkey 7.2+
(selectors, read-only/write-only key patterns ``%R~``/``%W~``, subcommand rules).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import keys
from .errors import ConfigError

__all__ = ["LATEST", "ROLES", "acl_command", "rules"]

ROLES = ("producer", "consumer", "admin")
LATEST = (7, 2)
"""The server version rules() assumes by default: Redis 7.2 or later, or any Valkey."""

_P = keys.PREFIX
_TOPICS = keys.TOPICS  # facade:{meta}:topics
_GROUPS = keys.GROUPS  # facade:{meta}:groups

# Partition keys of any topic, and coordination keys of any group (see facade/keys.py). The
# brace is literal in a Redis glob, so "{*}" only matches a hash tag.
_LOG, _OWN, _DONE = f"{_P}:{{*}}:log", f"{_P}:{{*}}:own", f"{_P}:{{*}}:done"
_OFF, _DLV = f"{_P}:{{*}}:off", f"{_P}:{{*}}:dlv"
_PRODUCER_STATE = (f"{_P}:{{*}}:pid", f"{_P}:{{*}}:pidx", f"{_P}:{{*}}:dedup", f"{_P}:{{*}}:dedupx",
                   f"{_P}:{{*}}:maxts")  # fmt: skip
_MAXTS = _PRODUCER_STATE[-1]
_MIGRATION = (f"{_P}:{{*}}:mig", f"{_P}:{{*}}:old", f"{_P}:{{*}}:layout")
_GROUP_KEYS = (f"{_P}:{{g/*}}:state", f"{_P}:{{g/*}}:members", f"{_P}:{{g/*}}:deadlines",
               # Kafka clients' groups (facade gateway, kafka_* scripts): members' joins and
               # assignments, member ids handed out.
               f"{_P}:{{g/*}}:kafka", f"{_P}:{{g/*}}:pending")  # fmt: skip


def _rw(*patterns: str) -> tuple[str, ...]:
    """Read-write key rules for ``patterns``."""
    return tuple("~" + p for p in patterns)


# Keyless commands every role sends.
_TOP_LEVEL = (
    # redis-py: PING (health checks), SELECT (a /db in the URL). AUTH and HELLO need no rule.
    # CLIENT SETINFO (sent on connect) is added for servers that know it: see rules().
    "+ping", "+select",
    # Scripts run by EVALSHA; after a restart or SCRIPT FLUSH a NOSCRIPT reply makes the client
    # SCRIPT LOAD them and send the call again. EVALSHA has keys, so it is granted in each role's
    # selectors; EVAL is never used.
    "+script|load",
    # The server clock: scripts that stamp or expire something call TIME.
    "+time",
    # Redis Cluster (harmless elsewhere): the client reads the slot map (CLUSTER SLOTS) and
    # command key positions (COMMAND, COMMAND GETKEYS), and sends ASKING during resharding.
    "+cluster|slots", "+command", "+command|getkeys", "+asking",
    # acks="all" on a cluster: each shard's configured replicas (facade/_async/replication.py).
    "+cluster|nodes",
)  # fmt: skip

# Reading topic configs (partition count, retention), read only: HGET one, HGETALL all (the
# metadata Kafka clients also get; `facade produce` and `consume` list topics to check the URL).
_READ_TOPICS = ((f"%R~{_TOPICS}",), ("+hget", "+hgetall"))
# acks="all" on one server: the replicas seen attached (facade/_async/replication.py), read, and
# added to by producers; an admin forgets one (HDEL) and lists them.
_REPLICAS = keys.REPLICAS

_PRODUCER = (
    _READ_TOPICS,
    ((f"~{_REPLICAS}",), ("+hkeys", "+hset")),
    # The produce script, on each partition's stream, idempotent-producer state (:pid, :pidx),
    # dedup ids (:dedup, :dedupx) and the largest timestamp (:maxts); not the consumer keys
    # (:own, :done, :dlv), no DEL.
    (
        _rw(_LOG, *_PRODUCER_STATE),
        (
            "+evalsha",
            # The topic still exists; where the next record goes (XINFO STREAM: the last
            # generated ID; it also shows the first and last record, the one way a producer
            # sees records); append with explicit IDs; retention trims.
            "+exists", "+xadd", "+xtrim", "+xinfo|stream",
            # Ack-aware retention reads how far each group got (XINFO GROUPS) and the length.
            "+xinfo|groups", "+xlen",
            # Producer sequences and dedup ids, and their expiry.
            "+hget", "+hset", "+hdel", "+zadd", "+zrem", "+zscore", "+zrangebyscore", "+zcard", "+zpopmin",
            # The largest timestamp (:maxts).
            "+get", "+set",
        ),
    ),
    # produce.lua is also given the committed offsets (:off) and reads them for ack-aware
    # retention: EVALSHA needs every key of a call in one selector, and HGET is all it may do there.
    (_rw(_LOG, *_PRODUCER_STATE, _OFF), ("+evalsha", "+hget")),
    # Kafka clients through `facade gateway` (SASL/PLAIN as this user): InitProducerId hands out
    # producer ids from one counter.
    ((f"~{keys.PRODUCER_IDS}",), ("+incr",)),
)  # fmt: skip
# acks="all": INFO replication (how many replicas) and WAIT after the writes (both keyless).
# acks_fsync adds WAITAOF (rules(..., acks_fsync=True)).
_PRODUCER_TOP = ("+info", "+wait")

_CONSUMER = (
    _READ_TOPICS,
    # Registering the group (for `facade groups list`): HSETNX on the group registry, write only,
    # so other groups stay unlisted.
    ((f"%W~{_GROUPS}",), ("+hsetnx",)),
    # Partition streams (read, and their Redis consumer groups), owner tokens (:own), committed
    # offsets (:off), processed marks (:done), delivery state (:dlv), group coordination (state,
    # members, session deadlines). No XADD, XTRIM, XDEL, DEL or XGROUP DESTROY: a consumer never
    # writes or deletes records or groups.
    (
        _rw(_LOG, _OWN, _OFF, _DONE, _DLV, *_GROUP_KEYS),
        (
            "+evalsha",
            # claim / release / fetch / commit / set_position (seek): owner tokens, committed
            # offsets, marks, delivery state, the stream's consumer group (its read position).
            "+exists", "+hget", "+hset", "+hdel", "+xgroup|create", "+xgroup|setid", "+xreadgroup",
            "+xinfo|groups", "+xinfo|stream", "+hlen",
            # group_join / group_heartbeat / group_sync / group_leave: members, deadlines, generation.
            "+hexists", "+hmget", "+hgetall", "+hincrby", "+zadd", "+zrem", "+zscore", "+zrangebyscore",
            # poll's blocking wait (XREAD BLOCK), offsets_for_times and committed().
            "+xread", "+xrange", "+xrevrange",
            # Reads of new records fenced by WATCH on the owner keys (guarded.GuardedReader).
            "+watch",
        ),
    ),
)  # fmt: skip
# ListOffsets MAX_TIMESTAMP through `facade gateway` (a consumer's request): the partition's
# largest timestamp, read only.
_CONSUMER = (*_CONSUMER, ((f"%R~{_MAXTS}",), ("+get",)))
# The guarded reader's transaction around its commits and XREADGROUP (keyless commands).
_CONSUMER_TOP = ("+multi", "+exec", "+unwatch")

_ADMIN = (
    # Every facade key: read it, delete it, and manage streams' consumer groups. No XADD or
    # XREADGROUP (no producing or consuming), and no hash/zset writes except below, so a
    # consumer's or producer's script run by an admin is refused at its first write.
    (
        _rw(f"{_P}:*"),
        (
            "+evalsha",
            # Topic and group registries: read, list; group state for describe.
            "+hget", "+hgetall", "+hkeys", "+hexists", "+hmget",
            # partition_init: EXISTS, XGROUP CREATE ... MKSTREAM then DESTROY (an empty stream).
            # delete topic: DEL of each partition's keys; delete group: group_delete (ZCOUNT, DEL)
            # and XGROUP DESTROY on each stream.
            "+exists", "+del", "+xgroup|create", "+xgroup|destroy", "+zcount",
            # describe topic / group: lengths, ends, groups, committed offsets, live members.
            "+xlen", "+xrange", "+xrevrange", "+xinfo|groups", "+xinfo|stream", "+zrangebyscore",
            # reset offsets: move the group's read position.
            "+xgroup|setid",
            # delete records (trim_before), and dlq_replay trims replayed dead letters (re-sending
            # them needs the producer role).
            "+xtrim", "+xdel",
            # topics migrate: the old layout's pending lists, and dropping keys without blocking.
            "+xpending", "+unlink",
        ),
    ),
    # Hash writes only where admin operations make them: register/alter/unregister topics
    # (topic_register HSET, delete HDEL), register/unregister groups (HSETNX, HDEL), a reset's
    # committed offsets (HSET :off), and drop a deleted group's state on each partition (HDEL
    # :own, :off, :done, :dlv).
    (_rw(_TOPICS, _GROUPS, _OWN, _OFF, _DONE, _DLV), ("+hset", "+hsetnx", "+hdel")),
    # `facade server replicas [--forget ADDR]`: the replicas acks="all" waits for on one server.
    (_rw(_REPLICAS), ("+hkeys", "+hdel")),
    # A reset locks the group against joins (group_lock), after ending the sessions of crashed
    # members (removing them starts a new generation). Writes confined key by key: the lock and
    # generation in the state hash, removals only in members and deadlines (no HSET there, no
    # ZADD: a consumer's group_join run by an admin is refused at its first write).
    (_rw(*_GROUP_KEYS), ("+evalsha", "+hget", "+hlen", "+zrangebyscore")),
    (_rw(_GROUP_KEYS[0]), ("+hset", "+hdel", "+hincrby")),
    (_rw(_GROUP_KEYS[1]), ("+hdel",)),
    (_rw(_GROUP_KEYS[2]), ("+zrem",)),
    # `facade topics migrate` (a topic of the older layout): the dense copy is written with XADD
    # on :mig keys only, the marker with SET; topic_migrate renames the old stream away and the
    # copy into its place. (Reads, UNLINK, XPENDING and EVALSHA: the first selector.)
    (_rw(*_MIGRATION), ("+xadd", "+set")),
    (_rw(_LOG, *_MIGRATION), ("+rename",)),
)  # fmt: skip

# Admin.describe_server (memory, its limit and eviction policy, replicas): read by the dashboard
# and by `facade topics create`, which warns about a server that may evict what is written.
_ADMIN_TOP = ("+info",)

_ROLES = {
    "producer": (_PRODUCER, _PRODUCER_TOP),
    "consumer": (_CONSUMER, _CONSUMER_TOP),
    "admin": (_ADMIN, _ADMIN_TOP),
}


def _roles(role: str | Iterable[str]) -> list[str]:
    chosen = [role] if isinstance(role, str) else list(role)
    if not chosen:
        raise ConfigError(f"give at least one role: {', '.join(ROLES)}")
    for r in chosen:
        if r not in _ROLES:
            raise ConfigError(f"unknown role {r!r}: use {', '.join(ROLES)}")
    return list(dict.fromkeys(chosen))


def _version(server_version: object) -> tuple[int, ...]:
    if server_version is None:
        return LATEST
    if isinstance(server_version, str):
        parts = server_version.strip().split(".")
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ConfigError(f"bad server version {server_version!r}: write it like 7.2 or 7.0.15")
        server_version = tuple(int(p) for p in parts)
    if (
        not isinstance(server_version, tuple)
        or not server_version
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in server_version)
    ):
        raise ConfigError(
            f"server_version must be a tuple like (7, 2) or a string like '7.2', got {server_version!r}"
        )
    if server_version < (7, 0):
        raise ConfigError(
            f"facade's ACL rules need Redis 7.0+ or Valkey 7.2+ (ACL selectors), not {'.'.join(map(str, server_version))}"
        )
    return server_version


def rules(
    *roles: str, acks_fsync: bool = False, server_version: tuple[int, ...] | str | None = None
) -> list[str]:
    """The ``ACL SETUSER`` rule tokens for a user with ``roles`` (one or more of :data:`ROLES`).

    The tokens start from nothing (``clearselectors``, ``resetkeys``, ``resetchannels``,
    ``-@all``), so applying them to an existing user replaces all its rights (not its password
    or on/off state). Each selector is one token, ``"(keys commands)"``.

    ``server_version`` (Redis numbering, e.g. ``(7, 0)`` or ``"7.0"``; any Valkey counts as
    7.2+; default :data:`LATEST`): servers before 7.2 refuse rules for commands they do not have,
    so CLIENT SETINFO (sent by redis-py on connect) is left out for them. ``acks_fsync=True``
    adds WAITAOF, for producers with ``acks_fsync`` (Redis 7.2+ / Valkey 8+).
    """
    chosen = _roles(roles)
    version = _version(server_version)
    top = list(_TOP_LEVEL)
    if version >= (7, 2):
        # Without it the refusal is harmless (redis-py ignores it) but adds to ACL LOG on each connect.
        top.append("+client|setinfo")
    selectors: list[str] = []
    for r in chosen:
        role_selectors, role_top = _ROLES[r]
        top += role_top
        selectors += ["(" + " ".join((*k, *c)) + ")" for k, c in role_selectors]
    if acks_fsync:
        if version < (7, 2):
            raise ConfigError("acks_fsync uses WAITAOF, which needs Redis 7.2+ or Valkey 8+")
        top.append("+waitaof")
    return ["clearselectors", "resetkeys", "resetchannels", "-@all", *_dedupe(top), *_dedupe(selectors)]


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def quote(token: str) -> str:
    """``token`` as one redis-cli argument: double-quoted, with ``\\``, ``"`` and every
    non-printable or non-ASCII byte escaped (``\\xHH`` of its UTF-8 bytes)."""
    out = []
    for b in token.encode("utf-8"):
        if b in b'\\"':
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
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

    The user name, the password and each selector are quoted for redis-cli, so any characters
    are safe. Connect with ``redis://USER:PASSWORD@host:port`` (percent-encode special characters).
    """
    chosen = _roles(role)
    if not isinstance(user, str) or not user:
        raise ConfigError("the ACL user name must be a non-empty string")
    if any(c.isspace() or not c.isprintable() for c in user):
        raise ConfigError(f"the ACL user name {user!r} must not contain spaces or control characters")
    if not isinstance(password, str) or not password:
        raise ConfigError("the ACL password must be a non-empty string")
    tokens = ["ACL", "SETUSER", quote(user), "reset", "on", quote(">" + password)]
    for token in rules(*chosen, acks_fsync=acks_fsync, server_version=server_version):
        tokens.append(quote(token) if " " in token else token)
    return " ".join(tokens)
