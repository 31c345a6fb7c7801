"""One ESPF request read straight from the ASGI scope, and its answer written straight back.

The ingress is the hot path (every PortaBilling change arrives here), so it reads each
header once instead of through a per-lookup header object, and sends its answer as two
ASGI messages instead of building a framework response.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.types import Receive, Scope, Send

from opennsps.domain.errors import ErrorType
from opennsps.http_errors import error_payload
from opennsps.ingress.trace import REQUEST_ID_HEADER, TRACE_HEADER, ids_from_headers

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its body was read: there is nobody to answer."""


class IngressRequest:
    def __init__(self, scope: Scope, receive: Receive, source: str | None) -> None:
        self.scope = scope
        self.receive = receive
        self.source = source  # the {source} of /espf/events/{source}; None for /espf/events
        # The first of repeated headers counts. ASGI servers give names in lower case.
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key not in headers:
                headers[key] = value.decode("latin-1")
        self.headers = headers
        self.request_id, self.unique_id = ids_from_headers(
            headers.get(TRACE_HEADER), headers.get(REQUEST_ID_HEADER)
        )

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def all_headers(self) -> list[tuple[str, str]]:
        """Every header as sent, repeats included (for the record of a rejected request)."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.scope["headers"]]

    async def next_chunk(self) -> tuple[bytes, bool]:
        """The next part of the body, and whether more follows."""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        return message.get("body", b""), message.get("more_body", False)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
        return cls(status, orjson.dumps(body), tuple((headers or {}).items()))

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        error: str,
        error_type: ErrorType | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """An answer in the NSPS ErrorResponse shape."""
        return cls.json(status, error_payload(status, message, error, error_type), headers)

    async def send(self, send: Send, trace_headers: list[tuple[bytes, bytes]]) -> None:
        headers = [
            JSON_CONTENT_TYPE,
            (b"content-length", str(len(self.body)).encode()),
            *((n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in self.headers),
            *trace_headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})
