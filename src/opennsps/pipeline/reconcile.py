"""Reconciliation: does the external system agree with PortaBilling, account by account?

Every account PortaBilling lists, plus every account the connector says it provisioned,
is enriched as a Subscriber/Updated would be and handed to the connector's `compare`.
Drift is reported; with `fix`, one repair event per drifting account is enqueued for the
handler alone (Subscriber/Updated, or Subscriber/Deleted for an account PortaBilling no
longer has), and the normal pipeline delivers it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine

from opennsps.config import Settings
from opennsps.connectors.plugin import PluginLoadError, load_plugin
from opennsps.pipeline.enrichment import client_settings
from opennsps.portabilling.client import PortaBillingClient
from opennsps.portabilling.pb_data import Enricher, with_service_password
from opennsps.store.handlers import HandlerNotFound, HandlerStore
from opennsps.store.repairs import Repair, enqueue_repairs

ACCOUNT_PAGE = 1000


@runtime_checkable
class Reconcilable(Protocol):
    async def compare(self, i_account: int, pb_data: dict[str, Any]) -> list[str]: ...

    async def linked_accounts(self) -> set[int]: ...

    async def orphans(self) -> list[str]:
        """What the external system holds that belongs to no account (not repairable)."""
        ...


@dataclass(frozen=True)
class Drift:
    i_account: int
    in_portabilling: bool
    differences: list[str]

    @property
    def repair_event_type(self) -> str:
        return "Subscriber/Updated" if self.in_portabilling else "Subscriber/Deleted"


@dataclass
class ReconcileReport:
    checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def agrees(self) -> bool:
        return not self.drift and not self.errors and not self.orphans

    @property
    def agreeing(self) -> int:
        return self.checked - len(self.drift) - len(self.errors)


Progress = Callable[[int, int], None]


async def portabilling_accounts(client: PortaBillingClient) -> set[int]:
    """Every account PortaBilling lists (Account/get_account_list, page by page)."""
    found: set[int] = set()
    offset = 0
    while True:
        answer = await client.call(
            "Account/get_account_list", {"offset": offset, "limit": ACCOUNT_PAGE}, cached=False
        )
        page = answer.get("account_list") or []
        found.update(int(row["i_account"]) for row in page)
        if len(page) < ACCOUNT_PAGE:
            return found
        offset += ACCOUNT_PAGE


async def reconcile(
    connector: Reconcilable,
    client: PortaBillingClient,
    *,
    concurrency: int = 8,
    service_password: bool = False,
    on_progress: Progress | None = None,
) -> ReconcileReport:
    started = time.monotonic()
    listed = await portabilling_accounts(client)
    accounts = sorted(listed | await connector.linked_accounts())
    enricher = Enricher(client)
    report = ReconcileReport()
    pending = iter(accounts)

    async def check(i_account: int) -> None:
        try:
            pb_data = await enricher.pb_data("Subscriber/Updated", {"i_account": i_account})
            if not service_password:
                pb_data = with_service_password(pb_data, None)
            differences = await connector.compare(i_account, pb_data)
        except Exception as exc:  # one account's failure is reported, not fatal
            report.errors[i_account] = f"{type(exc).__name__}: {exc}"
        else:
            if differences:
                in_pb = i_account in listed and "account_info" in pb_data
                report.drift.append(Drift(i_account, in_pb, differences))
        report.checked += 1
        if on_progress is not None:
            on_progress(report.checked, len(accounts))

    async def worker() -> None:
        for i_account in pending:  # one shared iterator: each account is checked once
            await check(i_account)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    report.orphans = await connector.orphans()
    report.drift.sort(key=lambda d: d.i_account)
    report.seconds = time.monotonic() - started
    return report


class ReconcileError(RuntimeError):
    """Reconciliation cannot run; the message says what to fix."""


@dataclass
class HandlerReconciliation:
    handler_id: str
    source: str
    report: ReconcileReport
    repairs: list[str] = field(default_factory=list)  # event ids enqueued by --fix


def pick_source(settings: Settings, source: str | None) -> str:
    usable = [n for n, s in settings.ingress.sources.items() if s.portabilling is not None]
    if source is not None:
        if source not in usable:
            raise ReconcileError(
                f"source {source!r} has no PortaBilling API configured; choose one of: "
                f"{', '.join(usable) or 'none (set ingress.sources.<name>.portabilling)'}"
            )
        return source
    if len(usable) != 1:
        raise ReconcileError(
            "name the PortaBilling source with --source: "
            + (", ".join(usable) if usable else "none has ingress.sources.<name>.portabilling")
        )
    return usable[0]


async def reconcile_handler(
    settings: Settings,
    engine: Engine,
    handler_id: str,
    *,
    source: str | None = None,
    fix: bool = False,
    concurrency: int = 8,
    on_progress: Progress | None = None,
) -> HandlerReconciliation:
    try:
        stored = HandlerStore(engine).get(handler_id)
    except HandlerNotFound as exc:
        raise ReconcileError(str(exc)) from None
    handler = stored.definition
    if handler.python is None:
        raise ReconcileError(
            f"handler {handler_id!r} is of type {handler.type}; only connectors that can "
            "compare (type python, e.g. the HSS and RADIUS connectors) can be reconciled"
        )
    chosen = pick_source(settings, source)
    try:
        connector = load_plugin(handler.python.entry_point, handler.python.options)
    except PluginLoadError as exc:
        raise ReconcileError(str(exc)) from None
    portabilling = settings.ingress.sources[chosen].portabilling
    assert portabilling is not None
    client = PortaBillingClient(client_settings(portabilling))
    try:
        if not isinstance(connector, Reconcilable):
            raise ReconcileError(
                f"{handler.python.entry_point} cannot compare its system with PortaBilling "
                "(it has no compare() and linked_accounts())"
            )
        report = await reconcile(
            connector,
            client,
            concurrency=concurrency,
            service_password=handler.service_password,
            on_progress=on_progress,
        )
    finally:
        await client.close()
        closer = getattr(connector, "close", None)
        if closer is not None:
            await closer()
    result = HandlerReconciliation(handler_id, chosen, report)
    if fix and report.drift:
        repairs = [Repair(d.repair_event_type, d.i_account) for d in report.drift]
        result.repairs = await asyncio.to_thread(
            enqueue_repairs,
            engine,
            source=chosen,
            handler_id=handler_id,
            priority=handler.priority,
            repairs=repairs,
            now=datetime.now(UTC),
        )
    return result
