"""Redis errors become facade errors in one place, by code, with a hint and a retriable flag."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading

import pytest
import redis
import redis.exceptions as rexc
from busy import LONG_SCRIPT, refused_as_busy
from conftest import free_port, wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry

from facade import errors
from facade.errors import (
    AuthenticationError,
    BrokerError,
    BrokerTimeoutError,
    CommitFailedError,
    ConfigError,
    ConnectionFailedError,
    FacadeError,
    NotEnoughReplicasError,
    OutOfMemoryError,
    PermissionDeniedError,
    ReadOnlyError,
    RebalanceInProgressError,
    ServerBusyError,
    TopicExistsError,
    UnknownMemberError,
    UnknownTopicError,
    from_redis,
)

NO_RETRY = Retry(NoBackoff(), 0)
PUBLIC_ERRORS = [getattr(errors, n) for n in errors.__all__ if inspect.isclass(getattr(errors, n))]


@pytest.mark.parametrize(
    "exc,cls",
    [
        (rexc.ConnectionError("Error 111 connecting to 127.0.0.1:1. Refused."), ConnectionFailedError),
        (rexc.BusyLoadingError("Redis is loading the dataset in memory"), ConnectionFailedError),
        (rexc.TimeoutError("Timeout reading from socket"), BrokerTimeoutError),
        (rexc.AuthenticationError("invalid username-password pair"), AuthenticationError),
        (rexc.NoPermissionError("this user has no permissions to run 'set'"), PermissionDeniedError),
        (rexc.ReadOnlyError("You can't write against a read only replica."), ReadOnlyError),
        (rexc.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), OutOfMemoryError),
        # Codes the server sends when redis-py does not know them (or gets them unparsed).
        (rexc.ResponseError("WRONGPASS invalid username-password pair"), AuthenticationError),
        (rexc.ResponseError("NOAUTH Authentication required."), AuthenticationError),
        (rexc.ResponseError("NOPERM this user has no permissions"), PermissionDeniedError),
        (rexc.ResponseError("READONLY You can't write against a read only replica."), ReadOnlyError),
        (rexc.ResponseError("OOM command not allowed"), OutOfMemoryError),
        (rexc.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL."), ServerBusyError),
        (rexc.ResponseError("BUSYGROUP Consumer Group name already exists"), BrokerError),
        # Our Lua scripts' codes.
        (rexc.ResponseError("FENCED this member no longer owns facade:{t/0}:log"), CommitFailedError),
        (rexc.ResponseError("NOTOPIC partition stream facade:{t/0}:log does not exist"), UnknownTopicError),
        (rexc.ResponseError("TOPICEXISTS topic t already exists"), TopicExistsError),
        (rexc.ResponseError("BADARG topic t has 3 partitions; the count can only grow"), ConfigError),
        (rexc.ResponseError("UNKNOWNMEMBER member m is not in the group"), UnknownMemberError),
        # Everything else: a plain BrokerError.
        (rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), BrokerError),
        (rexc.ResponseError("unknown command 'XFOO'"), BrokerError),
        (rexc.ResponseError(""), BrokerError),
        (rexc.RedisError("something"), BrokerError),
        (OSError("boom"), BrokerError),
    ],
)
def test_from_redis_maps_to_the_right_class(exc, cls):
    out = from_redis(exc)
    assert type(out) is cls
    assert isinstance(out, FacadeError)


def test_script_error_message_drops_the_code_and_keeps_the_text():
    exc = rexc.ResponseError("NOTOPIC partition stream facade:{t/0}:log does not exist")
    out = from_redis(exc, "producing to t")
    assert str(out) == "producing to t: partition stream facade:{t/0}:log does not exist"


def test_context_leads_the_message_and_hints_follow():
    out = from_redis(rexc.ConnectionError("Connection refused"), "connecting to redis://h:1")
    assert str(out).startswith("connecting to redis://h:1: cannot reach the server (Connection refused)")
    assert "check that it runs" in str(out)
    assert "check the user and password" in str(from_redis(rexc.AuthenticationError("invalid password")))
    assert "maxmemory" in str(from_redis(rexc.OutOfMemoryError("x")))
    assert "outcome is unknown" in str(from_redis(rexc.TimeoutError("x")))
    busy = from_redis(rexc.ResponseError("BUSY Valkey is busy running a script. You can only call SCRIPT KILL."), "producing")
    assert str(busy).startswith("producing: the server is busy running a long script") and busy.retriable
    assert "did not run (Valkey is busy running a script. You can only call SCRIPT KILL.)" in str(busy)


def test_empty_message_falls_back_to_the_class_name():
    assert "ConnectionError" in str(from_redis(rexc.ConnectionError()))


def test_facade_errors_pass_through_unchanged():
    err = UnknownTopicError("no such topic")
    assert from_redis(err) is err


def test_lowercase_first_word_is_not_taken_as_a_code():
    # Only an upper-case first word is an error code: "fenced ..." is just text.
    assert type(from_redis(rexc.ResponseError("fenced off"))) is BrokerError


@pytest.mark.parametrize("cls", PUBLIC_ERRORS, ids=lambda c: c.__name__)
def test_every_public_error_is_a_facade_error_with_docs(cls):
    assert issubclass(cls, FacadeError)
    assert cls.__doc__ and cls.__doc__.strip()
    assert isinstance(cls.retriable, bool)


def test_retriable_flags_match_the_docstring_tree():
    # The module docstring marks retriable classes with "(retriable)"; the flags must agree.
    tree = errors.__doc__.split("Redis errors are converted")[0]
    marked = {re.search(r"\w+Error", line).group() for line in tree.splitlines() if "(retriable)" in line}
    broker_retriable = {c.__name__ for c in PUBLIC_ERRORS if c.retriable and issubclass(c, BrokerError)}
    assert marked == broker_retriable


def test_retriable_flags():
    retriable = {c.__name__ for c in PUBLIC_ERRORS if c.retriable}
    assert retriable == {
        "ConnectionFailedError",
        "OutOfMemoryError",
        "ReadOnlyError",
        "BrokerTimeoutError",
        "RebalanceInProgressError",
        "UnknownMemberError",
        "NotEnoughReplicasError",
        "ServerBusyError",
    }


def test_hierarchy_matches_the_docstring_tree():
    assert issubclass(errors.InvalidNameError, ConfigError)
    assert issubclass(errors.InvalidUrlError, ConfigError)
    assert issubclass(errors.UnsupportedError, ConfigError)
    assert issubclass(errors.MessageTooLargeError, ConfigError)
    assert issubclass(UnknownTopicError, errors.TopicError)
    assert issubclass(TopicExistsError, errors.TopicError)
    assert issubclass(errors.FencedInstanceIdError, errors.GroupError)
    assert issubclass(errors.OffsetOutOfRangeError, FacadeError) and issubclass(errors.ServerBusyError, BrokerError)
    for cls in (CommitFailedError, RebalanceInProgressError, UnknownMemberError):
        assert issubclass(cls, errors.GroupError)
    for cls in (ConnectionFailedError, AuthenticationError, PermissionDeniedError):
        assert issubclass(cls, BrokerError)
    for cls in (OutOfMemoryError, ReadOnlyError, BrokerTimeoutError):
        assert issubclass(cls, BrokerError)
    assert not issubclass(errors.ServerError, BrokerError)
    # Usable with the standard library's own except clauses too.
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConnectionFailedError, ConnectionError)
    assert issubclass(BrokerTimeoutError, asyncio.TimeoutError)


def test_every_script_error_code_maps_to_a_public_class():
    for code, cls in errors._SCRIPT_ERRORS.items():
        assert code.isupper()
        assert cls.__name__ in errors.__all__


# --- the same mapping, from a real server ------------------------------------------------------


def convert(call):
    try:
        call()
    except rexc.RedisError as exc:
        return from_redis(exc)
    raise AssertionError("the call did not fail")


def test_real_connection_refused():
    with redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=2, retry=NO_RETRY) as r:
        assert type(convert(r.ping)) is ConnectionFailedError


def test_real_timeout(url):
    with redis.Redis.from_url(url, socket_timeout=0.2, retry=NO_RETRY) as r:
        assert type(convert(lambda: r.blpop(["nothing"], timeout=2))) is BrokerTimeoutError


def test_real_auth_errors(server_factory):
    server = server_factory("--requirepass", "sekret")
    with server.client(password="wrong") as r:
        assert type(convert(r.ping)) is AuthenticationError
    with server.client() as r:  # no password at all: NOAUTH
        assert type(convert(r.ping)) is AuthenticationError
    with server.client(password="sekret") as r:
        assert r.ping()


def test_real_permission_denied(server_factory):
    server = server_factory()
    with server.client() as admin:
        admin.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"], commands=["+get", "+ping"])
    with server.client(username="reader", password="pw") as r:
        assert r.ping()
        assert type(convert(lambda: r.set("k", "v"))) is PermissionDeniedError


def test_real_out_of_memory(server_factory):
    server = server_factory("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    with server.client() as r:
        assert type(convert(lambda: r.set("k", "v"))) is OutOfMemoryError


def test_real_busy_server(server_factory):
    # Past busy-reply-threshold, a server running a long script refuses other commands with BUSY.
    server = server_factory("--busy-reply-threshold", "50")
    with server.client() as r, server.client() as other:
        hold = threading.Thread(target=r.eval, args=(LONG_SCRIPT, 0, 800))
        hold.start()
        try:
            wait_until(lambda: refused_as_busy(other), timeout=5, what="the server answers BUSY")
            out = convert(lambda: other.set("k", "v"))
        finally:
            hold.join()
        assert other.get("k") is None  # the refused SET did not run
    assert type(out) is ServerBusyError and out.retriable


def test_real_read_only_replica(server_factory):
    # A replica of a primary that isn't there is still a read-only replica.
    server = server_factory("--replicaof", "127.0.0.1", str(free_port()))
    with server.client() as r:
        assert type(convert(lambda: r.set("k", "v"))) is ReadOnlyError


@pytest.mark.parametrize(
    "code,cls", [(code, cls) for code, cls in errors._SCRIPT_ERRORS.items()], ids=list(errors._SCRIPT_ERRORS)
)
def test_real_script_error_reply(url, code, cls):
    with redis.Redis.from_url(url) as r:
        script = r.register_script("return redis.error_reply(ARGV[1] .. ' some text')")
        out = convert(lambda: script(args=[code]))
    assert type(out) is cls
    assert str(out) == "some text" or (code == "NOPERM" and str(out).startswith("some text; grant"))


def test_a_primary_without_enough_replicas_is_named_without_script_line_numbers(server_factory):
    server = server_factory("--min-replicas-to-write", "1")
    with server.client() as r:
        plain = convert(lambda: r.set("k", "v"))
        script = r.register_script("return redis.call('SET', KEYS[1], 'v')")
        inside = convert(lambda: script(keys=["k"]))
        r.config_set("min-replicas-to-write", 0)
        r.set("n", "x")
        failing = r.register_script("return redis.call('INCR', KEYS[1])")
        with pytest.raises(redis.ResponseError, match="@user_script"):  # what the server says
            failing(keys=["n"])
        other = convert(lambda: failing(keys=["n"]))
    for error in (plain, inside):
        assert type(error) is NotEnoughReplicasError and error.retriable
        assert "min-replicas-to-write" in str(error) and "@user_script" not in str(error)
    assert type(other) is errors.BrokerError and "@user_script" not in str(other) and "not an integer" in str(other)
