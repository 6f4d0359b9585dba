"""facade gateway security: TLS on the listener, SASL/PLAIN checked as Redis ACL users."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
import redis
from conftest import wait_until
from gateway_helpers import consume_assigned, running_gateway

from facade import Admin, TopicPartition, acl
from facade.gateway import tls_context

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")

pytestmark = pytest.mark.timeout(90)
PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the TLS test makes its certificate with it")
    d = tmp_path_factory.mktemp("gwtls")
    crt, key = d / "gw.crt", d / "gw.key"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return crt, key


def _send(
    bootstrap: str, topic: str, values: list[bytes], client_errors: list | None = None, **config
) -> list:
    """Each value's delivery error (None: delivered); ``client_errors`` collects the client's own
    errors (librdkafka reports a refused authentication there)."""
    seen = client_errors if client_errors is not None else []
    producer = ck.Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 8000, "error_cb": seen.append,
                            **config})  # fmt: skip
    results = []
    for v in values:
        producer.produce(topic, value=v, partition=0, on_delivery=lambda err, msg: results.append(err))
    producer.flush(20)
    return results


def test_tls_listener_serves_kafka_clients_and_survives_plaintext(url, cert):
    crt, key = cert
    Admin(url).create_topic("t", 1)
    with running_gateway(url, ssl_context=tls_context(str(crt), str(key))) as gw:
        tls = {"security.protocol": "SSL", "ssl.ca.location": str(crt)}
        assert _send(gw.bootstrap, "t", [b"over-tls"], **tls) == [None]
        # A plaintext Kafka request on the TLS port: that connection fails, the gateway goes on.
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as plain:
            plain.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff")
            try:
                answer = plain.recv(100)
            except ConnectionError:
                answer = b""
            assert answer[:4] != b"\x00\x00\x00\x0a"  # no Kafka reply over plaintext
        msgs = consume_assigned(gw.bootstrap, [("t", 0, 0)], 1, **tls)
    assert msgs[0].value() == b"over-tls"


@pytest.fixture
def users(url, redis_server, server_spec):
    """ACL users: writer (producer role), reader (consumer role); deleted afterwards."""
    _, version, is_valkey = server_spec
    r = redis.Redis(host="127.0.0.1", port=redis_server.port)
    made = []
    for name, role in (("writer", "producer"), ("reader", "consumer")):
        rules = acl.rules(role, server_version=None if is_valkey else version)
        r.execute_command("ACL", "SETUSER", name, "reset", "on", ">" + PASSWORD, *rules)
        made.append(name)
    try:
        yield
    finally:
        r.execute_command("ACL", "DELUSER", *made)
        r.close()


def _sasl(user: str, password: str = PASSWORD) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": user,
            "sasl.password": password}  # fmt: skip


def test_sasl_plain_maps_kafka_users_onto_redis_acl_users(url, users):
    Admin(url).create_topic("t", 1)
    with running_gateway(url, sasl_plain=True) as gw:
        # The producer role may write (idempotent, as librdkafka 2.x by default)...
        assert _send(gw.bootstrap, "t", [b"a", b"b"], **_sasl("writer"), **{"enable.idempotence": True}) == [
            None,
            None,
        ]
        # ...and the consumer role may read, but not write: Redis refuses its appends.
        assert [m.value() for m in consume_assigned(gw.bootstrap, [("t", 0, 0)], 2, **_sasl("reader"))] == [
            b"a",
            b"b",
        ]
        refused = _send(gw.bootstrap, "t", [b"nope"], **_sasl("reader"))
        assert refused[0] is not None and refused[0].code() == ck.KafkaError.TOPIC_AUTHORIZATION_FAILED
        # A wrong password, and a client without SASL, get nothing.
        fast = {"message.timeout.ms": 3000}
        errors: list = []
        wrong = _send(gw.bootstrap, "t", [b"x"], errors, **_sasl("writer", "bad"), **fast)
        assert wrong[0] is not None
        assert any(e.code() == ck.KafkaError._AUTHENTICATION and "writer" in e.str() for e in errors), errors
        anonymous = _send(gw.bootstrap, "t", [b"y"], **fast)
        assert anonymous[0] is not None
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a", b"b"]


def test_sasl_handshake_without_sasl_enabled_is_refused_clearly(url):
    with running_gateway(url) as gw:
        errors: list = []
        wrong = _send(gw.bootstrap, "t", [b"x"], errors, **_sasl("writer"), **{"message.timeout.ms": 3000})
    assert wrong[0] is not None
    assert any(e.code() == ck.KafkaError._AUTHENTICATION and "PLAIN" in e.str() for e in errors), errors


def test_kafka_python_authenticates_with_sasl_plain(url, users):
    kafka = pytest.importorskip("kafka", reason="kafka-python is in the test extras")
    Admin(url).create_topic("t", 1)
    with running_gateway(url, sasl_plain=True) as gw:
        producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap, security_protocol="SASL_PLAINTEXT",
                                       sasl_mechanism="PLAIN", sasl_plain_username="writer",
                                       sasl_plain_password=PASSWORD)  # fmt: skip
        try:
            meta = producer.send("t", b"from-kafka-python").get(timeout=20)
        finally:
            producer.close()
        assert meta.offset == 0
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"from-kafka-python"]


def _frame(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    head = struct.pack(">hhih", api_key, version, corr, 1) + b"t"
    return struct.pack(">i", len(head) + len(body)) + head + body


def _read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    return exactly(struct.unpack(">i", exactly(4))[0])


@pytest.mark.parametrize("password, accepted", [(PASSWORD, True), ("wrong", False)])
def test_sasl_handshake_v0_takes_a_bare_plain_token(url, users, password, accepted):
    """Handshake v0: the token follows as a bare frame; an empty frame accepts it, a refusal
    closes the connection (Kafka's v0 behaviour)."""
    with (
        running_gateway(url, sasl_plain=True) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s,
    ):
        s.sendall(_frame(17, 0, 1, struct.pack(">h", 5) + b"PLAIN"))
        corr, error = struct.unpack_from(">ih", _read_frame(s), 0)
        assert (corr, error) == (1, 0)
        token = b"\x00writer\x00" + password.encode()
        s.sendall(struct.pack(">i", len(token)) + token)
        if accepted:
            assert _read_frame(s) == b""
            s.sendall(_frame(3, 0, 2, struct.pack(">i", 0)))  # Metadata v0: every topic
            assert struct.unpack_from(">i", _read_frame(s), 0) == (2,)
        else:
            with pytest.raises(ConnectionError):
                _read_frame(s)


def test_concurrent_first_authentications_of_one_user_share_one_connection(url, users, redis_server):
    """Clients of one user authenticating at once (a group of consumers starting together) get
    one Redis connection for that user between them, and closing the gateway closes it: none is
    left open behind the one the gateway kept."""
    from facade.gateway import sasl
    from facade.gateway.context import Session

    r = redis.Redis(host="127.0.0.1", port=redis_server.port)
    token = b"\0writer\0" + PASSWORD.encode()
    try:
        with running_gateway(url, sasl_plain=True) as gw:
            g = gw.gateway
            sessions = [Session(f"client {i}", g.conn, g.admin, g.topics) for i in range(6)]

            async def all_at_once() -> list:
                return await asyncio.gather(*(sasl.authenticate(g, s, token) for s in sessions))

            assert asyncio.run_coroutine_threadsafe(all_at_once(), gw.loop).result(30) == [None] * 6
            assert len({id(s.conn) for s in sessions}) == 1 and all(s.principal == "writer" for s in sessions)
            assert len(g.principals) == 1
            # Every connection of that user the server sees is the shared one's pool.
            shared = sessions[0].conn
            asyncio.run_coroutine_threadsafe(shared.command("test", "PING"), gw.loop).result(10)
            opened = [c for c in r.client_list() if c.get("user") == "writer"]
            assert len(opened) == 1, opened
        wait_until(lambda: not [c for c in r.client_list() if c.get("user") == "writer"], timeout=10,
                   what="the gateway's close to close the user's connections")  # fmt: skip
    finally:
        r.close()


def test_a_changed_password_stops_new_logins_with_the_old_one(url, users, redis_server):
    """The gateway keeps one Redis connection per (user, password) that logged in; a client that
    authenticates later with that password must still be checked against Redis's ACL: after the
    operator changes the user's password the old one no longer logs in."""
    Admin(url).create_topic("t", 1)
    r = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        with running_gateway(url, sasl_plain=True) as gw:
            assert _send(gw.bootstrap, "t", [b"a"], **_sasl("writer")) == [None]
            r.execute_command("ACL", "SETUSER", "writer", "resetpass", ">new-" + PASSWORD)
            errors: list = []
            fast = {"message.timeout.ms": 3000}
            stale = _send(gw.bootstrap, "t", [b"old-password"], errors, **_sasl("writer"), **fast)
            assert stale[0] is not None
            assert any(e.code() == ck.KafkaError._AUTHENTICATION for e in errors), errors
            assert _send(gw.bootstrap, "t", [b"b"], **_sasl("writer", "new-" + PASSWORD)) == [None]
    finally:
        r.close()
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a", b"b"]


def test_a_failed_sasl_authenticate_is_answered_then_the_connection_closes(url, users):
    """Kafka answers a refused SaslAuthenticate and closes the connection: a client cannot try
    password after password on one connection, nor keep an earlier login after a refused one."""
    with running_gateway(url, sasl_plain=True) as gw:
        for first in (None, PASSWORD):
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
                corr = 1
                for password in (first, "wrong"):
                    if password is None:
                        continue
                    s.sendall(_frame(17, 1, corr, struct.pack(">h", 5) + b"PLAIN"))
                    assert struct.unpack_from(">ih", _read_frame(s), 0) == (corr, 0)
                    token = b"\x00writer\x00" + password.encode()
                    s.sendall(_frame(36, 0, corr + 1, struct.pack(">i", len(token)) + token))
                    expected = 0 if password == PASSWORD else 58  # SASL_AUTHENTICATION_FAILED
                    assert struct.unpack_from(">ih", _read_frame(s), 0) == (corr + 1, expected)
                    corr += 2
                s.sendall(_frame(17, 1, corr, struct.pack(">h", 5) + b"PLAIN"))  # another try
                with pytest.raises(ConnectionError):
                    _read_frame(s)
