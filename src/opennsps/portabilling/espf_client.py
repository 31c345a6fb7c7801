"""A client of PortaBilling's ESPF API: provisioning statuses, service groups, scheduling."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

Status = Literal["OK", "IN_PROGRESS", "RETRY", "FAILED"]
MAX_ERROR_LENGTH = 4000


class EspfApiError(Exception):
    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


@dataclass(frozen=True)
class EspfApiSettings:
    url: str
    login: str
    password: str
    verify_tls: bool = True
    timeout: float = 10.0


class EspfApiClient:
    def __init__(
        self, settings: EspfApiSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        token = base64.b64encode(f"{settings.login}:{settings.password}".encode()).decode()
        self._http = httpx.AsyncClient(
            base_url=settings.url.rstrip("/") + "/espf/v1",
            headers={"Authorization": f"Basic {token}"},
            timeout=settings.timeout,
            verify=settings.verify_tls,
            transport=transport,
        )
        self._known_groups: set[str] = set()
        self._groups_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def set_status(
        self, i_account: int, group: str, status: Status, error: str | None = None
    ) -> None:
        await self.ensure_group(group)
        form = {"status": status, "group": group}
        if error and status != "OK":
            form["error"] = error[:MAX_ERROR_LENGTH]
        await self._request("POST", f"/account/i/{i_account}/status", data=form)

    async def ensure_group(self, name: str) -> None:
        """Register the service group unless PortaBilling already has it."""
        if name in self._known_groups:
            return
        async with self._groups_lock:
            if name in self._known_groups:
                return
            listed = await self._request("GET", "/groups")
            self._known_groups.update(g["name"] for g in listed.get("group_list", []))
            if name in self._known_groups:
                return
            try:
                await self._request("POST", "/group/create", data={"name": name})
            except EspfApiError as exc:
                # Another OpenNSPS process registered it in between.
                if exc.status_code != 409:
                    raise
            self._known_groups.add(name)

    async def create_event(
        self, event_type: str, variables: dict[str, Any], start_time: datetime
    ) -> int:
        moment = start_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        answer = await self._request(
            "POST",
            "/event/create",
            json={"event_type": event_type, "variables": variables, "start_time": moment},
        )
        return int(answer["i_event"])

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EspfApiError(
                f"ESPF API {path}: {type(exc).__name__}: {exc}", retryable=True
            ) from None
        if response.status_code == 200:
            body: dict[str, Any] = response.json() if response.content else {}
            return body
        retryable = response.status_code >= 500 or response.status_code in (401, 403, 408, 429)
        raise EspfApiError(
            f"ESPF API {path}: HTTP {response.status_code}: {response.text[:300]}",
            retryable=retryable,
            status_code=response.status_code,
        )
