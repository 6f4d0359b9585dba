"""facade gateway: ApiVersions and Metadata with real Kafka clients; framing limits."""

from __future__ import annotations

import socket
import struct

import pytest
from gateway_helpers import running_gateway

from facade import Admin

confluent_admin = pytest.importorskip("confluent_kafka.admin", reason="confluent-kafka is in the test extras")
kafka = pytest.importorskip("kafka", reason="kafka-python is in the test extras")

pytestmark = pytest.mark.timeout(60)


def _request(api_key: int, version: int, corr: int, body: bytes = b"", client_id: bytes = b"t") -> bytes:
    head = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    return struct.pack(">i", len(head) + len(body)) + head + body


def _reply(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", _recv(sock, 4))[0]
    return _recv(sock, size)


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def test_confluent_metadata_lists_topics_partitions_and_this_gateway(url):
    Admin(url).create_topic("orders", 3)
    Admin(url).create_topic("audit", 1)
    with running_gateway(url) as gw:
        md = confluent_admin.AdminClient({"bootstrap.servers": gw.bootstrap}).list_topics(timeout=10)
        assert {name: len(t.partitions) for name, t in md.topics.items()} == {"orders": 3, "audit": 1}
        (broker,) = md.brokers.values()
        assert (broker.host, broker.port) == ("127.0.0.1", gw.port)
        assert all(p.leader == broker.id for p in md.topics["orders"].partitions.values())
        assert md.cluster_id


def test_kafka_python_metadata_and_cluster_id_shared_by_two_gateways(url):
    Admin(url).create_topic("orders", 2)
    with running_gateway(url) as a, running_gateway(url) as b:
        ka = kafka.KafkaAdminClient(bootstrap_servers=a.bootstrap)
        kb = kafka.KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            assert ka.list_topics() == ["orders"]
            ca, cb = ka.describe_cluster(), kb.describe_cluster()
            assert ca["cluster_id"] == cb["cluster_id"]
            assert ca["brokers"][0]["port"] == a.port and cb["brokers"][0]["port"] == b.port
            assert ca["brokers"][0]["broker_id"] != cb["brokers"][0]["broker_id"]
        finally:
            ka.close()
            kb.close()


def test_metadata_for_an_unknown_topic_creates_it_only_when_allowed(url):
    with running_gateway(url) as gw:
        md = confluent_admin.AdminClient({"bootstrap.servers": gw.bootstrap}).list_topics("fresh", timeout=10)
        assert len(md.topics["fresh"].partitions) == 1
    assert Admin(url).topic("fresh").partitions == 1
    with running_gateway(url, auto_create_partitions=0) as gw:
        md = confluent_admin.AdminClient({"bootstrap.servers": gw.bootstrap}).list_topics("other", timeout=10)
        assert md.topics["other"].error is not None
        assert md.topics["other"].error.code() == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_api_versions_of_an_unknown_version_answers_v0_with_unsupported_version(url):
    with running_gateway(url) as gw, socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(_request(18, 99, 7))
        body = _reply(sock)
        corr, error, count = struct.unpack_from(">ihi", body, 0)
        assert (corr, error) == (7, 35)
        listed = {struct.unpack_from(">hhh", body, 10 + 6 * i)[0] for i in range(count)}
        assert {18, 3} <= listed
        # The connection stays usable: a v0 request is answered.
        sock.sendall(_request(18, 0, 8))
        corr, error = struct.unpack_from(">ih", _reply(sock), 0)
        assert (corr, error) == (8, 0)


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">i", 2**31 - 1),  # absurd size
        struct.pack(">i", -5),  # negative size
        struct.pack(">i", 3) + b"abc",  # shorter than a header
        _request(9999, 0, 1),  # an API key nobody knows
        _request(3, 12, 1, body=b"\xff\xff\xff"),  # Metadata body that does not parse
    ],
    ids=["absurd-size", "negative-size", "short-header", "unknown-key", "bad-body"],
)
def test_bad_frames_close_that_connection_only(url, frame):
    with running_gateway(url) as gw:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as bad:
            bad.sendall(frame)
            assert bad.recv(1) == b""  # closed, with nothing written
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as good:
            good.sendall(_request(18, 0, 3))
            assert struct.unpack_from(">ih", _reply(good), 0) == (3, 0)


def test_a_known_unsupported_api_gets_a_kafka_error_not_a_closed_connection(url):
    with running_gateway(url) as gw, socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        # EndTxn v0: transactional_id "x", producer id 1, epoch 0, committed true.
        body = struct.pack(">h", 1) + b"x" + struct.pack(">qh?", 1, 0, True)
        sock.sendall(_request(26, 0, 5, body))
        corr, _throttle, error = struct.unpack(">iih", _reply(sock))
        assert (corr, error) == (5, 35)


def test_a_handler_that_fails_unexpectedly_answers_an_error_and_the_connection_goes_on(url, monkeypatch):
    from facade.gateway import apis
    from facade.gateway.context import Api

    async def boom(ctx, request):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setitem(apis.TABLE, 32, Api(32, "DescribeConfigs", 1, 4, boom))
    with running_gateway(url, expect_errors=True) as gw, socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        # DescribeConfigs v1: no resources, include_synonyms false.
        sock.sendall(_request(32, 1, 11, struct.pack(">i?", 0, False)))
        corr, _throttle, results = struct.unpack(">iii", _reply(sock))
        assert (corr, results) == (11, 0)  # a well-formed (empty) answer, not a dropped connection
        sock.sendall(_request(18, 0, 12))
        assert struct.unpack_from(">ih", _reply(sock), 0) == (12, 0)
