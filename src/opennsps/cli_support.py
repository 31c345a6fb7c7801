"""What every `opennsps` command shares: consoles, the --config option, opening the store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from opennsps.terminal import console

if TYPE_CHECKING:  # imported when a command runs: `opennsps --help` stays fast
    from opennsps.config import Settings
    from opennsps.store.event_store import EventStore

out = console()
err = console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file (default: $OPENNSPS_CONFIG, else ./opennsps.yaml).",
        show_default=False,
    ),
]

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def print_error(message: object) -> None:
    """`error: <message>` on stderr; the message is printed as it is (a `[a-z]` in it is
    text, not Rich markup)."""
    err.print(f"[red]error:[/red] {escape(str(message))}", markup=True, highlight=False)


# The file named by `opennsps -c FILE COMMAND` (a command's own -c wins).
_root_config: Path | None = None


def use_config(path: Path | None) -> None:
    global _root_config
    _root_config = path


def print_warning(message: object) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(str(message))}", markup=True, highlight=False)


def settings_or_exit(path: Path | None) -> Settings:
    from opennsps.config import ConfigError, load_settings

    try:
        return load_settings(path if path is not None else _root_config)
    except ConfigError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _RELATIVE.fullmatch(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            "use a duration such as 30m, 2h, 7d, or an ISO time such as 2026-11-01T08:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def store_or_exit(settings: Settings) -> EventStore:
    """The store, migrated; a clear error and exit 1 when it cannot be opened."""
    from opennsps.config import redact_url
    from opennsps.store.event_store import EventStore

    try:
        store = EventStore(settings.store)
        store.upgrade()
    except Exception as exc:
        print_error(f"cannot open the store {redact_url(settings.store.url)}: {exc}")
        raise typer.Exit(1) from None
    return store


def show_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""
