"""``facade server``: status and stop of the embedded local broker."""

from __future__ import annotations

import click

from facade.server import embedded_status, stop_embedded

from . import Settings, main, render


@main.group()
def server() -> None:
    """The embedded local broker that clients use when no URL is given.

    It is a Valkey server listening only on a unix socket under $FACADE_HOME
    (default ~/.local/share/facade); the first command that needs it starts it,
    and it keeps running so later commands share it.

    \b
    Example:
      facade server status
      facade server stop
    """


@server.command("status", short_help="Whether the embedded broker runs, and where.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Whether the embedded broker runs, its URL, pid and data directory.

    Exit status is 0 whether or not it runs; read "running" from --json in scripts.

    \b
    Example:
      facade server status
      facade server status --json | jq .running
    """
    info = embedded_status()
    if as_json:
        click.echo(render.status_json(info))
        return
    render.emit(render.status_view(info))
    if settings.url:
        click.echo(
            "note: --url/FACADE_URL is set, so other commands use that broker, not this one.", err=True
        )


@server.command("stop", short_help="Stop the embedded broker.")
def stop() -> None:
    """Stop the embedded broker (its data is kept and reloaded on next start).

    \b
    Example:
      facade server stop
    """
    pid = embedded_status().pid
    if stop_embedded():
        click.echo(f"Stopped the embedded broker{f' (pid {pid})' if pid else ''}.")
    else:
        click.echo("The embedded broker is not running.")
