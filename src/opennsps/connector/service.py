"""A connector as its own NSPS-compatible HTTP service (seed 002, the connector OpenAPI).

- `GET /health` → `{"status": "Healthy"}` (no token needed).
- `POST /process-event` (and `POST /`, as the guide's curl example posts to the root):
  Bearer token checked in constant time (401 with `WWW-Authenticate: Bearer`), the body
  validated as an NSPS `Event` (422 with the details), then `Connector.handle`.
  Success answers 202 `{"message": "Event accepted for processing"}`; a `Waiting` answer
  adds `"status": "IN_PROGRESS"`. A `ConnectorError` answers its status code with an
  ErrorResponse body (`Retry-After` when it gives one).
- Every log line carries `request_id` (x-b3-traceid) and `unique_id` (x-request-id),
  generated when absent and returned in the response headers.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from opennsps.connector.base import Connector, Waiting
from opennsps.connector.errors import ConnectorError
from opennsps.connector.model import Event
from opennsps.http_errors import ApiError, error_response, install_error_handlers, json_response
from opennsps.ingress.trace import TraceIdMiddleware, trace_ids
from opennsps.logging import get_logger

log = get_logger("opennsps.connector.service")
ACCEPTED = "Event accepted for processing"


def create_app(connector: Connector, *, token: str, title: str | None = None) -> FastAPI:
    """The HTTP service of one connector instance; `token` is the Bearer token OpenNSPS
    (or PortaOne's NSPS) sends."""
    if len(token) < 16:
        raise ValueError("the connector's token must be at least 16 characters")
    expected = token.encode()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await connector.close()

    def authorized(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), expected
        ):
            log.warning("refused a request without a valid token", path=request.url.path)
            raise ApiError(401, "Invalid access token", "Unauthorized")

    app = FastAPI(
        title=title or type(connector).__name__,
        description="An NSPS-compatible connector built with opennsps.connector.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(TraceIdMiddleware)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "Healthy"}

    async def process_event(request: Request, event: Event) -> Response:
        request_id, unique_id = trace_ids(request.scope)
        context = connector.context(request_id, unique_id)
        log.info(
            "event received",
            event_id=event.event_id,
            event_type=event.event_type,
            handler_id=event.handler_id,
        )
        try:
            answer = await connector.handle(event, context)
        except ConnectorError as exc:
            log.warning("event failed", event_id=event.event_id, error=exc.error, reason=str(exc))
            headers = (
                {"Retry-After": str(max(0, round(exc.retry_after)))}
                if exc.retry_after is not None
                else None
            )
            return error_response(
                exc.status_code, exc.message, exc.error, exc.error_type, headers=headers
            )
        body: dict[str, Any] = {"message": ACCEPTED}
        if isinstance(answer, Waiting):
            body = {"message": answer.message, "status": "IN_PROGRESS"}
        elif isinstance(answer, dict):
            body = {**answer, **body}
        log.info("event processed", event_id=event.event_id, waiting=isinstance(answer, Waiting))
        return json_response(body, 202)

    for path in ("/process-event", "/"):
        app.add_api_route(
            path,
            process_event,
            methods=["POST"],
            status_code=202,
            dependencies=[Depends(authorized)],
        )
    return app
