"""The benchmark runs end to end (python -m bench --quick) and writes the figures it promises.

No timing is asserted: a loaded CI machine can be arbitrarily slow. What is checked is that every
figure was measured on both sides (each side verifies its own record counts while it runs) and
that the JSON holds positive rates and ratios.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = {
    "produce", "idempotence_cost", "consume", "consume_commit_async", "metrics_cost_produce", "metrics_cost_consume",
    "metrics_cpu_produce", "metrics_cpu_consume", "produce_linger0", "produce_async",
}  # fmt: skip


def test_bench_quick(tmp_path: Path, server_spec: tuple[str, tuple[int, ...], bool]) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        # -W error: the bench keeps the suite's rule that warnings are errors.
        [sys.executable, "-W", "error", "-m", "bench", "--quick", "--server-binary", server_spec[0],
         "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert str(out) in done.stdout, "the bench should say where it wrote the results"

    doc = json.loads(out.read_text())
    assert doc["settings"]["messages"] == 2000 and doc["settings"]["rounds"] == 1
    assert doc["server"]["binary"] == server_spec[0]
    assert doc["server"]["version"]
    assert set(doc["figures"]) == FIGURES
    for name, fig in doc["figures"].items():
        for key in ("raw_msgs_per_s", "sdk_msgs_per_s"):
            assert len(fig[key]) == 1, (name, key)
        for key in ("raw_median_msgs_per_s", "sdk_median_msgs_per_s", "ratio"):
            value = fig[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, key, value)
        assert fig["raw"] and fig["sdk"], f"{name} should describe both sides"
    targets = doc["targets"]
    assert 0.5 < targets["memory"]["ratio"] < 3
    for lat in (targets["latency_acks_1"], targets["latency_acks_all"]):
        assert lat["received"] == lat["sent"] and 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert [(g["partitions"], g["messages"]) for g in targets["growth"]] == [(1, 2000), (8, 2000)]
    assert all(g["stored"] == g["messages"] for g in targets["growth"])
    for name in ("produce", "consume"):
        cost = targets["metrics_overhead"][name]["median_cost"]
        assert 0 < cost < 1, (name, cost)  # measured (the 5 % target is a full run's, not a smoke run's)


def test_bench_refuses_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--messages", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--messages must be at least 1" in done.stderr
