"""The management REST API under /api/v1 (OpenAPI docs at /docs).

Roles: viewer reads; operator also replays, pauses and resumes, enables and disables
handlers, and reports statuses; admin also creates, changes, archives and deletes handlers.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opennsps.config import HandlerConfig
from opennsps.connectors.payload import nsps_event
from opennsps.connectors.plugin import PluginLoadError, check_plugin
from opennsps.console.auth import require
from opennsps.console.masking import masked_definition, with_stored_secrets
from opennsps.console.roles import Caller
from opennsps.console.sessions import Sessions
from opennsps.domain.circuit import CLOSED, Circuit
from opennsps.domain.deliveries import DeliveryState, DeliveryStateName, EventState
from opennsps.domain.routing import matches
from opennsps.domain.values import (
    NO_NUL,
    Id64,
    Int64,
    JsonId,
    JsonInt,
    Text,
    UtcTime,
    json_integer,
)
from opennsps.http_errors import ERROR_RESPONSES, UPSTREAM_RESPONSE, ApiError, error_response
from opennsps.pipeline.runtime import Pipeline
from opennsps.pipeline.sample_send import send_sample
from opennsps.portabilling.espf_client import MAX_ERROR_LENGTH, EspfApiError
from opennsps.store.deliveries import DeliveryQueue, StatusReport
from opennsps.store.handlers import HandlerConflict, HandlerNotFound, StoredHandler
from opennsps.store.queries import (
    AttemptFilter,
    DeadFilter,
    EventFilter,
    jsonable,
)
from opennsps.store.records import StoredRejectedRequest

Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
# ESPF event types: Group/Name, or deeper (Account/Service/QuotaExceeded).
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$"


def _single_query_values(request: Request) -> None:
    """No operation takes a list in its query: a repeated parameter is ambiguous (which one
    did the caller mean?), so it is refused rather than the last one silently kept."""
    names = [name for name, _ in request.query_params.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ApiError(
            422,
            f"query parameter(s) given more than once: {', '.join(repeated)}",
            "repeated_parameter",
        )


router = APIRouter(
    prefix="/api/v1", responses=ERROR_RESPONSES, dependencies=[Depends(_single_query_values)]
)


def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def _now() -> datetime:
    return datetime.now(UTC)


def handler_view(stored: StoredHandler, circuit: Circuit = CLOSED) -> dict[str, Any]:
    """A handler as shown to people: secrets masked, with its circuit's state."""
    shown = masked_definition(stored.definition)
    shown.update(
        paused=stored.paused,
        managed_by=stored.managed_by,
        created_at=stored.created_at.isoformat(),
        updated_at=stored.updated_at.isoformat(),
        circuit_state=circuit_view(circuit),
    )
    return shown


def circuit_view(circuit: Circuit) -> dict[str, Any]:
    return {
        "state": circuit.state.value,
        "since": circuit.since.isoformat() if circuit.since else None,
        "consecutive_failures": circuit.failures,
        "last_error": circuit.last_error,
        "next_probe_at": circuit.probe_at.isoformat()
        if circuit.holding and circuit.probe_at
        else None,
    }


def _shown(request: Request, stored: StoredHandler) -> dict[str, Any]:
    return handler_view(stored, _pipeline(request).circuits.get(stored.id))


def install_api_errors(app: FastAPI) -> None:
    """The store's "no such handler" is the API's 404, wherever it is raised."""

    async def handler_not_found(_: Request, exc: Exception) -> Response:
        return error_response(404, str(exc), "handler_not_found")

    app.add_exception_handler(HandlerNotFound, handler_not_found)


# -- handlers -----------------------------------------------------------------------------


@router.get("/handlers", tags=["handlers"])
def list_handlers(
    request: Request,
    _: Viewer,
    status: Literal["enabled", "disabled", "archived"] | None = None,
    type: Literal["http", "script", "python", "template"] | None = None,
    event: Text | None = None,
) -> list[dict[str, Any]]:
    """Handlers by priority; filter by status, type, or an event type they receive."""
    found = []
    pipeline = _pipeline(request)
    circuits = pipeline.circuits.all()
    for stored in pipeline.handler_store.list():
        if status and stored.status != status:
            continue
        if type and stored.definition.type != type:
            continue
        if event and not any(matches(p, event) for p in stored.definition.events):
            continue
        found.append(handler_view(stored, circuits.get(stored.id, CLOSED)))
    return found


