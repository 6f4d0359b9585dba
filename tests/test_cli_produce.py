"""``facade produce`` with input that does not fit: bounded reads, exact reports, Ctrl-C.

The installed console script runs as a subprocess wherever signals or memory are the point; the
rest runs in-process with click's CliRunner. Every command gets ``--url`` of the test server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from conftest import wait_until
from facade.cli import main

from facade import Admin, keys

FACADE = str(Path(sys.executable).parent / "facade")
MIB = 1024 * 1024


def run(url: str, *args: str, input: bytes | str | None = None):
    return CliRunner().invoke(main, ["--url", url, *args], input=input, catch_exceptions=False)


def stored(url: str, topic: str = "t") -> list[bytes]:
    with redis.Redis.from_url(url) as r:
        return [f[b"value"] for _, f in r.xrange(keys.stream(topic, 0))]


@pytest.fixture
def topic(url):
    with Admin(url) as admin:
        admin.create_topic("t", 1)
    return url


def test_an_oversized_line_is_skipped_and_reported_and_the_rest_is_sent(topic):
    url = topic
    big = b"x" * (2 * MIB)
    result = run(url, "produce", "t", input=b"first\n" + big + b"\nsecond\n" + big + b"\r\nthird")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[:2] == [
        f"facade: warning: line 2 is {2 * MIB} bytes, over --max-message-bytes=1048576: not sent",
        f"facade: warning: line 4 is {2 * MIB} bytes, over --max-message-bytes=1048576: not sent",
    ]
    assert lines[2] == (
        "error: produced 3 of 5 lines to t; 2 lines over --max-message-bytes=1048576 not sent "
        "(lines 2, 4; raise --max-message-bytes to send them)"
    )
    assert "nothing was sent" not in result.stderr and "max_message_bytes" not in result.stderr
    assert stored(url) == [b"first", b"second", b"third"]


def test_max_message_bytes_raises_the_limit(topic):
    url = topic
    big = b"y" * (2 * MIB)
    result = run(url, "produce", "t", "--max-message-bytes", str(3 * MIB), "--json", input=b"a\n" + big + b"\nb\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["offset"] for x in result.stdout.splitlines()] == [0, 1, 2]
    assert result.stderr.strip() == "Produced 3 messages to t."
    assert stored(url) == [b"a", big, b"b"]
    # At the limit exactly: the key and the separator are not counted twice.
    exact = run(url, "produce", "t", "--max-message-bytes", "10", "--key-separator", ":", input=b"key:123456\n")
    assert exact.exit_code == 0, exact.output
    over = run(url, "produce", "t", "--max-message-bytes", "10", "--key-separator", ":", input=b"key:12345678\n")
    assert over.exit_code == 1 and "line 1 is 12 bytes" in over.stderr


def test_values_given_as_arguments_are_checked_the_same_way(topic):
    url = topic
    result = run(url, "produce", "t", "small", "z" * 200, "also", "--max-message-bytes", "100")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: produced 2 of 3 values to t; 1 value over --max-message-bytes=100 not sent "
        "(value 2; raise --max-message-bytes to send them)"
    )
    assert stored(url) == [b"small", b"also"]


def test_a_header_counts_towards_the_limit(topic):
    url = topic
    result = run(url, "produce", "t", "--max-message-bytes", "10", "--header", "h=123456", input=b"ok\nlonger\n")
    assert result.exit_code == 1
    assert "line 2 is 13 bytes" in result.stderr and "produced 1 of 2 lines" in result.stderr
    assert stored(url) == [b"ok"]


@pytest.mark.parametrize("value", ["0", "-1", "536870913", "x"])
def test_max_message_bytes_out_of_range_is_a_usage_error(topic, value):
    result = run(topic, "produce", "t", "v", "--max-message-bytes", value)
    assert result.exit_code == 2 and "--max-message-bytes" in result.stderr
    assert stored(topic) == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_200_mb_line_is_never_held_in_memory(topic, tmp_path):
    """The console script, fed through a pipe: peak memory stays far below the line's size."""
    url = topic
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            f"""
            import resource, subprocess, sys
            proc = subprocess.Popen([{FACADE!r}, "--url", {url!r}, "produce", "t"], stdin=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            def feed():
                proc.stdin.write(b"before\\n")
                chunk = b"x" * (1 << 20)
                for _ in range(200):
                    proc.stdin.write(chunk)
                proc.stdin.write(b"\\nafter\\n")
                proc.stdin.close()
            import threading
            t = threading.Thread(target=feed)
            t.start()
            err = proc.stderr.read()
            t.join()
            proc.wait()
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            sys.stdout.write(f"{{proc.returncode}} {{peak_kib}}\\n")
            sys.stdout.write(err.decode())
            """
        )
    )
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=110, check=True)
    head, _, stderr = done.stdout.partition("\n")
    code, peak_kib = map(int, head.split())
    assert code == 1, stderr
    assert f"line 2 is {200 * MIB} bytes" in stderr and "produced 2 of 3 lines to t" in stderr
    assert stored(url) == [b"before", b"after"]
    assert peak_kib < 150 * 1024, f"peak RSS {peak_kib // 1024} MiB for a 200 MiB line"


def test_ctrl_c_says_what_the_broker_acknowledged_and_exits_130(topic):
    url = topic
    with subprocess.Popen(
        [FACADE, "--url", url, "produce", "t"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            proc.stdin.write(b"one\ntwo\nthree\n")
            proc.stdin.flush()
            wait_until(lambda: len(stored(url)) == 3, timeout=20)  # now it waits for line 4
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert err.decode().strip() == (
        "Interrupted: 3 messages acknowledged by the broker (to t); lines from 4 on were not read."
    )
    assert b"Traceback" not in err and stored(url) == [b"one", b"two", b"three"]


def test_a_stream_of_lines_goes_out_while_it_is_read(topic):
    """Lines are sent as they come (no waiting for the end of stdin), and reported exactly."""
    url = topic
    with subprocess.Popen(
        [FACADE, "--url", url, "produce", "t"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            proc.stdin.write(b"".join(b"%d\n" % i for i in range(500)))
            proc.stdin.flush()
            wait_until(lambda: len(stored(url)) == 500, timeout=20)  # stdin is still open
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0 and err.decode().strip() == "Produced 500 messages to t."
