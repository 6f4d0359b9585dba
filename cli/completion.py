"""``facade completion bash|zsh|fish``: the shell completion script (click's own)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from . import main

SHELLS = ("bash", "zsh", "fish")


@main.command(short_help="Print the shell completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; load it from your shell's startup file.

    It is what `_FACADE_COMPLETE=<shell>_source facade` prints: commands, options,
    choices and file names complete on Tab.

    \b
    Example:
      facade completion bash >> ~/.bashrc          # or: eval "$(facade completion bash)"
      facade completion zsh > "${fpath[1]}/_facade"
      facade completion fish > ~/.config/fish/completions/facade.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(main, {}, "facade", "_FACADE_COMPLETE").source())
