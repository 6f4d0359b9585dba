"""TLS: ``rediss://``, ``rediss+sentinel://`` and ``rediss+cluster://`` against real TLS servers.

A session fixture makes a CA, a server certificate (SANs 127.0.0.1 and localhost), a server
certificate for another host, a client certificate and an unrelated CA with ``openssl``. Every
server here listens on a TLS port only (``--port 0``), so a client that did not speak TLS, or
that ignored the URL's ``ssl_*`` options, could not get a reply at all.

The server binary is the one under test when it can serve TLS, else ``/usr/bin/redis-server``
(the bundled Valkey is built without TLS): so both halves of ``.ci/run`` run these tests. With
neither, every test is skipped, and the skip says why.

What is proved (docs/tls.md lists these by name):

- a round trip (Admin, Producer, Consumer; blocking and asyncio) with a CA and a client
  certificate; by ``localhost`` as well as by IP address; over Sentinel (a TLS primary, a TLS
  replica confirming acks="all" writes, a TLS sentinel) and over a 3-shard TLS cluster;
- the wrong CA, a missing client certificate, a certificate for another host, ``redis://`` on a
  TLS port: each fails within a second with a ConnectionFailedError that says what to check, is
  not retriable, and never shows the password;
- ``ssl_cert_reqs=none`` connects without a CA; ``ssl_check_hostname=false`` accepts a
  certificate for another host; servers with ``tls-auth-clients optional`` / ``no`` take
  clients without a certificate;
- the CLI creates, produces and consumes over TLS, and a TLS failure is one ``error:`` line
  (exit 1, no traceback, no password).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from click.testing import CliRunner
from conftest import free_port, wait_until
from facade.cli import main

import facade.aio
from facade import Admin, ConnectionFailedError, Consumer, InvalidUrlError, Producer, TopicExistsError

SYSTEM_REDIS = "/usr/bin/redis-server"
PASSWORD = "Hunter2-tls"
FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}
START_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Certs:
    """PEM files made by openssl for this session."""

    ca: Path
    """The CA that signed every certificate below (except other_ca)."""
    other_ca: Path
    """A CA that signed nothing here: trusting it alone must fail verification."""
    server: tuple[Path, Path]
    """(certificate, key) of the servers: SANs IP:127.0.0.1 and DNS:localhost."""
    elsewhere: tuple[Path, Path]
    """(certificate, key) for DNS:elsewhere.invalid only (the host name check must refuse it)."""
    client: tuple[Path, Path]
    """(certificate, key) of the client."""


_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXTENSIONS = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
{san}
"""


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"openssl {' '.join(map(str, args))} failed: {done.stderr}"


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    config = directory / f"{name}.cnf"
    config.write_text(_CA_CONFIG.format(cn=f"facade test {name}"))
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key, "-out", cert, "-days", "2", "-config", config, "-extensions", "ca",
    )  # fmt: skip
    return cert, key


