"""docs/gateway.md lists every API the gateway answers, with the versions it answers."""

from __future__ import annotations

import re
from pathlib import Path

from facade.gateway.apis import GROUP_APIS, TABLE

DOC = Path(__file__).resolve().parent.parent / "docs" / "gateway.md"


def test_the_api_table_is_the_dispatch_table():
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+)-(\d+) \|$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    documented = {int(key): (name, int(lo), int(hi)) for name, key, lo, hi in rows}
    assert documented == {key: (api.name, api.min_version, api.max_version) for key, api in TABLE.items()}


def test_group_placeholders_are_not_answered_as_implemented():
    assert all(key not in TABLE for key, module in GROUP_APIS.items() if module is None)
