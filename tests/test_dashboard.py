"""``facade dashboard``: drawing (pure, from hand-made snapshots), the alerts, data gathering
against a real server, ``--once`` / ``--json``, and the live view in a real terminal (tmux)."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from conftest import free_port, wait_until
from facade.cli import dashboard as dashboard_cmd
from facade.cli import main
from facade.cli.dashboard_data import (
    Collector,
    GroupPartitionRow,
    GroupView,
    MemberView,
    PartitionRow,
    ReplicaView,
    ServerView,
    Snapshot,
    TopicView,
    rate,
)
from facade.cli.dashboard_view import (
    alerts,
    frame,
    human_bytes,
    human_count,
    pick_group,
    pick_topic,
    snapshot_json,
)
from rich.console import Console

from facade import Admin, Consumer, Producer

FACADE = str(Path(sys.executable).parent / "facade")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def screen(renderable, width: int = 80, height: int = 24) -> list[str]:
    console = Console(width=width, height=height, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text().rstrip("\n").splitlines()


# ---------------------------------------------------------------------------------------------
# Hand-made snapshots


def server(**kw) -> ServerView:
    base = {
        "version": "valkey 9.1.2",
        "role": "master",
        "used_memory": 2 << 20,
        "maxmemory": 0,
        "maxmemory_policy": "noeviction",
        "uptime_s": 3600,
    }
    return ServerView(**{**base, **kw})


def topic(
    name: str, partitions: int = 3, length: int = 10, groups: tuple[str, ...] = ("readers",), **kw
) -> TopicView:
    rows = tuple(
        PartitionRow(p, length, 0 if length else None, length - 1 if length else None)
        for p in range(partitions)
    )
    return TopicView(name, rows, groups, **kw)


def group(
    name: str = "readers", topic_name: str = "posts", partitions: int = 3, members: int = 1, **kw
) -> GroupView:
    rows = tuple(
        GroupPartitionRow(
            topic_name,
            p,
            "host-1-abcdef12" if members else None,
            f"{p}-5",
            4,
            1,
            kw.pop("age", None) if p == 0 else None,
        )
        for p in range(partitions)
    )
    member_views = tuple(
        MemberView(f"host-{i}-abcdef1{i}", tuple(f"{topic_name}:{p}" for p in range(partitions)))
        for i in range(members)
    )
    return GroupView(name, 5, member_views, rows, lag=4 * partitions, **kw)


def snapshot(**kw) -> Snapshot:
    base = {
        "broker": "redis://127.0.0.1:7000",
        "taken_ms": 1_700_000_000_000,
        "topics": (topic("posts", in_rate=120.0, out_rate=118.5),),
        "groups": (group(),),
        "server": server(),
    }
    return Snapshot(**{**base, **kw})


def test_frame_shows_topics_partitions_groups_and_server():
    text = "\n".join(screen(frame(snapshot()), width=120, height=40))
    for needle in ("facade dashboard", "redis://127.0.0.1:7000", "posts", "120.0", "118.5", "readers",
                   "valkey 9.1.2", "master", "2.0MB (no limit)", "partitions of posts", "group readers",
                   "OWNER", "PEND", "OLDEST", "FIRST", "LAST", "q quit"):  # fmt: skip
        assert needle in text, needle
    # partition 1 of posts: 10 records, offsets 0 to 9
    assert re.search(r"^\s*1\s+10\s+0\s+9\s", text, re.MULTILINE), text


def test_frame_fits_80x24_and_uses_a_bigger_screen():
    many = snapshot(
        topics=tuple(topic(f"topic-{i:02d}", partitions=20) for i in range(15)),
        groups=tuple(group(f"group-{i}", "topic-00", partitions=20, members=3) for i in range(8)),
        events=("12:00:00 failover: primary a -> b",),
    )
    small = screen(frame(many, height=24, width=80), 80, 24)
    assert len(small) <= 24 and all(len(line) <= 80 for line in small)
    assert small[-1].startswith("q quit")  # the last line is still on screen
    assert any("more" in line for line in small)
    big = screen(frame(many, height=60, width=160), 160, 60)
    assert len(big) <= 60 and len(big) > len(small)
    assert sum("topic-" in line for line in big) > sum("topic-" in line for line in small)
    everything = screen(frame(many), 200, 500)  # --once: nothing cut
    assert not any("more" in line for line in everything[:-1] if "… " in line)
    assert sum(line.strip().startswith(("topic-", "> topic-")) for line in everything) == 15


def test_long_alerts_take_one_row_each_on_screen():
    s = snapshot(error="cannot reach the server " + "and a very long explanation " * 10)
    lines = screen(frame(s, height=24, width=80), 80, 24)
    assert next(line for line in lines if line.startswith("! cannot read the broker")).endswith("…")
    assert lines[3] == ""  # header, server line, the alert, then the blank line
    full = " ".join(line.strip() for line in screen(frame(s), 80, 100))  # --once keeps the whole text
    assert full.count("a very long explanation") == 10


def test_selection_is_kept_visible_and_switches_the_partition_panel():
    many = snapshot(topics=tuple(topic(f"t{i:02d}", groups=()) for i in range(12)), groups=())
    lines = screen(frame(many, topic="t11", height=24, width=80), 80, 24)
    assert any(line.startswith("> t11") for line in lines)
    assert any("partitions of t11" in line for line in lines)
    assert pick_topic(many, "nope").name == "t00"
    two = snapshot(topics=(topic("posts", groups=("a", "b")),), groups=(group("a"), group("b")))
    assert pick_group(two, pick_topic(two, None), "b").group == "b"
    assert pick_group(two, pick_topic(two, None), "zzz").group == "a"
    assert "group b" in "\n".join(screen(frame(two, group="b"), 120, 40))


def test_dead_letter_topics_are_listed_apart():
    s = snapshot(topics=(topic("posts"), topic("posts.dlq", partitions=1, length=2, groups=())))
    lines = screen(frame(s), 120, 40)
    assert any(line.startswith("dead letters: posts.dlq 2") for line in lines)
    assert not any(line.startswith(("  posts.dlq", "> posts.dlq")) for line in lines)


@pytest.mark.parametrize(
    "snap, expected",
    [
        (snapshot(groups=(group(members=0),)), "has no members and lag 12"),
        (snapshot(groups=(group(lag_delta=30),)), "lag of group readers is growing (+30"),
        (snapshot(groups=(group(age=45_000),)), "uncommitted for 45s"),
        (snapshot(server=server(used_memory=85, maxmemory=100)), "memory 85% of maxmemory"),
        (snapshot(server=server(used_memory=95, maxmemory=100)), "memory 95% of maxmemory"),
        (snapshot(server=server(maxmemory_policy="allkeys-lru")), "may evict records"),
        (
            snapshot(server=server(replicas=(ReplicaView("10.0.0.2:6379", "wait_bgsave", 0, 0),))),
            "is wait_bgsave",
        ),
        (
            snapshot(server=server(replicas=(ReplicaView("10.0.0.2:6379", "online", 900, 30),))),
            "acknowledged 30s ago",
        ),
        (snapshot(server=server(role="slave", primary_link="10.0.0.1:6379 up")), "connected to a replica"),
        (snapshot(topics=(topic("posts"), topic("posts.dlq", 1, 3, ()))), "3 dead letters in posts.dlq"),
        (snapshot(events=("12:00:01 failover: primary a -> b",)), "failover: primary a -> b"),
        (snapshot(error="cannot reach 127.0.0.1:7000"), "cannot read the broker"),
    ],
)
def test_alerts(snap, expected):
    found = alerts(snap)
    assert any(expected in a.text for a in found), found
    assert expected in "\n".join(screen(frame(snap), 160, 40))


def test_no_alerts_when_all_is_well():
    assert alerts(snapshot()) == []
    # lag shrinking, a group without members that has nothing to read, memory at 10%
    calm = snapshot(
        groups=(group(lag_delta=-5), GroupView("idle", 1, (), (), 0)),
        server=server(used_memory=10, maxmemory=100),
    )
    assert alerts(calm) == []
    assert [a.level for a in alerts(snapshot(error="x", groups=(group(members=0),)))] == ["crit", "warn"]


def test_numbers_and_rates():
    assert [human_count(n) for n in (None, 0, 99_999, 123_456, 2_500_000)] == [
        "-",
        "0",
        "99999",
        "123.5k",
        "2.5M",
    ]
    assert [human_bytes(n) for n in (None, 512, 1536, 3 << 20)] == ["-", "512B", "1.5KB", "3.0MB"]
    assert rate(None, (1.0, 5)) is None
    assert rate((1.0, 5), (3.0, 25)) == 10.0
    assert rate((1.0, 50), (2.0, 10)) is None  # went back: a re-created topic
    assert rate((1.0, 5), (1.0, 6)) is None


def test_snapshot_json():
    obj = snapshot_json(snapshot(groups=(group(members=0),)))
    assert obj["topics"][0]["name"] == "posts" and obj["topics"][0]["messages"] == 30
    assert obj["groups"][0]["pending"] == 3 and obj["alerts"][0]["level"] == "warn"
    json.dumps(obj)  # plain data


def test_failovers_seen_through_sentinel_are_events():
    primaries = iter(["10.0.0.1:6379", "10.0.0.1:6379", "unknown (no sentinel answers)", "10.0.0.2:6379"])
    admin = SimpleNamespace(
        describe_server=lambda: server(sentinel_primary=next(primaries), config_epoch=2, run_id="r")
    )
    c = Collector(admin=admin, broker="x")  # type: ignore[arg-type]
    assert c._server()[0].sentinel_primary == "10.0.0.1:6379"
    assert c._server()[0].config_epoch == 2 and not c._events
    assert c._server()[0].sentinel_primary.startswith("unknown") and not c._events
    assert c._server()[0].sentinel_primary == "10.0.0.2:6379"
    assert [e.split(" ", 1)[1] for e in c._events] == ["failover: primary 10.0.0.1:6379 -> 10.0.0.2:6379"]


def test_a_new_run_id_is_a_restart_event():
    run_ids = iter(["a", "a", "b"])
    c = Collector(admin=SimpleNamespace(describe_server=lambda: server(run_id=next(run_ids))), broker="x")  # type: ignore[arg-type]
    for _ in range(3):
        c._server()
    assert [e.split(" ", 1)[1] for e in c._events] == ["server restarted (uptime 3600s)"]


def test_the_broker_shown_has_no_password():
    assert dashboard_cmd._broker("redis://app:s3cret@db:6379/0") == "redis://app:***@db:6379/0"


# ---------------------------------------------------------------------------------------------
# Gathering, against a server


def test_collector_reads_rates_lag_and_pending(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    clock = iter([100.0, 102.0, 104.0]).__next__
    with Admin(url) as admin, Producer(url) as producer:
        c = Collector(admin, "test", clock=clock)
        for i in range(10):
            producer.send("posts", f"v{i}", key=f"k{i}")
        producer.flush()
        first = c.collect()
        assert first.topics[0].in_rate is None and first.topics[0].messages == 10
        assert first.server is not None and first.server.role == "master" and first.server.used_memory > 0
        for i in range(20):
            producer.send("posts", f"w{i}", key=f"k{i}")
        producer.flush()
        with Consumer("posts", "readers", url=url, auto_offset_reset="earliest") as consumer:
            got = []
            wait_until(
                lambda: got.extend(consumer.poll(timeout_ms=100)) or len(got) >= 30,
                timeout=10,
                what="read 30",
            )
            # delivered, not committed: pending, with an age, and still lag (as in Kafka)
            second = c.collect()
            t = second.topics[0]
            assert t.in_rate == pytest.approx(10.0)  # 20 records in 2 (fake) seconds
            assert t.groups == ("readers",)
            g = second.groups[0]
            assert g.group == "readers" and len(g.members) == 1 and g.pending == 30 and g.lag == 30
            assert g.oldest_pending_ms is not None and g.oldest_pending_ms >= 0
            consumer.commit()
            with Producer(url) as p2:
                p2.send("posts", "x", key="k").result(10)
            third = c.collect()
            assert third.topics[0].out_rate == pytest.approx(0.0)  # nothing new delivered meanwhile
            assert third.groups[0].pending == 0 and third.groups[0].lag == 1
            assert third.groups[0].lag_delta == 1 - 30  # 30 committed, 1 new


def test_collector_filters_topics(url):
    with Admin(url) as admin:
        for name in ("a", "b", "a.dlq"):
            admin.create_topic(name, 1)
        snap = Collector(admin, "x", topics=["a"]).collect()
    assert [t.name for t in snap.topics] == ["a", "a.dlq"]


# ---------------------------------------------------------------------------------------------
# The command


def test_once_and_json(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 3)
        admin.create_topic("other", 1)
    with Producer(url) as p:
        for i in range(5):
            p.send("posts", f"v{i}", key=f"k{i}")
    result = run("--url", url, "dashboard", "--once", "--refresh", "0.2")
    assert result.exit_code == 0, result.output
    assert "posts" in result.stdout and "other" in result.stdout and "partitions of" in result.stdout
    assert "q quit" not in result.stdout and "\x1b[" not in result.stdout
    result = run("--url", url, "dashboard", "--json", "--refresh", "0.2", "--topic", "posts")
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert [t["name"] for t in obj["topics"]] == ["posts"] and obj["topics"][0]["messages"] == 5
    assert obj["topics"][0]["in_rate"] is not None and obj["server"]["role"] == "master"
    assert obj["broker"] == url


def test_dashboard_errors(url):
    result = run("--url", url, "dashboard", "--topic", "missing", "--once")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    result = run("--url", url, "dashboard")  # stdout is no terminal here
    assert result.exit_code == 2 and "needs a terminal" in result.output
    assert run("--url", url, "dashboard", "--refresh", "0").exit_code == 2
    dead = f"redis://app:s3cret@127.0.0.1:{free_port()}"
    done = subprocess.run(
        [FACADE, "--url", dead, "dashboard", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (
        done.returncode == 1
        and done.stderr.startswith("error: ")
        and "s3cret" not in done.stderr + done.stdout
    )


@pytest.mark.slow
def test_sentinel_primary_and_replicas_shown(tmp_path):
    from facade.local import sentinel as topology

    status = topology.start(tmp_path / "ha", replicas=1, sentinels=1, down_after_ms=500)
    try:
        result = run("--url", status.url, "dashboard", "--json", "--refresh", "0.1")
        assert result.exit_code == 0, result.output
        srv = json.loads(result.stdout)["server"]
        assert srv["sentinel_primary"] == f"127.0.0.1:{status.primary.port}"
        assert srv["role"] == "master" and len(srv["replicas"]) == 1 and srv["config_epoch"] is not None
        text = run("--url", status.url, "dashboard", "--once", "--refresh", "0.1").stdout
        assert f"sentinels: primary 127.0.0.1:{status.primary.port}" in text and "replicas 1" in text
    finally:
        topology.stop(tmp_path / "ha")


# ---------------------------------------------------------------------------------------------
# The live view in a real terminal


class Tmux:
    """A private tmux server (its own socket) with one 80x24 pane."""

    def __init__(self) -> None:
        self.socket = f"facade-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "dash")

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False
        )


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_live_dashboard_in_a_terminal(url):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the live view needs a real terminal (apt-get install tmux)")
    with Admin(url) as admin:
        admin.create_topic("posts", 4)
        admin.create_topic("zeta", 2)
    with Producer(url) as p:
        for i in range(50):
            p.send("posts", f"v{i}", key=f"k{i}")
    env = {k: v for k, v in os.environ.items() if k.startswith(("FACADE_", "PATH", "HOME", "LANG"))}
    command = " ".join(
        ["env", *(shlex.quote(f"{k}={v}") for k, v in env.items()), "TERM=xterm-256color",
         shlex.quote(FACADE), "--url", shlex.quote(url), "dashboard", "--refresh", "0.3",
         ";", "echo", "EXIT:$?", ";", "sleep", "60"]
    )  # fmt: skip
    tmux = Tmux()
    try:
        tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "dash", command)
        assert tmux("display-message", "-p", "-t", "dash", "#{pane_width}x#{pane_height}").strip() == "80x24"
        first = wait_until(
            lambda: "partitions of posts" in (s := tmux.screen()) and s, timeout=20, what="first frame"
        )
        lines = first.rstrip("\n").splitlines()
        assert lines[0].startswith("facade dashboard") and url in lines[0]
        assert any(line.startswith("> posts") for line in lines) and any("zeta" in line for line in lines)
        assert any(line.startswith("q quit") for line in lines)  # the whole frame fits in 24 rows
        tmux("send-keys", "-t", "dash", "t")
        wait_until(lambda: "partitions of zeta" in tmux.screen(), timeout=10, what="t selects the next topic")
        tmux("send-keys", "-t", "dash", "p")
        wait_until(lambda: "PAUSED" in tmux.screen(), timeout=10, what="p pauses")
        tmux("send-keys", "-t", "dash", "q")
        wait_until(lambda: "EXIT:0" in tmux.screen(), timeout=15, what="q quits with status 0")
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.kill()
