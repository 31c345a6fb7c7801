"""The `opennsps` command line."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import orjson
import typer
from rich.table import Table

from opennsps import cli_support
from opennsps.cli_support import (
    ConfigOption,
    out,
    parse_since,
    print_error,
    print_warning,
    settings_or_exit,
    show_time,
    store_or_exit,
)
from opennsps.connector.cli import app as connector_app
from opennsps.console.cli import app as users_app
from opennsps.pipeline.cli import register as register_pipeline_commands

SANDBOX_MISSING = (
    "the PortaBilling sandbox and the demo are not installed with this package: "
    "pip install 'opennsps[sandbox]' (for trials and tests; never needed in production)"
)
sandbox_app: typer.Typer | None
try:
    from opennsps.sandbox.cli import app as sandbox_app
except ModuleNotFoundError as missing:
    if not (missing.name or "").startswith("opennsps.sandbox"):
        raise
    sandbox_app = None

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from opennsps.config import Settings

T = TypeVar("T")

app = typer.Typer(
    help="OpenNSPS: the provisioning gateway for PortaBilling ESPF events.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the event store's schema.", no_args_is_help=True)
events_app = typer.Typer(help="Look at stored ESPF events.", no_args_is_help=True)
rejected_app = typer.Typer(help="Look at ESPF requests that were refused.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.add_typer(rejected_app, name="rejected")
if sandbox_app is not None:
    app.add_typer(sandbox_app, name="sandbox")
else:

    @app.command(
        "sandbox",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help="(not installed) The PortaBilling and HSS stand-ins: opennsps[sandbox].",
    )
    def sandbox_missing() -> None:
        print_error(SANDBOX_MISSING)
        raise typer.Exit(2)


app.add_typer(connector_app, name="connector")
app.add_typer(users_app, name="users")
register_pipeline_commands(app)


def _store_name(settings: Settings) -> str:
    from opennsps.config import redact_url

    return redact_url(settings.store.url)


def _print_version(wanted: bool) -> None:
    if wanted:
        from opennsps import __version__

        out.print(f"opennsps {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: ConfigOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """OpenNSPS: the provisioning gateway for PortaBilling ESPF events."""
    # `opennsps -c FILE COMMAND` as well as `opennsps COMMAND -c FILE` (which wins).
    cli_support.use_config(config)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
    insecure_defaults: Annotated[
        bool,
        typer.Option(
            "--insecure-defaults",
            help="Start although secrets still have the example's placeholder values.",
        ),
    ] = False,
) -> None:
    """Run the gateway (ESPF ingress, pipeline, management API) until interrupted."""
    import uvicorn

    from opennsps.app import create_app
    from opennsps.config import example_secrets
    from opennsps.http_server import uvicorn_options
    from opennsps.logging import configure_logging

    settings = settings_or_exit(config)
    placeholders = example_secrets(settings)
    if placeholders and not insecure_defaults:
        print_error(
            "secrets still have the example's placeholder values: "
            + ", ".join(placeholders)
            + " (set real ones, or start with --insecure-defaults for a trial)"
        )
        raise typer.Exit(2)
    configure_logging(settings.logging.level)
    from opennsps.tracing import TracingUnavailable, check

    try:
        check(settings.tracing)
    except TracingUnavailable as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    tls = settings.server.tls
    reloader = None
    if tls is not None:
        from opennsps.tls import CertificateReloader, TlsError, server_context

        try:
            context = server_context(tls)
        except TlsError as exc:
            print_error(str(exc))
            raise typer.Exit(2) from None
        reloader = CertificateReloader(context, tls)
        reloader.start()
    store = store_or_exit(settings)
    uvicorn.run(
        create_app(settings, store, owns_process=True),
        host=host or settings.server.host,
        port=port if port is not None else settings.server.port,
        timeout_graceful_shutdown=30,
        ssl_context_factory=(lambda *_: context) if tls is not None else None,
        **uvicorn_options(settings.server),
    )
    if reloader is not None:
        reloader.stop()


@app.command()
def health(
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
) -> None:
    """Ask the gateway on this machine whether it is ready (GET /ready on the configured
    port, over TLS when server.tls is set): exit 0 when it is, 1 when not. For container
    health checks and service managers."""
    import httpx

    settings = settings_or_exit(config)
    scheme = "https" if settings.server.tls is not None else "http"
    host = settings.server.host
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{host}:{port or settings.server.port}/ready"
    try:
        # This asks whether the process is ready, not who it is: the certificate names
        # the public host, not the address asked here.
        answer = httpx.get(url, timeout=5, verify=False)  # noqa: S501
    except httpx.HTTPError as exc:
        print_error(f"{url}: {exc}")
        raise typer.Exit(1) from None
    if answer.status_code != 200:
        print_error(f"{url}: HTTP {answer.status_code} {answer.text[:200]}")
        raise typer.Exit(1)
    out.print(f"{url}: ready")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="The YAML file to check.")],
    show: Annotated[
        bool, typer.Option(help="Print the effective settings (secrets masked).")
    ] = False,
) -> None:
    """Validate a configuration file (with OPENNSPS_* overrides applied); exit 2 if invalid."""
    from opennsps.config import describe_settings, example_secrets
    from opennsps.connectors.plugin import PluginLoadError, check_plugin

    settings = settings_or_exit(file)
    problems = []
    for handler in settings.handlers:
        if handler.python is not None:
            try:
                check_plugin(handler.python.entry_point, handler.python.options)
            except PluginLoadError as exc:
                problems.append(f"handlers.{handler.id}.python: {exc}")
    from opennsps.tracing import TracingUnavailable, check

    try:
        check(settings.tracing)
    except TracingUnavailable as exc:
        problems.append(str(exc))
    if settings.server.tls is not None:
        from opennsps.tls import TlsError, server_context

        try:
            server_context(settings.server.tls)
        except TlsError as exc:
            problems.append(str(exc))
    if problems:
        print_error(f"invalid configuration ({file}):\n  " + "\n  ".join(problems))
        raise typer.Exit(2)
    for where in example_secrets(settings):
        print_warning(f"{where} still has the example's placeholder value: set a real secret")
    out.print(f"{file}: OK ({len(settings.ingress.sources)} ESPF source(s))")
    if show:
        out.print_json(orjson.dumps(describe_settings(settings)).decode())


def _on_schema(settings: Settings, failure: str, work: Callable[[Engine], T]) -> T:
    """`work` on a fresh engine of the store, disposed after; `failure: reason` and exit 1
    when it fails."""
    from opennsps.store.engine import build_engine

    engine = build_engine(settings.store)
    try:
        return work(engine)
    except Exception as exc:
        print_error(f"{failure}: {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply pending schema migrations (also done at start-up)."""
    from opennsps.store import migrate

    settings = settings_or_exit(config)
    before, after = _on_schema(settings, "migration failed", migrate.upgrade)
    where = _store_name(settings)
    if before == after:
        out.print(f"{where}: schema already at {after}")
    else:
        out.print(f"{where}: schema upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """The store's schema revision, and the newest this version of OpenNSPS knows."""
    from opennsps.store import migrate

    settings = settings_or_exit(config)
    current = _on_schema(settings, "cannot read the store's schema", migrate.current_revision)
    head = migrate.head_revision()
    where = _store_name(settings)
    state = "up to date" if current == head else f"behind: run opennsps db upgrade to {head}"
    if current is not None and current > (head or ""):
        state = f"ahead of this version's {head}: a newer OpenNSPS migrated it"
    out.print(f"{where}: schema {current or 'empty'} ({state})")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help='The revision to go back to, e.g. "0005".')],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Go back to an older schema (before running an older OpenNSPS; back the store up
    first: a downgrade drops what the newer schema added)."""
    from opennsps.store import migrate

    settings = settings_or_exit(config)
    if not yes:
        typer.confirm(
            f"Downgrade {_store_name(settings)} to {revision}?", default=False, abort=True
        )
    before, after = _on_schema(
        settings, "downgrade failed", lambda engine: migrate.downgrade(engine, revision)
    )
    out.print(f"{_store_name(settings)}: schema downgraded from {before} to {after}")


@db_app.command("backup")
def db_backup(
    target: Annotated[Path, typer.Argument(help="The new file the copy is written to.")],
    config: ConfigOption = None,
) -> None:
    """Copy a SQLite store to TARGET while OpenNSPS keeps running (online backup)."""
    from opennsps.store.backup import BackupError, backup_sqlite

    settings = settings_or_exit(config)
    try:
        pages = backup_sqlite(settings.store.url, target)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print_error(f"backup failed: {exc}")
        raise typer.Exit(1) from None
    out.print(f"{_store_name(settings)} copied to {target} ({pages} pages, checked)")


@events_app.command("list")
def events_list(
    config: ConfigOption = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Event type, e.g. Subscriber/Created or SIM/*.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Received since: 30m, 2h, 7d or an ISO time.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only this ESPF source.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List stored events, newest first."""
    store = store_or_exit(settings_or_exit(config))
    try:
        rows = store.list_events(
            event_type=event_type, source=source, since=parse_since(since), limit=limit
        )
    finally:
        store.close()
    table = Table(title=f"{len(rows)} event(s), newest first")
    for column in ("received (UTC)", "event_id", "source", "i_event", "event_type", "entity"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            show_time(row.received_at),
            row.event_id,
            row.source,
            str(row.i_event),
            row.event_type,
            row.entity_key or "",
        )
    out.print(table)


