"""``facade exporter``: the broker's metrics for Prometheus, under kafka_exporter's names.

It parses, starts facade.exporter's HTTP server and waits; the metrics are read through the SDK at
each scrape (facade/exporter.py).
"""

from __future__ import annotations

import time

import click

from facade import Admin, exporter, local, redact_url

from . import CliError, Settings, main


@main.command("exporter", short_help="Serve the broker's metrics to Prometheus (kafka_exporter's names).")
@click.option(
    "--listen",
    default=f":{exporter.DEFAULT_PORT}",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on (:PORT: every address).",
)
@click.option("--once", is_flag=True, help="Print one scrape (Prometheus text format) and exit.")
@click.pass_obj
def exporter_command(settings: Settings, listen: str, once: bool) -> None:
    """Serve Prometheus metrics of the broker on HOST:PORT (any path, /metrics as usual),
    read through the SDK at each scrape: per partition the log start and end offsets and
    the records stored; per group and partition the committed offset, lag, pending records
    and lag in seconds; members and generation per group; dead-letter depth; server memory,
    memory per record, the eviction policy (a warning when it can drop records), replicas
    and their lag (Sentinel), the shard of each partition (Cluster).

    Names and labels are kafka_exporter's where it has the metric (kafka_consumergroup_lag,
    kafka_topic_partition_current_offset, ...), so Kafka dashboards and alerts work
    unchanged; the rest are facade_*. docs/observability.md maps them all and ships a
    Grafana dashboard and alert rules.

    \b
    Example:
      facade exporter
      facade --url redis://db:6379 exporter --listen 127.0.0.1:9308
      facade exporter --once | grep kafka_consumergroup_lag
    """
    host, port = exporter.parse_listen(listen)
    if once:
        with Admin(settings.url) as admin:
            click.echo(exporter.exposition([exporter.BrokerCollector(admin=admin)]), nl=False)
        return
    with Admin(settings.url) as admin:
        admin.list_topics()  # a wrong URL or refused credentials: one error line now, not at each scrape
    try:
        server, thread, collector = exporter.serve(settings.url, host, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    broker = redact_url(settings.url) if settings.url else f"embedded ({local.status().url})"
    shown = f"[{host}]" if ":" in host else host or "0.0.0.0"
    click.echo(f"serving metrics of {broker} on http://{shown}:{port}/metrics (Ctrl-C stops)", err=True)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    finally:
        server.shutdown()
        collector.close()

