"""``facade demo``: its checks and views (pure), and whole runs as a user would start them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from facade.cli.demo_view import (
    Kill,
    MemberView,
    Snapshot,
    Violation,
    build_outcome,
    kill_lines,
    live_view,
    order_violations,
    owned,
    summary_view,
)
from rich.console import Console

from facade import Admin

FACADE = str(Path(sys.executable).parent / "facade")


def rendered(renderable) -> str:
    with open(os.devnull, "w") as sink:
        console = Console(width=160, record=True, color_system=None, file=sink)
        console.print(renderable)
        return console.export_text()


def run_demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """The installed script, stdout a pipe (not a terminal), as in CI. The environment is passed
    explicitly: under pytest the process environment (not os.environ) carries COLUMNS=80, which
    would wrap the summary's rows."""
    return subprocess.run(
        [FACADE, *args], check=False, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def assert_success(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert "demo summary" in out and "per-key order" in out
    assert "OK: member-2 was killed, its partitions moved, and nothing was lost: every post reached the group" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 3}
    assert " OK " in lines["per-key order"]
    assert lines["lost"].split("│")[2].strip() == "0"
    produced = int(lines["produced"].split("│")[2])
    total = int(lines["consumed in total"].split("│")[2])
    assert produced > 0 and total >= produced
    members = [k for k in lines if k.startswith("consumed by member-")]
    assert len(members) == 3
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    # A member was killed mid-run; its partitions moved to the others, and nothing was lost.
    killed = lines["consumed by member-2"].split("│")[3].strip()
    assert re.fullmatch(r"killed at \d+\.\ds, owning partitions? \d+(, \d+)*", killed), killed
    had = {int(p) for p in killed.split("owning partition")[1].lstrip("s ").split(", ")}
    failover = lines["failover"].split("│")
    assert re.fullmatch(r"\d+\.\ds", failover[2].strip()), failover
    moved = {int(p) for p in re.findall(r"\d+", failover[3].split(" to member-")[0])}
    assert moved <= had and "after the kill" in failover[3]
    for name in ("member-1", "member-3"):
        note = lines[f"consumed by {name}"].split("│")[3].strip()
        assert re.fullmatch(r"owns (no partition|partitions? \d+(, \d+)*) at the end", note), note  # a list
    assert "killed member-2 (SIGKILL)" in done.stderr and "after the kill" in done.stderr
    assert "RuntimeWarning" not in done.stderr


# ---------------------------------------------------------------------------------------------
# Pure: the order check, the outcome, the views


def test_order_violations():
    received = {
        "m1": [("a", 1), ("b", 1), ("a", 2), ("a", 4)],  # gaps are fine, only order counts
        "m2": [("c", 2), ("c", 1), ("d", 5), ("d", 5)],
    }
    assert order_violations(received) == [Violation("m2", "c", 2, 1), Violation("m2", "d", 5, 5)]
    assert order_violations({"m1": [("a", 1)], "m2": [("a", 1)]}) == []  # per member


def test_outcome_counts_duplicates_and_lost():
    produced = [("a", 1), ("a", 2), ("b", 1), ("c", 1)]
    outcome = build_outcome(
        topic="posts",
        group="notifications",
        broker="embedded",
        elapsed_s=3.0,
        produced=produced,
        received={"member-1": [("a", 1), ("a", 2)], "member-2": [("b", 1), ("a", 2)], "member-3": []},
        partitions={"member-1": (0, 1), "member-2": (2,), "member-3": ()},
    )
    assert outcome.produced == 4 and outcome.keys == 3 and outcome.total == 4
    assert outcome.duplicates == 1 and outcome.lost == 1 and outcome.violations == ()
    assert not outcome.ok  # ("c", 1) was lost
    text = rendered(summary_view(outcome))
    assert "FAILED: 1 lost" in text and "per-key order" in text and "OK" in text

    good = build_outcome(
        topic="posts", group="g", broker="b", elapsed_s=1, produced=produced,
        received={"m": produced}, partitions={"m": (0,)}, older=7,
    )  # fmt: skip
    assert good.ok and good.duplicates == 0
    text = rendered(summary_view(good))
    assert "OK: every post reached the group" in text and "earlier demo runs" in text and "7" in text


def test_summary_lists_violations():
    outcome = build_outcome(
        topic="posts", group="g", broker="b", elapsed_s=1, produced=[("a", 1), ("a", 2)],
        received={"m": [("a", 2), ("a", 1)]}, partitions={},
    )  # fmt: skip
    assert not outcome.ok
    text = rendered(summary_view(outcome))
    assert "VIOLATED (1)" in text and "m got a #1 after #2" in text and "FAILED: 1 order violations" in text


def test_live_view_shows_members_and_partitions():
    snap = Snapshot(
        topic="posts",
        group="notifications",
        broker="embedded (unix:///x.sock)",
        phase="producing",
        elapsed_s=2.5,
        duration_s=10,
        produced=500,
        members=(MemberView("member-1", "host-1-abc", (0, 1), 200), MemberView("member-2", None, (), 0)),
        lengths=(10, 20, 30),
    )
    text = rendered(live_view(snap))
    for needle in ("producing", "2.5s / 10s", "500", "member-1", "host-1-abc", "0, 1", "joining...", "30"):
        assert needle in text, needle
    assert re.search(r"\b0\s+10\s+member-1\b", text)  # partition 0: length 10, owned by member-1
    assert re.search(r"\b2\s+30\s+-", text)  # partition 2: nobody owns it


def test_a_kill_and_where_the_partitions_went():
    assert owned(()) == "no partition" and owned((2,)) == "partition 2" and owned((0, 3)) == "partitions 0, 3"
    waiting = Kill("member-2", 4.0, (1, 3))
    assert kill_lines(waiting) == [
        " 4.0s  member-2 killed (SIGKILL), owning partitions 1, 3",
        "       its partitions move once its session times out",
    ]
    moved = Kill("member-2", 4.0, (1, 3), 7.25, {1: "member-1", 3: "member-3"})
    assert moved.takeover_s == 3.25
    assert kill_lines(moved)[1] == " 7.2s  partition 1 to member-1, partition 3 to member-3, 3.2s after the kill"
    produced = [("a", 1), ("a", 2)]
    common = {
        "topic": "posts", "group": "g", "broker": "b", "elapsed_s": 9, "produced": produced,
        "received": {"member-1": produced, "member-2": [("a", 1)]}, "partitions": {"member-1": (1, 3)},
    }  # fmt: skip
    done = build_outcome(**common, kill=moved)
    assert done.ok and done.duplicates == 1
    text = rendered(summary_view(done))
    assert "killed at 4.0s, owning partitions 1, 3" in text and "owns partitions 1, 3 at the end" in text
    assert "3.2s" in text and "what the killed member had received but not committed" in text
    assert "OK: member-2 was killed, its partitions moved, and nothing was lost" in text
    stuck = build_outcome(**common, kill=waiting)
    assert not stuck.ok and "FAILED: member-2's partitions never moved." in rendered(summary_view(stuck))
    snap = Snapshot(topic="posts", group="g", broker="b", phase="producing", elapsed_s=5, duration_s=10,
                    produced=9, members=(MemberView("member-2", "m2", (1, 3), 4, killed=True),), kill=moved)  # fmt: skip
    live = rendered(live_view(snap))
    assert "killed" in live and "(had 1, 3)" in live and "3.2s after the kill" in live


# ---------------------------------------------------------------------------------------------
# Whole runs


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_demo_on_a_url_twice(url):
    first = run_demo("--url", url, "demo", "--duration", "3")
    assert_success(first)
    assert "created topic posts with 5 partitions" in first.stderr
    # A second run reuses the topic and the group; leftovers from the first are not miscounted.
    second = run_demo("--url", url, "demo", "--duration", "1")
    assert_success(second)
    assert "created topic" not in second.stderr
    with Admin(url) as admin:
        assert [(t.name, t.partitions) for t in admin.list_topics()] == [("posts", 5)]
        assert "notifications" in admin.describe_topic("posts").groups


def test_demo_when_posts_has_another_partition_count(url):
    with Admin(url) as admin:
        admin.create_topic("posts", 2)
    done = run_demo("--url", url, "demo", "--duration", "1")
    assert_success(done)
    assert "topic posts already exists with 2 partitions, not 5" in done.stderr
    assert "topic posts-demo" in done.stdout
    with Admin(url) as admin:
        admin.delete_topic("posts-demo")
        admin.create_topic("posts-demo", 3)
    failed = run_demo("--url", url, "demo", "--duration", "1")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: topics posts and posts-demo both exist")


def test_demo_ctrl_c_prints_the_summary(url):
    proc = subprocess.Popen(
        [FACADE, "--url", url, "demo", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        for line in proc.stderr:
            if "producing for" in line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out + err
    assert "demo summary" in out and "Traceback" not in err and "interrupted" in err


def test_demo_unreachable_url():
    from conftest import free_port

    done = run_demo("--url", f"redis://127.0.0.1:{free_port()}", "demo", "--duration", "1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_on_the_embedded_broker(facade_home):
    """No URL: the README's first command. The broker starts under the test's FACADE_HOME."""
    done = run_demo("demo", "--duration", "2")
    assert_success(done)
    assert "started the embedded broker" in done.stderr and str(facade_home) in done.stderr
    assert (facade_home / "server.pid").exists()
