"""A run's report as figures: a plain dict (written as JSON) and the text printed from it."""

from __future__ import annotations

import subprocess
from typing import Any

from .check import Anomaly
from .run import RunResult

EXAMPLES = 3


def _server(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return binary
    return f"{binary} ({out.strip()[:60]})"


def _example(a: Anomaly, t0: float) -> dict[str, Any]:
    return {"at_s": round(a.t - t0, 3), "what": a.what, "procs": list(a.procs)}


def summarize(r: RunResult) -> dict[str, Any]:
    """Everything worth keeping from one run, as JSON-ready data."""
    t0 = min((p.start for p in r.history.procs.values()), default=0.0)
    name = f"seed {r.config.seed}" + (
        f", controls {'+'.join(r.config.controls)}" if r.config.controls else ""
    )
    return {
        "name": name,
        "seed": r.config.seed,
        "server": _server(r.binary),
        "workdir": str(r.workdir),
        "config": {
            "duration_s": r.config.duration_s,
            "members": list(r.config.members),
            "partitions": r.config.partitions,
            "producers": r.config.producers,
            "rate": r.config.rate,
            "session_ms": r.config.session_ms,
            "batch": r.config.batch,
            "slow_ms": r.config.slow_ms_,
            "split_window_s": r.config.window_s_,
            "faults": list(r.config.faults),
            "controls": list(r.config.controls),
            "poison_consumers": r.config.poison_,
        },
        "timings": r.timings,
        "faults": dict(sorted(r.faults.items())),
        "processes": len(r.history.procs),
        "figures": r.result.figures,
        "anomalies": {cls: len(found) for cls, found in r.result.anomalies.items()},
        "examples": {
            cls: [_example(a, t0) for a in sorted(found, key=lambda a: a.t)[:EXAMPLES]]
            for cls, found in r.result.anomalies.items()
            if found
        },
        "controls": {cls: ("caught" if ok else "NOT CAUGHT") for cls, ok in r.controls.items()},
    }


def render(summaries: list[dict[str, Any]]) -> str:
    """The text report of one or more runs."""
    lines = []
    for s in summaries:
        c = s["config"]
        lines.append(f"chaos run: {s['name']}, {c['duration_s']:g} s of faults, server {s['server']}")
        lines.append(f"  logs: {s['workdir']}")
        lines.append(f"  times: {', '.join(f'{k} {v}' for k, v in s['timings'].items())}")
        faults = ", ".join(f"{k} {v}" for k, v in s["faults"].items()) or "none"
        lines.append(f"  faults injected ({sum(s['faults'].values())}): {faults}")
        lines.append(f"  processes: {s['processes']}")
        for k, v in s["figures"].items():
            lines.append(f"  {k}: {v}")
        lines.append("  anomalies: " + ", ".join(f"{cls} {n}" for cls, n in s["anomalies"].items()))
        for cls, examples in s["examples"].items():
            for ex in examples:
                lines.append(f"    {cls} @ {ex['at_s']:.1f} s: {ex['what']}")
        for cls, verdict in s["controls"].items():
            lines.append(f"  control {cls}: {verdict}")
        lines.append("")
    if len(summaries) > 1:
        total: dict[str, int] = {}
        for s in summaries:
            for cls, n in s["anomalies"].items():
                total[cls] = total.get(cls, 0) + n
        faults: dict[str, int] = {}
        for s in summaries:
            for k, v in s["faults"].items():
                faults[k] = faults.get(k, 0) + v
        lines.append(f"{len(summaries)} runs ({'; '.join(s['name'] for s in summaries)})")
        lines.append("  faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
        lines.append("  anomalies: " + ", ".join(f"{cls} {n}" for cls, n in total.items()))
        dirty = [s["name"] for s in summaries if any(s["anomalies"].values()) and not s["controls"]]
        lines.append(f"  runs with anomalies: {len(dirty)}" + (f" ({'; '.join(dirty)})" if dirty else ""))
        missed = [
            f"{s['name']}: {cls}" for s in summaries for cls, v in s["controls"].items() if v != "caught"
        ]
        if any(s["controls"] for s in summaries):
            lines.append(
                f"  controls not caught: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else "")
            )
    return "\n".join(lines)
