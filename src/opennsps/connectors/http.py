"""Delivering to a remote connector over HTTP, exactly as the NSPS contract describes.

POST the Event JSON with `Authorization: Bearer <token>` and the trace headers carried
from ingress; every attempt gives an AttemptResult with a bounded response excerpt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from opennsps.connectors.base import EXCERPT_BYTES, AttemptResult
from opennsps.domain.outcomes import classify


@dataclass(frozen=True)
class HttpConnectorSettings:
    url: str
    token: str | None = None
    timeout: float = 30.0
    verify_tls: bool = True


class HttpConnector:
    def __init__(
        self, settings: HttpConnectorSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=settings.timeout, verify=settings.verify_tls, transport=transport
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult:
        headers = {"Content-Type": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        if request_id:
            headers["x-b3-traceid"] = request_id
        if unique_id:
            headers["x-request-id"] = unique_id
        started = time.perf_counter()
        try:
            response = await self._http.post(
                self.settings.url, content=orjson.dumps(event), headers=headers
            )
        except httpx.TimeoutException:
            return self._failed(started, f"no answer within {self.settings.timeout:g} s")
        except httpx.HTTPError as exc:
            return self._failed(started, f"{type(exc).__name__}: {exc}"[:500])
        excerpt = response.content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        outcome = classify(
            response.status_code,
            body_status=_body_status(response),
            retry_after=response.headers.get("retry-after"),
        )
        return AttemptResult(
            outcome, response.status_code, excerpt, None, (time.perf_counter() - started) * 1000
        )

    @staticmethod
    def _failed(started: float, error: str) -> AttemptResult:
        return AttemptResult(
            classify(None, error=error), None, "", error, (time.perf_counter() - started) * 1000
        )


def _body_status(response: httpx.Response) -> str | None:
    if response.status_code != 202 or not response.content:
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None
