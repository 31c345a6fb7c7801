"""`opennsps connector serve MODULE:CLASS`: run a connector as its own HTTP service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from opennsps.cli_support import err

app = typer.Typer(help="Run connectors built with opennsps.connector.", no_args_is_help=True)
TOKEN_ENV = "OPENNSPS_CONNECTOR_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def _options(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"error: cannot read {path}: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not isinstance(loaded, dict):
        err.print(f"error: {path} must hold a mapping of options", highlight=False)
        raise typer.Exit(2)
    return loaded


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="The connector class, as package.module:Class.")],
    options: Annotated[
        Path | None, typer.Option("--options", help="YAML file with the connector's options.")
    ] = None,
    host: str = "127.0.0.1",
    port: int = 8800,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
) -> None:
    """Serve one connector over the NSPS contract. The Bearer token it expects is read from
    $OPENNSPS_CONNECTOR_TOKEN (at least 16 characters)."""
    import uvicorn

    from opennsps.connector.base import Connector
    from opennsps.connector.service import create_app
    from opennsps.connectors.plugin import PluginLoadError, load_plugin
    from opennsps.logging import configure_logging

    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < 16:
        err.print(f"error: set {TOKEN_ENV} to the Bearer token (at least 16 characters)")
        raise typer.Exit(2)
    try:
        connector = load_plugin(target, _options(options))
    except PluginLoadError as exc:
        err.print(f"error: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not isinstance(connector, Connector):
        err.print(f"error: {target} is not an opennsps.connector.Connector", highlight=False)
        raise typer.Exit(2)
    configure_logging(log_level)
    uvicorn.run(
        create_app(connector, token=token),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )
