"""compose.yaml: the replicated setup (primary, two replicas, three Sentinels) says what it must.

Docker is not needed: the file is cut into one text block per service, and each block is checked
against facade.topology, the local topology the fault tests run: the data nodes must carry exactly
``SAFE_SETTINGS`` and the sentinels exactly ``sentinel_settings()`` for the service ``facade`` with
a majority quorum, so the two setups cannot drift apart. The ports the facade URL in the header
comment names are checked too. PyYAML is not a dependency, so the check is textual; ``docker
compose config`` runs as well where docker compose is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from facade.local import sentinel as topology

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
DATA_NODES = ("primary", "replica-1", "replica-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
SERVICE = topology.SERVICE
SENTINEL_LINES = (
    "sentinel resolve-hostnames yes",
    f"sentinel monitor {SERVICE} primary 6379 {topology.quorum(len(SENTINELS))}",
    *(f"sentinel {k} {SERVICE} {v}" for k, v in topology.sentinel_settings(topology.DEFAULT_DOWN_AFTER_MS).items()),
)


def server_flags(block: str) -> dict[str, str]:
    """``--name value`` pairs of the redis-server command in a service block."""
    command = block.split("redis-server", 1)[1].split(" ports:", 1)[0]
    return dict(re.findall(r"--([a-z-]+) (\S+)", command))


def sentinel_lines(block: str) -> list[str]:
    """The ``sentinel ...`` lines of the config a sentinel service writes."""
    return re.findall(r"sentinel [a-z-]+ .*?(?= sentinel |\s+EOF)", block)


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
def test_data_nodes_run_the_topology_settings(blocks: dict[str, str], name: str) -> None:
    block = blocks[name]
    assert "redis-server" in block
    flags = server_flags(block)
    flags.pop("port")
    flags.pop("replicaof", None)
    assert flags == topology.SAFE_SETTINGS, f"{name} differs from facade.topology.SAFE_SETTINGS"


def test_replicas_follow_the_primary(blocks: dict[str, str]) -> None:
    assert "--replicaof" not in blocks["primary"]
    for name in ("replica-1", "replica-2"):
        assert "--replicaof primary 6379" in blocks[name]
        assert "condition: service_healthy" in blocks[name], f"{name} should wait for the primary"


@pytest.mark.parametrize("name", SENTINELS)
def test_sentinels_write_their_config(blocks: dict[str, str], name: str) -> None:
    block = blocks[name]
    assert sorted(sentinel_lines(block)) == sorted(SENTINEL_LINES), f"{name} differs from facade.topology"
    # Sentinel refuses a hostname in "monitor" unless resolve-hostnames was set before it.
    assert block.index("resolve-hostnames") < block.index("sentinel monitor")
    assert "exec redis-sentinel /tmp/sentinel.conf" in block
    assert "condition: service_healthy" in block, f"{name} should wait until the primary resolves"


def test_url_in_header_matches_the_sentinel_ports(blocks: dict[str, str], text: str) -> None:
    m = re.search(rf"redis\+sentinel://(\S+)/{SERVICE}\b", text)
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