@router.get("/handlers/{handler_id}", tags=["handlers"])
def get_handler(request: Request, handler_id: Text, _: Viewer) -> dict[str, Any]:
    return _shown(request, _pipeline(request).handler_store.get(handler_id))


def _plugin_checked(definition: HandlerConfig) -> None:
    """A python handler's plug-in is importable and its options pass its options model."""
    if definition.python is not None:
        try:
            check_plugin(definition.python.entry_point, definition.python.options)
        except PluginLoadError as exc:
            raise ApiError(422, str(exc), "invalid_plugin") from None


@router.post("/handlers", tags=["handlers"], status_code=201)
def create_handler(request: Request, definition: HandlerConfig, _: Admin) -> dict[str, Any]:
    _plugin_checked(definition)
    pipeline = _pipeline(request)
    try:
        stored = pipeline.handler_store.create(definition)
    except HandlerConflict as exc:
        raise ApiError(409, str(exc), "handler_exists") from exc
    pipeline.reload_handlers()
    return _shown(request, stored)


@router.put("/handlers/{handler_id}", tags=["handlers"])
def replace_handler(
    request: Request, handler_id: Text, definition: HandlerConfig, _: Admin
) -> dict[str, Any]:
    if definition.id != handler_id:
        raise ApiError(409, "the body's id must be the handler id in the path", "id_mismatch")
    pipeline = _pipeline(request)
    current = pipeline.handler_store.get(handler_id)
    merged = with_stored_secrets(definition, current.definition)
    _plugin_checked(merged)
    try:
        stored = pipeline.handler_store.replace(merged)
    except HandlerConflict as exc:
        raise ApiError(409, str(exc), "managed_in_config") from exc
    pipeline.reload_handlers()
    return _shown(request, stored)


@router.delete("/handlers/{handler_id}", tags=["handlers"], status_code=204)
def delete_handler(request: Request, handler_id: Text, _: Admin) -> None:
    pipeline = _pipeline(request)
    try:
        pipeline.handler_store.delete(handler_id)
    except HandlerConflict as exc:
        raise ApiError(409, str(exc), "handler_in_use") from exc
    pipeline.reload_handlers()


def _set_status(
    request: Request, handler_id: Text, status: Literal["enabled", "disabled", "archived"]
) -> dict[str, Any]:
    pipeline = _pipeline(request)
    stored = pipeline.handler_store.set_status(handler_id, status)
    pipeline.reload_handlers()
    return _shown(request, stored)


@router.post("/handlers/{handler_id}/enable", tags=["handlers"])
def enable_handler(request: Request, handler_id: Text, _: Operator) -> dict[str, Any]:
    return _set_status(request, handler_id, "enabled")


@router.post("/handlers/{handler_id}/disable", tags=["handlers"])
def disable_handler(request: Request, handler_id: Text, _: Operator) -> dict[str, Any]:
    """A disabled handler receives no new events; its queued deliveries wait."""
    return _set_status(request, handler_id, "disabled")


@router.post("/handlers/{handler_id}/archive", tags=["handlers"])
def archive_handler(request: Request, handler_id: Text, _: Admin) -> dict[str, Any]:
    return _set_status(request, handler_id, "archived")


@router.post("/handlers/{handler_id}/pause", tags=["handlers", "maintenance"])
def pause_handler(request: Request, handler_id: Text, _: Operator) -> dict[str, Any]:
    """Stop dispatching to this handler; new events still queue up for it."""
    pipeline = _pipeline(request)
    stored = pipeline.handler_store.set_paused(handler_id, True)
    pipeline.reload_handlers()
    return _shown(request, stored)


@router.post("/handlers/{handler_id}/resume", tags=["handlers", "maintenance"])
def resume_handler(request: Request, handler_id: Text, _: Operator) -> dict[str, Any]:
    pipeline = _pipeline(request)
    stored = pipeline.handler_store.set_paused(handler_id, False)
    pipeline.reload_handlers()
    return _shown(request, stored)


