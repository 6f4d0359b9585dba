"""compose.yaml: the replicated setup (primary, two replicas, three Sentinels) says what it must.

Docker is not needed: the file is cut into one text block per service, and each block is checked
for the settings that make the setup safe (persistence, no eviction, min-replicas) and for the
ports the facade URL in the header comment names. PyYAML is not a dependency, so the check is
textual; ``docker compose config`` runs as well where docker compose is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
DATA_NODES = ("primary", "replica-1", "replica-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
SAFETY_FLAGS = (
    "--appendonly yes",
    "--appendfsync everysec",
    "--maxmemory-policy noeviction",
    "--min-replicas-to-write 1",
    "--min-replicas-max-lag 10",
)
SENTINEL_LINES = (
    "sentinel resolve-hostnames yes",
    "sentinel monitor mymaster primary 6379 2",
    "sentinel down-after-milliseconds mymaster 5000",
    "sentinel failover-timeout mymaster 10000",
    "sentinel parallel-syncs mymaster 1",
)


def services(text: str) -> dict[str, str]:
    """Service name -> its block of text (whitespace collapsed), from the top-level ``services:``."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):  # a top-level key
            inside = line.rstrip() == "services:"
            current = None
            continue
        if not inside:
            continue
        m = re.fullmatch(r" {2}([A-Za-z0-9_.-]+):\s*", line)
        if m:
            current = blocks.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(" ".join(lines).split()) for name, lines in blocks.items()}


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def blocks(text: str) -> dict[str, str]:
    return services(text)


def test_services(blocks: dict[str, str], text: str) -> None:
    assert sorted(blocks) == sorted(DATA_NODES + SENTINELS)
    assert "\t" not in text, "tabs are not valid YAML indentation"
    for name, block in blocks.items():
        assert "image: redis:7 " in block + " ", f"{name} does not use the official redis:7 image"


@pytest.mark.parametrize("name", DATA_NODES)
def test_data_nodes_are_safe(blocks: dict[str, str], name: str) -> None:
    block = blocks[name]
    assert "redis-server" in block
    for flag in SAFETY_FLAGS:
        assert flag in block, f"{name} lacks {flag}"


def test_replicas_follow_the_primary(blocks: dict[str, str]) -> None:
    assert "--replicaof" not in blocks["primary"]
    for name in ("replica-1", "replica-2"):
        assert "--replicaof primary 6379" in blocks[name]
        assert "condition: service_healthy" in blocks[name], f"{name} should wait for the primary"


@pytest.mark.parametrize("name", SENTINELS)
def test_sentinels_write_their_config(blocks: dict[str, str], name: str) -> None:
    block = blocks[name]
    for line in SENTINEL_LINES:
        assert line in block, f"{name} lacks '{line}'"
    # Sentinel refuses a hostname in "monitor" unless resolve-hostnames was set before it.
    assert block.index("resolve-hostnames") < block.index("sentinel monitor")
    assert "exec redis-sentinel /tmp/sentinel.conf" in block
    assert "condition: service_healthy" in block, f"{name} should wait until the primary resolves"


def test_url_in_header_matches_the_sentinel_ports(blocks: dict[str, str], text: str) -> None:
    m = re.search(r"redis\+sentinel://(\S+)/mymaster", text)
    assert m, "the header comment should give the facade URL"
    ports = [int(hostport.rsplit(":", 1)[1]) for hostport in m.group(1).split(",")]
    assert len(ports) == len(SENTINELS)
    published = sorted(int(p) for name in SENTINELS for p in re.findall(r'"(\d+):26379"', blocks[name]))
    assert published == sorted(ports)


def test_default_ports_stay_free(blocks: dict[str, str]) -> None:
    for name, block in blocks.items():
        for host_port in re.findall(r'"(\d+):\d+"', block):
            assert host_port not in ("6379", "26379"), f"{name} publishes the default port {host_port}"


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_docker_compose_accepts_it() -> None:
    if not _has_compose():
        pytest.skip("docker compose is not installed here; the textual checks above still ran")
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
