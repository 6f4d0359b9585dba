"""``facade bench produce|consume|e2e``: the statistics and outputs (pure), and small real runs
that must clean up after themselves."""

from __future__ import annotations

import io
import json

import pytest
import redis
from click.testing import CliRunner, Result
from conftest import free_port
from facade.cli import main
from facade.cli.bench_view import (
    BenchResult,
    RawResult,
    latency_summary,
    percentile,
    result_json,
    result_table,
)
from rich.console import Console

from facade import Admin


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def bench_json(url: str, *args: str) -> dict:
    result = run("--url", url, "bench", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_clean(url: str) -> None:
    """No benchmark topic, group or raw key is left behind."""
    with Admin(url) as admin:
        assert admin.list_topics() == [] and admin.list_groups() == []
    with redis.Redis.from_url(url) as r:
        assert [k for k in r.scan_iter("*bench*")] == []


# ---------------------------------------------------------------------------------------------
# Pure


def test_percentiles():
    assert percentile([], 50) is None
    data = [float(i) for i in range(1, 101)]
    assert (percentile(data, 50), percentile(data, 95), percentile(data, 99), percentile(data, 100)) == (
        50,
        95,
        99,
        100,
    )
    assert percentile([7.0], 99) == 7.0
    assert latency_summary([0.003, 0.001, 0.002]) == {
        "p50": 2.0,
        "p95": 3.0,
        "p99": 3.0,
        "max": 3.0,
        "samples": 3,
    }
    assert latency_summary([])["p50"] is None


def test_result_outputs():
    r = BenchResult("produce", "redis://h:1", "valkey 9.1.2", 1000, 100, 4, 0.5, (0.001, 0.002),
                    {"acks": "1", "batch_bytes": 1024}, RawResult(1000, 0.25))  # fmt: skip
    assert r.msg_per_s == 2000 and r.ratio == 0.5
    obj = json.loads(result_json(r))
    assert set(obj) == {"workload", "broker", "server", "messages", "size_bytes", "partitions", "settings",
                        "elapsed_s", "msg_per_s", "mb_per_s", "latency_ms", "raw", "ratio"}  # fmt: skip
    assert obj["ratio"] == 0.5 and obj["raw"]["msg_per_s"] == 4000 and obj["latency_ms"]["max"] == 2.0
    assert obj["mb_per_s"] == pytest.approx(2000 * 100 / 2**20, abs=1e-3)
    console = Console(width=120, record=True, color_system=None, file=io.StringIO())
    console.print(result_table(r))
    text = console.export_text()
    for needle in (
        "msg/s",
        "MB/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "raw redis-py",
        "facade / raw: 0.50",
        "send() to acknowledgement",
    ):
        assert needle in text, needle
    no_raw = json.loads(result_json(BenchResult("e2e", "x", "y", 0, 1, 1, 0.0, ())))
    assert no_raw["raw"] is None and no_raw["ratio"] is None and no_raw["msg_per_s"] == 0


# ---------------------------------------------------------------------------------------------
# Real runs


def test_bench_produce(url):
    obj = bench_json(url, "produce", "--messages", "3000", "--size", "64", "--partitions", "3", "--acks", "all",
                     "--batch", "4096", "--compare-raw")  # fmt: skip
    assert obj["workload"] == "produce" and obj["messages"] == 3000 and obj["size_bytes"] == 64
    assert obj["settings"] == {"acks": "all", "batch_bytes": 4096} and obj["partitions"] == 3
    assert obj["msg_per_s"] > 0 and obj["latency_ms"]["samples"] == 3000
    assert 0 < obj["latency_ms"]["p50"] <= obj["latency_ms"]["p99"] <= obj["latency_ms"]["max"]
    assert obj["raw"]["msg_per_s"] > 0 and obj["ratio"] > 0
    assert obj["server"].split()[0] in ("valkey", "redis")
    assert_clean(url)


def test_bench_produce_table_and_acks_0(url):
    result = run("--url", url, "bench", "produce", "--messages", "500", "--acks", "0")
    assert result.exit_code == 0, result.output
    assert (
        "facade bench produce" in result.stdout and "p99 ms" in result.stdout and "raw" not in result.stdout
    )
    assert_clean(url)


def test_bench_consume(url):
    obj = bench_json(url, "consume", "--messages", "3000", "--partitions", "4", "--compare-raw")
    assert obj["workload"] == "consume" and obj["messages"] == 3000 and obj["msg_per_s"] > 0
    assert obj["latency_ms"]["samples"] >= 3 and obj["raw"]["msg_per_s"] > 0
    assert obj["settings"]["group"].startswith("facade-bench-")
    assert_clean(url)
    named = bench_json(url, "consume", "--messages", "200", "--group", "mine")
    assert named["settings"] == {"group": "mine"}
    with Admin(url) as admin:
        assert admin.list_groups() == ["mine"] and admin.list_topics() == []  # a named group is kept


def test_bench_e2e(url):
    obj = bench_json(url, "e2e", "--rate", "300", "--duration", "1", "--partitions", "2", "--size", "10")
    assert obj["workload"] == "e2e" and obj["settings"]["sent"] >= 250
    assert obj["messages"] == obj["settings"]["sent"] == obj["latency_ms"]["samples"]
    assert 0 < obj["latency_ms"]["p50"] < 1000 and obj["raw"] is None
    assert_clean(url)


def test_bench_errors(url):
    for args in (["produce", "--acks", "2"], ["produce", "--messages", "0"], ["consume", "--size", "0"],
                 ["e2e", "--rate", "0"], ["e2e", "--compare-raw"], ["frobnicate"]):  # fmt: skip
        assert run("--url", url, "bench", *args).exit_code == 2, args
    dead = run("--url", f"redis://127.0.0.1:{free_port()}", "bench", "produce", "--messages", "10")
    assert dead.exit_code == 1 and dead.stderr.startswith("error: ") and len(dead.stderr.splitlines()) == 1
