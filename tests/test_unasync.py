"""facade/_sync is exactly what scripts/unasync.py generates from facade/_async."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


@pytest.fixture(scope="module")
def unasync():
    spec = importlib.util.spec_from_file_location("facade_unasync", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sync_package_is_up_to_date(unasync, capsys):
    status = unasync.main(["--check"])
    out = capsys.readouterr().out
    assert status == 0, out


def test_every_async_module_has_a_generated_twin(unasync):
    want = unasync.expected()
    assert want, "facade/_async has no modules to generate"
    for name, text in want.items():
        target = unasync.DST / name
        assert target.read_text(encoding="utf-8") == text, f"facade/_sync/{name} is stale"
        assert text.startswith("# Generated from facade/_async/")
    # Hand-written backends exist on both sides and are never generated.
    assert (unasync.SRC / "_backend.py").is_file() and (unasync.DST / "_backend.py").is_file()
    assert "_backend.py" not in want


def test_check_mode_from_the_command_line():
    cmd = [sys.executable, str(SCRIPT), "--check"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_transform(unasync):
    source = textwrap.dedent(
        '''\
        from redis import asyncio as redis_io
        from redis.asyncio.sentinel import Sentinel


        class Thing:
            """The asyncio flavour of Thing."""

            async def __aenter__(self):
                await self.open()
                return self

            async def __aexit__(self, *exc):
                await self.aclose()

            def __aiter__(self):
                return self

            async def __anext__(self):
                async with self.lock:
                    return await self.source
                raise StopAsyncIteration

            async def awaiting(self):  # a name that merely starts with "await" is left alone
                return self.awaited
        '''
    )
    expected = textwrap.dedent(
        '''\
        import redis as redis_io
        from redis.sentinel import Sentinel


        class Thing:
            """The asyncio flavour of Thing."""

            def __enter__(self):
                self.open()
                return self

            def __exit__(self, *exc):
                self.close()

            def __iter__(self):
                return self

            def __next__(self):
                with self.lock:
                    return self.source
                raise StopIteration

            def awaiting(self):  # a name that merely starts with "await" is left alone
                return self.awaited
        '''
    )
    used: set[str] = set()
    assert unasync.transform(source, used) == expected
    compile(unasync.transform(source), "<generated>", "exec")
    assert not unasync.unused_rules(used), "the example exercises every rule"


def test_transform_is_idempotent_on_sync_code(unasync):
    text = (unasync.DST / "producer.py").read_text(encoding="utf-8")
    assert unasync.transform(text) == text


def test_every_rule_is_used_by_the_real_sources(unasync):
    used: set[str] = set()
    unasync.expected(used)
    assert unasync.unused_rules(used) == []


@pytest.mark.parametrize("argv", [[], ["--check"]], ids=["write", "check"])
def test_a_rule_no_module_uses_fails_both_modes(unasync, monkeypatch, tmp_path, capsys, argv):
    src, dst = tmp_path / "_async", tmp_path / "_sync"
    src.mkdir()
    dst.mkdir()
    (src / "mod.py").write_text("async def f():\n    await g()\n")
    monkeypatch.setattr(unasync, "SRC", src)
    monkeypatch.setattr(unasync, "DST", dst)
    monkeypatch.setattr(unasync, "RULES", [(r"\basync def\b", "def"), (r"\bawait ", ""), (r"\bgone\b", "kept")])
    assert unasync.main(argv) == 1
    assert r"\bgone\b" in capsys.readouterr().out
    assert not (dst / "mod.py").exists(), "nothing is written while a rule is stale"


def test_write_mode_generates_and_prunes(unasync, monkeypatch, tmp_path):
    src, dst = tmp_path / "_async", tmp_path / "_sync"
    src.mkdir()
    dst.mkdir()
    monkeypatch.setattr(unasync, "RULES", [(r"\basync def\b", "def"), (r"\bawait ", "")])
    (src / "mod.py").write_text("async def f():\n    await g()\n")
    (src / "_backend.py").write_text("IS_ASYNC = True\n")
    (dst / "_backend.py").write_text("IS_ASYNC = False\n")
    (dst / "stale.py").write_text("# left over from a removed module\n")
    monkeypatch.setattr(unasync, "SRC", src)
    monkeypatch.setattr(unasync, "DST", dst)
    assert unasync.main(["--check"]) == 1
    assert unasync.main([]) == 0
    assert (dst / "mod.py").read_text() == (
        "# Generated from facade/_async/mod.py by scripts/unasync.py: edit that file, not this one.\n"
        "def f():\n    g()\n"
    )
    assert not (dst / "stale.py").exists()
    assert (dst / "_backend.py").read_text() == "IS_ASYNC = False\n"  # hand-written: untouched
    assert unasync.main(["--check"]) == 0
    (dst / "mod.py").write_text("edited by hand\n")
    assert unasync.main(["--check"]) == 1


def test_only_the_backends_know_their_flavour(unasync):
    """Flavour differences live in _backend.py: no other module branches on IS_ASYNC."""
    asking = [p.name for p in sorted(unasync.SRC.glob("*.py")) if not p.name.startswith("_backend")
              and "IS_ASYNC" in p.read_text(encoding="utf-8")]  # fmt: skip
    assert asking == []