@router.post("/handlers/{handler_id}/retry-now", tags=["handlers", "maintenance"])
def retry_handler_now(request: Request, handler_id: Text, _: Operator) -> dict[str, Any]:
    """Close the handler's circuit and make every pending delivery of it due now (its
    backlog drains at once, in order per entity, within its rate limit)."""
    pipeline = _pipeline(request)
    stored = pipeline.handler_store.get(handler_id)  # 404 for an unknown handler
    released = pipeline.circuits.retry_now(handler_id, _now())
    pipeline.reload_handlers()
    return {**_shown(request, stored), "made_due": released}


@router.post("/handlers/{handler_id}/replay-dead", tags=["replay"])
def replay_dead(request: Request, handler_id: Text, _: Operator) -> dict[str, int]:
    pipeline = _pipeline(request)
    pipeline.handler_store.get(handler_id)  # 404 for an unknown handler
    count = pipeline.replayer.dead(DeadFilter(handler_id=handler_id), _now(), limit=None)
    pipeline.wake()
    return {"replayed": count}


class SampleEvent(BaseModel):
    """The event a test-send delivers; it is enriched from `source` like a real one."""

    model_config = ConfigDict(extra="forbid")
    source: Text | None = None
    event_type: str = Field(
        default="Subscriber/Updated", max_length=255, pattern=EVENT_TYPE_PATTERN
    )
    variables: dict[str, Any] = Field(default_factory=dict)


@router.post("/handlers/{handler_id}/test", tags=["handlers"])
async def test_send_handler(
    request: Request, handler_id: Text, body: SampleEvent, _: Operator
) -> dict[str, Any]:
    """Send one sample event to the handler's connector now, exactly as a delivery would go
    (enriched, same payload and outcome rules), and show what happened. Nothing is stored
    and no status goes to PortaBilling; the external system does receive the event."""
    pipeline = _pipeline(request)
    stored = await run_in_threadpool(pipeline.handler_store.get, handler_id)
    source = _known_source(request, body.source)
    try:
        return await send_sample(
            pipeline.dispatcher,
            stored.definition,
            source=source,
            event_type=body.event_type,
            variables=body.variables,
        )
    except (PluginLoadError, ValueError) as exc:
        raise ApiError(
            409, f"the handler's connector cannot be built: {exc}", "bad_handler"
        ) from exc


# -- maintenance --------------------------------------------------------------------------


@router.get("/pause", tags=["maintenance"])
def pause_state(request: Request, _: Viewer) -> dict[str, bool]:
    return {"paused": _pipeline(request).handler_store.paused()}


@router.post("/pause", tags=["maintenance"])
def pause_all(request: Request, _: Operator) -> dict[str, bool]:
    """Maintenance mode: nothing is dispatched; ESPF ingress keeps accepting and storing."""
    pipeline = _pipeline(request)
    pipeline.handler_store.set_global_pause(True)
    pipeline.reload_handlers()
    return {"paused": True}


@router.post("/resume", tags=["maintenance"])
def resume_all(request: Request, _: Operator) -> dict[str, bool]:
    pipeline = _pipeline(request)
    pipeline.handler_store.set_global_pause(False)
    pipeline.reload_handlers()
    return {"paused": False}


# -- console users' sessions ---------------------------------------------------------------


def _sessions(request: Request, username: str) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    if sessions.users.get(username) is None:
        raise ApiError(404, f"no console user {username!r}", "not_found")
    return sessions


@router.get("/users/{username}/sessions", tags=["users"])
def user_sessions(request: Request, username: Text, _: Admin) -> dict[str, Any]:
    """The user's open console sessions: when each began, was last used and will end (by
    idle timeout or absolute expiry, whichever comes first), and its client."""
    found = _sessions(request, username).list_for(username)
    return {"items": [asdict(info) for info in found]}


@router.delete("/users/{username}/sessions", tags=["users"])
def end_user_sessions(request: Request, username: Text, _: Admin) -> dict[str, int]:
    """End every console session of the user at once (in every process)."""
    return {"ended": _sessions(request, username).end_for(username)}


@router.delete("/users/{username}/sessions/{session_id}", tags=["users"])
def end_user_session(
    request: Request, username: Text, session_id: Text, _: Admin
) -> dict[str, int]:
    ended = _sessions(request, username).end_for(username, session_id)
    if not ended:
        raise ApiError(404, f"{username!r} has no open session {session_id!r}", "not_found")
    return {"ended": ended}


