"""The CLI only parses, calls the public SDK and renders: cli/ imports nothing from facade but the
names ``facade``, ``facade.aio`` and ``facade.gateway`` export, and never talks to Redis itself (no redis-py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import facade
import facade.aio

try:  # the gateway extra (kio) needs Python 3.11+
    import facade.gateway

    GATEWAY_NAMES = set(facade.gateway.__all__)
except ImportError:
    GATEWAY_NAMES = {"Gateway", "Limits", "parse_address", "run", "tls_context"}

CLI = Path(__file__).resolve().parent.parent / "cli"
PUBLIC = {
    "facade": set(facade.__all__),
    "facade.aio": set(facade.aio.__all__),
    "facade.gateway": GATEWAY_NAMES,
}
FORBIDDEN_PACKAGES = ("redis", "valkey", "hiredis")


def imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every import in ``path``; name is None for ``import module``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def facade_attributes(path: Path) -> list[tuple[int, str]]:
    """``facade.X`` attribute reads on the name ``facade`` (after ``import facade``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "facade"
    ]


MODULES = sorted(CLI.glob("*.py"))


def test_the_cli_modules_are_found():
    assert len(MODULES) > 10 and CLI / "__init__.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_cli_imports_only_public_sdk_names(path):
    wrong = []
    for line, module, name in imports(path):
        top = module.split(".")[0]
        if top in FORBIDDEN_PACKAGES:
            wrong.append(f"line {line}: {module} (the SDK owns Redis I/O)")
        elif top == "facade":
            if module not in PUBLIC:
                wrong.append(f"line {line}: {module} is not a public module (facade, facade.aio, facade.gateway)")
            elif name is not None and name not in PUBLIC[module]:
                wrong.append(f"line {line}: {module}.{name} is not in {module}.__all__")
    for line, attr in facade_attributes(path):
        if attr not in PUBLIC["facade"] and attr != "aio":
            wrong.append(f"line {line}: facade.{attr} is not in facade.__all__")
    assert not wrong, f"cli/{path.name}: " + "; ".join(wrong)


def test_the_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import redis\nfrom facade._sync.client import Connection\nfrom facade import keys\nimport facade\nfacade.errors\n")
    assert [m for _, m, _ in imports(bad)] == ["redis", "facade._sync.client", "facade", "facade"]
    assert "keys" not in PUBLIC["facade"] and facade_attributes(bad) == [(5, "errors")]
