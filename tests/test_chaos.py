"""The chaos harness (tests/chaos) against the server under test: a short seeded run must show no
anomaly, and every deliberately broken member must be caught; the same for the relay workload
(tests/chaos/relay_run.py) and its broken relays.

By hand, and for long runs: ``python -m tests.chaos --seed 7 --duration 60`` (see tests/chaos).
"""

from __future__ import annotations

import pytest
from chaos import controls, relay_check, relay_run
from chaos.report import render, summarize
from chaos.run import RunConfig, run

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_a_seeded_chaos_run_finds_no_anomaly(server_spec, tmp_path):
    r = run(RunConfig(seed=7, duration_s=45, server_binary=server_spec[0], workdir=tmp_path / "run"))
    report = render([summarize(r)])
    print(report)
    # The run must have done something worth checking.
    assert sum(r.faults.values()) >= 10, report
    assert r.result.figures["records acknowledged"] >= 3000, report
    assert r.result.figures["records delivered (distinct)"] > 0, report
    assert r.anomalies == 0, report


@pytest.mark.timeout(300)
def test_a_poison_run_dead_letters_exactly_the_poison_records(server_spec, tmp_path):
    """The poison-record workload (tests/chaos/dead_letters.py) beside the group, with faults: only
    records the application failed or that crashed it reach the dead letters, all of them."""
    r = run(RunConfig(seed=3, duration_s=20, poison=2, server_binary=server_spec[0], workdir=tmp_path / "run"))
    report = render([summarize(r)])
    print(report)
    f = r.result.figures
    poisoned = f["poison workload: poison records acknowledged"]
    assert poisoned >= 5 and f["poison workload: dead-lettered"] == poisoned, report
    assert f["poison workload: crash events"] > 0 and f["poison workload: fail events"] > 0, report
    assert f["poison workload: d events"] > 300, report
    assert r.anomalies == 0, report


@pytest.mark.timeout(240)
@pytest.mark.parametrize("classes", controls.GROUPS, ids="-".join)
def test_every_broken_member_is_caught(server_spec, tmp_path, classes):
    cfg = RunConfig(
        seed=11,
        duration_s=15,
        faults=(),
        controls=classes,
        members=(2, 2),
        grace_s=2.0,
        server_binary=server_spec[0],
        workdir=tmp_path / "run",
    )
    r = run(cfg)
    report = render([summarize(r)])
    print(report)
    assert r.controls == dict.fromkeys(classes, True), report


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("atomic", "seed"), [(True, 12), (False, 10)], ids=["atomic", "dedup-ids"])
def test_a_seeded_relay_chaos_run_loses_doubles_and_reorders_nothing(server_spec, tmp_path, atomic, seed):
    """Three relays of one group copying a topic while several of them at once are killed -9 or
    stopped (SIGSTOP, some past the session), one at a time too, with connection cuts and broker
    restarts: 0 lost, 0 doubled, per-key order kept, and the group drains."""
    r = relay_run.run(relay_run.RelayRunConfig(seed=seed, duration_s=30, atomic=atomic, server_binary=server_spec[0],
                                               workdir=tmp_path / "run"))  # fmt: skip
    report = relay_run.render(r)
    print(report)
    assert r.faults["kill-many"] + r.faults["pause-many"] >= 4, report
    assert r.result.figures["records acknowledged"] >= 3000, report
    assert r.anomalies == 0, report


@pytest.mark.timeout(240)
def test_every_broken_relay_is_caught(server_spec, tmp_path):
    """Control relays in the same group, no faults: one commits its inputs before sending their
    outputs and dies (lost), one sends without dedup ids and dies before committing (duplicate),
    one sends each batch backwards (order). Each must be traced back to its relay."""
    r = relay_run.run(relay_run.RelayRunConfig(seed=11, duration_s=12, faults=(), controls=relay_check.CONTROLLED,
                                               server_binary=server_spec[0], workdir=tmp_path / "run"))  # fmt: skip
    report = relay_run.render(r)
    print(report)
    assert r.controls == dict.fromkeys(relay_check.CONTROLLED, True), report
