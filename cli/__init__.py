"""The ``facade`` command: topics, produce, consume, groups, relay, dead letters, the servers,
a live dashboard, benchmarks and a demo.

It only parses arguments, calls the SDK and renders (cli/render.py and the *_view modules). Exit
statuses are stable: 0 success, 1 a FacadeError or other runtime failure (one ``error: ...`` line
on stderr), 2 a usage error (click's), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from facade import FacadeError, __version__

__all__ = ["CliError", "main"]


class CliError(click.ClickException):
    """A failure reported as one ``error: ...`` line on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file or sys.stderr)


@dataclass(frozen=True)
class Settings:
    """Options of the top-level command, handed to every subcommand."""

    url: str | None
    """Broker URL from --url / $FACADE_URL; None means the embedded broker."""


class FacadeCommand(click.Command):
    """A command that notes its path ("topics delete") where the root group finds it, so that an
    error's hint can fit the command that failed (cli/hints.py)."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[COMMAND_KEY] = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ctx.command_path
        return super().invoke(ctx)


COMMAND_KEY = "facade.command"


class FacadeGroup(click.Group):
    """The root group (and, as their class, its subgroups): turns errors raised anywhere below
    into one-line messages."""

    command_class = FacadeCommand
    group_class = type  # subgroups are FacadeGroups, so their commands are FacadeCommands too

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)  # a subgroup: the root handles errors
        log = logging.getLogger("facade")
        handler = _StderrHandler(logging.WARNING)
        log.addHandler(handler)  # only while a command runs: the CLI may be invoked in-process (tests)
        try:
            return super().invoke(ctx)
        except FacadeError as exc:
            from . import hints

            url = ctx.obj.url if isinstance(ctx.obj, Settings) else None
            raise CliError(_one_line(hints.message(exc, ctx.meta.get(COMMAND_KEY), url))) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            if os.environ.get("FACADE_DEBUG"):
                raise
            raise CliError(
                _one_line(f"unexpected {type(exc).__name__}: {exc} (set FACADE_DEBUG=1 for a traceback)")
            ) from None
        finally:
            log.removeHandler(handler)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _StderrHandler(logging.Handler):
    """The SDK's log warnings, one ``facade: ...`` line each on stderr (no logging config needed)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = _one_line(record.getMessage()).removeprefix("facade: ")
            if record.exc_info and record.exc_info[1] is not None:  # an unexpected error: say which
                exc = record.exc_info[1]
                text += " " + _one_line(f"({type(exc).__name__}: {exc}; please report it with this line)")
            click.echo(f"facade: {record.levelname.lower()}: {text}", err=True)
        except Exception:  # noqa: BLE001, S110 - a log line must never break a command
            pass


EPILOG = """\b
Exit status:
  0    success
  1    error (one "error: ..." line on stderr): bad value, unknown topic or group,
       server unreachable or refusing, ...
  2    usage error: unknown command or option, missing or malformed argument
  130  interrupted (Ctrl-C)

\b
Colours are off when output is not a terminal or NO_COLOR is set.
Shell completion: eval "$(_FACADE_COMPLETE=bash_source facade)" in ~/.bashrc
(zsh_source, fish_source for those shells), or see `facade completion --help`.
"""


@click.group(
    cls=FacadeGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.option(
    "--url",
    envvar="FACADE_URL",
    metavar="URL",
    help="Broker: redis://[user:pass@]host:port[/db], rediss://... or unix:///path.sock "
    "(env FACADE_URL). Default: the embedded local broker, started on first use.",
)
@click.version_option(__version__, "--version", prog_name="facade")
@click.pass_context
def main(ctx: click.Context, url: str | None) -> None:
    """Kafka semantics (topics, partitions, keyed ordering, consumer groups) on Redis and Valkey.

    \b
    Examples:
      facade demo
      facade topics create posts --partitions 5
      echo hello | facade produce posts
      facade consume posts --group readers --from-beginning
      facade groups describe readers
      facade dashboard
      facade --url redis://localhost:6379 topics list
    """
    ctx.obj = Settings(url=url or None)


# Each module registers its commands on main when imported.
from . import (  # noqa: F401
    bench,
    clients,
    completion,
    dashboard,
    demo,
    dlq,
    exporter,
    gateway,
    groups,
    produce,
    relay,
    server,
    topics,
)
from .acl import acl

main.add_command(acl)
