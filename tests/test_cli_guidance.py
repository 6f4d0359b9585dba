"""A CLI that never misleads: hints that fit the command, one validation style, warnings where
data could be lost, and reports of what was actually found. Every test runs the real command
(in-process with click's CliRunner, or the installed script) against a real server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from conftest import free_port, wait_until
from facade.cli import hints, main

from facade import Admin, Consumer, NotEnoughReplicasError, Producer, keys
from facade.local import sentinel as topology

FACADE = str(Path(sys.executable).parent / "facade")
FAST = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 100}
SDK_WORDS = ("auto_create", "Admin()", "max_message_bytes", "min_insync_replicas", "group_instance_id", "create_topic")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not any(word in lines[0] for word in SDK_WORDS), lines[0]  # the CLI's words, not the SDK's
    return lines[0]


# ---------------------------------------------------------------------------------------------
# topics


def test_create_if_not_exists_accepts_an_existing_topic_and_says_how_it_differs(url):
    assert run("--url", url, "topics", "create", "posts", "-p", "5").exit_code == 0
    refused = one_line_error(run("--url", url, "topics", "create", "posts", "-p", "5"), "already exists")
    assert "--if-not-exists" in refused
    same = run("--url", url, "topics", "create", "posts", "-p", "5", "--if-not-exists")
    assert same.exit_code == 0 and same.stdout == "Topic posts exists already (5 partitions); nothing changed.\n"
    assert same.stderr == ""
    other = run("--url", url, "topics", "create", "posts", "-p", "3", "--max-len", "10", "--if-not-exists")
    assert other.exit_code == 0
    assert other.stderr.strip() == (
        "facade: warning: topic posts exists with other settings: --partitions 5 (asked for 3), "
        "--max-len None (asked for 10)"
    )
    with Admin(url) as admin:
        assert admin.topic("posts").partitions == 5 and admin.topic("posts").max_len is None


def test_a_dead_letter_name_is_created_with_a_warning(url):
    result = run("--url", url, "topics", "create", "orders.dlq", "-p", "2")
    assert result.exit_code == 0 and "Created topic orders.dlq with 2 partitions" in result.stdout
    assert result.stderr.startswith("facade: warning: orders.dlq is the dead-letter topic of orders: consumers")
    assert "--max-deliveries" in result.stderr
    assert run("--url", url, "topics", "create", "orders", "-p", "2").stderr == ""


def test_deleting_a_topic_that_live_members_read_needs_force(url):
    with Admin(url) as admin:
        admin.create_topic("t", 2)
        admin.create_topic("other", 1)
    with Consumer(url, "t", "readers", **FAST) as c:
        wait_until(lambda: (c.poll(timeout_ms=50), len(c.assignment()) == 2)[1], timeout=15)
        line = one_line_error(run("--url", url, "topics", "delete", "t"), "readers (1 member)", "--force")
        assert "live members" in line
        assert run("--url", url, "topics", "delete", "other").exit_code == 0  # nobody reads it
        with Admin(url) as admin:
            assert admin.topic("t").partitions == 2
        forced = run("--url", url, "topics", "delete", "t", "--force")
        assert forced.exit_code == 0 and forced.stdout == "Deleted topic t.\n"
    with Admin(url) as admin:
        assert [t.name for t in admin.list_topics()] == []


def test_list_and_describe_json_use_one_shape(url):
    run("--url", url, "topics", "create", "posts", "-p", "3", "--retention-ms", "60000")
    (listed,) = json.loads(run("--url", url, "topics", "list", "--json").stdout)
    described = json.loads(run("--url", url, "topics", "describe", "posts", "--json").stdout)
    assert "partitions" not in listed and listed["partition_count"] == 3
    assert {k: v for k, v in described.items() if k not in ("partitions", "groups")} == listed
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# relay --create


def test_relay_create_makes_the_destination_with_the_sources_partitions(url):
    with Admin(url) as admin:
        admin.create_topic("src", 3)
    with Producer(url) as p:
        for i in range(9):
            p.send("src", f"v{i}", key=f"k{i}")
    missing = one_line_error(run("--url", url, "relay", "src", "dst", "-g", "copier"), "'dst' does not exist")
    assert "or add --create" in missing
    done = run("--url", url, "relay", "src", "dst", "-g", "copier", "--create", "--idle-timeout-ms", "500")
    assert done.exit_code == 0, done.output
    assert "Created topic dst with 3 partitions (as src)." in done.stderr and "Relayed 9 records" in done.stderr
    with Admin(url) as admin:
        assert admin.topic("dst").partitions == 3
        assert sum(p.length for p in admin.describe_topic("dst").partitions) == 9


# ---------------------------------------------------------------------------------------------
# Hints that fit


@pytest.mark.parametrize(
    "args,says,never",
    [
        (["topics", "delete", "nope"], "(`facade topics list` shows the topics)", "create"),
        (["topics", "describe", "nope"], "(`facade topics list` shows the topics)", "create"),
        (["topics", "alter", "nope", "-p", "3"], "(`facade topics list` shows the topics)", "create"),
        (["produce", "nope", "v"], "create it with `facade topics create nope --partitions N`, or add --create", None),
        (["consume", "nope", "-g", "g", "--idle-timeout-ms", "10"], "create it with `facade topics create nope", "--create"),
        (["relay", "nope", "t", "-g", "g"], "the source SRC", "--create"),
    ],
)
def test_an_unknown_topic_gets_the_hint_of_the_command(url, args, says, never):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    line = one_line_error(run("--url", url, *args), "topic 'nope' does not exist", says)
    if never is not None:
        assert never not in line


def test_acks_all_without_enough_replicas_names_the_cli_option(url):
    error = NotEnoughReplicasError("sdk words", confirmed=0, required=2, timeout_ms=5000)
    text = hints.message(error, "produce", url)
    assert "only 0 of the 2 replicas --acks all waits for" in text and "Use --acks 1" in text
    assert "no replica is connected to the primary" in text and "min_insync_replicas" not in text


def test_a_primary_that_refuses_writes_for_want_of_replicas_says_so_in_one_line(server_factory):
    server = server_factory("--min-replicas-to-write", "1")
    line = one_line_error(
        run("--url", server.url, "topics", "create", "t", "-p", "1"),
        "the primary refuses writes: fewer replicas than its min-replicas-to-write",
        "no replica is connected to the primary",
    )
    assert "@user_script" not in line and "script:" not in line


# ---------------------------------------------------------------------------------------------
# Warnings where data could be lost


def test_a_server_that_evicts_keys_is_warned_about_once(server_factory, url):
    evicting = server_factory("--maxmemory-policy", "allkeys-lru")
    created = run("--url", evicting.url, "topics", "create", "t", "-p", "1")
    assert created.exit_code == 0
    warnings = [line for line in created.stderr.splitlines() if "maxmemory-policy" in line]
    assert warnings == [
        (
            "facade: warning: the server's maxmemory-policy is allkeys-lru: once it reaches maxmemory (not set "
            "yet) it evicts keys, and an evicted partition loses its records and offsets without an error; set "
            "maxmemory-policy noeviction on the server (CONFIG SET maxmemory-policy noeviction)"
        )
    ]
    produced = run("--url", evicting.url, "produce", "t", input="a\nb\nc\n")
    assert produced.exit_code == 0
    assert sum("maxmemory-policy is allkeys-lru" in line for line in produced.stderr.splitlines()) == 1
    # A server that never evicts: no warning.
    quiet = run("--url", url, "topics", "create", "t", "-p", "1")
    assert quiet.exit_code == 0 and "maxmemory" not in quiet.stderr
    assert "maxmemory" not in run("--url", url, "produce", "t", "x").stderr


def test_from_beginning_on_a_group_that_committed_says_it_continues(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    with Producer(url) as p:
        for i in range(4):
            p.send("posts", f"old{i}", key=f"k{i}")
    first = run("--url", url, "consume", "posts", "-g", "g", "--from-beginning", "--idle-timeout-ms", "800")
    assert first.exit_code == 0 and len(first.stdout.splitlines()) == 4
    assert "note" not in first.stderr  # a new group: --from-beginning applies
    with Producer(url) as p:
        p.send("posts", "new", key="k0")
    second = run("--url", url, "consume", "posts", "-g", "g", "--from-beginning", "--idle-timeout-ms", "800")
    assert second.exit_code == 0 and second.stdout == "new\n"
    note = [line for line in second.stderr.splitlines() if line.startswith("facade: note:")]
    assert note == [
        (
            "facade: note: group g has committed offsets on posts (2 partitions), so it continues from them there: "
            "--from-beginning only applies where a group has none (as in Kafka). To read everything again, stop "
            "its members and run: facade groups reset-offsets g --topic posts --to-earliest --execute"
        )
    ]


# ---------------------------------------------------------------------------------------------
# Reports of what was found


def test_facade_home_that_is_a_file_is_one_line(tmp_path, monkeypatch, facade_home):
    not_a_dir = tmp_path / "home"
    not_a_dir.write_text("")
    monkeypatch.setenv("FACADE_HOME", str(not_a_dir))
    try:
        for args in (["topics", "list"], ["server", "status"], ["demo", "--duration", "1"]):
            one_line_error(run(*args), f"FACADE_HOME={not_a_dir} is a file, not a directory")
    finally:
        monkeypatch.setenv("FACADE_HOME", str(facade_home))  # for the fixture's own teardown


def test_server_data_dir_reports_what_it_found(tmp_path, facade_home):
    missing = tmp_path / "typo"
    one_line_error(run("server", "status", "--data-dir", str(missing)), f"{missing} does not exist; start a topology")
    one_line_error(run("server", "stop", "--data-dir", str(missing)), f"{missing} does not exist: nothing to stop")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("server", "stop", "--data-dir", str(empty)), f"{empty} is empty: nothing to stop")
    assert run("topics", "list").exit_code == 0  # starts the embedded broker in facade_home
    home_line = one_line_error(run("server", "status", "--data-dir", str(facade_home)), "it is a FACADE_HOME")
    assert f"without --data-dir, with FACADE_HOME={facade_home}" in home_line and "start a topology" not in home_line
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    one_line_error(
        run("server", "stop", "--data-dir", str(other)),
        f"{other} holds no topology or cluster (no topology.json or cluster.json); it has notes.txt",
    )
    assert not missing.exists()  # looking created nothing


def test_reset_offsets_by_duration_shows_the_time_and_plain_offsets(url):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    with Producer(url) as p:
        for i in range(3):
            p.send_and_wait("t", f"old{i}")
    with redis.Redis.from_url(url) as r:  # make the old records an hour old
        entries = r.xrange(keys.stream("t", 0))
        r.delete(keys.stream("t", 0))
        hour_ago = int(time.time() * 1000) - 3_600_000
        for n, (_, fields) in enumerate(entries):
            r.xadd(keys.stream("t", 0), fields, id=f"{hour_ago + n}-{n}")
    with Producer(url) as p:
        p.send_and_wait("t", "recent")
    run("--url", url, "consume", "t", "-g", "g", "--from-beginning", "--idle-timeout-ms", "500")
    result = run("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--by-duration", "PT30M")
    assert result.exit_code == 0, result.output
    head, header, row, tail = result.stdout.strip().splitlines()
    assert head.startswith("--by-duration PT30M: the first record appended at or after 20") and "Z (UTC)" in head
    assert header.split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "TO-READ"]
    assert row.split() == ["t", "0", "4", "3", "1"]  # offsets as integers: one record to read again
    assert tail == "Dry run: nothing changed. Add --execute to apply."
    plan = json.loads(run("--url", url, "groups", "reset-offsets", "g", "-t", "t", "--by-duration", "PT30M",
                          "--json").stdout)  # fmt: skip
    assert plan["partitions"] == [{"topic": "t", "partition": 0, "current": 4, "target": 3}]
    assert abs(plan["since_ms"] - (time.time() * 1000 - 1_800_000)) < 60_000


# ---------------------------------------------------------------------------------------------
# Sentinel


def test_sentinels_that_do_not_answer_are_one_line():
    dead = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/facade"
    started = time.monotonic()
    done = subprocess.run([FACADE, "--url", dead, "topics", "list"], capture_output=True, text=True, timeout=60, check=False)
    assert time.monotonic() - started < 10
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no sentinel answered at 127.0.0.1:" in done.stderr and "check the URL and that the sentinels run" in done.stderr
    assert "<redis" not in done.stderr and "ConnectionPool" not in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_new_command_during_a_failover_waits_for_the_new_primary(tmp_path):
    data_dir = tmp_path / "ha"
    st = topology.start(data_dir, replicas=2, sentinels=3, down_after_ms=2000)
    try:
        with Admin(st.url) as admin:
            admin.create_topic("t", 1)
        os.kill(st.primary.pid, 9)
        started = time.monotonic()
        done = subprocess.run(
            [FACADE, "--url", st.url, "produce", "t", "after the failover"], capture_output=True, text=True, timeout=90,
            check=False,
        )
        waited = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "Produced 1 message to t."
        assert waited > 1.0  # it did wait: the sentinels needed down-after-ms to act
        new = topology.status(data_dir)
        assert new.primary.port != st.primary.port
        with redis.Redis(port=new.primary.port) as r:
            assert [f[b"value"] for _, f in r.xrange(keys.stream("t", 0))] == [b"after the failover"]
    finally:
        topology.stop(data_dir)


def test_an_unexpected_error_logged_by_the_sdk_names_the_exception_on_stderr(capsys):
    """A handler's unexpected failure (the gateway logs it with its traceback) reaches the terminal
    as one line that still says what went wrong, not only that something did."""
    import logging

    from facade.cli import _StderrHandler

    try:
        raise TypeError("object of type 'int' has no len()")
    except TypeError:
        record = logging.LogRecord("facade.gateway", logging.ERROR, __file__, 1, "Fetch v16 from %s failed",
                                   ("127.0.0.1:5",), sys.exc_info())  # fmt: skip
    _StderrHandler().emit(record)
    assert capsys.readouterr().err == (
        "facade: error: Fetch v16 from 127.0.0.1:5 failed (TypeError: object of type 'int' has no len(); "
        "please report it with this line)\n"
    )
