"""A connector's way back to OpenNSPS: report a provisioning status that finished later,
and ask PortaBilling's ESPF to send an event at a given time (OpenNSPS's /api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, Field, SecretStr

from opennsps.http_client import LazySession

Status = Literal["OK", "IN_PROGRESS", "RETRY", "FAILED"]


class GatewayError(RuntimeError):
    """OpenNSPS refused or did not answer; the message says which and why."""


class GatewaySettings(BaseModel):
    url: str = Field(description="OpenNSPS's base URL, e.g. http://127.0.0.1:8700")
    token: SecretStr = Field(description="An /api/v1 token with the operator role")
    timeout: float = Field(default=10.0, gt=0)


class GatewayClient:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.base_url = settings.url.rstrip("/") + "/api/v1"
        self._http = LazySession(
            timeout=settings.timeout,
            max_connections=4,
            verify_tls=True,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
        )

    async def close(self) -> None:
        await self._http.close()

    async def report_status(
        self,
        i_account: int,
        group: str,
        status: Status,
        *,
        error: str | None = None,
        event_id: str | None = None,
        handler_id: str | None = None,
        source: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"i_account": i_account, "group": group, "status": status}
        optional = {"error": error, "event_id": event_id, "handler_id": handler_id}
        body.update({key: value for key, value in optional.items() if value is not None})
        if source is not None:
            body["source"] = source
        await self._post("/status", body)

    async def schedule_event(
        self,
        event_type: str,
        variables: dict[str, Any],
        start_time: datetime,
        *,
        source: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "event_type": event_type,
            "variables": variables,
            "start_time": start_time.isoformat(),
        }
        if source is not None:
            body["source"] = source
        await self._post("/schedule", body)

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        try:
            answer = await self._http.send("POST", f"{self.base_url}{path}", json=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(
                f"OpenNSPS at {self.settings.url} did not answer: {exc or 'timeout'}"
            ) from exc
        if answer.status >= 300:
            text = answer.content[:300].decode("utf-8", errors="replace")
            raise GatewayError(f"OpenNSPS refused {path}: HTTP {answer.status} {text}")
