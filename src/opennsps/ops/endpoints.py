"""GET /health, /ready and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opennsps.http_errors import error_response, json_response
from opennsps.store.event_store import EventStore

READY_PROBE_TIMEOUT = 2.0


async def health(_: Request) -> Response:
    """The process is up and serving HTTP (the NSPS contract's health answer)."""
    return json_response({"status": "Healthy"})


def readiness(store: EventStore) -> Callable[[Request], Awaitable[Response]]:
    async def ready(_: Request) -> Response:
        try:
            answered = await asyncio.wait_for(
                run_in_threadpool(store.ping), timeout=READY_PROBE_TIMEOUT
            )
        except TimeoutError:
            answered = False
        if answered:
            return json_response({"status": "Ready", "store": "ok"})
        return error_response(
            503, "the event store does not answer or its last write failed", "store_unavailable"
        )

    return ready


async def prometheus_metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