def _make_leaf(directory: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (directory / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(_LEAF_EXTENSIONS.format(san=f"subjectAltName = {san}" if san else ""))
    _openssl(
        "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-CAserial", directory / "ca.srl", "-out", cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the TLS tests make their certificates with it")
    directory = tmp_path_factory.mktemp("certs")
    ca = _make_ca(directory, "ca")
    other_ca = _make_ca(directory, "other-ca")
    return Certs(
        ca=ca[0],
        other_ca=other_ca[0],
        server=_make_leaf(directory, "server", ca, "IP:127.0.0.1, DNS:localhost"),
        elsewhere=_make_leaf(directory, "elsewhere", ca, "DNS:elsewhere.invalid"),
        client=_make_leaf(directory, "client", ca, ""),
    )


def tls_url(
    port: int,
    certs: Certs,
    *,
    scheme: str = "rediss",
    host: str = "127.0.0.1",
    path: str = "",
    userinfo: str = "",
    ca: Path | None | bool = True,
    client: bool = True,
    **extra: str,
) -> str:
    """A TLS URL for ``port``: the session CA (or ``ca``) and the client certificate by default."""
    params: dict[str, str] = {}
    if ca:
        params["ssl_ca_certs"] = str(certs.ca if ca is True else ca)
    if client:
        params["ssl_certfile"], params["ssl_keyfile"] = map(str, certs.client)
    params.update(extra)
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
    hosts = host if "," in host else f"{host}:{port}"
    return f"{scheme}://{userinfo}{hosts}{path}" + (f"?{query}" if query else "")


def tls_client(port: int, certs: Certs, **kwargs) -> redis.Redis:
    """A redis-py client over TLS to 127.0.0.1:``port`` (the caller closes it)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=str(certs.ca),
        ssl_certfile=str(certs.client[0]),
        ssl_keyfile=str(certs.client[1]),
        socket_timeout=5,
        decode_responses=True,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# Server processes: TLS only, on loopback, killed at teardown


class ServerExited(Exception):
    """The server process ended before it listened (for example: built without TLS)."""


class TlsProcess:
    """One redis-server / valkey-server (or sentinel) process listening on a TLS port only."""

    def __init__(self, binary: str, directory: Path, args: list[str], config: str | None = None) -> None:
        self.binary = binary
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.config = config
        self.port = 0
        self._proc: subprocess.Popen | None = None

    def start(self, port: int) -> TlsProcess:
        cmd = [self.binary]
        if self.config is not None:
            conf = self.dir / "server.conf"
            conf.write_text(self.config)
            cmd.append(str(conf))
        cmd += self.args
        with open(self.dir / "server.log", "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise ServerExited(self.log_tail())
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                self.port = port
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerExited(
                    f"not listening on {port} after {START_TIMEOUT_S:.0f} s: {self.log_tail()}"
                )
            time.sleep(0.02)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError, IndexError):
            return (
                (self.dir / "server.log")
                .read_text(errors="replace")
                .strip()
                .splitlines()[-1]
                .split(" # ")[-1]
            )
        return "(no log)"

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None


def tls_settings(
    certs: Certs, cert: tuple[Path, Path] | None = None, auth_clients: str = "yes"
) -> dict[str, str]:
    cert = cert or certs.server
    return {
        "tls-cert-file": str(cert[0]),
        "tls-key-file": str(cert[1]),
        "tls-ca-cert-file": str(certs.ca),
        "tls-auth-clients": auth_clients,
    }


def server_args(directory: Path, tls_port: int, settings: dict[str, str]) -> list[str]:
    base = {"port": "0", "tls-port": str(tls_port), "bind": "127.0.0.1", "dir": str(directory)}
    base |= {"save": "", "appendonly": "no", **settings}
    return [item for key, value in base.items() for item in (f"--{key}", value)]


ServerFactory = Callable[..., TlsProcess]


@pytest.fixture(scope="session")
def tls_binary(server_spec, certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The server under test if it can serve TLS, else /usr/bin/redis-server; else skip, saying why.

    The check is the real thing: start the binary with a TLS port and see whether it listens."""
    candidates = [server_spec[0]]
    if os.path.abspath(SYSTEM_REDIS) != server_spec[0]:
        candidates.append(SYSTEM_REDIS)
    reasons = []
    for binary in candidates:
        if not os.access(binary, os.X_OK):
            reasons.append(f"{binary} does not exist")
            continue
        directory = tmp_path_factory.mktemp("probe")
        port = free_port()
        probe = TlsProcess(binary, directory, server_args(directory, port, tls_settings(certs)))
        try:
            probe.start(port)
        except ServerExited as exc:
            reasons.append(f"{binary} cannot serve TLS ({exc})")
            continue
        finally:
            probe.stop()
        return binary
    pytest.skip("no TLS-capable server: " + "; ".join(reasons))


@pytest.fixture(scope="session")
def tls_servers(tls_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start TLS servers: ``tls_servers(settings)``, or a sentinel with ``tls_servers({},
    sentinel_config=..., port=...)``; all are killed at the end of the session."""
    started: list[TlsProcess] = []

    def start(
        settings: dict[str, str], *, sentinel_config: str | None = None, port: int | None = None
    ) -> TlsProcess:
        port = port or free_port()
        directory = tmp_path_factory.mktemp("tls")
        config = None if sentinel_config is None else f"dir {directory}\n{sentinel_config}"
        args = ["--sentinel"] if config is not None else server_args(directory, port, settings)
        server = TlsProcess(tls_binary, directory, args, config)
        started.append(server)
        return server.start(port)

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def tls_server(tls_servers: ServerFactory, certs: Certs) -> TlsProcess:
    """The session's TLS server: it wants a client certificate signed by the session CA."""
    return tls_servers(tls_settings(certs))


@pytest.fixture
def rediss(tls_server: TlsProcess, certs: Certs) -> str:
    """``rediss://127.0.0.1:<port>?ssl_ca_certs=...&ssl_certfile=...&ssl_keyfile=...``, emptied."""
    with tls_client(tls_server.port, certs) as r:
        r.flushall()
    return tls_url(tls_server.port, certs)


# ---------------------------------------------------------------------------------------------
# Round trips


def round_trip(url: str, topic: str = "orders", partitions: int = 3, count: int = 30, **producer) -> list:
    """Create a topic, send ``count`` keyed records, read them all back with a group; the values."""
    with Admin(url) as admin:
        admin.create_topic(topic, partitions)
    with Producer(url, linger_ms=0, **producer) as p:
        for i in range(count):
            p.send(topic, f"v{i}", key=f"k{i % 5}")
        p.flush()
    got = []
    with Consumer(topic, "g", url, auto_offset_reset="earliest", **FAST) as c:
        deadline = time.monotonic() + 10
        while len(got) < count and time.monotonic() < deadline:
            got += c.poll(timeout_ms=50)
        c.commit()
    return sorted(int(m.value[1:]) for m in got)


def test_round_trip_with_a_client_certificate(rediss):
    assert round_trip(rediss) == list(range(30))


def _aio_round_trip(url: str, topic: str, partitions: int, count: int, keys: int) -> list[int]:
    """Create ``topic``, send ``count`` records over ``keys`` keys and read them back in a group,
    all with the asyncio clients; the values' numbers, sorted."""

    async def main() -> list[int]:
        async with facade.aio.Admin(url) as admin:
            await admin.create_topic(topic, partitions)
        async with facade.aio.Producer(url, linger_ms=0) as p:
            for i in range(count):
                await p.send(topic, f"v{i}", key=f"k{i % keys}")
            await p.flush()
        got: list = []
        async with facade.aio.Consumer(topic, "g", url, auto_offset_reset="earliest", **FAST) as c:
            while len(got) < count:
                got += await c.poll(timeout_ms=50)
        return sorted(int(m.value[1:]) for m in got)

    return asyncio.run(asyncio.wait_for(main(), 30))


def test_round_trip_asyncio(rediss):
    assert _aio_round_trip(rediss, "events", 2, 20, keys=3) == list(range(20))


def test_localhost_is_in_the_certificate_too(rediss, tls_server, certs):
    url = tls_url(tls_server.port, certs, host="localhost")
    with Admin(url) as admin:
        admin.create_topic("by-name", 1)
        assert [t.name for t in admin.list_topics()] == ["by-name"]


# ---------------------------------------------------------------------------------------------
# Refusals: fast, clear, not retriable, no password


def refused(url: str, *needles: str) -> ConnectionFailedError:
    """Admin(url).list_topics() fails within a second with a ConnectionFailedError naming ``needles``."""
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError) as info, Admin(url) as admin:
        admin.list_topics()
    assert time.monotonic() - start < 2, "a refused TLS handshake must not be retried"
    message = str(info.value)
    assert "TLS with the server failed" in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    assert PASSWORD not in message
    assert info.value.retriable is False
    return info.value


def test_wrong_ca(tls_server, certs):
    url = tls_url(tls_server.port, certs, ca=certs.other_ca, userinfo=f"alice:{PASSWORD}@")
    refused(url, "could not be verified", "ssl_ca_certs")


def test_no_ca_means_the_system_cas_which_do_not_know_ours(tls_server, certs):
    refused(tls_url(tls_server.port, certs, ca=False), "could not be verified", "ssl_ca_certs")


def test_wrong_ca_asyncio(tls_server, certs):
    url = tls_url(tls_server.port, certs, ca=certs.other_ca)

    async def main() -> None:
        async with facade.aio.Admin(url) as admin:
            await admin.list_topics()

    with pytest.raises(ConnectionFailedError, match="ssl_ca_certs") as info:
        asyncio.run(asyncio.wait_for(main(), 10))
    assert info.value.retriable is False


def test_server_requires_a_client_certificate(tls_server, certs):
    refused(tls_url(tls_server.port, certs, client=False), "ssl_certfile", "ssl_keyfile", "tls-auth-clients")


def test_server_requires_a_client_certificate_asyncio(tls_servers, certs):
    # TLS 1.2 on the server: the refusal is part of the handshake. Under TLS 1.3 the server refuses
    # after it, and an asyncio client sometimes sees its connection reset before it reads the
    # server's alert: a plain "cannot reach the server" (docs/tls.md, "What errors look like").
    server = tls_servers({**tls_settings(certs), "tls-protocols": "TLSv1.2"})
    url = tls_url(server.port, certs, client=False)

    async def main() -> None:
        async with facade.aio.Admin(url) as admin:
            await admin.list_topics()

    with pytest.raises(ConnectionFailedError, match="ssl_certfile") as info:
        asyncio.run(asyncio.wait_for(main(), 10))
    assert info.value.retriable is False


def test_plain_redis_url_on_a_tls_port_fails_fast(tls_server):
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError) as info, Admin(f"redis://127.0.0.1:{tls_server.port}") as admin:
        admin.list_topics()
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{tls_server.port} speaks TLS: use rediss://127.0.0.1:{tls_server.port}" in str(info.value)
    assert info.value.retriable is False


@pytest.fixture
def http_port() -> Iterator[int]:
    """An HTTP server on a free loopback port, in a thread."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_an_http_port_is_not_a_redis_server(http_port, scheme):
    result = cli("--url", f"{scheme}://127.0.0.1:{http_port}", "topics", "list")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: listing topics: 127.0.0.1:{http_port} is an HTTP server, not a Redis server: check the host and port"
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_rediss_to_a_plain_redis_port_says_so_in_one_line(redis_server):
    """A plain Redis server does not answer a TLS handshake at all: the handshake times out, then
    the client asks the port in plain text and says what it found."""
    result = cli("--url", f"rediss://127.0.0.1:{redis_server.port}", "topics", "list")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"error: listing topics: 127.0.0.1:{redis_server.port} is a Redis server without TLS (it answers plain "
        f"commands, not a TLS handshake): use redis://127.0.0.1:{redis_server.port}, or the server's TLS port"
    )


def test_a_ca_file_that_is_not_pem_is_not_blamed_on_the_client_certificate(tls_server, certs, tmp_path):
    junk = tmp_path / "ca.txt"
    junk.write_text("this is not a certificate\n")
    result = cli("--url", tls_url(tls_server.port, certs, ca=junk), "topics", "list")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"error: ssl_ca_certs={junk}: not a PEM file of CA certificates"), line
    assert "client certificate" not in line and "ssl_certfile" not in line.split("?")[0]


def test_producer_refused_by_tls_gives_up_at_once(tls_server, certs):
    url = tls_url(tls_server.port, certs, ca=certs.other_ca)
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="ssl_ca_certs"), Producer(url, linger_ms=0) as p:
        p.send_and_wait("t", "v")
    assert time.monotonic() - start < 2


# ---------------------------------------------------------------------------------------------
# Verification options


def test_cert_reqs_none_connects_without_a_ca(rediss, tls_server, certs):
    url = tls_url(tls_server.port, certs, ca=False, ssl_cert_reqs="none")
    assert round_trip(url, count=5) == list(range(5))


def test_host_name_check(tls_servers, certs):
    server = tls_servers(tls_settings(certs, cert=certs.elsewhere))
    refused(tls_url(server.port, certs), "does not name the host", "ssl_check_hostname=false")
    # The certificate is still verified against the CA; only the name is not compared.
    assert round_trip(tls_url(server.port, certs, ssl_check_hostname="false"), count=5) == list(range(5))
    refused(
        tls_url(server.port, certs, ca=certs.other_ca, ssl_check_hostname="false"), "could not be verified"
    )


@pytest.mark.parametrize("auth_clients", ["optional", "no"])
def test_server_that_does_not_require_client_certificates(tls_servers, certs, auth_clients):
    server = tls_servers(tls_settings(certs, auth_clients=auth_clients))
    assert round_trip(tls_url(server.port, certs, client=False), count=5) == list(range(5))


# ---------------------------------------------------------------------------------------------
# CLI


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_cli_over_tls(rediss):
    assert cli("--url", rediss, "topics", "create", "t", "--partitions", "2").exit_code == 0
    produced = cli("--url", rediss, "produce", "t", "one", "two", "three", "--key", "k")
    assert produced.exit_code == 0, produced.output
    listed = cli("--url", rediss, "topics", "list")
    assert listed.exit_code == 0 and "t" in listed.stdout.split()
    consumed = cli(
        "--url", rediss, "consume", "t", "--group", "g", "--from-beginning", "--format", "json",
        "--idle-timeout-ms", "500",
    )  # fmt: skip
    assert consumed.exit_code == 0, consumed.output
    assert [line.count('"value"') for line in consumed.stdout.splitlines()] == [1, 1, 1]
    assert all(v in consumed.stdout for v in ('"one"', '"two"', '"three"'))


def test_cli_tls_failure_is_one_line_without_the_password(tls_server, certs):
    url = tls_url(tls_server.port, certs, ca=certs.other_ca, userinfo=f"alice:{PASSWORD}@")
    result = cli("--url", url, "topics", "list")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "ssl_ca_certs" in lines[0]
    assert "Traceback" not in result.output and PASSWORD not in result.output


def test_cli_bad_tls_option_shows_the_url_redacted(certs):
    url = f"rediss://alice:{PASSWORD}@127.0.0.1:1?ssl_ca_certs={certs.ca}.missing"
    result = cli("--url", url, "topics", "list")
    assert result.exit_code == 1, result.output
    assert "no such file" in result.stderr and "rediss://alice:***@127.0.0.1:1" in result.stderr
    assert PASSWORD not in result.output and "Traceback" not in result.output


def test_refusals_at_parse_time_redact_the_password(certs):
    with pytest.raises(InvalidUrlError) as info:
        Admin(f"rediss://alice:{PASSWORD}@h:1?ssl_certfile={certs.client[0]}")
    assert "alice:***@h:1" in str(info.value) and PASSWORD not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Sentinel over TLS: a primary, a replica and a sentinel, all on TLS ports only


@dataclass(frozen=True)
class SentinelSetup:
    primary: TlsProcess
    replica: TlsProcess
    sentinel: TlsProcess


@pytest.fixture(scope="module")
def tls_sentinel(tls_servers: ServerFactory, certs: Certs) -> SentinelSetup:
    tls = tls_settings(certs)
    # repl-diskless-sync-delay 0: the replica gets its copy at once, not after 5 s.
    primary = tls_servers({**tls, "tls-replication": "yes", "repl-diskless-sync-delay": "0"})
    replica = tls_servers({**tls, "tls-replication": "yes", "replicaof": f"127.0.0.1 {primary.port}"})
    port = free_port()
    config = "\n".join(
        [
            "port 0",
            f"tls-port {port}",
            "bind 127.0.0.1",
            *(f"{key} {value}" for key, value in tls.items()),
            "tls-replication yes",  # how a sentinel talks to the servers it monitors: over TLS
            f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1",
            "sentinel down-after-milliseconds mymaster 5000",
            "",
        ]
    )
    sentinel = tls_servers({}, sentinel_config=config, port=port)
    # Wait until the sentinel got INFO from the primary over TLS (it then knows the replica) and
    # the replica copies the primary over TLS.
    with tls_client(sentinel.port, certs) as s, tls_client(replica.port, certs) as r:

        def linked() -> bool:
            state = s.sentinel_master("mymaster")
            return state.get("num-slaves") == 1 and r.info("replication").get("master_link_status") == "up"

        wait_until(linked, timeout=10, what="sentinel and replica linked over TLS")
    return SentinelSetup(primary, replica, sentinel)


def test_sentinel_round_trip(tls_sentinel, certs):
    with tls_client(tls_sentinel.primary.port, certs) as r:
        r.flushall()
    url = tls_url(tls_sentinel.sentinel.port, certs, scheme="rediss+sentinel", path="/mymaster")
    # acks="all": every batch was confirmed by the one replica the sentinel knows (over TLS).
    assert round_trip(url, acks="all") == list(range(30))
    with tls_client(tls_sentinel.replica.port, certs) as r:
        wait_until(lambda: r.exists("facade:{meta}:topics"), what="the replica has the topic")


def test_sentinel_round_trip_asyncio(tls_sentinel, certs):
    url = tls_url(tls_sentinel.sentinel.port, certs, scheme="rediss+sentinel", path="/mymaster")

    async def main() -> list[str]:
        async with facade.aio.Admin(url) as admin:
            with contextlib.suppress(TopicExistsError):
                await admin.create_topic("aio-sentinel", 1)
            return [t.name for t in await admin.list_topics()]

    assert "aio-sentinel" in asyncio.run(asyncio.wait_for(main(), 30))


def test_sentinel_wrong_ca_is_a_tls_error(tls_sentinel, certs):
    url = tls_url(
        tls_sentinel.sentinel.port, certs, scheme="rediss+sentinel", path="/mymaster", ca=certs.other_ca,
        userinfo=f":{PASSWORD}@",
    )  # fmt: skip
    refused(url, "ssl_ca_certs")


# ---------------------------------------------------------------------------------------------
# Redis Cluster over TLS: 3 primaries, TLS on the client ports and on the cluster bus


@pytest.fixture(scope="module")
def tls_cluster(tls_servers: ServerFactory, certs: Certs) -> list[int]:
    """TLS ports of a 3-primary cluster (slots cut in three, formed with ADDSLOTSRANGE and MEET)."""
    settings = {
        **tls_settings(certs),
        "tls-cluster": "yes",
        "tls-replication": "yes",
        "cluster-enabled": "yes",
        "cluster-config-file": "nodes.conf",
        "cluster-node-timeout": "5000",
    }
    buses = [free_port() for _ in range(3)]
    nodes = [tls_servers({**settings, "cluster-port": str(bus)}) for bus in buses]
    ports = [n.port for n in nodes]
    bounds = [0, 5461, 10922, 16384]
    for i, port in enumerate(ports):
        with tls_client(port, certs) as r:
            r.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            r.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
            if i:
                r.execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0], buses[0])

    def ready() -> bool:
        for port in ports:
            with tls_client(port, certs) as r:
                info = r.cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != 3:
                    return False
        return True

    wait_until(ready, timeout=15, interval=0.05, what="the TLS cluster is ready")
    return ports


def _flush_cluster(ports: list[int], certs: Certs) -> None:
    for port in ports:
        with tls_client(port, certs) as r:
            r.flushall()


def test_cluster_round_trip(tls_cluster, certs):
    _flush_cluster(tls_cluster, certs)
    url = tls_url(0, certs, scheme="rediss+cluster", host=",".join(f"127.0.0.1:{p}" for p in tls_cluster))
    assert round_trip(url, topic="spread", partitions=6, count=60) == list(range(60))
    with Admin(url) as admin:
        shards = {p.shard for p in admin.describe_topic("spread").partitions}
    assert shards == {f"127.0.0.1:{p}" for p in tls_cluster}  # every shard took part, over TLS


def test_cluster_round_trip_asyncio(tls_cluster, certs):
    _flush_cluster(tls_cluster, certs)
    url = tls_url(tls_cluster[1], certs, scheme="rediss+cluster")  # one node is enough to find the rest

    assert _aio_round_trip(url, "aio-spread", 6, 30, keys=30) == list(range(30))


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_cluster_wrong_ca_is_a_tls_error_with_the_url_redacted(tls_cluster, certs, flavour):
    url = tls_url(
        tls_cluster[0], certs, scheme="rediss+cluster", ca=certs.other_ca, userinfo=f"alice:{PASSWORD}@"
    )

    async def use_async() -> None:
        async with facade.aio.Admin(url) as admin:
            await admin.list_topics()

    def use_sync() -> None:
        with Admin(url) as admin:
            admin.list_topics()

    start = time.monotonic()
    with pytest.raises(ConnectionFailedError) as info:
        use_sync() if flavour == "sync" else asyncio.run(asyncio.wait_for(use_async(), 10))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "TLS with the server failed" in message and "could not be verified" in message, message
    assert PASSWORD not in message
    assert info.value.retriable is False


def test_server_requires_a_client_certificate_asyncio_tls13_says_what_to_check(tls_server, certs):
    # TLS 1.3 (the default): an asyncio client sometimes has its connection reset before it reads
    # the server's refusal. Either way the error names the client certificate options.
    url = tls_url(tls_server.port, certs, client=False)

    async def main() -> None:
        async with facade.aio.Admin(url) as admin:
            await admin.list_topics()

    for _ in range(8):
        start = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="ssl_certfile"):
            asyncio.run(asyncio.wait_for(main(), 10))
        assert time.monotonic() - start < 2  # not retried: the same certificates fail the same way
