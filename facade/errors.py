"""Every error facade raises, under one root.

    FacadeError
    ├── ConfigError                  bad argument, name, size, URL or option (fix the call)
    │   ├── InvalidNameError         topic or group name outside [A-Za-z0-9._-]{1,249}
    │   ├── InvalidUrlError          a URL facade cannot use
    │   ├── UnsupportedError         valid, but not supported by this version or server
    │   ├── MessageTooLargeError     a record over max_message_bytes (nothing was sent)
    │   └── SerializationError       a key/value serializer failed or returned no bytes (nothing was sent)
    ├── DeserializationError         a record's key/value deserializer failed (that record only; fail() it)
    ├── TopicError
    │   ├── UnknownTopicError        the topic does not exist (create it, or auto_create=True)
    │   └── TopicExistsError         create of a topic that already exists
    ├── OutOfOrderSequenceError      the broker refused an idempotent batch's sequence
    ├── OffsetOutOfRangeError        an offset outside the partition's records, auto_offset_reset "none"
    ├── GroupError
    │   ├── CommitFailedError        this member no longer owns the partition (fenced); rejoin
    │   ├── FencedInstanceIdError    a newer process with this group_instance_id took over; stop
    │   ├── RebalanceInProgressError the group is moving partitions; poll again
    │   └── UnknownMemberError       the coordinator no longer knows this member (expired)
    ├── BrokerError                  the server refused or failed a command
    │   ├── ConnectionFailedError    nothing listening, refused, DNS, TLS handshake   (retriable)
    │   ├── AuthenticationError      wrong user or password
    │   ├── PermissionDeniedError    an ACL rule forbids the command or key
    │   ├── OutOfMemoryError         server at maxmemory with noeviction               (retriable)
    │   ├── ReadOnlyError            a replica answered (failover in progress)         (retriable)
    │   ├── NotEnoughReplicasError   acks="all": too few replicas confirmed in time     (retriable)
    │   ├── ServerBusyError          a long script holds the server (BUSY); not run    (retriable)
    │   └── BrokerTimeoutError       no reply in time; the outcome is unknown         (retriable)
    └── ServerError                  the embedded/local server could not be started or managed

Redis errors are converted in exactly one place, :func:`from_redis`, by error code, never by
matching message text elsewhere (redis-py's client-side cluster errors share one class, so for
those, and for scripts refused by an ACL, the text is read here and only here). Each class has ``retriable``: whether repeating the same call
may succeed without changing it. One instance overrides it: a ConnectionFailedError for a TLS
handshake that was refused (certificates, CA, host name) has ``retriable = False``, since the same
certificates fail the same way.
"""

from __future__ import annotations

import asyncio
import re
import ssl

import redis.exceptions as rexc

__all__ = [
    "AuthenticationError",
    "BrokerError",
    "BrokerTimeoutError",
    "CommitFailedError",
    "ConfigError",
    "ConnectionFailedError",
    "DeserializationError",
    "FacadeError",
    "FencedInstanceIdError",
    "GroupError",
    "InvalidNameError",
    "InvalidUrlError",
    "MessageTooLargeError",
    "NotEnoughReplicasError",
    "OffsetOutOfRangeError",
    "OutOfMemoryError",
    "OutOfOrderSequenceError",
    "PermissionDeniedError",
    "ReadOnlyError",
    "RebalanceInProgressError",
    "SerializationError",
    "ServerBusyError",
    "ServerError",
    "TopicError",
    "TopicExistsError",
    "UnknownMemberError",
    "UnknownTopicError",
    "UnsupportedError",
    "from_redis",
]


class FacadeError(Exception):
    """Root of every facade error."""

    retriable = False


class ConfigError(FacadeError, ValueError):
    """An argument, option, name, size or URL is not acceptable; the message says what is."""


class InvalidNameError(ConfigError):
    """A topic or group name outside Kafka's legal set ``[A-Za-z0-9._-]{1,249}``."""


class InvalidUrlError(ConfigError):
    """A URL facade cannot use."""


class UnsupportedError(ConfigError):
    """A valid request this version of facade, or this server, does not support."""


