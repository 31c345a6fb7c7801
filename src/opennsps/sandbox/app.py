"""The sandbox server: PortaBilling JSON API, ESPF API, EventSender and a control API."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opennsps.sandbox import changes, dataset
from opennsps.sandbox.espf_api import EspfApi
from opennsps.sandbox.eventsender import EventSender, SenderConfig, SubscriptionError
from opennsps.sandbox.faults import Faults
from opennsps.sandbox.portabilling_api import ApiUser, PortaBillingApi, Sessions


@dataclass
class SandboxSettings:
    dataset: Path
    accounts: int = 100
    seed: int = 1
    users: list[ApiUser] = field(
        default_factory=lambda: [ApiUser("opennsps", "sandbox-password", "sandbox-token")]
    )
    session_idle_timeout: float = 300.0
    sender: SenderConfig = field(default_factory=SenderConfig)
    faults: Faults = field(default_factory=Faults)


@dataclass
class Sandbox:
    settings: SandboxSettings
    portabilling: PortaBillingApi
    espf: EspfApi
    sender: EventSender
    control_db: sqlite3.Connection


def ensure_dataset(settings: SandboxSettings) -> None:
    if not settings.dataset.exists():
        dataset.generate(settings.dataset, settings.accounts, settings.seed)


def build_sandbox(settings: SandboxSettings) -> Sandbox:
    ensure_dataset(settings)

    def connect() -> sqlite3.Connection:
        return dataset.connect(settings.dataset)

    sender = EventSender(connect, settings.sender)
    espf = EspfApi(connect, settings.users, sender.next_i_event, settings.faults)
    sender.due_scheduled = espf.due_events
    sender.mark_scheduled = espf.mark_emitted
    sessions = Sessions(idle_timeout=settings.session_idle_timeout)
    portabilling = PortaBillingApi(connect, settings.users, sessions, settings.faults)
    return Sandbox(settings, portabilling, espf, sender, connect())


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    decoded = orjson.loads(raw)
    if not isinstance(decoded, dict):
        raise changes.ChangeError("the body must be a JSON object")
    return decoded


def _change(
    sandbox: Sandbox,
    apply: Callable[[sqlite3.Connection, Request, dict[str, Any]], list[changes.Event]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await _body(request)
            events = await run_in_threadpool(apply, sandbox.control_db, request, body)
        except (changes.ChangeError, ValueError, KeyError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        queued, not_sent = sandbox.sender.emit_subscribed(events)
        return _json({"events": queued, "not_sent": not_sent})

    return endpoint


def _i(request: Request, name: str) -> int:
    return int(request.path_params[name])


def control_routes(sandbox: Sandbox) -> list[Route]:
    c = changes
    routes = {
        ("POST", "/sandbox/accounts"): lambda db, r, b: c.create_account(
            db, b.get("i_customer"), b.get("i_product")
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/sim"): lambda db, r, b: c.assign_sim(
            db, _i(r, "i_account"), b.get("i_sim_card")
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/block"): lambda db, r, b: c.block(
            db, _i(r, "i_account"), True
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/unblock"): lambda db, r, b: c.block(
            db, _i(r, "i_account"), False
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/password"): lambda db, r, b: c.set_password(
            db, _i(r, "i_account"), str(b["password"])
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/bill-status"): lambda db, r, b: (
            c.set_bill_status(db, _i(r, "i_account"), b["bill_status"])
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/product"): lambda db, r, b: c.change_product(
            db, _i(r, "i_account"), int(b["i_product"])
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/access-policy"): lambda db, r, b: (
            c.change_access_policy(db, _i(r, "i_account"), int(b["i_access_policy"]))
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/addons"): lambda db, r, b: c.add_addon(
            db, _i(r, "i_account"), int(b["i_product"])
        ),
        ("DELETE", "/sandbox/accounts/{i_account:int}/addons/{i_product:int}"): lambda db, r, b: (
            c.remove_addon(db, _i(r, "i_account"), _i(r, "i_product"))
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/topup"): lambda db, r, b: c.top_up(
            db, _i(r, "i_account"), float(b["amount"])
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/quota-exceeded"): lambda db, r, b: (
            c.exceed_quota(db, _i(r, "i_account"))
        ),
        ("POST", "/sandbox/accounts/{i_account:int}/bundles/renew"): lambda db, r, b: (
            c.renew_bundles(db, _i(r, "i_account"))
        ),
        ("DELETE", "/sandbox/accounts/{i_account:int}"): lambda db, r, b: c.delete_account(
            db, _i(r, "i_account")
        ),
        ("POST", "/sandbox/customers"): lambda db, r, b: c.create_customer(db, str(b["name"])),
        ("POST", "/sandbox/customers/{i_customer:int}"): lambda db, r, b: c.update_customer(
            db, _i(r, "i_customer"), b.get("name"), b.get("bill_status")
        ),
        ("DELETE", "/sandbox/customers/{i_customer:int}"): lambda db, r, b: c.delete_customer(
            db, _i(r, "i_customer")
        ),
        ("POST", "/sandbox/sims"): lambda db, r, b: c.add_sim(db),
        ("POST", "/sandbox/sims/{i_sim_card:int}/status"): lambda db, r, b: c.set_sim_status(
            db, _i(r, "i_sim_card"), str(b["status"])
        ),
        ("DELETE", "/sandbox/sims/{i_sim_card:int}"): lambda db, r, b: c.remove_sim(
            db, _i(r, "i_sim_card")
        ),
        ("POST", "/sandbox/customers/{i_customer:int}/invoices"): lambda db, r, b: c.issue_invoice(
            db, _i(r, "i_customer"), float(b["amount"])
        ),
        ("POST", "/sandbox/invoices/{i_invoice:int}/pay"): lambda db, r, b: c.pay_invoice(
            db, _i(r, "i_invoice")
        ),
        ("POST", "/sandbox/dids"): lambda db, r, b: c.add_did(db, str(b["number"])),
        ("POST", "/sandbox/dids/{number}/assign"): lambda db, r, b: c.assign_did(
            db, r.path_params["number"], b.get("i_account")
        ),
        ("DELETE", "/sandbox/dids/{number}"): lambda db, r, b: c.remove_did(
            db, r.path_params["number"]
        ),
    }
    return [
        Route(path, _change(sandbox, apply), methods=[method])
        for (method, path), apply in routes.items()
    ]


def create_sandbox_app(settings: SandboxSettings) -> Starlette:
    sandbox = build_sandbox(settings)

    async def eventsender(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "100"))
        i_event = request.query_params.get("i_event")
        return _json(
            {
                "queue": sandbox.sender.stats(),
                "log": sandbox.sender.delivery_log(limit, int(i_event) if i_event else None),
            }
        )

    async def emit(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body.get("event_type"), str) or not isinstance(
            body.get("variables", {}), dict
        ):
            return _json({"error": "event_type (text) and variables (object) are required"}, 400)
        return _json(
            {"events": sandbox.sender.emit([(body["event_type"], body.get("variables", {}))])}
        )

    async def subscriptions(request: Request) -> Response:
        sender = sandbox.sender
        try:
            if request.method == "PUT":
                event_types = (await _body(request)).get("event_types")
                if not isinstance(event_types, list) or not all(
                    isinstance(t, str) for t in event_types
                ):
                    return _json({"error": "event_types must be a list of event types"}, 400)
                sender.set_subscriptions(event_types)
            elif request.method == "POST":
                event_type = (await _body(request)).get("event_type")
                if not isinstance(event_type, str):
                    return _json({"error": "event_type (text) is required"}, 400)
                sender.subscribe(event_type)
            elif request.method == "DELETE":
                sender.unsubscribe(request.path_params["event_type"])
        except SubscriptionError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"subscriptions": sender.subscriptions()})

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                sandbox.settings.faults.update(await _body(request))
            except (ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json(sandbox.settings.faults.describe())

    async def expire_sessions(_: Request) -> Response:
        return _json({"expired": sandbox.portabilling.sessions.expire_all()})

    async def statuses(request: Request) -> Response:
        i_account = _i(request, "i_account")
        return _json(
            {"latest": sandbox.espf.statuses(i_account), "history": sandbox.espf.history(i_account)}
        )

    async def status_summary(_: Request) -> Response:
        return _json(sandbox.espf.summary())

    async def summary(_: Request) -> Response:
        db = sandbox.control_db
        accounts = db.execute(
            "SELECT COUNT(*), MIN(i_account), MAX(i_account) FROM accounts WHERE deleted = 0"
        ).fetchone()
        free_sims = db.execute(
            "SELECT COUNT(*) FROM sim_cards WHERE i_account IS NULL AND status = 'active'"
        ).fetchone()[0]
        return _json(
            {
                "accounts": accounts[0],
                "free_sim_cards": free_sims,
                "first_i_account": accounts[1],
                "last_i_account": accounts[2],
                "sessions_opened": sandbox.portabilling.sessions.opened,
                "api_calls": sandbox.portabilling.calls,
                "eventsender": sandbox.sender.stats(),
            }
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        sandbox.sender.start()
        try:
            yield
        finally:
            await sandbox.sender.stop()

    espf = sandbox.espf
    routes = [
        Route("/rest/{service}/{method}", sandbox.portabilling.endpoint, methods=["POST"]),
        Route(
            "/espf/v1/account/i/{i_account}/status",
            espf.endpoint(espf.set_status_by_i),
            methods=["POST"],
        ),
        Route(
            "/espf/v1/account/i/{i_account:int}/status",
            espf.endpoint(espf.read_status),
            methods=["GET"],
        ),
        Route(
            "/espf/v1/account/{account_id}/status",
            espf.endpoint(espf.set_status_by_id),
            methods=["POST"],
        ),
        Route("/espf/v1/groups", espf.endpoint(espf.list_groups), methods=["GET"]),
        Route("/espf/v1/group/create", espf.endpoint(espf.create_group), methods=["POST"]),
        Route("/espf/v1/group/{name}", espf.endpoint(espf.delete_group), methods=["DELETE"]),
        Route("/espf/v1/event/create", espf.endpoint(espf.create_event), methods=["POST"]),
        Route("/sandbox/eventsender", eventsender, methods=["GET"]),
        Route("/sandbox/events", emit, methods=["POST"]),
        Route("/sandbox/eventsender/subscriptions", subscriptions, methods=["GET", "PUT", "POST"]),
        Route(
            "/sandbox/eventsender/subscriptions/{event_type:path}",
            subscriptions,
            methods=["DELETE"],
        ),
        Route("/sandbox/faults", faults, methods=["GET", "PUT"]),
        Route("/sandbox/sessions/expire", expire_sessions, methods=["POST"]),
        Route("/sandbox/statuses", status_summary, methods=["GET"]),
        Route("/sandbox/statuses/{i_account:int}", statuses, methods=["GET"]),
        Route("/sandbox/summary", summary, methods=["GET"]),
        *control_routes(sandbox),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
