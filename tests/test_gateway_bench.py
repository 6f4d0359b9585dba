"""``python -m bench.gateway`` runs end to end (gateway side only: Tansu is optional) and writes the
figures it promises. No timing is asserted (a loaded machine may be slow); each figure checks its
own record counts while it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_gateway_quick(tmp_path: Path, server_spec: tuple[str, tuple[int, ...], bool]) -> None:
    out = tmp_path / "gateway.json"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "bench.gateway", "--quick", "--no-tansu", "--messages", "5000",
         "--seconds", "1", "--server-binary", server_spec[0], "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    doc = json.loads(out.read_text())
    facade = doc["facade"]
    assert facade["produce_median"] > 0 and facade["consume_median"] > 0
    assert (
        facade["latency"]["records"] == 10_000
        and 0 < facade["latency"]["p50_ms"] <= facade["latency"]["p99_ms"]
    )
    assert doc["tansu"] is None and "produce (rec/s)" in done.stdout
