"""The ESPF ingress answered ahead of FastAPI's request handling and middleware stack.

Every PortaBilling change arrives here, so it is the hot path. It answers its own errors
(ErrorResponse bodies) and needs none of the stack's layers (FastAPI's per-request
telemetry check, the server-error page, body-limit and exception middleware, routing);
measured on the ingress benchmark, those cost about a third of its CPU. It does what the
trace-id middleware does for every other path: trace ids are part of the ingress contract.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from opennsps.ingress.endpoint import EspfIngress
from opennsps.ingress.request import Answer, ClientGone, IngressRequest
from opennsps.ingress.trace import response_headers
from opennsps.logging import bind_trace_ids, get_logger, reset_trace_ids

PATH = "/espf/events"
log = get_logger("opennsps.ingress")


class IngressFirst:
    """Answers /espf/events[/{source}]; says whether the request was one of those."""

    def __init__(self, ingress: EspfIngress) -> None:
        self.ingress = ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        if scope["type"] != "http" or not scope["path"].startswith(PATH):
            return False
        path: str = scope["path"]
        if len(path) != len(PATH) and path[len(PATH)] != "/":
            return False
        source = path[len(PATH) + 1 :] if len(path) > len(PATH) else None
        request = IngressRequest(scope, receive, source)
        token = bind_trace_ids(request.request_id, request.unique_id)
        try:
            answer = await self._answer(request)
        except ClientGone:
            log.info("espf client disconnected before its request was read; nothing stored")
            return True
        finally:
            reset_trace_ids(token)
        await answer.send(send, response_headers(request.request_id, request.unique_id))
        return True

    async def _answer(self, request: IngressRequest) -> Answer:
        if request.source is not None and (not request.source or "/" in request.source):
            return Answer.error(404, f"no route {request.path[:200]}", "not_found")
        if request.method != "POST":
            return Answer.error(
                405,
                "the ESPF ingress takes POST only",
                "method_not_allowed",
                headers={"Allow": "POST"},
            )
        try:
            return await self.ingress.handle(request)
        except ClientGone:
            raise
        except Exception:
            log.exception("unhandled error in the ESPF ingress")
            # Not a 4xx: ESPF keeps the event and sends it again.
            return Answer.error(500, "internal error; see the server log", "internal_error")
