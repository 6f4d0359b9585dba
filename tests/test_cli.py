"""The ``facade`` command: every subcommand and option, its output formats and its errors.

Most tests run the CLI in-process with click's CliRunner against the ``url`` test server; the
ones about processes (Ctrl-C, no traceback on stderr, the console script itself) run the
installed ``facade`` script as a subprocess. Nothing here touches a server on 6379: every
command gets ``--url`` or runs the embedded broker under the test's own FACADE_HOME.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import free_port, wait_until
from facade.cli import main, render
from facade.cli.produce import Line, parse_header, split_key, stdin_lines
from rich.console import Console

from facade import Admin, Consumer, Headers, Producer, partition_for_key
from facade.local import EmbeddedInfo
from facade.records import Message, PartitionInfo, RecordMetadata, TopicConfig, TopicDescription

FACADE = str(Path(sys.executable).parent / "facade")


def run(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in-process; an exception that escapes the CLI fails the test."""
    result = CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)
    return result


def ok(*args: str, **kw) -> Result:
    result = run(*args, **kw)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def consume_all(url: str, topic: str, group: str, *extra: str) -> list[dict]:
    """Read what the group has not committed yet (json format), exiting after 0.8 s without news."""
    result = ok(
        "--url", url, "consume", topic, "--group", group, "--from-beginning", "--format", "json",
        "--idle-timeout-ms", "800", *extra,
    )  # fmt: skip
    return json_lines(result.stdout)


def assert_one_line_error(result: Result, *needles: str, code: int = 1) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output


def rendered(renderable) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=200, record=True, color_system=None, file=sink)
        console.print(renderable)
        return console.export_text()


# ---------------------------------------------------------------------------------------------
# Pure pieces: rendering and parsing (no server)


def msg(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message("t", 2, 4, key, value, Headers(headers or ()), 1, 1700000000123, "CreateTime")


def test_message_json_text_fields():
    line = render.message_json(msg(b"user-1", b"h\xc3\xa9llo", [("src", b"web"), ("src", b"api")]))
    assert json.loads(line) == {
        "topic": "t",
        "partition": 2,
        "offset": 4,
        "key": "user-1",
        "value": "héllo",
        "headers": [["src", "web"], ["src", "api"]],
        "timestamp_ms": 1700000000123,
        "timestamp_type": "CreateTime",
    }
    assert "\n" not in line


def test_message_json_binary_as_base64():
    obj = json.loads(render.message_json(msg(b"\xff\x00", b"\x80\x81", [("bin", b"\xfe"), ("txt", b"ok")])))
    assert "key" not in obj and base64.b64decode(obj["key_base64"]) == b"\xff\x00"
    assert "value" not in obj and base64.b64decode(obj["value_base64"]) == b"\x80\x81"
    assert obj["headers"] == [["txt", "ok"]]
    assert [(k, base64.b64decode(v)) for k, v in obj["headers_base64"]] == [("bin", b"\xfe")]


def test_message_json_keyless_and_text_format():
    m = msg(None, b"plain")
    obj = json.loads(render.message_json(m))
    assert obj["key"] is None and obj["headers"] == [] and "headers_base64" not in obj
    assert render.message_text(m) == b"plain"


def test_metadata_json():
    assert json.loads(render.metadata_json(RecordMetadata("t", 1, 5), b"k")) == {
        "topic": "t", "partition": 1, "offset": 5, "key": "k",
    }  # fmt: skip
    assert json.loads(render.metadata_json(RecordMetadata("t", 0, 6), None))["key"] is None


@pytest.mark.parametrize(
    "ms, text",
    [
        (None, "forever"),
        (250, "250ms"),
        (1000, "1s"),
        (90_000, "1m30s"),
        (604_800_000, "7d"),
        (3_601_500, "1h1s500ms"),
    ],
)
def test_format_ms(ms, text):
    assert render.format_ms(ms) == text


def test_topic_and_status_views():
    cfg = TopicConfig("posts", 5, 60_000, 1000, 1_700_000_000_000, 2)
    table = rendered(render.topics_table([cfg]))
    assert "posts" in table and "1m" in table and "1000" in table and "2023-11-14T22:13:20Z" in table
    assert rendered(render.topics_table([])).strip() == "no topics"
    desc = TopicDescription(
        cfg,
        (
            PartitionInfo(0, "facade:{posts/0}:log", 3, 1207, 1210),
            PartitionInfo(1, "facade:{posts/1}:log", 0, 0, 0),
        ),
        ("notifications",),
    )
    text = rendered(render.description_view(desc))
    for needle in ("facade:{posts/0}:log", "1207", "1210", "LOG-END-OFFSET", "notifications", "Records: 3", "Retention: 1m"):
        assert needle in text
    obj = json.loads(render.description_json(desc))
    assert obj["partition_count"] == 5 and obj["groups"] == ["notifications"]
    assert obj["partitions"][1] == {
        "partition": 1, "length": 0, "log_start_offset": 0, "log_end_offset": 0, "stream_key": "facade:{posts/1}:log", "shard": None,
    }  # fmt: skip
    info = EmbeddedInfo(True, "unix:///x/facade.sock", "/x", 42, "/bin/valkey-server")
    assert "running" in rendered(render.status_view(info)) and "42" in rendered(render.status_view(info))
    assert json.loads(render.status_json(info)) == {
        "running": True, "url": "unix:///x/facade.sock", "pid": 42, "home": "/x", "binary": "/bin/valkey-server",
    }  # fmt: skip


def test_colour_follows_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "")
    assert render.console().no_color
    monkeypatch.delenv("NO_COLOR")
    assert not render.console().no_color


