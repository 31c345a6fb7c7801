"""The HTTP server's own limits: what uvicorn does not bound by itself.

uvicorn (with httptools) keeps every header a client sends, however many and however long,
and keeps a connection that never sends a byte, or stops halfway through its headers or
body, open for ever: eight clients sending 48 MB of headers tripled the gateway's memory,
and 300 silent connections used up its file descriptors so that ESPF's posts were reset.
`limited_protocol` is uvicorn's httptools protocol with:

- at most `max_header_bytes` of request line and headers, and `max_headers` headers
  (431 beyond them);
- the request line and headers complete within `header_timeout` seconds of the connection
  or of the request's first byte (408, or a plain close when nothing came at all);
- the body making progress at least every `body_timeout` seconds (else the connection is
  closed and the application sees the client gone);
- refusals, and uvicorn's own 400 for malformed HTTP, in the ErrorResponse shape.

Idle keep-alive connections close after `keep_alive_timeout` (uvicorn's own timer), and
`max_connections` bounds concurrent connections (uvicorn answers 503 beyond it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from opennsps.config import ServerConfig
from opennsps.http_errors import ApiError, error_payload
from opennsps.logging import get_logger

log = get_logger("opennsps.http")

SWEEP_SECONDS = 0.5


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ServerConfig = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._header_count = 0
        self._refusal: ApiError | None = None
        self._deadline: float | None = None
        self._request_started = False  # a request has begun and is not complete

    # -- connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.time() + self.limits.header_timeout
        _ensure_sweeper(self)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn handles it
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            refusal = self._refusal or ApiError(
                400, "the request is not valid HTTP/1.1", "bad_request"
            )
            self._refuse(refusal)

    def send_400_response(self, msg: str) -> None:
        self._refuse(ApiError(400, msg, "bad_request"))

    def _refuse(self, refusal: ApiError) -> None:
        log.warning(
            "http request refused",
            status=refusal.status_code,
            reason=refusal.message,
            peer=self.client,
        )
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way: no second one on this stream
            return
        body = orjson.dumps(error_payload(refusal.status_code, refusal.message, refusal.error))
        head = [
            STATUS_LINE[refusal.status_code],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_started = True
        self._header_bytes = 0
        self._header_count = 0
        self._deadline = self.loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._stop(431, f"more than {self.limits.max_headers} headers", "too_many_headers")
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._deadline = self.loop.time() + self.limits.body_timeout
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._deadline = self.loop.time() + self.limits.body_timeout
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._deadline = None  # the application has the whole request; it answers
        self._request_started = False
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._stop(
                431,
                f"the request line and headers exceed {self.limits.max_header_bytes} bytes",
                "headers_too_large",
            )

    def _stop(self, status: int, message: str, error: str) -> None:
        self._refusal = ApiError(status, message, error)
        raise self._refusal  # httptools stops parsing and feed_data raises

    # -- deadlines ---------------------------------------------------------------------

    def expire_if_late(self, now: float) -> None:
        if self._deadline is None or now < self._deadline or self.transport.is_closing():
            return
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            log.warning("http body stalled; connection closed", peer=self.client)
            self.transport.close()
        elif self._request_started:
            self._refuse(
                ApiError(
                    408,
                    f"the request line and headers did not arrive within "
                    f"{self.limits.header_timeout:g} s",
                    "request_timeout",
                )
            )
        else:
            self.transport.close()  # nothing was ever sent on it


def _ensure_sweeper(protocol: LimitedHttpToolsProtocol) -> None:
    """One task per server checks the connections' deadlines while any is open."""
    state = protocol.server_state
    running: asyncio.Task[None] | None = getattr(state, "opennsps_sweeper", None)
    if running is None or running.done():
        state.opennsps_sweeper = protocol.loop.create_task(  # type: ignore[attr-defined]
            _sweep(state.connections, protocol.loop), name="http-deadlines"
        )


async def _sweep(connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
    while connections:
        await asyncio.sleep(SWEEP_SECONDS)
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.expire_if_late(now)


def limited_protocol(limits: ServerConfig) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` with these limits."""
    return type("LimitedProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def uvicorn_options(limits: ServerConfig) -> dict[str, Any]:
    """What uvicorn.Config needs besides the app, host and port."""
    return {
        "http": limited_protocol(limits),
        "timeout_keep_alive": limits.keep_alive_timeout,
        "limit_concurrency": limits.max_connections,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # Only a listed proxy's X-Forwarded-For replaces the peer address.
        "proxy_headers": bool(limits.trusted_proxies),
        "forwarded_allow_ips": limits.trusted_proxies or "",
    }
