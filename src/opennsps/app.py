"""The ASGI application: ESPF ingress and operations endpoints over one event store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from opennsps import __version__
from opennsps.config import Settings, redact_url
from opennsps.http_errors import install_error_handlers
from opennsps.ingress.endpoint import EspfIngress
from opennsps.ingress.trace import TraceIdMiddleware
from opennsps.logging import get_logger
from opennsps.ops.endpoints import health, prometheus_metrics, readiness
from opennsps.store.event_store import EventStore

log = get_logger("opennsps.app")


def create_app(settings: Settings, store: EventStore | None = None) -> FastAPI:
    """Build the application; the store is opened (and migrated) when the app starts."""
    event_store = store if store is not None else EventStore(settings.store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        before, after = await run_in_threadpool(event_store.upgrade)
        await run_in_threadpool(event_store.open, apply_migrations=False)
        log.info(
            "opennsps started",
            version=__version__,
            store=redact_url(settings.store.url),
            schema_before=before,
            schema=after,
            sources=sorted(settings.ingress.sources),
        )
        try:
            yield
        finally:
            await run_in_threadpool(event_store.close)
            log.info("opennsps stopped")

    app = FastAPI(
        title="OpenNSPS",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.store = event_store
    app.state.settings = settings
    install_error_handlers(app)
    ingress = EspfIngress(settings.ingress, event_store)
    app.router.add_route("/espf/events", ingress.default_source, methods=["POST"])
    app.router.add_route("/espf/events/{source}", ingress.named_source, methods=["POST"])
    app.router.add_route("/health", health, methods=["GET"])
    app.router.add_route("/ready", readiness(event_store), methods=["GET"])
    app.router.add_route("/metrics", prometheus_metrics, methods=["GET"])
    app.add_middleware(TraceIdMiddleware)
    return app
