"""``facade dashboard``: drawing (pure, from hand-made snapshots), the alerts, data gathering
against a real server, ``--once`` / ``--json``, and the live view in a real terminal (tmux)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from conftest import free_port, wait_until
from facade.cli import dashboard as dashboard_cmd
from facade.cli import main
from facade.cli.browser_view import browser_frame, value_text
from facade.cli.dashboard import LiveState, press, split_keys
from facade.cli.dashboard_alerts import alerts, human_bytes, human_count
from facade.cli.dashboard_data import (
    Collector,
    GroupPartitionRow,
    GroupView,
    MemberView,
    Page,
    PartitionRow,
    RecordRow,
    ReplicaView,
    ServerView,
    Snapshot,
    TopicView,
    offset_for_time,
    rate,
    read_page,
)
from facade.cli.dashboard_view import (
    frame,
    ordered_groups,
    pick_group,
    pick_topic,
    share_rows,
    snapshot_json,
    sparkline,
)
from rich.console import Console

from facade import Admin, ConfigError, Consumer, Producer, TopicPartition

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


def test_frame_fits_80x24_and_fills_160x45():
    many = snapshot(
        topics=tuple(topic(f"topic-{i:02d}", partitions=20) for i in range(15)),
        groups=tuple(group(f"group-{i}", "topic-00", partitions=20, members=3) for i in range(8)),
        events=("12:00:00 failover: primary a -> b",),
    )
    small = screen(frame(many, height=24, width=80), 80, 24)
    assert len(small) <= 24 and all(len(line) <= 80 for line in small)
    assert small[-1].startswith("q quit")  # the last line is still on screen
    assert any("below" in line for line in small)
    big = screen(frame(many, height=45, width=160), 160, 45)
    assert len(big) == 45 and big[-1].startswith("q quit")
    # Both halves are used: topics and partitions on the left, groups and members on the right.
    assert sum(bool(line[:78].strip()) for line in big) >= 35
    assert sum(bool(line[82:].strip()) for line in big) >= 13  # all 8 groups and the 3 members
    assert sum("topic-" in line[:80] for line in big) > sum("topic-" in line for line in small)
    assert any(line[80:].lstrip().startswith("members of group-") for line in big)
    assert any(line.startswith("progress of group-") for line in big)
    everything = screen(frame(many), 200, 500)  # --once: nothing cut
    assert not any("below" in line for line in everything)
    assert sum(line.strip().startswith(("topic-", "> topic-")) for line in everything) == 15


def test_busy_parts_come_first_and_the_topic_with_traffic_is_selected():
    s = snapshot(
        topics=(topic("alpha", groups=()), topic("busy", groups=("b",), in_rate=50.0), topic("calm", groups=())),
        groups=(
            GroupView("aaa-idle", 1, (), (), 0),
            group("b", "busy"),
            GroupView("ccc-lagging", 2, (), (GroupPartitionRow("alpha", 0, None, None, 7, 0, None),), 7),
            GroupView("ddd-idle", 1, (), (), 0),
        ),
    )
    assert [g.group for g in ordered_groups(s)] == ["b", "ccc-lagging", "aaa-idle", "ddd-idle"]
    assert pick_topic(s, None).name == "busy"
    assert pick_group(s, pick_topic(s, None), None).group == "b"
    lines = screen(frame(s, height=24, width=80), 80, 24)
    assert any(line.startswith("> busy") for line in lines)
    assert any("partitions of busy  group b" in line for line in lines)
    listed = [line.split()[-9 if line.startswith(">") else 0].lstrip("> ") for line in lines if "-idle" in line or
              "lagging" in line or line.startswith(("> b ", "  b "))]  # fmt: skip
    assert listed.index("ccc-lagging") < listed.index("aaa-idle")


def test_every_group_is_reachable_at_80x24_and_t_keeps_the_topic_table():
    many = snapshot(
        topics=tuple(topic(f"topic-{i:02d}", partitions=6, groups=(f"group-{i:02d}",)) for i in range(9)),
        groups=tuple(group(f"group-{i:02d}", f"topic-{i:02d}", partitions=6, members=i % 2) for i in range(12)),
    )
    state = LiveState()
    seen = set()
    for _ in range(12):
        state = press(state, "g", many)
        lines = screen(frame(many, topic=state.topic, group=state.group, height=24, width=80), 80, 24)
        assert len(lines) <= 24
        selected = [line for line in lines if line.startswith("> group-")]
        assert len(selected) == 1 and selected[0].split()[1] == state.group
        seen.add(state.group)
    assert seen == {g.group for g in many.groups}  # g reaches every group, none hides behind "… more"
    # t moves the selection through the topics; the table keeps its rows (it does not collapse).
    rows_before = None
    state = LiveState()
    for _ in range(9):
        state = press(state, "t", many)
        lines = screen(frame(many, topic=state.topic, group=state.group, height=24, width=80), 80, 24)
        rows = sum(line.startswith(("  topic-", "> topic-")) for line in lines)
        assert rows_before is None or rows == rows_before
        rows_before = rows
        assert any(line.startswith(f"> {state.topic}") for line in lines)
        assert any(f"partitions of {state.topic}" in line for line in lines)
    assert rows_before >= 3


def test_members_show_client_host_and_id_and_the_lag_sparkline():
    g = dataclasses.replace(
        group("readers", members=2),
        members=(MemberView("web-1-1234-abcdef12", ("posts:0", "posts:1"), "web-1", "billing-app"),
                 MemberView("web-2-99-12345678", ("posts:2",), "web-2", "facade")),
        lag_history=(0, 5, 10, 20, 40, 20, 0),
    )  # fmt: skip
    s = snapshot(groups=(g,))
    lines = screen(frame(s, height=24, width=80, panel="members"), 80, 24)
    text = "\n".join(lines)
    assert "members of readers" in text and "CLIENT ID" in text and "HOST" in text
    row = next(line for line in lines if "billing-app" in line)
    assert "web-1" in row and "posts:0,1" in row
    assert sparkline(g.lag_history, 10) == "▁▂▃▅█▅▁"
    assert sparkline((), 5) == "" and sparkline((0, 0), 5) == "▁▁"
    assert sparkline(range(30), 10) == sparkline(range(20, 30), 10)
    assert "▁▂▃▅█▅▁" in text  # in the groups table
    wide = "\n".join(screen(frame(s, height=45, width=160), 160, 45))
    assert "billing-app" in wide and "members of readers" in wide


def test_share_rows():
    assert share_rows(10, [2, 30, 3]) == [2, 5, 3]
    assert share_rows(3, [5, 5, 5]) == [1, 1, 1]
    assert share_rows(30, [2, 3, 0]) == [2, 3, 0]
    assert sum(share_rows(17, [40, 40, 40])) == 17


def test_the_message_browser_frame():
    rows = (
        RecordRow(41, 1_764_400_000_123, b"user-1", b"hello", (("traceparent", b"00-ab-cd-01"),)),
        RecordRow(42, 1_764_400_001_000, None, b"\x00\xff\x10", ()),
    )
    page = Page("posts", 1, 3, 41, 10, 43, rows)
    lines = screen(browser_frame(snapshot(), page, height=24, width=80), 80, 24)
    text = "\n".join(lines)
    assert len(lines) == 24 and lines[-1].startswith("[ ] partition")
    assert "browse" in lines[0] and "topic posts  partition 1 of 0..2  offsets 10..42" in text
    assert "OFFSET" in text and "VALUE" in text and "HEADERS" in text
    first = next(line for line in lines if line.lstrip().startswith("41 "))
    assert "2025-11-29T07:06:40.123Z" in first and "user-1" in first and "hello" in first
    assert "traceparent" in first
    wide = screen(browser_frame(snapshot(), page, height=45, width=160), 160, 45)
    assert "traceparent=00-ab-cd-01" in next(line for line in wide if line.lstrip().startswith("41 "))
    assert "b64:AP8Q" in next(line for line in lines if line.lstrip().startswith("42 "))
    b64 = "\n".join(screen(browser_frame(snapshot(), page, height=24, width=80, as_base64=True), 80, 24))
    assert "b64:aGVsbG8=" in b64 and "b64:dXNlci0x" in b64
    typing = screen(browser_frame(snapshot(), page, height=24, width=80, prompt="jump to offset: 12_"), 80, 24)
    assert typing[-1] == "jump to offset: 12_"
    assert value_text("é".encode(), False).plain == "é" and value_text(None, False).plain == "-"


def test_keys_move_through_the_browser():
    s = snapshot(topics=(topic("posts"),))
    page = Page("posts", 0, 3, 100, 50, 300, tuple(RecordRow(o, 0, None, b"v", ()) for o in range(100, 120)))
    state = press(LiveState(), "b", s)
    assert state.browsing and state.topic == "posts" and state.start is None
    assert press(state, "n", s, page, 20).start == 120
    assert press(state, "N", s, page, 20).start == 80
    assert press(state, "g", s, page, 20).start == 50
    assert press(state, "]", s, page, 20).partition == 1 and press(state, "[", s, page, 20).partition == 2
    assert press(state, "x", s, page).as_base64
    typed = state
    for key in ["o", "1", "2", "x", "backspace", "5", "enter"]:
        typed = press(typed, key, s, page)
    assert typed.start == 125 and typed.prompt is None
    timed = state
    for key in ["@", *"PT5M", "enter"]:
        timed = press(timed, key, s, page)
    assert timed.jump_time == "PT5M"
    assert press(press(state, "o", s, page), "esc", s, page).prompt is None
    assert not press(state, "esc", s, page).browsing and press(state, "q", s, page).quit
    assert split_keys("\x1b[Cab\x1b\r\x7f\x1b[6~") == ["right", "a", "b", "esc", "enter", "backspace", "pagedown"]


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
    assert pick_topic(many, "nope").name == "t00"  # no traffic anywhere: the first
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


def test_collector_keeps_lag_history_and_member_hosts(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 1)
    clock = iter(float(t) for t in range(100, 200)).__next__
    with Admin(url) as admin, Producer(url) as producer:
        c = Collector(admin, "test", clock=clock)
        with Consumer("posts", "readers", url, client_id="reader-app", enable_auto_commit=False) as consumer:
            wait_until(lambda: consumer.poll(timeout_ms=50) is not None and consumer.assignment(), timeout=20)
            lags = []
            for i in range(4):
                producer.send("posts", f"v{i}").result(10)
                g = c.collect().groups[0]
                lags.append(g.lag)
            assert g.lag_history == tuple(lags) == (1, 2, 3, 4)
            member = g.members[0]
            assert member.client_id == "reader-app" and member.host and member.partitions == ("posts:0",)


def test_browser_pages_read_records_and_find_times(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
        with Producer(url) as p:
            for i in range(30):
                p.send("posts", f"v{i}", partition=1, headers=[("n", str(i))], timestamp_ms=1_700_000_000_000 + i)
            p.flush()
        admin.delete_records({TopicPartition("posts", 1): 5})
        newest = read_page(admin, "posts", 1, None, 10)
        assert (newest.log_start, newest.log_end, newest.partitions) == (5, 30, 2)
        assert [r.offset for r in newest.records] == list(range(20, 30))
        assert newest.records[0].value == b"v20" and newest.records[0].headers == (("n", b"20"),)
        middle = read_page(admin, "posts", 1, 12, 5)
        assert [r.offset for r in middle.records] == [12, 13, 14, 15, 16]
        assert [r.offset for r in read_page(admin, "posts", 1, 0, 3).records] == [5, 6, 7]  # below the log start
        assert read_page(admin, "posts", 1, 30, 3).records == ()
        assert read_page(admin, "posts", 0, None, 3).records == ()
        assert read_page(admin, "posts", 7, None, 3).partition == 1  # clamped to the partitions there are
        # Admin.read_records finds any offset (a binary search over the append times).
        for start in (5, 6, 17, 29):
            assert [m.offset for m in admin.read_records(TopicPartition("posts", 1), start, 2)] == [start, start + 1][: 30 - start]
        with pytest.raises(ConfigError):
            admin.read_records(TopicPartition("posts", 2), 0)
        with pytest.raises(ConfigError):
            admin.read_records(TopicPartition("posts", 0), -1)
        appended = newest.records[0].timestamp_ms  # CreateTime: the timestamps given
        assert appended == 1_700_000_000_020
        assert offset_for_time(admin, "posts", 1, 0) == 5
        assert offset_for_time(admin, "posts", 1, 4_102_444_800_000) is None


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
    """A private tmux server (its own socket) with one pane of the given size."""

    def __init__(self) -> None:
        self.socket = f"facade-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-u", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "dash")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "dash", *keys)

    def wait(self, predicate, what: str, timeout: float = 20) -> str:
        """The screen once ``predicate(screen)`` holds."""
        try:
            return wait_until(lambda: predicate(s := self.screen()) and s, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:
            size = self("display-message", "-p", "-t", "dash", "#{pane_width}x#{pane_height}").strip()
            raise AssertionError(f"{exc}; the screen ({size}):\n{self.screen()}") from None

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False
        )


def _selected(screen: str, prefix: str) -> str | None:
    for line in screen.splitlines():
        stripped = line.strip()
        if stripped.startswith("> ") and stripped[2:].startswith(prefix):
            return stripped[2:].split()[0]
    return None


def _tmux_or_skip() -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the live view needs a real terminal (apt-get install tmux; .ci/run does)")


@pytest.fixture
def busy_broker(url):
    """A broker with traffic on "zeta", a lagging group with a live member ("billing", client id
    billing-app), and ten idle groups, while the test runs."""
    with Admin(url) as admin:
        admin.create_topic("posts", 4)
        admin.create_topic("zeta", 3)
    with Producer(url) as p:
        for i in range(50):
            p.send("posts", f"v{i}", key=f"k{i}")
            p.send("zeta", f"z{i}", key=f"k{i}", headers={"source": "test"})
    for i in range(10):  # idle groups: everything read and committed, no members left
        with Consumer("posts", f"idle-{i:02d}", url, auto_offset_reset="earliest") as c:
            got: list = []
            wait_until(lambda c=c, got=got: got.extend(c.poll(timeout_ms=100)) or len(got) >= 50, timeout=20)
            c.commit()
    stop = threading.Event()
    ready = threading.Event()

    def traffic() -> None:
        with Producer(url, linger_ms=5) as p:
            i = 0
            while not stop.is_set():
                p.send("zeta", f"live-{i}", key=f"k{i % 7}")
                i += 1
                if i % 20 == 0:
                    p.flush()
                    time.sleep(0.05)

    def member() -> None:
        with Consumer("zeta", "billing", url, client_id="billing-app", enable_auto_commit=False,
                      auto_offset_reset="earliest") as c:  # fmt: skip
            while not stop.is_set():
                if c.poll(timeout_ms=100, max_records=1):
                    ready.set()
                    stop.wait(0.5)  # slow: its lag grows

    threads = [threading.Thread(target=traffic, daemon=True), threading.Thread(target=member, daemon=True)]
    for t in threads:
        t.start()
    try:
        assert ready.wait(20), "the billing member never read"
        yield url
    finally:
        stop.set()
        for t in threads:
            t.join(30)


def _start_dashboard(tmux: Tmux, url: str, width: int, height: int) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith(("FACADE_", "PATH", "HOME"))}
    command = " ".join(
        ["env", *(shlex.quote(f"{k}={v}") for k, v in env.items()), "TERM=xterm-256color", "LANG=C.UTF-8",
         shlex.quote(FACADE), "--url", shlex.quote(url), "dashboard", "--refresh", "0.3",
         ";", "echo", "EXIT:$?", ";", "sleep", "60"]
    )  # fmt: skip
    tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "dash", command)
    size = tmux("display-message", "-p", "-t", "dash", "#{pane_width}x#{pane_height}").strip()
    assert size == f"{width}x{height}"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_live_dashboard_at_80x24(busy_broker):
    _tmux_or_skip()
    url = busy_broker
    tmux = Tmux()
    try:
        _start_dashboard(tmux, url, 80, 24)
        # Busy parts first: the topic with traffic is selected, the group with a member is listed first.
        first = tmux.wait(lambda s: "partitions of zeta" in s and "IN/s" in s and "billing" in s, "first frame")
        lines = first.rstrip("\n").splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert lines[0].startswith("facade dashboard") and url in lines[0]
        assert _selected(first, "zeta") == "zeta" and any(line.startswith("q quit") for line in lines)
        groups = [line.strip().lstrip("> ").split()[0] for line in lines if line.strip().lstrip("> ").startswith(("billing", "idle-"))]
        assert groups[0] == "billing" and len(groups) < 11  # not all fit: the rest are reachable
        # g reaches every group, idle ones too; the window follows the selection.
        reached = set()
        for _ in range(11):
            before = _selected(tmux.screen(), ("billing", "idle-")[0]) or _selected(tmux.screen(), "idle-")
            tmux.keys("g")
            screen = tmux.wait(lambda s, b=before: (_selected(s, "idle-") or _selected(s, "billing")) not in (None, b),
                               "g selects the next group")  # fmt: skip
            reached.add(_selected(screen, "idle-") or _selected(screen, "billing"))
        assert reached == {"billing", *(f"idle-{i:02d}" for i in range(10))}
        # t cycles the topics and the topic table keeps its rows.
        rows = sum(line.startswith(("  posts", "> posts", "  zeta", "> zeta")) for line in tmux.screen().splitlines())
        tmux.keys("t")
        screen = tmux.wait(lambda s: _selected(s, "posts") == "posts" and "partitions of posts" in s, "t: next topic")
        assert sum(line.startswith(("  posts", "> posts", "  zeta", "> zeta")) for line in screen.splitlines()) == rows == 2
        # The members of the selected group, with client host and id.
        while _selected(tmux.screen(), "billing") != "billing":
            tmux.keys("g")
            time.sleep(0.2)
        tmux.keys("m")
        screen = tmux.wait(lambda s: "members of billing" in s and "billing-app" in s, "m: the members panel")
        row = next(line for line in screen.splitlines() if "billing-app" in line)
        assert socket.gethostname()[:8] in row and "zeta:" in row
        # The message browser: a page of records, a jump to an offset, base64, back.
        tmux.keys("t")  # back to zeta, where records arrive
        tmux.wait(lambda s: _selected(s, "zeta") == "zeta", "t: back to zeta")
        tmux.keys("b")
        screen = tmux.wait(lambda s: "browse" in s and "OFFSET" in s and "topic zeta" in s, "b: the browser")
        assert "source=test" in screen or "live-" in screen
        tmux.keys("o", "7", "Enter")
        screen = tmux.wait(lambda s: "showing 7.." in s, "o 7: jump to offset 7")
        assert any(line.lstrip().startswith("7  ") and "z" in line for line in screen.splitlines())
        tmux.keys("x")
        tmux.wait(lambda s: "b64:" in s, "x: values as base64")
        tmux.keys("Escape")
        tmux.wait(lambda s: "partitions of" in s or "members of" in s, "esc: back to the dashboard")
        tmux.keys("p")
        tmux.wait(lambda s: "PAUSED" in s, "p pauses")
        tmux.keys("q")
        tmux.wait(lambda s: "EXIT:0" in s, "q quits with status 0", timeout=15)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.kill()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_live_dashboard_at_160x45(busy_broker):
    _tmux_or_skip()
    url = busy_broker
    tmux = Tmux()
    try:
        _start_dashboard(tmux, url, 160, 45)
        screen = tmux.wait(lambda s: "members of billing" in s and "progress of billing" in s, "first wide frame")
        lines = screen.rstrip("\n").splitlines()
        assert len(lines) == 45 and lines[-1].startswith("q quit")
        # Both halves are used: topics, partitions and progress left, groups and members right.
        header = next(line for line in lines if line.startswith("TOPIC"))
        assert "GROUP" in header[80:] and "LAG HISTORY" in header
        assert sum(bool(line[:79].strip()) for line in lines) >= 12
        assert sum(bool(line[81:].strip()) for line in lines) >= 14
        assert all(f"idle-{i:02d}" in screen for i in range(10))  # every group fits here
        assert "billing-app" in screen and socket.gethostname()[:8] in screen
        # The lag sparkline fills in as samples come (the billing member is slow: its lag grows).
        screen = tmux.wait(
            lambda s: any(c in line for line in s.splitlines() if "billing" in line[80:] for c in "▂▃▄▅▆▇█"),
            "a lag sparkline", timeout=30,
        )  # fmt: skip
        # The browser uses the whole screen: a jump to a time shows records from then on.
        tmux.keys("b")
        screen = tmux.wait(lambda s: "browse" in s and "OFFSET" in s, "b: the browser")
        assert len(screen.rstrip("\n").splitlines()) == 45
        assert sum(line.lstrip()[:1].isdigit() for line in screen.splitlines()) >= 30
        tmux.keys("@", "2000-01-01T00:00:00Z", "Enter")
        screen = tmux.wait(lambda s: "showing 0.." in s, "@: jump to a time before every record")
        tmux.keys("q")
        tmux.wait(lambda s: "EXIT:0" in s, "q quits with status 0", timeout=15)
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.kill()
