"""The ASGI application: ESPF ingress, the pipeline, the management API and operations
endpoints over one store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from opennsps import __version__, tracing
from opennsps.api_docs import install_api_docs
from opennsps.config import Settings, redact_url
from opennsps.console.api import install_api_errors
from opennsps.console.api import router as api_router
from opennsps.console.auth import TokenAuthenticator
from opennsps.console.sessions import Sessions
from opennsps.console.throttle import LoginThrottle
from opennsps.console.users import UserStore
from opennsps.console.web import console_assets
from opennsps.console.web import router as console_router
from opennsps.http_errors import install_error_handlers
from opennsps.ingress.endpoint import EspfIngress
from opennsps.ingress.fast_path import IngressFirst
from opennsps.ingress.trace import TraceIdMiddleware
from opennsps.logging import get_logger
from opennsps.ops.endpoints import health, prometheus_metrics, readiness
from opennsps.ops.heap import freeze_startup_heap
from opennsps.pipeline.runtime import Pipeline
from opennsps.store.event_store import EventStore

log = get_logger("opennsps.app")


class GatewayApp(FastAPI):
    """The application, with the ESPF ingress answered before FastAPI's own request
    handling and middleware stack (ingress/fast_path.py)."""

    def __init__(self, ingress: EspfIngress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingress_first = IngressFirst(ingress)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.ingress_first(scope, receive, send):
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, store: EventStore | None = None, *, owns_process: bool = False
) -> FastAPI:
    """Build the application; the store is opened (and migrated) when the app starts.

    `owns_process`: the application is this process's only job (`opennsps serve`), so
    what exists once it has started lives until the process ends (see freeze_startup_heap).
    """
    event_store = store if store is not None else EventStore(settings.store)
    pipeline = Pipeline(settings, event_store.engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tracing.configure(settings.tracing)
        before, after = await run_in_threadpool(event_store.upgrade)
        await run_in_threadpool(pipeline.handler_store.sync_from_config, settings.handlers)
        await run_in_threadpool(event_store.open, apply_migrations=False)
        if settings.pipeline.enabled:
            await pipeline.start()
        if owns_process:
            freeze_startup_heap()
        log.info(
            "opennsps started",
            version=__version__,
            store=redact_url(settings.store.url),
            schema_before=before,
            schema=after,
            sources=sorted(settings.ingress.sources),
            handlers=[h.id for h in settings.handlers],
            pipeline=settings.pipeline.enabled,
        )
        try:
            yield
        finally:
            if settings.pipeline.enabled:
                await pipeline.stop()
            await run_in_threadpool(event_store.close)
            await run_in_threadpool(tracing.shutdown)
            log.info("opennsps stopped")

    ingress = EspfIngress(settings.ingress, event_store, on_stored=pipeline.worker.wake)
    app = GatewayApp(
        ingress,
        title="OpenNSPS",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_api_docs(app)
    app.state.store = event_store
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.api_auth = TokenAuthenticator(settings.api.tokens)
    app.state.console_sessions = Sessions(
        event_store.engine,
        UserStore(event_store.engine),
        lifetime_seconds=settings.console.session_hours * 3600,
        idle_seconds=settings.console.idle_minutes * 60,
    )
    # Failed console logins: 5 per user name, 25 per client address, in 5 minutes.
    app.state.login_throttle_user = LoginThrottle(event_store.engine, "user", max_failures=5)
    app.state.login_throttle_address = LoginThrottle(event_store.engine, "address", max_failures=25)
    install_error_handlers(app)
    install_api_errors(app)
    app.router.add_route("/health", health, methods=["GET"])
    app.router.add_route("/ready", readiness(event_store), methods=["GET"])
    app.router.add_route("/metrics", prometheus_metrics, methods=["GET"])
    app.include_router(api_router)
    if settings.console.enabled:
        app.include_router(console_router)
        app.mount("/console/static", console_assets(), name="console-static")
    app.add_middleware(TraceIdMiddleware)
    return app