def test_parsing_helpers():
    assert parse_header("a=b=c") == ("a", "b=c")
    assert parse_header("empty=") == ("empty", "")
    assert split_key(b"user-1:a:b", b":") == (b"user-1", b"a:b")
    assert split_key(b":v", b":") == (b"", b"v")
    assert split_key(b"v", b":") is None
    lines = list(stdin_lines(io.BytesIO(b"a\nb\r\n\nlast"), 10))
    assert [(x.number, x.data) for x in lines] == [(1, b"a"), (2, b"b"), (3, b""), (4, b"last")]


def test_stdin_lines_skip_long_lines_without_holding_them():
    data = b"ok\n" + b"x" * 11 + b"\n" + b"y" * 10 + b"\r\n" + b"z" * 300_000 + b"\nafter\n" + b"w" * 11
    lines = list(stdin_lines(io.BytesIO(data), 10))
    assert lines == [
        Line(1, b"ok", 2), Line(2, None, 11), Line(3, b"y" * 10, 10), Line(4, None, 300_000), Line(5, b"after", 5),
        Line(6, None, 11),
    ]  # fmt: skip

    class Counting(io.BytesIO):
        largest = 0

        def readline(self, size=-1):
            chunk = super().readline(size)
            Counting.largest = max(Counting.largest, len(chunk))
            return chunk

    assert [x.size for x in stdin_lines(Counting(b"a" * 5_000_000 + b"\nb\n"), 1000)] == [5_000_000, 1]
    assert Counting.largest <= 65_536  # never more than a chunk in memory


@pytest.mark.parametrize(
    "command",
    [
        [], ["topics"], ["topics", "create"], ["topics", "list"], ["topics", "describe"], ["topics", "delete"],
        ["topics", "alter"], ["produce"], ["consume"], ["server"], ["server", "status"], ["server", "stop"], ["demo"],
    ],
)  # fmt: skip
def test_every_command_has_help_with_an_example(command):
    result = ok(*command, "--help")
    assert "Example" in result.output
    assert "facade " in result.output.split("Example", 1)[1]


def test_version():
    assert "facade, version" in ok("--version").output


# ---------------------------------------------------------------------------------------------
# topics


