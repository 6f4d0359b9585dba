"""facade gateway driven by kcat (librdkafka's command-line client): list, produce, consume."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from gateway_helpers import running_gateway

from facade import Admin, Producer, TopicPartition

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        KCAT is None, reason="kcat is not installed (apt-get install kcat; .ci/run installs it)"
    ),
]


def kcat(bootstrap: str, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        [KCAT, "-b", bootstrap, *args], input=stdin, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_kcat_lists_topics_produces_with_keys_and_headers_and_consumes(url):
    Admin(url).create_topic("t", 3)
    with running_gateway(url) as gw:
        listing = kcat(gw.bootstrap, "-L").decode()
        assert 'topic "t" with 3 partitions' in listing
        assert f"127.0.0.1:{gw.port}" in listing
        kcat(gw.bootstrap, "-P", "-t", "t", "-p", "1", "-K", ":", "-H", "source=kcat", "-X", "acks=all",
             stdin=b"k1:hello\nk2:world\n")  # fmt: skip
        out = kcat(gw.bootstrap, "-C", "-t", "t", "-p", "1", "-o", "beginning", "-e", "-f", "%o %k %s %h\\n")
    assert out.decode().splitlines() == ["0 k1 hello source=kcat", "1 k2 world source=kcat"]
    stored = Admin(url).read_records(TopicPartition("t", 1))
    assert [(m.key, m.value, list(m.headers)) for m in stored] == [
        (b"k1", b"hello", [("source", b"kcat")]),
        (b"k2", b"world", [("source", b"kcat")]),
    ]


def test_kcat_consumes_from_an_offset_what_the_sdk_wrote(url):
    Admin(url).create_topic("t", 1)
    with Producer(url) as producer:
        for i in range(20):
            producer.send("t", value=f"m{i}".encode(), key=b"k")
    with running_gateway(url) as gw:
        out = kcat(gw.bootstrap, "-C", "-t", "t", "-o", "15", "-e", "-f", "%o:%s\\n")
        tail = kcat(gw.bootstrap, "-C", "-t", "t", "-o", "-2", "-e", "-f", "%o:%s\\n")
    assert out.decode().splitlines() == [f"{i}:m{i}" for i in range(15, 20)]
    assert tail.decode().splitlines() == ["18:m18", "19:m19"]
