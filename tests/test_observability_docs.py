"""docs/observability.md, the Grafana dashboard and the alert rules stay true: every metric they use
is one facade serves (the broker exporter's or the client collector's), and the page names every
metric the exporter serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from facade import metrics as client_metrics
from facade.descriptions import GroupCursor, PartitionStats, ReplicaDescription, ServerDescription
from facade.exporter import Reading, families
from facade.records import GroupDescription, GroupMember, GroupPartitionInfo, TopicPartition

DOCS = Path(__file__).resolve().parent.parent / "docs"
NAME = re.compile(r"\b((?:kafka|facade)_[a-z0-9_]+)")


def broker_metrics() -> set[str]:
    """Every family the exporter serves for a broker that has all it can show (plus the one a
    scrape adds about itself)."""
    server = ServerDescription(
        "valkey 9.1.2", "cluster of 2 primaries", 100, 1000, "noeviction", 5,
        (ReplicaDescription("h:2", "online", 1, 0, "h:1"),), sentinel_primary="h:1", config_epoch=3, primaries=2,
    )  # fmt: skip
    reading = Reading(
        (PartitionStats("t", 0, 3, 0, 2, 3, (GroupCursor("g", 3),), 0, 3, "h:1"),
         PartitionStats("t.dlq", 0, 1, 0, 0, 1, (), 0, 1, "h:1")),
        (GroupDescription("g", 1, (GroupMember("m", ("t",), (TopicPartition("t", 0),), 0, "host", "id"),),
                          (GroupPartitionInfo("t", 0, "m", 1, 2, 0, 3, 2),)),),
        {("g", "t", 0): 10}, server, {"t": 1, "t.dlq": 1},
    )  # fmt: skip
    exposed = {f.name + "_total" if f.type == "counter" else f.name for f in families(reading)}
    return exposed | {"facade_scrape_duration_seconds"}


def client_metric_names() -> set[str]:
    out = set()
    for m in (client_metrics.ProducerMetrics("p"), client_metrics.ConsumerMetrics("c", "g")):
        for s in m.samples() or []:
            out.add(f"facade_{m.kind}_{s.name}")
        m.records["t"] = 1  # labelled counters appear once they count something
        m.bytes["t"] = 1
        for s in m.samples():
            out.add(f"facade_{m.kind}_{s.name}")
    m = client_metrics.ProducerMetrics("p")
    m.retries["t"] = m.errors[("t", "E")] = 1
    out |= {f"facade_producer_{s.name}" for s in m.samples()}
    c = client_metrics.ConsumerMetrics("c", "g")
    c.errors["E"] = 1
    out |= {f"facade_consumer_{s.name}" for s in c.samples()}
    return out


def served() -> set[str]:
    names = broker_metrics() | client_metric_names()
    # Histograms are used through their series, counters with or without _total.
    return names | {n + suffix for n in names for suffix in ("_bucket", "_sum", "_count")} | {
        n.removesuffix("_total") for n in names
    }


def test_the_dashboard_and_the_alerts_use_only_metrics_facade_serves():
    dashboard = json.loads((DOCS / "grafana" / "facade-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [q["query"]["query"] for q in dashboard["templating"]["list"] if isinstance(q.get("query"), dict)]
    assert len(exprs) > 20
    rules = (DOCS / "prometheus" / "facade-alerts.yml").read_text()
    rule_exprs = re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    assert len(rule_exprs) >= 12 and rules.count("- alert: ") == len(rule_exprs)
    used = {n for e in exprs + rule_exprs for n in NAME.findall(e)}
    unknown = used - served()
    assert not unknown, f"not served by facade: {sorted(unknown)}"
    # The headline kafka_exporter metrics are there, so Kafka habits carry over.
    assert {"kafka_consumergroup_lag_sum", "kafka_topic_partition_current_offset", "kafka_consumergroup_members"} <= used


def test_the_page_names_every_metric_served():
    page = (DOCS / "observability.md").read_text()
    documented = set(NAME.findall(page))
    missing = (broker_metrics() | client_metric_names()) - documented
    assert not missing, f"docs/observability.md does not name: {sorted(missing)}"
