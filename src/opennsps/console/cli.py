"""`opennsps users`: the console's local users (stored in the event store's database)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from opennsps.cli_support import (
    ConfigOption,
    err,
    out,
    print_error,
    settings_or_exit,
    show_time,
    store_or_exit,
)

if TYPE_CHECKING:  # the store's modules are imported when a command runs (a fast --help)
    from opennsps.console.sessions import Sessions
    from opennsps.console.users import UserStore

app = typer.Typer(help="Manage the web console's users.", no_args_is_help=True)

UserArgument = Annotated[str, typer.Argument(help="The user name.")]
RoleOption = Annotated[str, typer.Option("--role", "-r", help="viewer, operator or admin.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input."),
]


def _users(config: ConfigOption) -> UserStore:
    from opennsps.console.users import UserStore

    store = store_or_exit(settings_or_exit(config))
    return UserStore(store.engine)


def _sessions(config: ConfigOption) -> Sessions:
    from opennsps.console.sessions import Sessions
    from opennsps.console.users import UserStore

    settings = settings_or_exit(config)
    store = store_or_exit(settings)
    return Sessions(
        store.engine,
        UserStore(store.engine),
        lifetime_seconds=settings.console.session_hours * 3600,
        idle_seconds=settings.console.idle_minutes * 60,
    )


def _password(from_stdin: bool) -> str:
    """From stdin (one line), or a prompt (typed twice, not echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _run(action: str, change: Callable[[], object]) -> None:
    from opennsps.console.users import UserError

    try:
        change()
    except UserError as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    out.print(action)


@app.command("add")
def add(
    username: UserArgument,
    role: RoleOption = "viewer",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Add a user (the password is asked for, or read with --password-stdin)."""
    users = _users(config)
    password = _password(password_stdin)
    _run(f"user {username} added ({role})", lambda: users.add(username, password, role))


@app.command("list")
def list_users(config: ConfigOption = None) -> None:
    """The users and their roles."""
    table = Table("user", "role", "created", "changed")
    for user in _users(config).list():
        table.add_row(
            user.username, user.role, show_time(user.created_at), show_time(user.updated_at)
        )
    out.print(table)


@app.command("set-role")
def set_role(username: UserArgument, role: RoleOption, config: ConfigOption = None) -> None:
    """Change a user's role (their console sessions end: they log in again)."""
    users = _users(config)
    _run(f"user {username} is now {role}", lambda: users.set_role(username, role))


@app.command("set-password")
def set_password(
    username: UserArgument, password_stdin: PasswordStdin = False, config: ConfigOption = None
) -> None:
    """Change a user's password (their console sessions end)."""
    users = _users(config)
    password = _password(password_stdin)
    _run(f"password of {username} changed", lambda: users.set_password(username, password))


@app.command("remove")
def remove(username: UserArgument, config: ConfigOption = None) -> None:
    """Remove a user (their console sessions end at once)."""
    users = _users(config)
    _run(f"user {username} removed", lambda: users.remove(username))


@app.command("sessions")
def sessions(username: UserArgument, config: ConfigOption = None) -> None:
    """A user's open console sessions."""
    table = Table("session", "client", "logged in", "last used", "ends")
    for info in _sessions(config).list_for(username):
        table.add_row(
            info.id,
            escape(info.client),  # the caller's own text, not Rich markup
            show_time(info.created_at),
            show_time(info.last_seen_at),
            show_time(info.expires_at),
        )
    out.print(table)


@app.command("end-sessions")
def end_sessions(
    username: UserArgument,
    session: Annotated[str | None, typer.Option(help="Only this session (its id).")] = None,
    config: ConfigOption = None,
) -> None:
    """End a user's console sessions at once (all of them, or --session ID)."""
    ended = _sessions(config).end_for(username, session)
    if session is not None and not ended:
        err.print(f"error: {username} has no open session {session}", markup=False)
        raise typer.Exit(1)
    out.print(f"{ended} session(s) of {username} ended")