def test_topics_lifecycle(url):
    assert ok("--url", url, "topics", "list").stdout.strip() == "no topics"
    assert ok("--url", url, "topics", "list", "--json").stdout.strip() == "[]"
    out = ok(
        "--url",
        url,
        "topics",
        "create",
        "posts",
        "--partitions",
        "3",
        "--retention-ms",
        "60000",
        "--max-len",
        "500",
    )
    assert "Created topic posts with 3 partitions" in out.stdout
    ok("--url", url, "topics", "create", "a.b_c-d", "-p", "1")

    listed = json.loads(ok("--url", url, "topics", "list", "--json").stdout)
    assert [(t["name"], t["partition_count"], t["retention_ms"], t["max_len"]) for t in listed] == [
        ("a.b_c-d", 1, None, None),
        ("posts", 3, 60000, 500),
    ]
    table = ok("--url", url, "topics", "list").stdout
    assert "posts" in table and "a.b_c-d" in table and "1m" in table

    with Producer(url) as p:
        p.send_and_wait("posts", b"v", key="k")
    described = json.loads(ok("--url", url, "topics", "describe", "posts", "--json").stdout)
    assert described["name"] == "posts" and described["partition_count"] == 3
    assert described["retention_ms"] == 60000 and described["max_len"] == 500
    lengths = [p["length"] for p in described["partitions"]]
    assert sum(lengths) == 1 and lengths[partition_for_key(b"k", 3)] == 1
    filled = described["partitions"][partition_for_key(b"k", 3)]
    assert (filled["log_start_offset"], filled["log_end_offset"]) == (0, 1) and filled["stream_key"].startswith("facade:")
    text = ok("--url", url, "topics", "describe", "posts").stdout
    assert "Partitions: 3" in text and filled["stream_key"] in text and "Groups: (none)" in text

    altered = ok("--url", url, "topics", "alter", "posts", "--partitions", "5")
    assert "now has 5 partitions (was 3)" in altered.stdout
    assert "WARNING: If partitions are increased" in altered.stderr
    assert "facade: warning" not in altered.stderr  # the SDK's own log line is not repeated
    assert (
        json.loads(ok("--url", url, "topics", "describe", "posts", "--json").stdout)["partition_count"] == 5
    )

    assert "Deleted topic posts" in ok("--url", url, "topics", "delete", "posts").stdout
    assert [t["name"] for t in json.loads(ok("--url", url, "topics", "list", "--json").stdout)] == ["a.b_c-d"]


def test_describe_lists_groups(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "2")
    ok("--url", url, "produce", "t", "x")
    consume_all(url, "t", "readers")
    assert json.loads(ok("--url", url, "topics", "describe", "t", "--json").stdout)["groups"] == ["readers"]
    assert "Groups: readers" in ok("--url", url, "topics", "describe", "t").stdout


def test_topic_errors(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "2")
    assert_one_line_error(
        run("--url", url, "topics", "create", "t", "--partitions", "2"), "already exists", "--if-not-exists"
    )
    assert_one_line_error(
        run("--url", url, "topics", "create", "bad name", "--partitions", "1"), "invalid topic name"
    )
    # Out-of-range options are usage errors (exit 2) that name the option.
    for args in (["--partitions", "0"], ["--partitions", "5000"], ["-p", "1", "--retention-ms", "0"]):
        result = run("--url", url, "topics", "create", "x", *args)
        assert result.exit_code == 2 and "Invalid value for '--" in result.stderr, result.output
    assert_one_line_error(run("--url", url, "topics", "describe", "missing"), "'missing' does not exist")
    assert_one_line_error(run("--url", url, "topics", "delete", "missing"), "does not exist")
    assert_one_line_error(
        run("--url", url, "topics", "alter", "missing", "--partitions", "3"), "does not exist"
    )
    assert_one_line_error(run("--url", url, "topics", "alter", "t", "--partitions", "1"), "can only grow")
    # click's own usage errors keep exit status 2
    assert run("--url", url, "topics", "create", "x", "--partitions", "abc").exit_code == 2
    assert run("--url", url, "topics", "create", "x").exit_code == 2
    assert run("--url", url, "topics", "frobnicate").exit_code == 2
    assert [t["name"] for t in json.loads(ok("--url", url, "topics", "list", "--json").stdout)] == ["t"]


def test_bad_url_is_a_one_line_error():
    assert_one_line_error(run("--url", "http://example.com", "topics", "list"), "scheme")
    assert_one_line_error(run("--url", "redis://127.0.0.1:99999", "topics", "list"), "port")


