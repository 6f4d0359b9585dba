"""``facade acl print``: the least-privilege Redis ACL user for a facade role (facade/acl.py).

Registered on the root command by cli/__init__.py (``main.add_command(acl)``). Prints only; it
never connects to a server, so it runs before the user it describes exists.
"""

from __future__ import annotations

import secrets

import click

from facade import acl as acls

__all__ = ["acl"]


@click.group()
def acl() -> None:
    """Redis ACL users restricted to facade's keys and to the commands of one role.

    \b
    Roles: producer (send records), consumer (read in a group, commit, seek),
    admin (create/describe/delete topics, describe/reset/delete groups).

    \b
    Example:
      facade acl print --role producer --user orders-api | redis-cli
    """


@acl.command("print")
@click.option(
    "--role",
    "roles",
    type=click.Choice(acls.ROLES),
    multiple=True,
    required=True,
    help="Role of the user; repeat for a user that needs several (e.g. --role consumer --role producer "
    "for commit(outputs=...) and dead-lettering).",
)
@click.option("--user", metavar="U", help="ACL user name (default: facade-<role>).")
@click.option(
    "--password",
    envvar="FACADE_ACL_PASSWORD",
    metavar="P",
    help="Password (env FACADE_ACL_PASSWORD). Default: a random one, shown on stderr.",
)
@click.option(
    "--server-version",
    metavar="X.Y",
    help="Redis version of the server (any Valkey counts as 7.2+). Default: 7.2 or later; "
    "give 7.0 for Redis 7.0/7.1, which refuse rules for newer commands.",
)
@click.option(
    "--acks-fsync", is_flag=True, help="Also allow WAITAOF (producers with acks_fsync; Redis 7.2+)."
)
@click.option(
    "--rules-only",
    is_flag=True,
    help="Print only the rules (no user, no password): for an ACL file line `user NAME on >PASS RULES`.",
)
def print_(
    roles: tuple[str, ...],
    user: str | None,
    password: str | None,
    server_version: str | None,
    acks_fsync: bool,
    rules_only: bool,
) -> None:
    """Print an ACL SETUSER command for redis-cli creating a facade user.

    The rules allow facade's keys only (facade:*) and only the commands the
    role sends, including those its Lua scripts call. Anything else is refused
    with PermissionDeniedError. A producer with auto_create=True also needs
    --role admin.

    \b
    Examples:
      facade acl print --role producer --user orders-api --password s3cret | redis-cli
      facade acl print --role consumer --user billing
      facade acl print --role admin --rules-only
    """
    roles = tuple(dict.fromkeys(roles))
    try:
        if rules_only:
            click.echo(" ".join(acls.rules(*roles, acks_fsync=acks_fsync, server_version=server_version)))
            return
        name = user if user is not None else "facade-" + "-".join(roles)
        generated = password is None
        secret = secrets.token_urlsafe(24) if password is None else password
        line = acls.acl_command(roles, name, secret, acks_fsync=acks_fsync, server_version=server_version)
    except ValueError as exc:  # facade.ConfigError: a bad user name, password or server version
        raise click.UsageError(str(exc)) from None
    click.echo(line)
    if generated:
        # Generated from URL-safe characters: it goes into a redis:// URL as it is.
        click.echo(
            f"generated password for {name}: {secret} (connect with redis://{name}:{secret}@HOST:PORT)",
            err=True,
        )
