"""`opennsps handlers|pause|resume|replay|deliveries`: the pipeline from the command line.

The commands work on the database directly, so they act on every OpenNSPS process that
shares it (a running worker picks the change up within a second). They do not write the
config file's handlers to it: `opennsps serve` does that when it starts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from opennsps.cli_support import (
    ConfigOption,
    out,
    parse_since,
    print_error,
    settings_or_exit,
    show_time,
    store_or_exit,
)
from opennsps.domain.deliveries import DELIVERY_STATES, EVENT_STATES
from opennsps.pipeline.reconcile_cli import reconcile

if TYPE_CHECKING:  # the store's modules are imported when a command runs (a fast --help)
    from sqlalchemy import Engine

    from opennsps.store.handlers import HandlerStatus

handlers_app = typer.Typer(help="List and switch handlers.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Look at deliveries.", no_args_is_help=True)

HandlerArgument = Annotated[str, typer.Argument(help="The handler's id.")]


@contextmanager
def _engine(config: Any) -> Iterator[Engine]:
    settings = settings_or_exit(config)
    store = store_or_exit(settings)
    try:
        yield store.engine
    finally:
        store.close()


def _fail(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(1)


@handlers_app.command("list")
def handlers_list(config: ConfigOption = None) -> None:
    """Every handler, by priority, with its circuit."""
    from opennsps.domain.circuit import CLOSED
    from opennsps.store.circuits import CircuitStore
    from opennsps.store.handlers import HandlerStore

    with _engine(config) as engine:
        handlers = HandlerStore(engine).list()
        circuits = CircuitStore(engine).all()
    table = Table(title=f"{len(handlers)} handler(s)")
    columns = ("priority", "id", "name", "status", "paused", "type", "events", "from", "circuit")
    for column in columns:
        table.add_column(column, overflow="fold")
    for h in handlers:
        d = h.definition
        circuit = circuits.get(d.id, CLOSED)
        shown = circuit.state.value.replace("_", "-")
        if circuit.holding:
            shown += f" since {show_time(circuit.since)}: {circuit.last_error or ''}"
        table.add_row(
            str(d.priority),
            d.id,
            d.name,
            h.status,
            "yes" if h.paused else "",
            d.type,
            ", ".join(d.events),
            h.managed_by,
            shown,
        )
    out.print(table)


@handlers_app.command("show")
def handlers_show(handler_id: HandlerArgument, config: ConfigOption = None) -> None:
    """One handler in full (JSON, secrets masked), with its circuit."""
    from opennsps.console.api import handler_view
    from opennsps.store.circuits import CircuitStore
    from opennsps.store.handlers import HandlerNotFound, HandlerStore

    with _engine(config) as engine:
        try:
            stored = HandlerStore(engine).get(handler_id)
        except HandlerNotFound as exc:
            raise _fail(str(exc)) from None
        circuit = CircuitStore(engine).get(handler_id)
    out.print_json(orjson.dumps(handler_view(stored, circuit)).decode())


@handlers_app.command("retry-now")
def handlers_retry_now(handler_id: HandlerArgument, config: ConfigOption = None) -> None:
    """Close the handler's circuit and send its pending deliveries now, not at their next
    retry slot (in order per entity, within its rate limit)."""
    from opennsps.store.circuits import CircuitStore
    from opennsps.store.handlers import HandlerNotFound, HandlerStore

    with _engine(config) as engine:
        try:
            HandlerStore(engine).get(handler_id)
        except HandlerNotFound as exc:
            raise _fail(str(exc)) from None
        made_due = CircuitStore(engine).retry_now(handler_id, datetime.now(UTC))
    out.print(f"handler {handler_id}: circuit closed; {made_due} waiting deliveries due now")


def _set_status(handler_id: str, status: HandlerStatus, config: Any) -> None:
    from opennsps.store.handlers import HandlerNotFound, HandlerStore

    with _engine(config) as engine:
        try:
            HandlerStore(engine).set_status(handler_id, status)
        except HandlerNotFound as exc:
            raise _fail(str(exc)) from None
    out.print(f"handler {handler_id}: {status}")


@handlers_app.command("enable")
def handlers_enable(handler_id: HandlerArgument, config: ConfigOption = None) -> None:
    """Route new events to the handler again."""
    _set_status(handler_id, "enabled", config)


@handlers_app.command("disable")
def handlers_disable(handler_id: HandlerArgument, config: ConfigOption = None) -> None:
    """Route no new events to the handler (its queued deliveries wait)."""
    _set_status(handler_id, "disabled", config)


@handlers_app.command("archive")
def handlers_archive(handler_id: HandlerArgument, config: ConfigOption = None) -> None:
    """Retire the handler (kept for its history)."""
    _set_status(handler_id, "archived", config)


def pause(
    handler_id: Annotated[
        str | None, typer.Argument(help="Only this handler (default: all processing).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Maintenance mode: stop dispatching (ESPF ingress keeps accepting and storing)."""
    _pause(handler_id, True, config)


