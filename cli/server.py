"""``facade server``: the embedded local broker, and local topologies under a data directory.

Without ``--data-dir`` the commands act on the embedded broker. With it they act on a local
topology: a primary with replicas and sentinels, or a Redis Cluster (``--cluster-shards``). All of
them through facade.local, the one interface to local servers.
"""

from __future__ import annotations

from typing import Any

import click

from facade import Admin, local

from . import CliError, Settings, main, render


@main.group()
def server() -> None:
    """The embedded local broker, and local test topologies (replicas, sentinels, cluster).

    Without --data-dir: the broker clients use when no URL is given, a Valkey server
    listening only on a unix socket under $FACADE_HOME (default ~/.local/share/facade);
    the first command that needs it starts it, and it keeps running so later commands
    share it. With --data-dir D: a topology of local server processes on 127.0.0.1
    whose state, logs and data live in D.

    \b
    Example:
      facade server status
      facade server start --data-dir /tmp/ha --replicas 2 --sentinels 3
      facade server stop --data-dir /tmp/ha
    """


def _show(status: Any, as_json: bool) -> None:
    if as_json:
        click.echo(render.topology_json(status))
    else:
        render.emit(render.topology_view(status))


@server.command("start", short_help="Start the embedded broker, or a local topology.")
@click.option(
    "--data-dir",
    metavar="D",
    type=click.Path(file_okay=False),
    help="Start a topology whose state lives in D.",
)
@click.option(
    "--replicas",
    type=click.IntRange(0, 16),
    metavar="N",
    help="Replicas of the primary (default 2; with --data-dir).",
)
@click.option(
    "--sentinels",
    type=click.IntRange(0, 9),
    metavar="M",
    help="Sentinels watching the primary (default 3, or 0 with --replicas 0; with --data-dir).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    metavar="BASE",
    help="Ports BASE, BASE+1, ... in order (default: free ports the kernel picks).",
)
@click.option(
    "--down-after-ms",
    type=click.IntRange(100, 600_000),
    metavar="MS",
    help="Sentinels fail over a primary silent this long (default 2000).",
)
@click.option(
    "--cluster-shards",
    type=click.IntRange(min=1),
    metavar="K",
    help="Start a Redis Cluster of K shards instead.",
)
@click.option(
    "--replicas-per-shard",
    type=click.IntRange(min=0),
    metavar="R",
    help="Replicas of each cluster shard (default 0).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the topology's status as one JSON object.")
@click.pass_obj
def start(
    settings: Settings,
    data_dir: str | None,
    replicas: int | None,
    sentinels: int | None,
    port: int | None,
    down_after_ms: int | None,
    cluster_shards: int | None,
    replicas_per_shard: int | None,
    as_json: bool,
) -> None:
    """Start the embedded broker (no options), or with --data-dir D a local topology:
    a primary with N replicas and M sentinels, or with --cluster-shards a Redis Cluster.

    It returns once everything is linked and prints the URL clients use
    (redis+sentinel://... with sentinels). A D that holds a stopped topology starts
    it again with its ports and data. Stop it with `facade server stop --data-dir D`.

    \b
    Example:
      facade server start
      facade server start --data-dir /tmp/ha --replicas 2 --sentinels 3
      facade server start --data-dir /tmp/cluster --cluster-shards 3 --replicas-per-shard 1
      export FACADE_URL=$(facade server start --data-dir /tmp/ha --json | jq -r .url)
    """
    topology_flags = {
        "--replicas": replicas, "--sentinels": sentinels, "--port": port, "--down-after-ms": down_after_ms,
    }  # fmt: skip
    cluster_flags = {"--cluster-shards": cluster_shards, "--replicas-per-shard": replicas_per_shard}
    given = [k for k, v in {**topology_flags, **cluster_flags}.items() if v is not None]
    if data_dir is None:
        if given:
            raise click.UsageError(f"{', '.join(given)} need --data-dir (where the topology keeps its state)")
        info = local.start_embedded()
        if as_json:
            click.echo(render.status_json(info))
        else:
            click.echo(f"The embedded broker runs at {info.url} (pid {info.pid or '?'}), data in {info.home}.")
        return
    if cluster_shards is None and replicas_per_shard is not None:
        raise click.UsageError("--replicas-per-shard needs --cluster-shards")
    if cluster_shards is not None:
        mixed = [k for k in ("--replicas", "--sentinels", "--down-after-ms") if topology_flags[k] is not None]
        if mixed:
            raise click.UsageError(f"{', '.join(mixed)} do not apply to a cluster (--cluster-shards)")
        kwargs: dict[str, Any] = {"shards": cluster_shards, "port": port}
        if replicas_per_shard is not None:
            kwargs["replicas_per_shard"] = replicas_per_shard
        status = local.start_cluster(data_dir, **kwargs)
    else:
        kwargs = {"port": port}
        if replicas is not None:
            kwargs["replicas"] = replicas
        if sentinels is not None:
            kwargs["sentinels"] = sentinels
        elif replicas == 0:
            kwargs["sentinels"] = 0  # nothing to fail over to: no sentinels unless asked
        if down_after_ms is not None:
            kwargs["down_after_ms"] = down_after_ms
        status = local.start_sentinel(data_dir, **kwargs)
    if not as_json:
        click.echo(f"Started; clients use --url {render.redact_text(status.url)}", err=True)
    _show(status, as_json)


