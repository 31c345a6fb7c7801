"""A connector's way back to OpenNSPS: report a provisioning status that finished later,
and ask PortaBilling's ESPF to send an event at a given time (OpenNSPS's /api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

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
        self._http = httpx.AsyncClient(
            base_url=settings.url.rstrip("/") + "/api/v1",
            timeout=settings.timeout,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
        )

    async def close(self) -> None:
        await self._http.aclose()

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
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise GatewayError(f"OpenNSPS at {self.settings.url} did not answer: {exc}") from exc
        if response.status_code >= 300:
            raise GatewayError(
                f"OpenNSPS refused {path}: HTTP {response.status_code} {response.text[:300]}"
            )
