"""`opennsps reconcile HANDLER [--fix]`: report (and repair) drift between a connector's
external system and PortaBilling."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from opennsps.cli_support import (
    ConfigOption,
    err,
    out,
    print_error,
    settings_or_exit,
    store_or_exit,
)

if TYPE_CHECKING:  # imported when the command runs (a fast --help)
    from opennsps.pipeline.reconcile import HandlerReconciliation

MAX_DRIFT_ROWS = 50


def print_reconciliation(result: HandlerReconciliation, console: Console) -> None:
    report = result.report
    console.print(
        f"[bold]{result.handler_id}[/bold] against PortaBilling source {result.source!r}: "
        f"{report.checked} account(s) checked in {report.seconds:.1f} s — "
        f"[green]{report.agreeing} agree[/green], "
        f"[{'red' if report.drift else 'green'}]{len(report.drift)} drift[/], "
        f"{len(report.errors)} could not be checked",
        highlight=False,
    )
    if report.drift:
        table = Table(title="drift", show_lines=False)
        table.add_column("i_account", justify="right")
        table.add_column("in PortaBilling")
        table.add_column("difference", overflow="fold")
        for drift in report.drift[:MAX_DRIFT_ROWS]:
            table.add_row(
                str(drift.i_account),
                "yes" if drift.in_portabilling else "no",
                "\n".join(drift.differences),
            )
        console.print(table)
        if len(report.drift) > MAX_DRIFT_ROWS:
            console.print(f"... and {len(report.drift) - MAX_DRIFT_ROWS} more")
    for orphan in report.orphans[:MAX_DRIFT_ROWS]:
        console.print(f"[red]belongs to no account:[/red] {orphan}", highlight=False)
    if report.orphans:
        console.print(
            f"{len(report.orphans)} item(s) in the external system belong to no PortaBilling "
            "account; --fix cannot repair them: remove them there if they are not needed"
        )
    for i_account, reason in list(report.errors.items())[:10]:
        console.print(f"[yellow]account {i_account} not checked:[/yellow] {reason}")
    if result.repairs:
        console.print(
            f"enqueued {len(result.repairs)} repair event(s) for {result.handler_id}; "
            "follow them with `opennsps deliveries list`",
            highlight=False,
        )
    elif report.drift:
        console.print("run again with --fix to enqueue the events that repair it")


def reconcile(
    handler_id: Annotated[str, typer.Argument(help="The handler whose system to compare.")],
    fix: Annotated[
        bool, typer.Option("--fix", help="Enqueue the events that repair the drift.")
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="The PortaBilling source (needed when several).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 8,
    config: ConfigOption = None,
) -> None:
    """Compare the handler's external system with PortaBilling for every account.
    Exits 0 when they agree, 3 when there is drift, 1 when reconciliation cannot run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from opennsps.pipeline.reconcile import ReconcileError, reconcile_handler

    settings = settings_or_exit(config)
    store = store_or_exit(settings)
    try:
        with Progress(
            TextColumn("[bold]reconciling"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("accounts", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = asyncio.run(
                reconcile_handler(
                    settings,
                    store.engine,
                    handler_id,
                    source=source,
                    fix=fix,
                    concurrency=concurrency,
                    on_progress=advance,
                )
            )
    except ReconcileError as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    finally:
        store.close()
    print_reconciliation(result, out)
    if not result.report.agrees:
        raise typer.Exit(3)
