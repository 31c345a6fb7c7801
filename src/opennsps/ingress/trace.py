"""Trace ids: `x-b3-traceid` becomes `request_id`, `x-request-id` becomes `unique_id`.

Both are read from the request (generated when absent), bound to every log line written
while the request is handled, and returned in the response headers.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opennsps.domain.ids import random_trace_id, random_uuid
from opennsps.logging import trace_ids_bound

TRACE_HEADER = "x-b3-traceid"
REQUEST_ID_HEADER = "x-request-id"
TRACE_HEADER_BYTES = TRACE_HEADER.encode()
REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _usable(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text if _SAFE_ID.fullmatch(text) else None


def ids_from_headers(trace: str | None, request: str | None) -> tuple[str, str]:
    """(request_id, unique_id) from the request's `x-b3-traceid` and `x-request-id`
    values, each generated when absent or unusable."""
    return _usable(trace) or random_trace_id(), _usable(request) or random_uuid()


def response_headers(request_id: str, unique_id: str) -> list[tuple[bytes, bytes]]:
    """The trace ids as the answer returns them."""
    return [
        (TRACE_HEADER_BYTES, request_id.encode()),
        (REQUEST_ID_HEADER_BYTES, unique_id.encode()),
    ]


def trace_ids(scope: Scope) -> tuple[str, str]:
    """The (request_id, unique_id) that TraceIdMiddleware put on this request."""
    state: dict[str, Any] = scope.get("state", {})
    return state["request_id"], state["unique_id"]


class TraceIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, unique_id = ids_from_headers(
            _header(scope, TRACE_HEADER_BYTES), _header(scope, REQUEST_ID_HEADER_BYTES)
        )
        scope.setdefault("state", {})
        scope["state"]["request_id"] = request_id
        scope["state"]["unique_id"] = unique_id
        extra = response_headers(request_id, unique_id)

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        with trace_ids_bound(request_id, unique_id):
            await self.app(scope, receive, send_with_ids)