# -- events, deliveries, attempts ---------------------------------------------------------


@router.get("/events", tags=["events"])
def search_events(
    request: Request,
    _: Viewer,
    event_type: Text | None = None,
    i_account: Int64 | None = None,
    i_event: Id64 | None = None,
    source: Text | None = None,
    state: EventState | None = None,
    since: UtcTime | None = None,
    until: UtcTime | None = None,
    limit: Limit = 50,
    before: Id64 | None = None,
) -> dict[str, Any]:
    """Newest first. `event_type` may end with `*`; `state` is one of unrouted, pending,
    waiting, delivered, rejected, dead. Page with `before` = the last item's `seq`."""
    found = _pipeline(request).queries.search_events(
        EventFilter(event_type, i_account, i_event, source, state, since, until),
        limit=limit,
        before_seq=before,
    )
    return {"items": found, "next_before": found[-1]["seq"] if len(found) == limit else None}


@router.get("/events/{event_id}", tags=["events"])
def event_detail(request: Request, event_id: Text, _: Viewer) -> dict[str, Any]:
    """The event, its deliveries (by priority) and every attempt with its pb_data snapshot."""
    detail = _pipeline(request).queries.event_detail(event_id)
    if detail is None:
        raise ApiError(404, f"no event with event_id {event_id!r}", "event_not_found")
    return detail


@router.post("/events/{event_id}/replay", tags=["replay"])
def replay_event(request: Request, event_id: Text, _: Operator) -> dict[str, int]:
    pipeline = _pipeline(request)
    count = pipeline.replayer.event(event_id, _now())
    if count is None:
        raise ApiError(404, f"no event with event_id {event_id!r}", "event_not_found")
    pipeline.wake()
    return {"replayed": count}


@router.get("/deliveries", tags=["events"])
def list_deliveries(
    request: Request,
    _: Viewer,
    state: DeliveryStateName | None = None,
    handler_id: Text | None = None,
    limit: Limit = 50,
    before: Id64 | None = None,
) -> dict[str, Any]:
    found = _pipeline(request).queries.list_deliveries(
        state=state, handler_id=handler_id, limit=limit, before_id=before
    )
    return {"items": found, "next_before": found[-1]["id"] if len(found) == limit else None}


@router.post("/deliveries/{delivery_id}/replay", tags=["replay"])
def replay_delivery(request: Request, delivery_id: Id64, _: Operator) -> dict[str, int]:
    pipeline = _pipeline(request)
    if not pipeline.replayer.delivery(delivery_id, _now()):
        raise ApiError(
            404, f"no replayable delivery {delivery_id} (unknown, or in flight now)", "not_found"
        )
    pipeline.wake()
    return {"replayed": 1}


#: At most how many events one replay request re-delivers (a JSON integer: not `true`).
ReplayLimit = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(json_integer)]


class ReplayFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_type: Text | None = None
    i_account: JsonInt | None = None
    i_event: JsonId | None = None
    source: Text | None = None
    state: EventState | None = None
    since: UtcTime | None = None
    until: UtcTime | None = None
    handler_id: Text | None = None
    limit: ReplayLimit = 10_000
    dry_run: bool = Field(
        default=False,
        strict=True,
        description="Only count the events it would replay and show a sample of them",
    )


@router.post("/replay", tags=["replay"])
def replay_matching(request: Request, body: ReplayFilter, _: Operator) -> dict[str, Any]:
    """Replay the events a search finds (optionally only their deliveries to one handler);
    with dry_run, answer how many events that would be (`matching`) with a `sample` of the
    newest of them, and change nothing."""
    pipeline = _pipeline(request)
    f = EventFilter(**body.model_dump(exclude={"handler_id", "limit", "dry_run"}))
    if body.dry_run:
        return pipeline.queries.replay_preview(f, handler_id=body.handler_id, limit=body.limit)
    count = pipeline.replayer.matching(f, _now(), handler_id=body.handler_id, limit=body.limit)
    pipeline.wake()
    return {"replayed": count}