def resume(
    handler_id: Annotated[
        str | None, typer.Argument(help="Only this handler (default: all processing).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """End maintenance mode (for everything, or one handler)."""
    _pause(handler_id, False, config)


def _pause(handler_id: str | None, paused: bool, config: Any) -> None:
    from opennsps.store.handlers import HandlerNotFound, HandlerStore

    with _engine(config) as engine:
        store = HandlerStore(engine)
        if handler_id is None:
            store.set_global_pause(paused)
        else:
            try:
                store.set_paused(handler_id, paused)
            except HandlerNotFound as exc:
                raise _fail(str(exc)) from None
    what = f"handler {handler_id}" if handler_id else "all processing"
    out.print(f"{what}: {'paused' if paused else 'resumed'}")


def replay(
    config: ConfigOption = None,
    event: Annotated[str | None, typer.Option(help="Replay one event (its event_id).")] = None,
    delivery: Annotated[int | None, typer.Option(help="Replay one delivery (its id).")] = None,
    dead: Annotated[
        str | None, typer.Option(help="Replay every dead delivery of this handler.")
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Events of this type (SIM/* allowed).")
    ] = None,
    account: Annotated[int | None, typer.Option(help="Events of this i_account.")] = None,
    state: Annotated[
        str | None, typer.Option(help=f"Events in this state: {', '.join(EVENT_STATES)}.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Received since: 2h, 7d or ISO.")] = None,
    handler: Annotated[
        str | None, typer.Option(help="With a filter: only the deliveries to this handler.")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="At most this many events (or dead ones).")
    ] = 10_000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say how many would go, with a sample.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask on a terminal before a bulk replay.")
    ] = False,
) -> None:
    """Deliver again (enriched anew, same event_id): one event, one delivery, a handler's dead deliveries, or what a filter finds."""  # noqa: E501
    chosen = [x for x in (event, delivery, dead) if x is not None]
    filtered = any(x is not None for x in (event_type, account, state, since))
    if len(chosen) + (1 if filtered else 0) != 1:
        raise typer.BadParameter(
            "give exactly one of --event, --delivery, --dead, or filter options"
            " (--type/--account/--state/--since)"
        )
    if state is not None and state not in EVENT_STATES:
        raise typer.BadParameter(f"--state must be one of {', '.join(EVENT_STATES)}")
    from opennsps.store.queries import DeadFilter, EventFilter, Queries
    from opennsps.store.replay import Replayer

    now = datetime.now(UTC)
    f = EventFilter(event_type=event_type, i_account=account, state=state, since=parse_since(since))
    with _engine(config) as engine:
        replayer = Replayer(engine)
        if dead is not None or filtered:  # a bulk replay: see what it takes first
            queries = Queries(engine)
            preview = (
                queries.dead_preview(DeadFilter(handler_id=dead), limit=limit)
                if dead is not None
                else queries.replay_preview(f, handler_id=handler, limit=limit)
            )
            _show_preview(preview, dead is not None)
            if dry_run or preview["matching"] == 0:
                return
            if not yes and on_a_terminal():
                typer.confirm(f"Replay {preview['matching']}?", default=False, abort=True)
        elif dry_run:
            raise typer.BadParameter("--dry-run is for --dead and filter options")
        if event is not None:
            count = replayer.event(event, now)
            if count is None:
                raise _fail(f"no event {event}")
        elif delivery is not None:
            if not replayer.delivery(delivery, now):
                raise _fail(f"no replayable delivery {delivery} (unknown, or in flight now)")
            count = 1
        elif dead is not None:
            count = replayer.dead(DeadFilter(handler_id=dead), now, limit=limit)
        else:
            count = replayer.matching(f, now, handler_id=handler, limit=limit)
    out.print(f"replayed {count} deliver{'y' if count == 1 else 'ies'}")


def on_a_terminal() -> bool:
    """Someone is typing: a bulk replay asks before it goes (scripts pass --yes or not)."""
    return sys.stdin.isatty()


def _show_preview(preview: dict[str, Any], dead: bool) -> None:
    what = "dead deliveries" if dead else "events"
    out.print(f"{preview['matching']} {what} would be replayed")
    if not preview["sample"]:
        return
    table = Table(title=f"the {'latest' if dead else 'newest'} {len(preview['sample'])}")
    for column in ("event_id", "event_type", "i_event", "i_account", "handler"):
        table.add_column(column, overflow="fold")
    for item in preview["sample"]:
        table.add_row(
            item["event_id"],
            item["event_type"],
            str(item["i_event"]),
            str(item["i_account"] if item["i_account"] is not None else ""),
            item["handler_id"] or "all",
        )
    out.print(table)


@deliveries_app.command("list")
def deliveries_list(
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(help=f"One of {', '.join(DELIVERY_STATES)}.")] = None,
    handler: Annotated[str | None, typer.Option(help="Only this handler.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Deliveries, newest first, with their last error."""
    if state is not None and state not in DELIVERY_STATES:
        raise typer.BadParameter(f"--state must be one of {', '.join(DELIVERY_STATES)}")
    from opennsps.store.queries import Queries

    with _engine(config) as engine:
        rows = Queries(engine).list_deliveries(state=state, handler_id=handler, limit=limit)
    table = Table(title=f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}, newest first")
    for column in (
        "id",
        "handler",
        "state",
        "attempts",
        "event_type",
        "i_event",
        "entity",
        "next attempt (UTC)",
        "last error",
        "event_id",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["handler_id"],
            r["state"],
            str(r["attempts"]),
            r["event_type"],
            str(r["i_event"]),
            r["entity_key"],
            show_time(datetime.fromisoformat(r["next_attempt_at"]))
            if r["state"] == "pending"
            else "",
            (r["last_error"] or "")[:200],
            r["event_id"],
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(handlers_app, name="handlers")
    app.add_typer(deliveries_app, name="deliveries")
    app.command()(pause)
    app.command()(resume)
    app.command()(replay)
    app.command()(reconcile)
