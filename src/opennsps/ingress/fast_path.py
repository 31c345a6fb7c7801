"""The ESPF ingress answered ahead of FastAPI's request handling and middleware stack.

Every PortaBilling change arrives here, so it is the hot path. It answers its own errors
(ErrorResponse bodies) and needs none of the stack's layers (FastAPI's per-request
telemetry check, the server-error page, body-limit and exception middleware, routing);
measured on the ingress benchmark, those cost about a third of its CPU. It keeps the
trace-id middleware: trace ids are part of the ingress contract.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from opennsps.http_errors import error_response
from opennsps.ingress.endpoint import EspfIngress
from opennsps.ingress.trace import TraceIdMiddleware
from opennsps.logging import get_logger

PATH = "/espf/events"
log = get_logger("opennsps.ingress")


class _IngressEndpoint:
    def __init__(self, ingress: EspfIngress) -> None:
        self.ingress = ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]  # PATH or PATH/... (IngressFirst checked)
        source = path[len(PATH) + 1 :] if len(path) > len(PATH) else None
        if source is not None and (not source or "/" in source):
            response = error_response(404, f"no route {path[:200]}", "not_found")
        elif scope["method"] != "POST":
            response = error_response(
                405,
                "the ESPF ingress takes POST only",
                "method_not_allowed",
                headers={"Allow": "POST"},
            )
        else:
            scope["path_params"] = {"source": source} if source is not None else {}
            request = Request(scope, receive)
            try:
                if source is None:
                    response = await self.ingress.default_source(request)
                else:
                    response = await self.ingress.named_source(request)
            except Exception:
                log.exception("unhandled error in the ESPF ingress")
                # Not a 4xx: ESPF keeps the event and sends it again.
                response = error_response(
                    500, "internal error; see the server log", "internal_error"
                )
        await response(scope, receive, send)


class IngressFirst:
    """Answers /espf/events[/{source}]; says whether the request was one of those."""

    def __init__(self, ingress: EspfIngress) -> None:
        self.ingress = TraceIdMiddleware(_IngressEndpoint(ingress))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if scope["type"] != "http" or not scope["path"].startswith(PATH):
            return False
        path: str = scope["path"]
        if len(path) != len(PATH) and path[len(PATH)] != "/":
            return False
        await self.ingress(scope, receive, send)
        return True
