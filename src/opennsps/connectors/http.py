"""Delivering to a remote connector over HTTP, exactly as the NSPS contract describes.

POST the Event JSON with `Authorization: Bearer <token>` and the trace headers carried
from ingress; every attempt gives an AttemptResult with a bounded response excerpt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from opennsps.connectors.base import EXCERPT_BYTES, AttemptResult
from opennsps.domain.outcomes import classify
from opennsps.http_client import LazySession


@dataclass(frozen=True)
class HttpConnectorSettings:
    url: str
    token: str | None = None
    timeout: float = 30.0
    verify_tls: bool = True


class HttpConnector:
    def __init__(self, settings: HttpConnectorSettings, max_connections: int = 100) -> None:
        self.settings = settings
        self._http = LazySession(
            timeout=settings.timeout,
            max_connections=max_connections,
            verify_tls=settings.verify_tls,
        )

    async def close(self) -> None:
        await self._http.close()

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
            answer = await self._http.send(
                "POST",
                self.settings.url,
                limit=64 * 1024,
                data=orjson.dumps(event),
                headers=headers,
            )
        except TimeoutError:
            return self._failed(started, f"no answer within {self.settings.timeout:g} s")
        except aiohttp.ClientError as exc:
            return self._failed(started, f"{type(exc).__name__}: {exc}"[:500])
        status, content = answer.status, answer.content
        excerpt = content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        outcome = classify(
            status,
            body_status=_body_status(status, content),
            retry_after=answer.headers.get("Retry-After"),
        )
        return AttemptResult(outcome, status, excerpt, None, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _failed(started: float, error: str) -> AttemptResult:
        return AttemptResult(
            classify(None, error=error), None, "", error, (time.perf_counter() - started) * 1000
        )


def _body_status(status: int, content: bytes) -> str | None:
    if status != 202 or not content:
        return None
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    found = body.get("status") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None
