"""The README's first command and its quick starts, run as written, in order, as a new user would:
``facade demo`` on a fresh embedded broker (the test's own FACADE_HOME, no URL), then every line
of the CLI quick start, then every Python block of the SDK quick start, on that same broker.

The first command's install part (venv, ``pip install .``) is what tests/test_packaging.py checks;
here the installed ``facade`` script runs what follows it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = str(Path(sys.executable).parent)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next ``## `` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(title: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a section, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section(title), flags=re.DOTALL)


def shell(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture
def env(facade_home: Path) -> dict[str, str]:
    """The user's shell: the installed ``facade`` first on PATH, FACADE_HOME the test's own, no
    FACADE_URL (conftest removed it). Passed explicitly: under pytest the process environment
    carries a COLUMNS=80 that os.environ does not show."""
    environ = dict(os.environ)
    environ["PATH"] = BIN + os.pathsep + environ.get("PATH", "")
    assert environ["FACADE_HOME"] == str(facade_home) and "FACADE_URL" not in environ
    return environ


def test_the_readme_runs_as_written_right_after_the_demo(env, tmp_path):
    # "Try it": after the install, the demo on the embedded broker.
    first = blocks("Try it", "sh")[0].strip()
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install . && ")
    demo = first.split(" && ")[-1]
    assert demo == "facade demo"
    done = shell(demo, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started the embedded broker" in done.stderr and "OK: member-2 was killed" in done.stdout

    # The CLI quick start, line by line.
    lines = [line for line in blocks("CLI quick start", "sh")[0].splitlines() if line.strip()]
    out = {}
    for line in lines:
        done = shell(line, env, tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr and "error:" not in done.stderr, (line, done.stderr)
        tokens = line.split()
        at = tokens.index("facade")
        out[" ".join(tokens[at + 1 : at + 3])] = done  # "topics create", "produce posts", ...
    assert out["topics create"].stdout == "Topic posts exists already (5 partitions); nothing changed.\n"
    assert out["produce posts"].stderr.strip() == "Produced 3 messages to posts."
    # Just the three lines (the group read the demo's records already), user1's in order.
    consumed = [json.loads(x) for x in out["consume posts"].stdout.splitlines()]
    assert sorted((m["key"], m["value"]) for m in consumed) == [("user1", "again"), ("user1", "hello"), ("user2", "hi")]
    assert [m["value"] for m in consumed if m["key"] == "user1"] == ["hello", "again"]
    assert "facade: note: group notifications has committed offsets on posts" in out["consume posts"].stderr
    assert "Topic: posts  Partitions: 5" in out["topics describe"].stdout
    assert "Group: notifications" in out["groups describe"].stdout
    assert "running" in out["server status"].stdout
    assert "Stopped the embedded broker" in out["server stop"].stdout

    # The SDK quick start, block after block in one interpreter (the second block goes on with
    # the first's names, as in one session), on the same embedded broker, started again.
    codes = blocks("SDK quick start", "python")
    assert len(codes) == 3
    marker = "----- next README block -----"
    driver = "\n".join(
        f"exec(compile({code!r}, 'README block {i + 1}', 'exec'))\nprint({marker!r}, flush=True)"
        for i, code in enumerate(codes)
    )
    done = subprocess.run(
        [sys.executable, "-c", driver], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    plain, serialized, asyncio_twins, rest = done.stdout.split(marker + "\n")
    assert rest == ""
    assert re.search(r"RecordMetadata\(topic='posts', partition=3, offset=\d+, timestamp_ms=\d+\)", plain), plain
    assert re.search(r"^3 \d+ b'user-1' b'\{\"text\": \"hello\"\}' Headers\(\[\]\)$", plain, re.MULTILINE), plain
    assert serialized == "hello again\n"
    assert "RecordMetadata(topic='posts', partition=3" in asyncio_twins and asyncio_twins.endswith("b'hello'\n")
