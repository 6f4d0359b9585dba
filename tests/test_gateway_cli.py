"""``facade gateway`` as a command: it serves Kafka clients until interrupted, and refuses bad
options with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, wait_until

from facade import Admin

ck_admin = pytest.importorskip("confluent_kafka.admin", reason="confluent-kafka is in the test extras")

FACADE = str(Path(sys.executable).parent / "facade")
pytestmark = pytest.mark.timeout(60)


def test_the_command_serves_until_interrupted(url, tmp_path):
    Admin(url).create_topic("orders", 2)
    port = free_port()
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [FACADE, "--url", url, "gateway", "--listen", f"127.0.0.1:{port}"], stderr=out
        )
    try:
        wait_until(
            lambda: "clients connect to" in log.read_text(), timeout=20, what="the gateway's ready line"
        )
        md = ck_admin.AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
        assert len(md.topics["orders"].partitions) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"on 127.0.0.1:{port}" in text and "redis://" in text


@pytest.mark.parametrize(
    "args, says",
    [
        (["--listen", "nowhere"], "--listen takes HOST:PORT"),
        (["--advertise", "host:0"], "--advertise takes HOST:PORT"),
        (["--tls-cert", "/nonexistent.pem"], "cannot use TLS certificate"),
        (["--tls-key", "k.pem"], "--tls-key and --tls-ca need --tls-cert"),
    ],
)
def test_bad_options_are_one_line_errors(url, args, says):
    done = subprocess.run(
        [FACADE, "--url", url, "gateway", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode != 0
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