class MessageTooLargeError(ConfigError):
    """A record larger than ``max_message_bytes``; nothing was sent."""

    def __init__(self, message: str, *, size: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.size = size
        """The record's size in bytes (key, value and headers)."""
        self.limit = limit
        """The ``max_message_bytes`` it exceeds."""


class SerializationError(ConfigError):
    """A ``key_serializer`` or ``value_serializer`` failed, or returned something other than bytes
    or str; nothing was sent (Kafka's SerializationException)."""


class DeserializationError(FacadeError):
    """A record's key or value could not be deserialized (Kafka's RecordDeserializationException).

    It concerns that record only: ``poll()`` hands the record out, and reading the failed field
    (``message.key`` / ``message.value``) raises this error, which ``message.error`` also holds.
    Give the record to ``consumer.fail(message, error)`` to skip it; with ``max_deliveries`` it
    then moves to the dead-letter topic with its stored bytes.
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        field: str | None = None,
        data: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        """Topic of the record."""
        self.partition = partition
        """Its partition."""
        self.offset = offset
        """Its offset."""
        self.field = field
        """"key" or "value": what could not be deserialized."""
        self.data = data
        """The stored bytes that could not be deserialized."""


class TopicError(FacadeError):
    """A topic-level problem."""


class UnknownTopicError(TopicError):
    """The topic does not exist."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(message)
        self.topic = topic
        """The topic's name, where known."""


class TopicExistsError(TopicError):
    """The topic already exists."""


class OutOfOrderSequenceError(FacadeError):
    """The broker refused a batch whose sequence number does not follow the producer's last one.

    Nothing was appended. The producer continues under a new producer id.
    """


class OffsetOutOfRangeError(FacadeError):
    """An offset outside the partition's stored records (before the log start, or past the end),
    or no committed offset, with ``auto_offset_reset="none"``: the consumer does not guess."""


class GroupError(FacadeError):
    """A consumer-group problem."""


class CommitFailedError(GroupError):
    """This member no longer owns the partition (a newer owner holds it): the commit was refused.

    Kafka's CommitFailedException. The messages will be delivered to the new owner; this member
    rejoins the group on its next poll.
    """


class FencedInstanceIdError(GroupError):
    """Another process joined the group with this consumer's ``group_instance_id``: it replaced
    this one, which receives nothing more and must stop (Kafka's FencedInstanceIdException)."""


class RebalanceInProgressError(GroupError):
    """The group is reassigning partitions."""

    retriable = True


class UnknownMemberError(GroupError):
    """The group no longer knows this member (its session expired); it must rejoin."""

    retriable = True


class BrokerError(FacadeError):
    """The server refused or failed a command."""


class ConnectionFailedError(BrokerError, ConnectionError):
    """The server could not be reached."""

    retriable = True


class AuthenticationError(BrokerError):
    """The server rejected the user name or password."""


class PermissionDeniedError(BrokerError):
    """An ACL rule forbids this command or key for the connected user."""


class OutOfMemoryError(BrokerError):
    """The server is at maxmemory and refuses writes (noeviction)."""

    retriable = True


class ReadOnlyError(BrokerError):
    """A read-only replica answered a write; a failover is probably in progress."""

    retriable = True


class NotEnoughReplicasError(BrokerError):
    """Too few replicas: with acks="all", fewer replicas than required confirmed the write in time
    (the write is on the primary but may be lost if it fails now); or the primary refuses writes
    altogether because fewer replicas than its ``min-replicas-to-write`` are in sync (NOREPLICAS:
    nothing was written). The producer retries (under its idempotent sequence, so nothing is
    doubled) until ``delivery_timeout_ms``.
    """

    retriable = True

    def __init__(
        self, message: str, *, confirmed: int | None = None, required: int | None = None, timeout_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.confirmed = confirmed
        """acks="all": replicas that confirmed the write (None: the server refused it, NOREPLICAS)."""
        self.required = required
        """acks="all": replicas the producer waited for."""
        self.timeout_ms = timeout_ms
        """acks="all": how long it waited (``replica_timeout_ms``)."""


class ServerBusyError(BrokerError):
    """The server is running a long script and refused the command (BUSY): it did not run."""

    retriable = True


class BrokerTimeoutError(BrokerError, asyncio.TimeoutError):
    """No reply in time. The command may or may not have taken effect."""

    retriable = True


class ServerError(FacadeError):
    """The embedded or local server could not be started, found or stopped."""


REDIRECT_ERRORS = (rexc.MovedError, rexc.AskError, rexc.TryAgainError, rexc.ClusterDownError)
"""Cluster replies that mean "not here, not now": the command did not run and may be sent again
(to the node a MOVED/ASK names, or after a pause for TRYAGAIN/CLUSTERDOWN)."""


def from_redis(
    exc: BaseException, context: str = "", *, cluster: bool = False, tls_hint: bool = False
) -> FacadeError:
    """Convert a redis-py exception into the matching :class:`FacadeError`.

    ``context`` names what was being done ("producing to orders") and leads the message.
    The caller raises the result ``from exc`` so the original stays attached.

    ``cluster``: the error came through a Redis Cluster client, where a redirect or a cluster
    that is down means a resharding or failover is under way (retriable); from one server they
    are plain refusals. ``tls_hint``: the connection is TLS and nothing has worked on it yet; a
    dropped connection then says that a server requiring a client certificate may close it before
    the client reads why (asyncio clients on TLS 1.3 do not always see the refusal).
    """
    if isinstance(exc, FacadeError):
        return exc
    lead = f"{context}: " if context else ""
    text = str(exc) or exc.__class__.__name__
    unsettled = cluster and isinstance(exc, (*REDIRECT_ERRORS, rexc.ClusterError))
    if unsettled or isinstance(exc, rexc.RedisClusterException):
        error = _from_cluster(exc, lead, text)
    else:
        error = _from_server(exc, lead, text)
    if tls_hint and type(error) is ConnectionFailedError and tls_failure(exc) is None:
        return ConnectionFailedError(
            f"{error}; over TLS, a server that requires a client certificate also closes the connection "
            "like this: check ssl_certfile and ssl_keyfile (docs/tls.md)"
        )
    return error


def _from_cluster(exc: BaseException, lead: str, text: str) -> FacadeError:
    if isinstance(exc, (*REDIRECT_ERRORS, rexc.SlotNotCoveredError, rexc.ClusterError)):
        return BrokerTimeoutError(
            f"{lead}the cluster did not settle in time ({text}): a resharding or failover is under way; "
            "the call is safe to repeat"
        )
    # redis-py raises one class (RedisClusterException) for client-side cluster problems; only
    # its text tells them apart.
    if "same key slot" in text or "CROSSSLOT" in text:
        return UnsupportedError(f"{lead}{text}; on a Redis Cluster one command cannot touch several slots")
    if "not enabled" in text:
        return UnsupportedError(f"{lead}the server is not in cluster mode ({text}); use redis:// for a single server")
    if isinstance(exc.__cause__, rexc.RedisError):  # e.g. a wrong password, reported by every node
        cause = _from_server(exc.__cause__, lead, str(exc.__cause__) or exc.__cause__.__class__.__name__)
        if isinstance(cause, (AuthenticationError, PermissionDeniedError)) or tls_failure(exc.__cause__):
            return cause  # a TLS refusal: the hint names the ssl_* option to check
    if "cannot be connected" in text:
        return ConnectionFailedError(f"{lead}no cluster node answered ({text}); check the URL and that the nodes run")
    return BrokerTimeoutError(
        f"{lead}the cluster's slot map is incomplete or changing ({text}): a failover or resharding is "
        "under way; the call is safe to repeat"
    )


def _from_server(exc: BaseException, lead: str, text: str) -> FacadeError:
    code = text.split(" ", 1)[0] if text[:1].isupper() else ""
    if isinstance(exc, rexc.AuthenticationError) or code in ("WRONGPASS", "NOAUTH"):
        return AuthenticationError(f"{lead}authentication failed ({text}); check the user and password in the URL")
    # A command refused inside a Lua script carries no NOPERM code: Valkey / Redis 7.2+ say
    # "ACL failure in script", Redis 7.0 "The user executing the script can't run this command".
    if (
        isinstance(exc, rexc.NoPermissionError)
        or code == "NOPERM"
        or "ACL failure in script" in text
        or "user executing the script can't" in text
    ):
        return PermissionDeniedError(f"{lead}{text}; grant the rules from `facade acl print` to this user")
    if isinstance(exc, rexc.TimeoutError):
        return BrokerTimeoutError(f"{lead}no reply from the server in time ({text}); the outcome is unknown")
    if isinstance(exc, rexc.ConnectionError) and (failure := tls_failure(exc)) is not None:
        error = ConnectionFailedError(f"{lead}TLS with the server failed ({text}); {_tls_hint(failure)}")
        error.retriable = False  # the same certificates will fail the same way
        return error
    if isinstance(exc, rexc.ConnectionError):
        return ConnectionFailedError(
            f"{lead}cannot reach the server ({text}); check that it runs and that the URL is right"
        )
    if isinstance(exc, rexc.ReadOnlyError) or code == "READONLY":
        return ReadOnlyError(f"{lead}the server is a read-only replica ({text}); retry against the primary")
    if isinstance(exc, rexc.OutOfMemoryError) or code == "OOM":
        return OutOfMemoryError(
            f"{lead}the server is out of memory ({text}); raise maxmemory, trim topics or add capacity"
        )
    # Past busy-reply-threshold (lua-time-limit), a server running a long script or function refuses
    # every other command with BUSY before running it: repeating it is safe.
    if code == "BUSY":
        return ServerBusyError(
            f"{lead}the server is busy running a long script or function and refused this command, which did "
            f"not run ({text.split(' ', 1)[-1]}); it is safe to repeat: producers retry until delivery_timeout_ms"
        )
    # The server's own refusal (min-replicas-to-write); produce.lua's NOREPLICAS (acks="all" before
    # the append) is one of our script errors below, with its own text.
    if "Not enough good replicas" in text:
        return NotEnoughReplicasError(
            f"{lead}the primary refuses writes: fewer replicas than its min-replicas-to-write are connected "
            "and within min-replicas-max-lag seconds of it (NOREPLICAS; nothing was written); check the "
            "replicas, or lower min-replicas-to-write on the server"
        )
    if code in _SCRIPT_ERRORS:
        # Our Lua scripts reply "CODE human text"; the code picks the class, the text is the message.
        return _SCRIPT_ERRORS[code](f"{lead}{_without_script_location(text.split(' ', 1)[-1])}")
    return BrokerError(f"{lead}{_without_script_location(text)}")


_SCRIPT_LOCATION = re.compile(r"\s*script: [^\n]*?on @user_script:\d+\.?\s*$")


def _without_script_location(text: str) -> str:
    """A command's error inside a script without the server's " script: <sha>, on
    @user_script:432." suffix: line numbers of facade's Lua say nothing to its users."""
    return _SCRIPT_LOCATION.sub("", text)


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind a redis-py error (its ``__cause__`` / ``__context__`` chain),
    or None: a TLS handshake the client or the server refused (unknown CA, host name not in the
    certificate, client certificate missing or not trusted, no TLS on that port)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLError):
            return error
        pending += [error.__cause__, error.__context__]
    return None


_HOSTNAME_MISMATCH = (62, 64)  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _tls_hint(failure: ssl.SSLError) -> str:
    if isinstance(failure, ssl.SSLCertVerificationError):
        if failure.verify_code in _HOSTNAME_MISMATCH:
            return (
                "the server's certificate does not name the host connected to: use a host name or IP "
                "address the certificate lists, or add ssl_check_hostname=false to the URL"
            )
        return (
            "the server's certificate could not be verified: check that ssl_ca_certs names the CA "
            "file that signed it (ssl_cert_reqs=none skips the check)"
        )
    return (
        "the server ended the TLS handshake: check the client certificate (ssl_certfile and "
        "ssl_keyfile, signed by a CA the server trusts, needed when it has tls-auth-clients yes), "
        "and that the port speaks TLS"
    )


# Error codes raised by the scripts in lua/ (redis.error_reply("CODE text")).
_SCRIPT_ERRORS: dict[str, type[FacadeError]] = {
    "FENCED": CommitFailedError,
    "NOTOPIC": UnknownTopicError,
    "TOPICEXISTS": TopicExistsError,
    # A topic migration's copy is out of date (facade topics migrate copies again).
    "CHANGED": TopicError,
    "BADARG": ConfigError,
    "UNKNOWNMEMBER": UnknownMemberError,
    "FENCEDINSTANCE": FencedInstanceIdError,
    "GROUPBUSY": GroupError,
    "GROUPLOCKED": RebalanceInProgressError,
    "GROUPKIND": GroupError,
    "NOOFFSET": OffsetOutOfRangeError,
    "OUTOFRANGE": OffsetOutOfRangeError,
    "OUTOFORDER": OutOfOrderSequenceError,
    "NOPERM": PermissionDeniedError,
    # A primary under min-replicas-to-write without enough good replicas (e.g. just promoted).
    "NOREPLICAS": NotEnoughReplicasError,
}