@router.get("/dead", tags=["replay"])
def dead_letters(
    request: Request,
    _: Viewer,
    handler_id: Text | None = None,
    event_type: Text | None = None,
    since: UtcTime | None = None,
    until: UtcTime | None = None,
    limit: Limit = 50,
    before: Id64 | None = None,
) -> dict[str, Any]:
    """Dead deliveries (newest first) with their reasons; `since`/`until` bound the time
    they died. `total` counts every match."""
    queries = _pipeline(request).queries
    f = DeadFilter(handler_id, event_type, since, until)
    found = queries.dead_letters(f, limit=limit, before_id=before)
    return {
        "items": found,
        "total": queries.count_dead(f),
        "next_before": found[-1]["id"] if len(found) == limit else None,
    }


class DeadReplay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handler_id: Text | None = None
    event_type: Text | None = None
    since: UtcTime | None = None
    until: UtcTime | None = None
    limit: ReplayLimit = 10_000
    dry_run: bool = Field(
        default=False,
        strict=True,
        description="Only count what would be replayed and show a sample of it",
    )


@router.post("/dead/replay", tags=["replay"])
def replay_dead_letters(request: Request, body: DeadReplay, _: Operator) -> dict[str, Any]:
    """Replay the dead deliveries the filter finds (only those); with dry_run, answer how
    many that would be (`matching`) with a `sample` of the latest deaths, and change
    nothing."""
    pipeline = _pipeline(request)
    f = DeadFilter(body.handler_id, body.event_type, body.since, body.until)
    if body.dry_run:
        return pipeline.queries.dead_preview(f, limit=body.limit)
    count = pipeline.replayer.dead(f, _now(), limit=body.limit)
    pipeline.wake()
    return {"replayed": count}


@router.get("/attempts", tags=["events"])
def search_attempts(
    request: Request,
    _: Viewer,
    handler_id: Text | None = None,
    handler_type: Literal["http", "script", "python", "template"] | None = None,
    outcome: Literal["delivered", "waiting", "rejected", "retry", "dead", "skipped"] | None = None,
    event_id: Text | None = None,
    event_type: Text | None = None,
    i_account: Int64 | None = None,
    msisdn: Text | None = None,
    imsi: Text | None = None,
    since: UtcTime | None = None,
    until: UtcTime | None = None,
    limit: Limit = 50,
    before: Id64 | None = None,
) -> dict[str, Any]:
    """The execution log, newest first. `event_type` may end with `*`; `msisdn` and `imsi`
    are those PortaBilling reported for the attempt's account. Page with `before`."""
    pipeline = _pipeline(request)
    of_type = None
    if handler_type is not None:
        of_type = tuple(
            h.id for h in pipeline.handler_store.list() if h.definition.type == handler_type
        )
    found = pipeline.queries.search_attempts(
        AttemptFilter(
            handler_id,
            outcome,
            event_id,
            since,
            until,
            event_type=event_type,
            handler_ids=of_type,
            i_account=i_account,
            msisdn=msisdn,
            imsi=imsi,
        ),
        limit=limit,
        before_id=before,
    )
    return {"items": found, "next_before": found[-1]["id"] if len(found) == limit else None}


@router.get("/attempts/{attempt_id}", tags=["events"])
def attempt_detail(request: Request, attempt_id: Id64, _: Viewer) -> dict[str, Any]:
    """One attempt and the exact NSPS Event it sent (`payload`; null when nothing was sent,
    e.g. enrichment failed). The service password is masked."""
    found = _pipeline(request).queries.attempt_detail(attempt_id)
    if found is None:
        raise ApiError(404, f"no attempt {attempt_id}", "attempt_not_found")
    payload = None
    if found["sent_status"] is not None:
        payload = nsps_event(
            event_id=found["event_id"],
            event_type=found["event_type"],
            variables=found["variables"],
            pb_data=found["pb_data"],
            handler_id=found["handler_id"],
            status=found["sent_status"],
            created_at=found["delivery_created_at"],
            updated_at=found["started_at"],
        )
    return {**jsonable(found, drop=("delivery_created_at",)), "payload": payload}


@router.get("/rejected", tags=["events"])
def rejected_requests(
    request: Request, _: Viewer, since: UtcTime | None = None, limit: Limit = 50
) -> list[dict[str, Any]]:
    """Requests the ESPF ingress refused (ESPF does not send those again)."""
    found: list[StoredRejectedRequest] = request.app.state.store.list_rejected(
        since=since, limit=limit
    )
    return [{"id": r.id, **jsonable(asdict(r.request))} for r in found]


