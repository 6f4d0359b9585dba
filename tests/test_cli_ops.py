"""The operator's commands: groups, relay, dlq, the new consume options and formats, topics
--ack-retention, server start/status/stop of local topologies, completion, and the CLI
conventions (help with an example everywhere, exit codes, progress bars only on a terminal).

In-process with click's CliRunner against the ``url`` test server, except where a real process
matters. Nothing here touches 6379.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner, Result
from conftest import free_port, wait_until
from facade.cli import clients as cli_clients
from facade.cli import groups_view, main, render
from facade.cli import produce as cli_produce
from facade.cli.dlq import dead_letters_json, dead_letters_table
from facade.cli.progress import progress
from rich.console import Console

from facade import (
    Admin,
    Consumer,
    GroupDescription,
    GroupMember,
    GroupPartitionInfo,
    Headers,
    Message,
    OffsetReset,
    Producer,
    TopicPartition,
    keys,
)

FACADE = str(Path(sys.executable).parent / "facade")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def ok(*args: str, **kw) -> Result:
    result = run(*args, **kw)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result


def one_line_error(result: Result, *needles: str, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def rendered(renderable, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def consume_json(url: str, topic: str, group: str, *extra: str) -> list[dict]:
    out = ok("--url", url, "consume", topic, "-g", group, "--from-beginning", "--format", "json",
             "--idle-timeout-ms", "500", *extra).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def fill(url: str, topic: str, partitions: int, values: list[str], key_of=lambda i: f"k{i}") -> None:
    with Admin(url) as admin:
        admin.create_topic(topic, partitions)
    with Producer(url) as p:
        for i, v in enumerate(values):
            p.send(topic, v, key=key_of(i))


# ---------------------------------------------------------------------------------------------
# CLI conventions


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


ALL_COMMANDS = list(_commands(main))


def test_the_command_tree_has_every_new_command():
    for path in [
        ("groups", "list"), ("groups", "describe"), ("groups", "reset-offsets"), ("groups", "delete"),
        ("relay",), ("dlq", "list"), ("dlq", "replay"), ("server", "start"), ("server", "status"),
        ("server", "stop"), ("dashboard",), ("bench", "produce"), ("bench", "consume"), ("bench", "e2e"),
        ("completion",),
    ]:  # fmt: skip
        assert path in ALL_COMMANDS


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    text = ok(*path, "--help").output
    assert "Example" in text, path
    assert "facade " in text.split("Example", 1)[1], path


def test_root_help_documents_exit_codes_and_completion():
    text = ok("--help").output
    for needle in ("Exit status", "130", "usage error", "_FACADE_COMPLETE=bash_source facade", "NO_COLOR"):
        assert needle in text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    script = ok("completion", shell).stdout
    assert "_FACADE_COMPLETE" in script and f"{shell}_complete" in script
    assert run("completion", "tcsh").exit_code == 2


def test_completion_completes_subcommands():
    """What the shell asks at Tab: the real console script answers with the commands."""
    env = {
        "_FACADE_COMPLETE": "bash_complete",
        "COMP_WORDS": "facade gro",
        "COMP_CWORD": "1",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run([FACADE], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert "plain,groups" in done.stdout, done


def test_progress_only_on_a_terminal():
    # not a terminal (CliRunner, pipes): a Bar that does nothing and prints nothing
    sink = io.StringIO()
    with progress("working", 10, console=Console(file=sink)) as bar:
        assert not bar.shown
        bar.advance(5)
    assert sink.getvalue() == ""
    # a terminal: a bar on the console
    tty = io.StringIO()
    with progress("working hard", 10, console=Console(file=tty, force_terminal=True, width=80)) as bar:
        assert bar.shown
        bar.advance(5)
        bar.set(10)
    assert "working hard" in tty.getvalue()
    quiet = io.StringIO()
    with progress(
        "replaying", count=False, console=Console(file=quiet, force_terminal=True, width=80)
    ) as bar:
        bar.set(1234)
    assert "replaying" in quiet.getvalue() and "1,234" not in quiet.getvalue()


def test_produce_shows_progress_only_for_a_big_file_on_stdin(tmp_path):
    big = tmp_path / "big"
    big.write_bytes((b"x" * 99 + b"\n") * (cli_produce.PROGRESS_MIN_BYTES // 100 + 1))
    small = tmp_path / "small"
    small.write_bytes(b"a\nb\n")
    with open(big, "rb") as fh:
        assert cli_produce._remaining_file_bytes(fh) == big.stat().st_size
        fh.seek(10)
        assert cli_produce._remaining_file_bytes(fh) == big.stat().st_size - 10  # from where stdin stands
    with open(small, "rb") as fh:
        assert cli_produce._remaining_file_bytes(fh) is None
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as cat:
        assert cli_produce._remaining_file_bytes(cat.stdout) is None  # a pipe has no size
        cat.stdin.close()


def test_interrupted_command_exits_130(url, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(Admin, "list_groups", interrupted)
    assert run("--url", url, "groups", "list").exit_code == 130


# ---------------------------------------------------------------------------------------------
# groups: pure views


def _description(members: bool = True) -> GroupDescription:
    member = GroupMember(
        "host-1-abc", ("posts",), (TopicPartition("posts", 0), TopicPartition("posts", 1)), 10_000, "host-1", "facade"
    )
    return GroupDescription(
        "readers",
        7,
        (member,) if members else (),
        (
            GroupPartitionInfo("posts", 0, "host-1-abc" if members else None, 5, 7, 0, 9, 4),
            GroupPartitionInfo("posts", 1, "host-1-abc" if members else None, None, 2, 0, 3, 3),
        ),
    )


def test_group_views():
    d = _description()
    obj = json.loads(groups_view.describe_json(d))
    assert obj == {
        "group": "readers",
        "generation": 7,
        "members": [{"id": "host-1-abc", "host": "host-1", "client_id": "facade", "partitions": ["posts:0", "posts:1"]}],
        "partitions": [
            {"topic": "posts", "partition": 0, "owner": "host-1-abc", "committed": 5, "position": 7, "log_start": 0, "log_end": 9, "lag": 4},
            {"topic": "posts", "partition": 1, "owner": "host-1-abc", "committed": None, "position": 2, "log_start": 0, "log_end": 3, "lag": 3},
        ],
    }  # fmt: skip
    text = rendered(groups_view.describe_view(d, now_ms=4_000))
    for needle in ("Generation: 7", "LAG", "LOG-END-OFFSET", "CURRENT-OFFSET", "posts:0,posts:1", "6s"):
        assert needle in text, needle
    empty = rendered(groups_view.describe_view(_description(members=False), now_ms=0))
    assert "no active members" in empty
    assert json.loads(groups_view.list_json([d])) == [
        {"group": "readers", "members": 1, "generation": 7, "lag": 7}
    ]
    assert "readers" in rendered(groups_view.list_table([d]))
    assert rendered(groups_view.list_table([])).strip() == "no consumer groups"
    plan = [OffsetReset("posts", 0, 5, 0), OffsetReset("posts", 1, None, 0)]
    assert "Dry run" in rendered(groups_view.resets_view("readers", plan, executed=False))
    assert "reset." in rendered(groups_view.resets_view("readers", plan, executed=True))
    assert json.loads(groups_view.resets_json("readers", plan, True))["partitions"][1] == {
        "topic": "posts", "partition": 1, "current": None, "target": 0,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# groups: against a server


def test_groups_list_describe_and_delete(url):
    assert ok("--url", url, "groups", "list").stdout.strip() == "no consumer groups"
    assert ok("--url", url, "groups", "list", "--json").stdout.strip() == "[]"
    fill(url, "posts", 3, [f"v{i}" for i in range(9)])
    assert len(consume_json(url, "posts", "readers", "--max-messages", "4")) == 4
    listed = json.loads(ok("--url", url, "groups", "list", "--json").stdout)
    assert listed == [{"group": "readers", "members": 0, "generation": listed[0]["generation"], "lag": 5}]
    d = json.loads(ok("--url", url, "groups", "describe", "readers", "--json").stdout)
    assert set(d) == {"group", "generation", "members", "partitions"} and d["members"] == []
    assert sum(p["lag"] for p in d["partitions"]) == 5 and len(d["partitions"]) == 3
    assert all(
        set(p) == {"topic", "partition", "owner", "committed", "position", "log_start", "log_end", "lag"}
        for p in d["partitions"]
    )
    text = ok("--url", url, "groups", "describe", "readers").stdout
    assert "LAG" in text and "no active members" in text

    # a live member: shown with its assignment and as owner
    with Consumer("posts", "readers", url=url) as c:
        wait_until(lambda: (c.poll(timeout_ms=50), len(c.assignment()) == 3)[1], timeout=10, what="owns 3")
        d = json.loads(ok("--url", url, "groups", "describe", "readers", "--json").stdout)
        assert [m["id"] for m in d["members"]] == [c.member_id]
        assert sorted(d["members"][0]["partitions"]) == ["posts:0", "posts:1", "posts:2"]
        assert {p["owner"] for p in d["partitions"]} == {c.member_id}
        assert c.member_id in ok("--url", url, "groups", "describe", "readers").stdout
        one_line_error(run("--url", url, "groups", "delete", "readers"), "live member")

    assert "Deleted group readers" in ok("--url", url, "groups", "delete", "readers").stdout
    assert json.loads(ok("--url", url, "groups", "list", "--json").stdout) == []
    one_line_error(run("--url", url, "groups", "describe", "readers"), "does not exist")
    one_line_error(run("--url", url, "groups", "delete", "readers"), "does not exist")
    one_line_error(run("--url", url, "groups", "describe", "bad group"), "invalid group name")


def test_reset_offsets(url):
    fill(url, "t", 1, [f"v{i}" for i in range(6)], key_of=lambda i: "k")
    assert len(consume_json(url, "t", "g")) == 6
    # dry run by default: a plan, and nothing moves
    plan = ok("--url", url, "groups", "reset-offsets", "g", "--topic", "t", "--to-earliest")
    assert "Dry run" in plan.stdout and "NEW-OFFSET" in plan.stdout
    assert consume_json(url, "t", "g") == []
    explicit = json.loads(ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--shift-by", "-2",
                             "--dry-run", "--json").stdout)  # fmt: skip
    assert explicit["executed"] is False and len(explicit["partitions"]) == 1
    assert consume_json(url, "t", "g") == []

    ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--shift-by", "-2", "--execute")
    assert [m["value"] for m in consume_json(url, "t", "g")] == ["v4", "v5"]
    done = json.loads(ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--to-earliest", "--execute",
                         "--json").stdout)  # fmt: skip
    assert done["executed"] is True and done["partitions"][0]["target"] == 0
    assert [m["value"] for m in consume_json(url, "t", "g")] == [f"v{i}" for i in range(6)]
    offsets = [m["offset"] for m in consume_json(url, "t", "other")]
    assert offsets == list(range(6))
    ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--to-offset", "3", "--execute")
    assert [m["value"] for m in consume_json(url, "t", "g")] == ["v3", "v4", "v5"]
    ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--by-duration", "PT1H", "--execute")
    assert len(consume_json(url, "t", "g")) == 6  # all were written within the hour
    ok(
        "--url",
        url,
        "groups",
        "reset-offsets",
        "g",
        "-t",
        "t",
        "--to-datetime",
        "2999-01-01T00:00:00Z",
        "--execute",
    )
    assert consume_json(url, "t", "g") == []
    ok(
        "--url",
        url,
        "groups",
        "reset-offsets",
        "g",
        "-t",
        "t",
        "--to-datetime",
        "2000-01-01T00:00:00+01:00",
        "--execute",
    )
    assert len(consume_json(url, "t", "g")) == 6
    ok("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--to-latest", "--execute")
    assert consume_json(url, "t", "g") == []


def test_reset_offsets_errors(url):
    fill(url, "t", 2, ["a"])
    consume_json(url, "t", "g")
    base = ("--url", url, "groups", "reset-offsets", "g", "--topic", "t")
    assert "exactly one" in run(*base).output and run(*base).exit_code == 2
    assert run(*base, "--to-earliest", "--to-latest").exit_code == 2
    assert run(*base, "--shift-by", "x").exit_code == 2
    assert run("--url", url, "groups", "reset-offsets", "g", "--to-earliest").exit_code == 2  # --topic
    # A malformed value is a usage error naming the option, as an out-of-range number is (exit 2).
    bad_time = run(*base, "--to-datetime", "yesterday")
    assert bad_time.exit_code == 2 and "Invalid value for --to-datetime: bad date-time 'yesterday'" in bad_time.stderr
    bad_duration = run(*base, "--by-duration", "15 minutes")
    assert bad_duration.exit_code == 2 and "Invalid value for --by-duration: bad duration" in bad_duration.stderr
    assert "'abc' is not a valid integer" in run(*base, "--to-offset", "abc").output
    assert run(*base, "--to-offset", "abc").exit_code == 2 and run(*base, "--to-offset", "-1").exit_code == 2
    one_line_error(run("--url", url, "groups", "reset-offsets", "g", "--topic", "missing", "--to-earliest"),
                   "does not exist")  # fmt: skip
    with Consumer("t", "g", url=url) as c:
        wait_until(lambda: (c.poll(timeout_ms=50), c.assignment())[1], timeout=10, what="joined")
        one_line_error(run(*base, "--to-earliest", "--execute"), "live member", "stop its consumers")


# ---------------------------------------------------------------------------------------------
# consume: options and templates


def _msg(**kw) -> Message:
    base = {"topic": "t", "partition": 2, "offset": 4, "key": b"k", "value": b"v",
            "headers": Headers([("a", b"1"), ("b", b"2")]), "delivery_count": 3, "timestamp_ms": 1700000000123}  # fmt: skip
    base.update(kw)
    return Message(**base)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("%t %p %o %k %v", b"t 2 4 k v\n"),
        ("%k=%v\\n", b"k=v\n"),
        ("%h|%T|%c|100%%", b"a=1,b=2|1700000000123|3|100%\n"),
        ("[%v]\\t%k\\\\", b"[v]\tk\\\n"),
        ("no fields at all %%", b"no fields at all %\n"),
    ],
)
def test_message_template(template, expected):
    assert render.message_template(template)(_msg()) == expected


def test_message_template_null_key_binary_value_and_errors():
    assert render.message_template("%k|%v")(_msg(key=None, value=b"\xff\x00")) == b"|\xff\x00\n"
    for bad in ("%x", "trailing %"):
        with pytest.raises(ValueError, match="unknown field"):
            render.message_template(bad)


def test_consume_with_a_template(url):
    fill(url, "t", 1, ["hello", "world"], key_of=lambda i: f"user{i}")
    out = ok("--url", url, "consume", "t", "-g", "g", "--from-beginning", "--idle-timeout-ms", "800",
             "--format", "%t/%p %k=%v (%c)").stdout  # fmt: skip
    assert out == "t/0 user0=hello (1)\nt/0 user1=world (1)\n"
    assert run("--url", url, "consume", "t", "-g", "g", "--format", "xml").exit_code == 2
    assert "unknown field %q" in run("--url", url, "consume", "t", "-g", "g", "--format", "%q").output


def test_consume_passes_the_group_options(url, monkeypatch):
    seen = {}
    real = cli_clients.Consumer

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_clients, "Consumer", spy)
    fill(url, "t", 1, ["a"])
    ok("--url", url, "consume", "t", "-g", "g", "--idle-timeout-ms", "200", "--session-timeout-ms", "600",
       "--guarantee", "at-most-once", "--max-deliveries", "4", "--group-instance-id", "worker-1")  # fmt: skip
    assert seen["session_timeout_ms"] == 600 and seen["heartbeat_interval_ms"] == 200
    assert seen["guarantee"] == "at-most-once" and seen["max_deliveries"] == 4
    assert seen["group_instance_id"] == "worker-1"
    for bad in (["--guarantee", "twice"], ["--session-timeout-ms", "50"], ["--max-deliveries", "0"]):
        assert run("--url", url, "consume", "t", "-g", "g", *bad).exit_code == 2
    bad_id = run("--url", url, "consume", "t", "-g", "g", "--group-instance-id", "a b", "--idle-timeout-ms", "100")
    assert bad_id.exit_code == 2 and "Invalid value for --group-instance-id: 'a b'" in bad_id.stderr
    assert "group_instance_id" not in bad_id.stderr  # the CLI's option, not the SDK's argument


def test_static_member_stays_in_the_group_until_its_session_ends(url):
    fill(url, "t", 2, ["a", "b"])
    ok("--url", url, "consume", "t", "-g", "g", "--from-beginning", "--idle-timeout-ms", "500",
       "--group-instance-id", "static-1", "--session-timeout-ms", "1500")  # fmt: skip
    members = json.loads(ok("--url", url, "groups", "describe", "g", "--json").stdout)["members"]
    assert [m["id"] for m in members] == ["static-1"]  # a static member does not leave on exit
    wait_until(
        lambda: json.loads(ok("--url", url, "groups", "describe", "g", "--json").stdout)["members"] == [],
        timeout=10,
        what="session expired",
    )


def test_exactly_once_consume_moves_the_processed_mark(url):
    fill(url, "t", 1, ["a", "b"])
    consume_json(url, "t", "g", "--guarantee", "exactly-once")
    with redis.Redis.from_url(url) as r:
        assert r.hget(keys.processed("t", 0), "g") is not None
    consume_json(url, "t", "plain")
    with redis.Redis.from_url(url) as r:
        assert r.hget(keys.processed("t", 0), "plain") is None


# ---------------------------------------------------------------------------------------------
# dead letters


def _dead_letter(url: str, topic: str, values: list[str]) -> None:
    """Deliver ``values`` once to an application that fails each of them."""
    fill(url, topic, 1, values, key_of=lambda i: "k")
    with Consumer(topic, "g", url=url, auto_offset_reset="earliest", max_deliveries=1, enable_auto_commit=False) as c:
        got = []
        wait_until(
            lambda: got.extend(c.poll(timeout_ms=100)) or len(got) >= len(values), timeout=10, what="read"
        )
        for m in reversed(got):
            c.fail(m, "cannot handle it")
        c.commit()  # where the group stands: before both (they were given back)


def test_max_deliveries_dead_letters_then_list_and_replay(url):
    _dead_letter(url, "orders", ["bad-1", "bad-2"])
    assert ok("--url", url, "dlq", "list", "orders").stdout.strip() == "no dead letters for orders"
    assert ok("--url", url, "dlq", "list", "orders", "--json").stdout.strip() == "[]"
    # failed once, to a consumer allowing 1: dead-lettered instead of printed
    out = ok(
        "--url", url, "consume", "orders", "-g", "g", "--max-deliveries", "1", "--idle-timeout-ms", "800"
    ).stdout
    assert out == ""
    dead = json.loads(ok("--url", url, "dlq", "list", "orders", "--json").stdout)
    assert [d["value"] for d in dead] == ["bad-1", "bad-2"]
    assert dead[0]["dlq"]["topic"] == "orders" and dead[0]["dlq"]["partition"] == 0
    assert dead[0]["dlq"]["delivery_count"] == 2 and dead[0]["key"] == "k"
    assert len(json.loads(ok("--url", url, "dlq", "list", "orders", "--json", "--limit", "1").stdout)) == 1
    table = ok("--url", url, "dlq", "list", "orders").stdout
    assert "bad-1" in table and "orders:0" in table and "DELIVERIES" in table
    assert "Replayed 2 dead letters to orders" in ok("--url", url, "dlq", "replay", "orders").stdout
    assert json.loads(ok("--url", url, "dlq", "list", "orders", "--json").stdout) == []
    assert [m["value"] for m in consume_json(url, "orders", "g")] == ["bad-1", "bad-2"]
    assert "Replayed 0 dead letters" in ok("--url", url, "dlq", "replay", "orders").stdout


def test_dlq_errors(url):
    one_line_error(run("--url", url, "dlq", "list", "missing"), "does not exist")
    one_line_error(run("--url", url, "dlq", "replay", "missing"), "does not exist")
    fill(url, "t", 1, [])
    assert run("--url", url, "dlq", "list", "t", "--limit", "0").exit_code == 2


def test_dead_letter_views():
    m = Message("orders.dlq", 0, 0, b"k", b"x" * 100,
                Headers([("dlq.topic", b"orders"), ("dlq.partition", b"3"), ("dlq.offset", b"5"),
                         ("dlq.delivery_count", b"4"), ("dlq.error", b"boom"), ("trace", b"t1")]),
                1, 1700000000000)  # fmt: skip
    obj = json.loads(dead_letters_json([m]))[0]
    assert obj["dlq"] == {
        "topic": "orders",
        "partition": 3,
        "offset": 5,
        "delivery_count": 4,
        "error": "boom",
    }
    assert obj["value"] == "x" * 100 and ["trace", "t1"] in obj["headers"]
    text = rendered(dead_letters_table("orders", [m]))
    assert "orders:3" in text and "boom" in text and "x" * 100 not in text  # long values are cut


# ---------------------------------------------------------------------------------------------
# relay


def test_relay_copies_and_resumes(url):
    fill(url, "src", 3, [f"v{i}" for i in range(10)])
    with Admin(url) as admin:
        admin.create_topic("dst", 2)
    result = ok("--url", url, "relay", "src", "dst", "--group", "copier", "--idle-timeout-ms", "500")
    assert "Relayed 10 records from src to dst" in result.stderr
    copied = consume_json(url, "dst", "check")
    assert sorted(m["value"] for m in copied) == [f"v{i}" for i in range(10)]
    assert all(m["partition"] in (0, 1) for m in copied)
    # it resumes where the group stopped: nothing twice
    with Producer(url) as p:
        p.send("src", "late", key="k1")
    assert "Relayed 1 record " in ok("--url", url, "relay", "src", "dst", "-g", "copier",
                                      "--idle-timeout-ms", "500").stderr  # fmt: skip
    assert [m["value"] for m in consume_json(url, "dst", "check")] == ["late"]


def test_relay_options(url):
    fill(url, "src", 1, ["a", "b", "c", "d"])
    with Admin(url) as admin:
        admin.create_topic("dst", 4)
    with Producer(url) as p:
        p.send("src", "with-header", key="x", headers={"user": "u-7"})
    out = ok("--url", url, "relay", "src", "dst", "-g", "r", "--max-messages", "2", "--at-least-once")
    assert "Relayed 2 records" in out.stderr
    ok(
        "--url",
        url,
        "relay",
        "src",
        "dst",
        "-g",
        "r",
        "--key-from",
        "header:user",
        "--idle-timeout-ms",
        "500",
    )
    copied = {m["value"]: m for m in consume_json(url, "dst", "check")}
    assert set(copied) == {"a", "b", "c", "d", "with-header"}
    assert copied["with-header"]["key"] == "u-7"  # re-keyed from the header
    assert copied["c"]["key"] is None  # no such header: keyless


def test_relay_errors(url):
    fill(url, "src", 1, ["a"])
    assert run("--url", url, "relay", "src", "dst", "-g", "r", "--key-from", "nonsense").exit_code == 2
    assert run("--url", url, "relay", "src", "dst").exit_code == 2  # --group
    one_line_error(
        run("--url", url, "relay", "src", "missing", "-g", "r", "--idle-timeout-ms", "100"), "does not exist"
    )
    one_line_error(
        run("--url", url, "relay", "src", "src", "-g", "r", "--idle-timeout-ms", "100"), "different topics"
    )


# ---------------------------------------------------------------------------------------------
# topics --ack-retention


def test_topics_create_ack_retention(url):
    assert "retention waits" in ok("--url", url, "topics", "create", "t", "-p", "1", "--max-len", "10",
                                   "--ack-retention").stdout  # fmt: skip
    ok("--url", url, "topics", "create", "u", "-p", "1")
    listed = {t["name"]: t for t in json.loads(ok("--url", url, "topics", "list", "--json").stdout)}
    assert listed["t"]["ack_retention"] is True and listed["u"]["ack_retention"] is False
    assert json.loads(ok("--url", url, "topics", "describe", "t", "--json").stdout)["ack_retention"] is True
    assert "Ack retention: on" in ok("--url", url, "topics", "describe", "t").stdout


def test_topics_create_dedup_settings(url):
    ok("--url", url, "topics", "create", "t", "-p", "1", "--dedup-window-ms", "5000", "--dedup-max-ids", "7")
    ok("--url", url, "topics", "create", "u", "-p", "1")
    listed = {t["name"]: t for t in json.loads(ok("--url", url, "topics", "list", "--json").stdout)}
    assert (listed["t"]["dedup_window_ms"], listed["t"]["dedup_max_ids"]) == (5000, 7)
    assert (listed["u"]["dedup_window_ms"], listed["u"]["dedup_max_ids"]) == (120_000, 100_000)
    assert "Dedup ids: 5s window, at most 7 per partition" in ok("--url", url, "topics", "describe", "t").stdout
    assert run("--url", url, "topics", "create", "v", "-p", "1", "--dedup-window-ms", "0").exit_code == 2
    assert ok("--url", url, "topics", "create", "t", "-p", "1", "--if-not-exists").stderr == ""
    again = ok("--url", url, "topics", "create", "t", "-p", "1", "--if-not-exists", "--dedup-window-ms", "6000")
    assert again.stderr.strip() == (
        "facade: warning: topic t exists with other settings: --dedup-window-ms 5000 (asked for 6000)"
    )


# ---------------------------------------------------------------------------------------------
# server: local topologies (--data-dir)


def test_server_start_usage_errors(tmp_path):
    assert "need --data-dir" in run("server", "start", "--replicas", "1").output
    assert run("server", "start", "--cluster-shards", "2").exit_code == 2
    d = str(tmp_path / "x")
    assert run("server", "start", "--data-dir", d, "--replicas-per-shard", "1").exit_code == 2
    assert run("server", "start", "--data-dir", d, "--cluster-shards", "2", "--sentinels", "1").exit_code == 2
    assert run("server", "start", "--data-dir", d, "--replicas", "99").exit_code == 2
    one_line_error(run("server", "status", "--data-dir", d), f"{d} does not exist; start a topology there")
    one_line_error(run("server", "stop", "--data-dir", d), f"{d} does not exist: nothing to stop")
    one_line_error(run("server", "start", "--data-dir", d, "--replicas", "0", "--sentinels", "1"), "replica")


def test_server_start_without_options_starts_the_embedded_broker(facade_home):
    out = ok("server", "start").stdout
    assert "embedded broker runs at unix://" in out
    status = json.loads(ok("server", "status", "--json").stdout)
    assert status["running"] is True
    again = json.loads(ok("server", "start", "--json").stdout)
    assert again["pid"] == status["pid"]  # already running: the same one
    ok("server", "stop")


@pytest.mark.slow
def test_server_topology_start_status_stop(tmp_path):
    d = str(tmp_path / "ha")
    started = json.loads(ok("server", "start", "--data-dir", d, "--replicas", "1", "--sentinels", "1",
                            "--down-after-ms", "500", "--json").stdout)  # fmt: skip
    try:
        assert set(started) == {"url", "primary", "replicas", "sentinels"}
        assert started["url"].startswith("redis+sentinel://") and started["primary"]["pid"]
        assert len(started["replicas"]) == 1 and len(started["sentinels"]) == 1
        assert json.loads(ok("server", "status", "--data-dir", d, "--json").stdout) == started
        text = ok("server", "status", "--data-dir", d).stdout
        assert f"127.0.0.1:{started['primary']['port']}" in text and "sentinels" in text
        ok("--url", started["url"], "topics", "create", "t", "-p", "1")
        one_line_error(
            run("server", "start", "--data-dir", d, "--replicas", "1", "--sentinels", "1"), "already runs"
        )
    finally:
        assert "Stopped the topology" in ok("server", "stop", "--data-dir", d).stdout
    stopped = json.loads(ok("server", "status", "--data-dir", d, "--json").stdout)
    assert stopped["primary"]["pid"] is None and "stopped" in ok("server", "status", "--data-dir", d).stdout
    assert f"The topology in {d} is not running." in ok("server", "stop", "--data-dir", d).stdout


@pytest.mark.slow
def test_server_topology_on_a_base_port_without_sentinels(tmp_path):
    d = str(tmp_path / "plain")
    base = free_port()
    result = run("server", "start", "--data-dir", d, "--replicas", "0", "--port", str(base), "--json")
    if result.exit_code == 1 and "is taken" in result.stderr:
        pytest.skip(f"port {base} was taken by another process between picking it and starting")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    try:
        assert started["url"] == f"redis://127.0.0.1:{base}" and started["sentinels"] == []
    finally:
        ok("server", "stop", "--data-dir", d)


@pytest.mark.slow
def test_server_cluster_start_status_stop(tmp_path):
    d = str(tmp_path / "cluster")
    started = json.loads(ok("server", "start", "--data-dir", d, "--cluster-shards", "2", "--json").stdout)
    try:
        assert started["url"].startswith("redis+cluster://") and len(started["shards"]) == 2
        assert json.loads(ok("server", "status", "--data-dir", d, "--json").stdout)["url"] == started["url"]
        assert "slots 0-8191" in ok("server", "status", "--data-dir", d).stdout
    finally:
        assert "Stopped the cluster" in ok("server", "stop", "--data-dir", d).stdout
