"""A pytest plugin (loaded by tests/conftest.py): the suite runs in two tiers.

Every test not marked ``slow`` (unit tests, Lua contracts, clients against the session's server)
runs first, then the slow tier (multi-process, fault and failover tests, local topologies and
clusters). Once a fast-tier test failed, each slow test is skipped, saying which failure to fix
first: a broken build stops after the fast tier (about three minutes) instead of also running
every fault test, on each server. Every test still runs when the fast tier passes.
"""

from __future__ import annotations

import pytest

_FAST_FAILED = pytest.StashKey[str]()


def _slow(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None


@pytest.hookimpl(trylast=True)  # after any plugin that shuffles or selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_slow)  # stable: the order within each tier is kept


def pytest_runtest_setup(item: pytest.Item) -> None:
    failed = item.config.stash.get(_FAST_FAILED, None)
    if failed is not None and _slow(item):
        pytest.skip(f"slow tier not run: the fast-tier test {failed} failed; fix that first")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and not _slow(item) and _FAST_FAILED not in item.config.stash:
        item.config.stash[_FAST_FAILED] = item.nodeid
