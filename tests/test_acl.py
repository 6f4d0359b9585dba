"""Least-privilege ACL users (facade.acl) on a real server: each role does its job and nothing else.

Users are made with ``ACL SETUSER`` from ``acl.rules()`` on the session server and deleted after
each test. A refused action must raise PermissionDeniedError (or AuthenticationError for bad
credentials) and leave every stored key exactly as it was (compared with DUMP).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from click.testing import CliRunner
from facade.cli.acl import acl as acl_cli

from facade import (
    Admin,
    AuthenticationError,
    BrokerError,
    ConfigError,
    Consumer,
    FacadeError,
    PermissionDeniedError,
    Producer,
    TopicPartition,
    acl,
    aio,
    keys,
    scripts,
)

PASSWORD = 'pw "quoted" \\back ünï'
FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000, "reconnect_timeout_ms": 0}

# The scripts each role runs (facade/_async/*.py): every command they call must be granted.
ROLE_SCRIPTS = {
    ("producer",): {"produce"},
    ("consumer",): {"claim", "release", "fetch", "commit", "group_join", "group_heartbeat", "group_sync",
                    "group_leave", "group_alive", "group_lock", "set_position", "log_read"},
    ("admin",): {"partition_init", "topic_register", "set_position", "group_delete", "group_lock", "trim_before",
                  "first_uncommitted", "topic_migrate"},
    ("consumer", "producer"): {"transact"},
}  # fmt: skip
# The gateway's group coordinator (Kafka clients' groups), for a SASL user of the consumer role.
ROLE_SCRIPTS[("consumer",)] |= {"kafka_join", "kafka_join_wait", "kafka_join_cancel", "kafka_sync", "kafka_heartbeat", "kafka_leave",
                                "kafka_commit"}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def raw(url):
    with redis.Redis.from_url(url) as r:
        yield r


@pytest.fixture
def server_version(server_spec):
    """What rules() is told about the server under test (any Valkey counts as 7.2+)."""
    _, version, is_valkey = server_spec
    return None if is_valkey else version


@pytest.fixture
def make_user(url, raw, redis_server, server_version) -> Callable[..., str]:
    """``make_user(name, *roles)`` creates an ACL user and returns its URL; all are deleted after."""
    made: list[str] = []
    raw.execute_command("ACL", "LOG", "RESET")

    def make(name: str, *roles: str, tokens: list[str] | None = None, password: str = PASSWORD) -> str:
        rules = tokens if tokens is not None else acl.rules(*roles, server_version=server_version)
        raw.execute_command("ACL", "SETUSER", name, "reset", "on", ">" + password, *rules)
        made.append(name)
        return f"redis://{quote(name, safe='')}:{quote(password, safe='')}@127.0.0.1:{redis_server.port}"

    try:
        yield make
    finally:
        if made:
            raw.execute_command("ACL", "DELUSER", *made)


def snapshot(r: redis.Redis) -> dict[bytes, bytes]:
    """Every key with its serialized value: equal snapshots mean nothing stored changed."""
    return {k: r.dump(k) for k in sorted(r.keys("*"))}


def denials(r: redis.Redis, user: str) -> list[str]:
    """What ACL LOG recorded as refused for ``user`` ("command:xadd", "key:facade:...")."""
    return [f"{e['reason']}:{e['object']}" for e in r.acl_log() if e["username"] == user]


def setup(url: str) -> None:
    """Topics and records the role tests work on (as the default, all-powerful user)."""
    with Admin(url) as a:
        a.create_topic("t", 2)
        a.create_topic("t.dlq", 1)
    with Producer(url) as p:
        for i in range(10):
            p.send("t", f"v{i}", key=f"k{i}")


def fails_cleanly(
    raw: redis.Redis, action: Callable[[], object], cls: type = PermissionDeniedError
) -> FacadeError:
    """Run ``action``; it must raise a FacadeError and change nothing stored."""
    before = snapshot(raw)
    with pytest.raises(FacadeError) as info:
        action()
    assert snapshot(raw) == before, f"{info.value!r} left stored data changed"
    text = str(info.value)
    if type(info.value) is BrokerError and (
        "ACL failure in script" in text or "user executing the script" in text
    ):
        # Redis reports a command refused inside a script as "ERR ... ACL failure in script" /
        # "ERR The user executing the script can't run this command" (no NOPERM code), and
        # errors.from_redis does not map it yet: nothing changed, but the class is BrokerError.
        pytest.xfail(f"in-script ACL refusal is not mapped to {cls.__name__}: {info.value}")
    assert type(info.value) is cls, repr(info.value)
    return info.value


def consume_some(url: str, group: str, want: int, **options) -> list:
    with Consumer("t", group, url, auto_offset_reset="earliest", **FAST, **options) as c:
        got: list = []
        for _ in range(100):
            got += c.poll(timeout_ms=50)
            if len(got) >= want:
                break
        c.commit()
    return got


# ---------------------------------------------------------------------------------------------
# The rules themselves (no server)


def _commands_in(src: str) -> set[str]:
    found = set()
    for cmd, sub in re.findall(r"redis\.p?call\(\s*'(\w+)'(?:\s*,\s*'(\w+)')?", src):
        found.add(f"{cmd}|{sub}".lower() if cmd.upper() in ("XGROUP", "XINFO") else cmd.lower())
    # Calls built in a table first: redis.call(unpack(args)).
    found |= {c.lower() for c in re.findall(r"=\s*\{'([A-Z]+)'", src)}
    return found


def _script_commands(name: str) -> set[str]:
    """Every command (``xgroup|create`` for container commands) a script calls: its own, and
    those of the prelude (lua/_lib.lua) functions it uses, directly or through another."""
    body = (scripts.lua_dir() / f"{name}.lua").read_text()
    prelude = (scripts.lua_dir() / f"{scripts.PRELUDE}.lua").read_text()
    functions = dict(re.findall(r"local function (\w+)\((.*?)(?=\nlocal function |\Z)", prelude, re.DOTALL))
    used: set[str] = set()
    todo = [body]
    while todo:
        text = todo.pop()
        for fn, fn_body in functions.items():
            if fn not in used and re.search(rf"\b{fn}\(", text):
                used.add(fn)
                todo.append(fn_body)
    return _commands_in(body) | set().union(*(_commands_in(functions[fn]) for fn in used), set())


def _granted(tokens: list[str]) -> set[str]:
    return {t[1:] for tok in tokens for t in tok.strip("()").split() if t.startswith("+")}


def test_every_script_is_assigned_to_a_role():
    assigned = set().union(*ROLE_SCRIPTS.values())
    assert assigned == set(scripts.NAMES), "a new script: say which role runs it (ROLE_SCRIPTS)"


@pytest.mark.parametrize("roles", list(ROLE_SCRIPTS), ids="+".join)
def test_every_command_a_role_script_calls_is_granted(roles):
    granted = _granted(acl.rules(*roles))
    for name in ROLE_SCRIPTS[roles]:
        called = _script_commands(name)
        assert called, f"found no redis.call in {name}.lua"
        assert "evalsha" in granted
        assert called <= granted, f"{name}.lua calls {sorted(called - granted)}, not granted to {roles}"


def test_every_command_the_sdk_sends_is_granted_to_a_role(raw):
    """Commands sent directly (not from Lua) by facade/_async/*.py: each is granted to some role."""
    known = {c.decode().lower() if isinstance(c, bytes) else c.lower() for c in raw.command_list()}
    source = "\n".join(p.read_text() for p in (Path(scripts.__file__).parent / "_async").glob("*.py"))
    sent = {w.lower() for w in re.findall(r'"([A-Z]+)"', source)} & known
    sent |= {f"{a}|{b}".lower() for a, b in re.findall(r'"(XINFO|XGROUP|CLUSTER)"?,? ?"?([A-Z]+)"', source)}
    sent -= {"xinfo", "xgroup", "cluster"}  # container commands are granted by subcommand
    # redis-py pipeline methods: xinfo_groups is XINFO GROUPS; a few name an option, not a subcommand.
    options = {"xpending_range": "xpending"}
    methods = re.findall(r"\bpipe\.([a-z_]+)\(", source)
    sent |= {options.get(m, m.replace("_", "|")) for m in methods} - {"execute", "execute|command"}
    assert {"hget", "xread", "del", "wait", "xinfo|groups"} <= sent  # the scan finds them
    granted = _granted(acl.rules(*acl.ROLES, acks_fsync=True))
    assert sent <= granted, f"sent by the SDK but granted to no role: {sorted(sent - granted)}"


@pytest.mark.parametrize("role", acl.ROLES)
def test_rules_grant_facade_keys_only_and_no_dangerous_command(role):
    tokens = acl.rules(role)
    assert tokens[:4] == ["clearselectors", "resetkeys", "resetchannels", "-@all"]
    text = " ".join(tokens)
    assert "allkeys" not in text and "allcommands" not in text and "+@" not in text
    for pattern in re.findall(r"(%[RW]*~|~)(\S+?)[ )]", text):
        assert pattern[1].startswith("facade:"), pattern
    granted = _granted(tokens)
    for bad in ("eval", "flushall", "flushdb", "keys", "scan", "config", "acl", "debug", "shutdown",
                "script|flush", "function", "module", "client|kill", "xgroup|delconsumer", "publish"):  # fmt: skip
        assert bad not in granted, (role, bad)


@pytest.mark.parametrize(
    "role,never",
    [
        (
            "producer",
            {"del", "xdel", "xread", "xreadgroup", "xrange", "xrevrange", "xgroup|create", "xack", "hsetnx"},
        ),
        ("consumer", {"xadd", "xtrim", "xdel", "del", "xgroup|destroy", "zcount", "hkeys"}),
        # (an admin trims: delete_records; and ends crashed members' sessions before a reset)
        ("admin", {"xreadgroup", "xread", "zadd", "xack"}),
    ],
)
def test_each_role_lacks_what_it_must_not_do(role, never):
    assert not never & _granted(acl.rules(role))


def test_an_admin_appends_only_to_a_migration_copy():
    selectors = [tok for tok in acl.rules("admin") if "+xadd" in tok.split() or "+xadd)" in tok]
    assert selectors
    for tok in selectors:
        patterns = [t for t in tok.strip("()").split() if t.startswith("~")]
        assert patterns and all(p.endswith((":mig", ":old", ":layout")) for p in patterns), tok


def test_registry_writes_are_confined():
    # Only the admin writes the topic registry; the consumer may only HSETNX the group registry.
    for role in ("producer", "consumer"):
        for tok in acl.rules(role):
            if keys.TOPICS in tok:
                assert tok == f"(%R~{keys.TOPICS} +hget +hgetall)"
            if keys.GROUPS in tok:
                assert tok == f"(%W~{keys.GROUPS} +hsetnx)"


def test_server_versions():
    assert "+client|setinfo" in acl.rules("producer")
    assert "+client|setinfo" not in acl.rules("producer", server_version=(7, 0, 15))
    assert "+client|setinfo" not in acl.rules("producer", server_version="7.0")
    assert "+waitaof" in acl.rules("producer", acks_fsync=True)
    with pytest.raises(ConfigError, match="WAITAOF"):
        acl.rules("producer", acks_fsync=True, server_version="7.0")
    with pytest.raises(ConfigError, match="7.0"):
        acl.rules("producer", server_version=(6, 2))
    for bad in ("seven", "7.x", "", (7, "2"), 7.2, ()):
        with pytest.raises(ConfigError):
            acl.rules("producer", server_version=bad)


def test_roles_combine_and_are_checked():
    both = acl.rules("consumer", "producer")
    assert set(acl.rules("consumer")) | set(acl.rules("producer")) == set(both)
    assert acl.rules("producer", "producer") == acl.rules("producer")
    for bad in ("superuser", "", "Producer"):
        with pytest.raises(ConfigError, match="role"):
            acl.rules(bad)
    with pytest.raises(ConfigError, match="at least one role"):
        acl.rules()


def test_acl_command_quotes_user_password_and_selectors():
    line = acl.acl_command("producer", "app", 'a "b" \\c\nd é')
    assert line.startswith('ACL SETUSER "app" reset on ">a \\"b\\" \\\\c\\x0ad \\xc3\\xa9" clearselectors ')
    assert "\n" not in line
    assert f'"(%R~{keys.TOPICS} +hget +hgetall)"' in line
    for user in ("", "a b", "tab\there", "nl\n"):
        with pytest.raises(ConfigError, match="user name"):
            acl.acl_command("producer", user, "pw")
    with pytest.raises(ConfigError, match="password"):
        acl.acl_command("producer", "app", "")


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_acl_command_pasted_into_redis_cli_works(raw, redis_server, make_user, server_version):
    password = 'p "q" \\ \' é\t$x'
    make_user("t-cli", "producer")  # registered for deletion; redefined below by redis-cli
    line = acl.acl_command("producer", "t-cli", password, server_version=server_version)
    out = subprocess.run(
        ["redis-cli", "-p", str(redis_server.port)],
        input=line + "\n",
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "OK", (out.stdout, out.stderr)
    with redis.Redis(port=redis_server.port, username="t-cli", password=password) as r:
        assert r.ping()
    rules = raw.acl_getuser("t-cli")
    assert rules["selectors"], rules


def test_cli_prints_the_command():
    runner = CliRunner()
    result = runner.invoke(acl_cli, ["print", "--role", "producer", "--user", "app", "--password", "pw"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == acl.acl_command("producer", "app", "pw")
    result = runner.invoke(acl_cli, ["print", "--role", "consumer", "--role", "producer"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('ACL SETUSER "facade-consumer-producer" reset on ">')
    generated = re.search(r"generated password for facade-consumer-producer: (\S+) ", result.stderr).group(1)
    assert len(generated) >= 24 and f'">{generated}"' in result.stdout
    result = runner.invoke(acl_cli, ["print", "--role", "admin", "--rules-only", "--server-version", "7.0"])
    assert result.stdout.split() == " ".join(acl.rules("admin", server_version="7.0")).split()
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args,says",
    [
        (["print"], "--role"),
        (["print", "--role", "root"], "root"),
        (["print", "--role", "producer", "--user", "a b"], "user name"),
        (["print", "--role", "producer", "--server-version", "x"], "server version"),
        (["print", "--role", "producer", "--acks-fsync", "--server-version", "7.0"], "WAITAOF"),
        (["print", "--role", "producer", "--bogus"], "--bogus"),
    ],
)
def test_cli_usage_errors(args, says):
    result = CliRunner().invoke(acl_cli, args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------
# Each role does its job (no refusal at all, not even one redis-py ignores)


def test_producer_role_produces(url, raw, make_user):
    setup(url)
    with Admin(url) as a:
        a.create_topic("trim", 1, max_len=5)
        a.create_topic("aged", 1, retention_ms=60_000)
        a.create_topic("acked", 1, max_len=5, ack_retention=True)
    # A group that has read (and not committed) some of "acked": ack-aware retention asks it.
    raw.xgroup_create(keys.stream("acked", 0), "g", "0")
    raw.hset(keys.committed("acked", 0), "g", 0)
    purl = make_user("t-producer", "producer")
    with Producer(purl, linger_ms=0) as p:
        md = p.send_and_wait("t", b"v", key=b"k", headers={"h": b"\x00\xff"})
        first = p.send_and_wait("t", b"once", dedup_id="d-1")
        assert p.send_and_wait("t", b"once", dedup_id="d-1").offset == first.offset
        for i in range(30):
            for topic in ("trim", "aged", "acked"):
                p.send(topic, f"{i}")
        p.flush()
    raw.xreadgroup("g", "c", {keys.stream("acked", 0): ">"}, count=3)
    with Producer(purl, linger_ms=0) as p:
        p.send_and_wait("acked", b"after")
    for options in ({"acks": "all"}, {"acks": 0}, {"idempotent": False}):
        with Producer(url=purl, **options) as p:
            p.send("t", b"opt", key=b"k")
    stored = [f for eid, f in raw.xrange(keys.stream("t", md.partition)) if eid.endswith(b"-%d" % md.offset)]
    assert {k: v for k, v in stored[0].items() if k != b"ts"} == {b"key": b"k", b"value": b"v", b"h:h": b"\x00\xff"}
    assert raw.xlen(keys.stream("trim", 0)) < 31
    assert raw.xlen(keys.stream("acked", 0)) == 31  # nothing committed by the group: all kept
    assert raw.xrange(keys.stream("acked", 0), count=1)[0][1][b"value"] == b"0"
    assert denials(raw, "t-producer") == []


def test_consumer_role_consumes_commits_rebalances_and_seeks(url, raw, make_user):
    setup(url)
    curl = make_user("t-consumer", "consumer")
    assert len(consume_some(curl, "g", 10)) == 10
    with Consumer("t", "g", curl, **FAST) as a, Consumer("t", "g", curl, **FAST) as b:
        for _ in range(200):  # the second member joins: the two partitions are shared
            a.poll(timeout_ms=5)
            b.poll(timeout_ms=5)
            if len(a.assignment()) == len(b.assignment()) == 1:
                break
        assert len(a.assignment()) == len(b.assignment()) == 1
        tp = next(iter(a.assignment()))
        committed = a.committed()[tp]
        assert committed is not None
        a.seek_to_beginning()
        again = []
        for _ in range(50):
            again += a.poll(timeout_ms=20)
            if again:
                break
        assert again and a.position(tp) > 0
        a.seek(tp, again[0].offset)
        a.pause([tp])
        a.resume([tp])
        assert a.offsets_for_times({tp: 0})[tp].offset == again[0].offset
        a.commit()
        b.seek_to_end()
    assert len(consume_some(curl, "exactly", 10, guarantee="exactly-once")) == 10
    with Admin(curl) as a:  # as in Kafka (READ on the group): reset a group with no live member
        assert {r.target for r in a.reset_offsets("g", "t", to_earliest=True, execute=True)} == {0}
        assert [t.name for t in a.list_topics()] == ["t", "t.dlq"]
    assert len(consume_some(curl, "g", 10)) == 10
    assert denials(raw, "t-consumer") == []


def test_the_consumer_role_reads_the_max_timestamp_and_the_producer_role_keeps_it(url, raw, make_user):
    """ListOffsets MAX_TIMESTAMP through the gateway is a consumer's request: it GETs the
    partition's :maxts, which only produce.lua (producer role) writes."""
    setup(url)
    key = keys.max_timestamp("t", 0)
    assert raw.get(key) is not None  # kept by produce.lua (test_producer_role_produces runs it as that role)
    curl = make_user("t-consumer", "consumer")
    with redis.Redis.from_url(curl) as r:
        assert r.get(key) == raw.get(key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.set(key, "0 0")


def test_admin_role_manages_topics_and_groups(url, raw, make_user):
    setup(url)
    consume_some(url, "g", 10)
    aurl = make_user("t-admin", "admin")
    with Admin(aurl) as a:
        a.create_topic("new", 2, retention_ms=1000)
        assert [t.name for t in a.list_topics()] == ["new", "t", "t.dlq"]
        assert a.alter_partitions("new", 3).partitions == 3
        desc = a.describe_topic("t")
        assert sum(p.length for p in desc.partitions) == 10 and desc.groups == ("g",)
        assert a.list_groups() == ["g"]
        assert {p.committed is not None for p in a.describe_group("g").partitions} == {True}
        reset = a.reset_offsets("g", "t", to_earliest=True, execute=True)
        assert {r.target for r in reset} == {0}
        a.reset_offsets("g", "t", shift_by=2, execute=True)
        a.reset_offsets("g", "t", to_latest=True)
        assert a.dlq_list("t") == []
        a.delete_group("g")
        assert a.list_groups() == []
        a.delete_topic("new")
        assert [t.name for t in a.list_topics()] == ["t", "t.dlq"]
    assert raw.keys(f"{keys.PREFIX}:{{new/*") == []
    assert denials(raw, "t-admin") == []


def test_combined_roles_relay_and_dead_letter(url, raw, make_user):
    setup(url)
    with Admin(url) as a:
        a.create_topic("out", 1)
    both = make_user("t-both", "consumer", "producer")
    from facade import relay

    stats = relay("t", "out", "copier", both, idle_timeout_ms=300, consumer_options=FAST)
    assert stats.copied == 10 and raw.xlen(keys.stream("out", 0)) == 10
    with Consumer("t", "poison", both, auto_offset_reset="earliest", max_deliveries=1, **FAST) as c:
        for _ in range(100):  # every record fails: the redelivered ones go to the dead letters
            firsts = {}
            for m in c.poll(timeout_ms=20):
                firsts.setdefault(m.partition, m)
            for m in firsts.values():
                c.fail(m)
            if raw.xlen(keys.stream("t.dlq", 0)) == 10:
                break
    assert raw.xlen(keys.stream("t.dlq", 0)) == 10
    assert denials(raw, "t-both") == []


def test_each_role_through_the_cli(url, raw, make_user):
    from facade.cli import main

    runner = CliRunner()
    admin, producer, consumer = (make_user(f"t-{r}", r) for r in ("admin", "producer", "consumer"))

    def ok(*args: str) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    ok("--url", admin, "topics", "create", "posts", "-p", "2")
    ok("--url", producer, "produce", "posts", "hello", "--key", "k", "--header", "h=v", "--acks", "all")
    out = ok(
        "--url", consumer, "consume", "posts", "--group", "g", "--from-beginning", "--idle-timeout-ms", "300"
    )
    assert out == "hello\n"
    assert "posts" in ok("--url", admin, "topics", "describe", "posts")
    ok("--url", admin, "topics", "delete", "posts")
    result = runner.invoke(main, ["--url", producer, "topics", "create", "x", "-p", "1"])
    assert result.exit_code == 1 and "grant the rules from `facade acl print`" in result.stderr
    assert {u: denials(raw, f"t-{u}") for u in ("admin", "consumer")} == {"admin": [], "consumer": []}


# ---------------------------------------------------------------------------------------------
# What a role must not do is refused, and changes nothing


def _consume(u):
    with Consumer("t", "g", u, auto_offset_reset="earliest", **FAST) as c:
        c.poll(timeout_ms=200)


def _produce(u):
    with Producer(u, linger_ms=0) as p:
        p.send_and_wait("t", b"intruder")


def _auto_create(u):
    with Producer(u, auto_create=True, linger_ms=0) as p:
        p.send_and_wait("new", b"x")


def _admin(method: str, *args, **kw) -> Callable[[str], object]:
    def run(u: str) -> object:
        with Admin(u) as a:
            return getattr(a, method)(*args, **kw)

    run.__name__ = method
    return run


FORBIDDEN = {
    "producer": [
        _consume,
        _admin("create_topic", "new", 1),
        _admin("alter_partitions", "t", 3),
        _admin("delete_topic", "t"),
        _admin("list_groups"),
        _admin("describe_group", "g"),
        _admin("delete_group", "g"),
        _admin("dlq_list", "t"),
        _auto_create,
    ],
    "consumer": [
        _produce,
        _admin("create_topic", "new", 1),
        _admin("delete_topic", "t"),
        _admin("list_groups"),
        _admin("describe_group", "g"),
        _admin("delete_group", "g"),
    ],
    "admin": [_produce, _consume],
}


@pytest.mark.parametrize(
    "role,action",
    [(role, action) for role, actions in FORBIDDEN.items() for action in actions],
    ids=[
        f"{role}-{getattr(a, '__name__', 'lambda').strip('_<>')}-{i}"
        for role, actions in FORBIDDEN.items()
        for i, a in enumerate(actions)
    ],
)
def test_forbidden_actions_are_refused_and_change_nothing(url, raw, make_user, role, action):
    setup(url)
    consume_some(url, "g", 4)  # a group with committed progress: delete/describe targets
    user_url = make_user(f"t-{role}", role)
    error = fails_cleanly(raw, lambda: action(user_url))
    assert "acl print" in str(error)  # says how to fix it


def test_producer_with_auto_create_needs_the_admin_role(url, raw, make_user):
    setup(url)
    both = make_user("t-creator", "producer", "admin")
    with Producer(both, auto_create=True, linger_ms=0) as p:
        assert p.send_and_wait("fresh", b"x").partition == 0
    assert denials(raw, "t-creator") == []


def test_consumer_cannot_add_partitions_without_leaving_traces(url, raw, make_user):
    setup(url)
    curl = make_user("t-consumer", "consumer")
    before = snapshot(raw)
    with pytest.raises(FacadeError):
        _admin("alter_partitions", "t", 3)(curl)
    if snapshot(raw) != before:
        # partition_init.lua runs XGROUP CREATE ... MKSTREAM (allowed: consumers create stream
        # groups) before XGROUP DESTROY (refused): an empty stream with a stray group is left.
        pytest.xfail("partition_init is not all-or-nothing for a user allowed XGROUP CREATE only")


def test_a_user_confined_to_other_keys_cannot_touch_facade(url, raw, make_user):
    setup(url)
    consume_some(url, "g", 4)
    tokens = [
        "resetkeys",
        "~other:*",
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@connection",
        "-@dangerous",
    ]
    other = make_user("t-other", tokens=tokens)
    with redis.Redis.from_url(other) as r:
        r.set("other:x", "1")  # its own keys work
    raw.delete("other:x")
    actions = [_produce, _consume, _admin("create_topic", "new", 1), _admin("delete_topic", "t"),
               _admin("list_topics"), _admin("describe_group", "g")]  # fmt: skip
    for action in actions:
        fails_cleanly(raw, lambda action=action: action(other))


def test_wrong_password_and_unknown_user(url, raw, make_user, redis_server):
    setup(url)
    make_user("t-producer", "producer")
    port = redis_server.port
    for bad in (
        f"redis://t-producer:nope@127.0.0.1:{port}",
        f"redis://nobody:{quote(PASSWORD, safe='')}@127.0.0.1:{port}",
    ):
        for action in (_produce, _consume, _admin("list_topics")):
            error = fails_cleanly(raw, lambda action=action, bad=bad: action(bad), AuthenticationError)
            assert "check the user and password" in str(error)
            assert "nope" not in str(error)


def test_seek_by_a_consumer_of_its_own_group(url, raw, make_user):
    setup(url)
    curl = make_user("t-consumer", "consumer")
    with Consumer("t", "g", curl, auto_offset_reset="earliest", **FAST) as c:
        got = []
        for _ in range(100):
            got += c.poll(timeout_ms=20)
            if len(got) >= 10:
                break
        c.commit()
        tp = TopicPartition("t", got[0].partition)
        first = min((m for m in got if m.partition == tp.partition), key=lambda m: m.offset)
        c.seek(tp, first.offset)
        again = []
        for _ in range(50):
            again += [m for m in c.poll(timeout_ms=20) if m.topic_partition == tp]
            if again:
                break
        assert again[0].offset == first.offset
    assert denials(raw, "t-consumer") == []


@pytest.mark.parametrize("role", ["producer", "consumer"])
def test_describe_topic_without_the_rights_is_refused_not_misreported(url, make_user, role):
    setup(url)
    with Admin(url) as a:
        truth = a.describe_topic("t")
    user_url = make_user(f"t-{role}", role)
    try:
        with Admin(user_url) as a:
            seen = a.describe_topic("t")
    except PermissionDeniedError:
        return
    if seen != truth:
        # Admin.describe_topic turns every failed per-partition command (NOPERM included) into
        # "empty": a producer sees no offsets, a consumer sees length 0.
        pytest.xfail(f"describe_topic hides refused commands: {seen.partitions} != {truth.partitions}")


def test_asyncio_clients_with_the_roles(url, raw, make_user):
    admin, producer, consumer = (make_user(f"t-{r}", r) for r in ("admin", "producer", "consumer"))

    async def main() -> list:
        async with aio.Admin(admin) as a:
            await a.create_topic("t", 2)
        async with aio.Producer(producer, linger_ms=0) as p:
            for i in range(4):
                await p.send_and_wait("t", f"v{i}", key=f"k{i}", dedup_id=f"d{i}")
        async with aio.Consumer("t", "g", consumer, auto_offset_reset="earliest", **FAST) as c:
            got: list = []
            for _ in range(100):
                got += await c.poll(timeout_ms=20)
                if len(got) == 4:
                    break
            await c.commit()
        async with aio.Admin(admin) as a:
            await a.delete_group("g")
        return got

    assert sorted(m.value for m in asyncio.run(asyncio.wait_for(main(), 60))) == [b"v0", b"v1", b"v2", b"v3"]
    assert {u: denials(raw, f"t-{u}") for u in ("admin", "producer", "consumer")} == {
        "admin": [],
        "producer": [],
        "consumer": [],
    }