@events_app.command("show")
def events_show(
    event_id: Annotated[str, typer.Argument(help="The event's UUID.")],
    config: ConfigOption = None,
) -> None:
    """Show one event in full (JSON)."""
    store = store_or_exit(settings_or_exit(config))
    try:
        row = store.get_event(event_id)
    finally:
        store.close()
    if row is None:
        print_error(f"no event {event_id}")
        raise typer.Exit(1)
    out.print_json(
        orjson.dumps(
            {
                "event_id": row.event_id,
                "seq": row.seq,
                "source": row.source,
                "i_env": row.i_env,
                "i_event": row.i_event,
                "event_type": row.event_type,
                "variables": row.variables,
                "entity": row.entity_key,
                "event_time": row.event_time,
                "received_at": row.received_at,
                "request_id": row.request_id,
                "unique_id": row.unique_id,
                "raw_body": row.raw_body,
            }
        ).decode()
    )


@rejected_app.command("list")
def rejected_list(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option(help="Received since: 30m, 2h, 7d or an ISO time.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    full: Annotated[bool, typer.Option(help="Print each as JSON with headers and body.")] = False,
) -> None:
    """List refused ESPF requests (ESPF drops a 4xx event for good: this is your copy)."""
    store = store_or_exit(settings_or_exit(config))
    try:
        rows = store.list_rejected(since=parse_since(since), limit=limit)
    finally:
        store.close()
    if full:
        for row in rows:
            out.print_json(orjson.dumps({"id": row.id, **asdict(row.request)}).decode())
        return
    table = Table(title=f"{len(rows)} rejected request(s), newest first")
    for column in ("received (UTC)", "id", "source", "status", "error", "reason", "request_id"):
        table.add_column(column, overflow="fold")
    for row in rows:
        r = row.request
        table.add_row(
            show_time(r.received_at),
            str(row.id),
            r.source or "",
            str(r.http_status),
            r.error,
            r.reason,
            r.request_id or "",
        )
    out.print(table)


@app.command()
def demo(
    once: Annotated[bool, typer.Option("--once", help="Exit after the report.")] = False,
    accounts: Annotated[
        int, typer.Option(min=1, max=100_000, help="Accounts PortaBilling has at the start.")
    ] = 200,
    lifecycle: Annotated[
        int, typer.Option(min=1, max=10_000, help="New subscribers taken through a lifecycle.")
    ] = 300,
    rate: Annotated[float, typer.Option(min=1, help="PortaBilling changes per second.")] = 100.0,
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its files (recreated each run).")
    ] = Path("var/demo"),
    gateway_port: int = 8700,
    sandbox_port: int = 8710,
    hss_port: int = 8720,
) -> None:
    """The full demo: PortaBilling sandbox → OpenNSPS (SQLite) → HSS, with a subscriber
    lifecycle, live progress and a reconciliation report. Exits 1 if the HSS disagrees."""
    try:
        from opennsps.demo import DemoError, DemoOptions, run_demo
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("opennsps."):
            raise
        print_error(SANDBOX_MISSING)
        raise typer.Exit(2) from None

    options = DemoOptions(
        workdir=workdir,
        accounts=accounts,
        lifecycle=lifecycle,
        rate=rate,
        gateway_port=gateway_port,
        sandbox_port=sandbox_port,
        hss_port=hss_port,
        once=once,
    )
    try:
        result = run_demo(options, out)
    except DemoError as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not result.succeeded:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="opennsps")


if __name__ == "__main__":
    main()