@router.get("/stats", tags=["events"])
def stats(request: Request, _: Viewer) -> dict[str, Any]:
    pipeline = _pipeline(request)
    figures = pipeline.queries.stats()
    figures["paused"] = pipeline.handler_store.paused()
    figures["status_outbox_backlog"] = pipeline.outbox.backlog()
    figures["portabilling"] = {
        source: health.view() for source, health in pipeline.enrichment.health.items()
    }
    return figures


SERIES_WINDOWS = {"hour": (timedelta(hours=1), 60), "day": (timedelta(days=1), 3600)}


@router.get("/stats/series", tags=["events"])
def stats_series(
    request: Request, _: Viewer, window: Literal["hour", "day"] = "hour"
) -> dict[str, Any]:
    """Events received, attempts delivered and attempts failed (retry, rejected, dead) per
    minute over the last hour, or per hour over the last day."""
    span, bucket = SERIES_WINDOWS[window]
    now = _now()
    return _pipeline(request).queries.time_series(now - span, now, bucket)


# -- provisioning status and scheduling ---------------------------------------------------


def _known_source(request: Request, given: str | None) -> str:
    """The named source (default: ingress.default_source); 404 if it is not configured."""
    ingress = request.app.state.settings.ingress
    source: str = given or ingress.default_source
    if source not in ingress.sources:
        raise ApiError(
            404, f"no source named {source!r} is configured (ingress.sources)", "unknown_source"
        )
    return source


class StatusIn(BaseModel):
    """A provisioning status reported by an external system or a connector that finished
    later. With event_id and handler_id, the delivery that was waiting for it is finished."""

    model_config = ConfigDict(extra="forbid")
    source: Text | None = None
    i_account: JsonInt
    group: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    status: Literal["OK", "IN_PROGRESS", "RETRY", "FAILED"]
    error: str | None = Field(default=None, max_length=MAX_ERROR_LENGTH, pattern=NO_NUL)
    event_id: Text | None = None
    handler_id: Text | None = None


@router.post("/status", tags=["status"], status_code=202)
def report_status(request: Request, body: StatusIn, caller: Operator) -> dict[str, Any]:
    pipeline = _pipeline(request)
    source = _known_source(request, body.source)
    now = _now()
    finished = False
    if body.event_id and body.handler_id and body.status in ("OK", "FAILED"):
        state = DeliveryState.DELIVERED if body.status == "OK" else DeliveryState.REJECTED
        # Through the durable engine: an API answer must not be undone by a power loss.
        finished = DeliveryQueue(pipeline.engine).finish_waiting(
            body.event_id, body.handler_id, state, body.error, now
        )
    pipeline.outbox.add(
        [
            StatusReport(
                source=source,
                i_account=body.i_account,
                group_name=body.group,
                status=body.status,
                error=body.error if body.status != "OK" else None,
                origin=f"api:{caller.name}",
            )
        ],
        now,
    )
    pipeline.wake()
    return {"queued": True, "delivery_finished": finished}


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Text | None = None
    event_type: str = Field(max_length=255, pattern=EVENT_TYPE_PATTERN)
    variables: dict[str, Any]
    start_time: UtcTime


@router.post("/schedule", tags=["status"], status_code=201, responses=UPSTREAM_RESPONSE)
async def schedule_event(request: Request, body: ScheduleIn, _: Operator) -> dict[str, Any]:
    """Ask PortaBilling's ESPF to send an event at start_time (/espf/v1/event/create)."""
    pipeline = _pipeline(request)
    source = _known_source(request, body.source)
    client = pipeline.status_sender.clients.get(source)
    if client is None:
        raise ApiError(
            409,
            f"source {source!r} has no ESPF API configured"
            f" (ingress.sources.{source}.portabilling.espf_api)",
            "not_configured",
        )
    start = body.start_time
    try:
        i_event = await client.create_event(body.event_type, body.variables, start)
    except EspfApiError as exc:
        raise ApiError(502, f"PortaBilling refused or did not answer: {exc}", "upstream") from exc
    return {"i_event": i_event, "start_time": start.isoformat()}