@pytest.mark.parametrize(
    "command",
    [
        ["topics", "list"],
        ["topics", "create", "t", "-p", "1"],
        ["produce", "t", "v"],
        ["consume", "t", "-g", "g"],
    ],
)
@pytest.mark.parametrize("via_env", [False, True])
def test_unreachable_server_subprocess(command, via_env):
    """The real console script: one line on stderr, exit 1, no traceback, no long wait."""
    dead = f"redis://127.0.0.1:{free_port()}"
    env = dict(os.environ)
    if via_env:
        env["FACADE_URL"] = dead
        args = [FACADE, *command]
    else:
        args = [FACADE, "--url", dead, *command]
    start = time.monotonic()
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert time.monotonic() - start < 8, "gave up too slowly on a server that refuses connections"
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot reach" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_facade_url_env(url):
    ok("topics", "create", "fromenv", "--partitions", "1", env={"FACADE_URL": url})
    assert "fromenv" in ok("--url", url, "topics", "list").stdout


# ---------------------------------------------------------------------------------------------
# produce


def test_produce_values_with_key_and_json(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "4")
    result = ok("--url", url, "produce", "t", "one", "two", "three", "--key", "user-7", "--json")
    acks = json_lines(result.stdout)
    assert [a["key"] for a in acks] == ["user-7"] * 3
    assert {a["partition"] for a in acks} == {partition_for_key(b"user-7", 4)}
    assert all(a["topic"] == "t" for a in acks)
    assert [a["offset"] for a in acks] == [0, 1, 2]
    assert "Produced 3 messages to t" in result.stderr
    got = consume_all(url, "t", "g")
    assert [(m["key"], m["value"], m["offset"]) for m in got] == [
        ("user-7", v, a["offset"]) for v, a in zip(("one", "two", "three"), acks)
    ]


def test_produce_stdin_key_separator_and_headers(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "3")
    lines = "u1:hello\r\nu2:a:b\n:keyless-looking\nu1:again\nu1:\n"
    result = ok(
        "--url", url, "produce", "t", "--key-separator", ":", "--header", "src=cli", "-H", "trace=a=b", "--json",
        input=lines,
    )  # fmt: skip
    acks = json_lines(result.stdout)
    assert [a["key"] for a in acks] == ["u1", "u2", "", "u1", "u1"]
    for a in acks:
        assert a["partition"] == partition_for_key(a["key"].encode(), 3)
    got = consume_all(url, "t", "g")
    assert sorted((m["key"], m["value"]) for m in got) == sorted(
        [("u1", "hello"), ("u2", "a:b"), ("", "keyless-looking"), ("u1", "again"), ("u1", "")]
    )
    assert all(m["headers"] == [["src", "cli"], ["trace", "a=b"]] for m in got)
    u1 = [m["value"] for m in got if m["key"] == "u1"]
    assert u1 == ["hello", "again", ""]  # one key, one partition, produced order