@server.command("status", short_help="Whether the embedded broker (or a topology) runs, and where.")
@click.option(
    "--data-dir", metavar="D", type=click.Path(file_okay=False), help="A topology's data directory."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: Settings, data_dir: str | None, as_json: bool) -> None:
    """Whether the embedded broker runs, its URL, pid and data directory; with
    --data-dir, the topology there: its URL, current primary, replicas and sentinels
    (--json: {"url", "primary", "replicas", "sentinels"}, each node {"port", "pid"},
    pid null when stopped).

    Exit status is 0 whether or not it runs; read "running" (or the pids) from --json.

    \b
    Example:
      facade server status
      facade server status --json | jq .running
      facade server status --data-dir /tmp/ha --json | jq .primary.port
    """
    if data_dir is not None:
        _show(local.status(data_dir), as_json)
        return
    info = local.status()
    if as_json:
        click.echo(render.status_json(info))
        return
    render.emit(render.status_view(info))
    if settings.url:
        click.echo(
            "note: --url/FACADE_URL is set, so other commands use that broker, not this one.", err=True
        )


@server.command("replicas", short_help="The replicas acks=all waits for, and their state.")
@click.option("--forget", metavar="ADDR", help="Forget replica ADDR (ip:port), removed for good (one server).")
@click.pass_obj
def replicas(settings: Settings, forget: str | None) -> None:
    """List the replicas acks="all" waits for by default (every configured
    replica: the sentinels' list, the cluster's, or on one server every replica
    facade has seen attached), each "in sync" or what it is instead.

    A replica removed for good from a single server keeps acks="all" producers
    waiting until it is forgotten with --forget (or until producers set
    min_insync_replicas to accept fewer copies).

    \b
    Example:
      facade --url redis://10.0.0.1:6379 server replicas
      facade --url redis://10.0.0.1:6379 server replicas --forget 10.0.0.3:6379
    """
    with Admin(settings.url) as admin:
        if forget is not None:
            if not admin.forget_replica(forget):
                raise click.UsageError(f"{forget} is not a remembered replica (see `facade server replicas`)")
            click.echo(f"Forgot replica {forget}; acks=all no longer waits for it.")
        found = admin.describe_replicas()
    if not found.replicas:
        click.echo(f"No replicas ({found.source}): acks=all is confirmed by the primary alone.")
        return
    for r in found.replicas:
        click.echo(f"{r.address}  {r.state}")
    click.echo(f"{len(found.replicas)} configured ({found.source}), {len(found.missing)} not in sync.")


@server.command("stop", short_help="Stop the embedded broker (or a topology).")
@click.option("--data-dir", metavar="D", type=click.Path(file_okay=False), help="Stop the topology in D.")
def stop(data_dir: str | None) -> None:
    """Stop the embedded broker, or with --data-dir every process of the topology in D
    (their data is kept, and reloaded on the next start).

    \b
    Example:
      facade server stop
      facade server stop --data-dir /tmp/ha
    """
    if data_dir is not None:
        found = local.kind(data_dir)
        if found is None:
            raise CliError(f"{local.describe_dir(data_dir)}: nothing to stop")
        kind = "cluster" if found == "cluster" else "topology"
        stopped = local.stop(data_dir)
        click.echo(f"Stopped the {kind} in {data_dir}." if stopped else f"The {kind} in {data_dir} is not running.")
        return
    pid = local.status().pid
    if local.stop():
        click.echo(f"Stopped the embedded broker{f' (pid {pid})' if pid else ''}.")
    else:
        click.echo("The embedded broker is not running.")