def test_produce_stdin_without_key(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    ok("--url", url, "produce", "t", input=b"first\nsecond line\n\nlast-without-newline")
    got = consume_all(url, "t", "g")
    assert [(m["key"], m["value"]) for m in got] == [
        (None, "first"), (None, "second line"), (None, ""), (None, "last-without-newline"),
    ]  # fmt: skip


def test_produce_line_without_separator_is_an_error(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    result = run("--url", url, "produce", "t", "--key-separator", "|", input="a|1\nno separator here\nb|2\n")
    assert_one_line_error(result, "no key separator '|'", "line 2", "no separator here")
    # Like kafka-console-producer, what came before the bad line was sent; nothing after it.
    assert [(m["key"], m["value"]) for m in consume_all(url, "t", "g")] == [("a", "1")]


def test_produce_usage_errors(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    assert run("--url", url, "produce", "t", "v", "--key", "k", "--key-separator", ":").exit_code == 2
    assert run("--url", url, "produce", "t", "v", "--header", "novalue").exit_code == 2
    assert run("--url", url, "produce", "t", "v", "--header", "=x").exit_code == 2
    assert run("--url", url, "produce", "t", "v", "--key-separator", "").exit_code == 2
    assert run("--url", url, "produce", "t", "v", "--acks", "2").exit_code == 2
    assert consume_all(url, "t", "g") == []


def test_produce_unknown_topic_and_create(url):
    assert_one_line_error(run("--url", url, "produce", "nope", "v"), "'nope' does not exist", "--create")
    assert_one_line_error(run("--url", url, "produce", "bad/name", "v"), "invalid topic name")
    ok("--url", url, "produce", "fresh", "v1", "v2", "--create")
    topics = json.loads(ok("--url", url, "topics", "list", "--json").stdout)
    assert [(t["name"], t["partition_count"]) for t in topics] == [("fresh", 1)]
    assert [m["value"] for m in consume_all(url, "fresh", "g")] == ["v1", "v2"]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_acks(url, acks):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    ok("--url", url, "produce", "t", "v", "--acks", acks)
    assert [m["value"] for m in consume_all(url, "t", "g")] == ["v"]


# ---------------------------------------------------------------------------------------------
# consume


def test_consume_json_with_binary_data(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "2")
    with Producer(url) as p:
        md = p.send_and_wait("t", b"\xff\xfe", key=b"\x00\x9f", headers={"raw": b"\xc3", "txt": "fine"})
        p.send_and_wait("t", "héllo", key="k")
    got = {(m["partition"], m["offset"]): m for m in consume_all(url, "t", "g")}
    assert len(got) == 2
    binary = got[(md.partition, md.offset)]
    assert base64.b64decode(binary["key_base64"]) == b"\x00\x9f" and "key" not in binary
    assert base64.b64decode(binary["value_base64"]) == b"\xff\xfe" and "value" not in binary
    assert binary["headers"] == [["txt", "fine"]]
    assert [(k, base64.b64decode(v)) for k, v in binary["headers_base64"]] == [("raw", b"\xc3")]
    assert binary["timestamp_ms"] == md.timestamp_ms and binary["topic"] == "t"
    (text,) = [m for m in got.values() if m is not binary]
    assert text["key"] == "k" and text["value"] == "héllo"


def test_consume_text_prints_values_only(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    ok("--url", url, "produce", "t", "a", "b c", "--key", "k", "--header", "h=1")
    result = ok("--url", url, "consume", "t", "--group", "g", "--from-beginning", "--idle-timeout-ms", "1000")
    assert result.stdout == "a\nb c\n"
    assert "Processed a total of 2 messages" in result.stderr


def test_consume_binary_text_is_raw(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    with Producer(url) as p:
        p.send_and_wait("t", b"\xff\x00raw")
    result = ok("--url", url, "consume", "t", "-g", "g", "--from-beginning", "--idle-timeout-ms", "1000")
    assert result.stdout_bytes == b"\xff\x00raw\n"


def test_idle_timeout_exits_when_nothing_comes(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "2")
    start = time.monotonic()
    result = ok("--url", url, "consume", "t", "--group", "g", "--idle-timeout-ms", "300")
    assert time.monotonic() - start < 10
    assert result.stdout == "" and "Processed a total of 0 messages" in result.stderr


def test_without_from_beginning_a_new_group_reads_only_new_records(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    ok("--url", url, "produce", "t", "old")
    result = ok("--url", url, "consume", "t", "--group", "late", "--idle-timeout-ms", "500")
    assert result.stdout == ""
    assert [m["value"] for m in consume_all(url, "t", "early")] == ["old"]


def test_max_messages_commits_exactly_what_was_printed(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "3")
    values = [f"m{i}" for i in range(10)]
    ok("--url", url, "produce", "t", *values, "--key", "one-key")
    first = consume_all(url, "t", "g", "--max-messages", "5")
    assert [m["value"] for m in first] == values[:5]
    second = consume_all(url, "t", "g")
    assert [m["value"] for m in second] == values[5:]
    assert consume_all(url, "t", "g") == []


def test_max_messages_across_partitions(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "4")
    produced = {f"k{i}:{i}" for i in range(20)}
    ok("--url", url, "produce", "t", *sorted(produced), "--key-separator", ":")
    seen = []
    for _ in range(4):
        batch = consume_all(url, "t", "g", "--max-messages", "5")
        assert len(batch) == 5
        seen += [f"{m['key']}:{m['value']}" for m in batch]
    assert len(seen) == 20 and set(seen) == produced
    assert consume_all(url, "t", "g") == []


def test_consume_several_topics(url):
    ok("--url", url, "topics", "create", "a", "--partitions", "1")
    ok("--url", url, "topics", "create", "b", "--partitions", "2")
    ok("--url", url, "produce", "a", "from-a")
    ok("--url", url, "produce", "b", "from-b")
    result = ok("--url", url, "consume", "a", "b", "--group", "g", "--from-beginning", "--format", "json",
                "--idle-timeout-ms", "1500")  # fmt: skip
    assert sorted((m["topic"], m["value"]) for m in json_lines(result.stdout)) == [
        ("a", "from-a"),
        ("b", "from-b"),
    ]


def test_consume_errors(url):
    ok("--url", url, "topics", "create", "t", "--partitions", "1")
    assert_one_line_error(run("--url", url, "consume", "missing", "--group", "g", "--idle-timeout-ms", "100"),
                          "'missing' does not exist")  # fmt: skip
    assert_one_line_error(run("--url", url, "consume", "t", "--group", "bad group", "--idle-timeout-ms", "100"),
                          "invalid group name")  # fmt: skip
    assert run("--url", url, "consume", "t").exit_code == 2  # --group is required
    assert run("--url", url, "consume", "--group", "g").exit_code == 2  # a topic is required
    assert run("--url", url, "consume", "t", "-g", "g", "--max-messages", "0").exit_code == 2
    assert run("--url", url, "consume", "t", "-g", "g", "--format", "xml").exit_code == 2


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_commits_what_was_printed_and_leaves_the_group(url, signum, status):
    """SIGINT to a running `facade consume`: exit 130 as documented (SIGTERM: 143), printed
    records committed, group left."""
    with Admin(url) as admin:
        admin.create_topic("t", 2)
    with Producer(url) as p:
        for i in range(6):
            p.send("t", f"v{i}", key=f"k{i}")
    proc = subprocess.Popen(
        [FACADE, "--url", url, "consume", "t", "--group", "g", "--from-beginning", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(6)]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err and "Processed a total of 6 messages" in err
    assert sorted(json.loads(line)["value"] for line in lines) == [f"v{i}" for i in range(6)]
    assert out == ""
    # Nothing is delivered again to the group, and the member left: a new member takes over at once.
    with Producer(url) as p:
        p.send_and_wait("t", "after", key="k0")
    assert [m["value"] for m in consume_all(url, "t", "g")] == ["after"]


def test_consume_in_process_leaves_group_for_next_member(url):
    """A consumer that exits by idle timeout leaves the group, so the next one owns everything at once."""
    ok("--url", url, "topics", "create", "t", "--partitions", "3")
    ok("--url", url, "consume", "t", "--group", "g", "--idle-timeout-ms", "200")
    with Consumer("t", "g", url=url, auto_offset_reset="earliest") as c:
        wait_until(
            lambda: (c.poll(timeout_ms=50), len(c.assignment()) == 3)[1], timeout=10, what="owns all 3"
        )


# ---------------------------------------------------------------------------------------------
# server (the embedded broker, under the test's FACADE_HOME)


def test_server_status_and_stop(facade_home):
    status = json.loads(ok("server", "status", "--json").stdout)
    assert status["running"] is False and status["home"] == str(facade_home.resolve())
    assert status["url"].startswith("unix://") and status["pid"] is None
    assert "not running" in ok("server", "status").stdout
    assert "not running" in ok("server", "stop").stdout

    created = ok("topics", "create", "local", "--partitions", "2")  # no URL: starts the embedded broker
    assert "started the embedded broker" in created.stderr
    assert "started" not in ok("topics", "list").stderr  # already running: no second line

    status = json.loads(ok("server", "status", "--json").stdout)
    assert status["running"] is True and isinstance(status["pid"], int)
    text = ok("server", "status").stdout
    assert "running" in text and str(status["pid"]) in text and str(facade_home.resolve()) in text
    assert "note:" in ok("--url", "redis://127.0.0.1:1", "server", "status").stderr

    assert f"pid {status['pid']}" in ok("server", "stop").stdout
    assert json.loads(ok("server", "status", "--json").stdout)["running"] is False
    # Data survives a restart (AOF): the topic is still there.
    assert "local" in ok("topics", "list").stdout
