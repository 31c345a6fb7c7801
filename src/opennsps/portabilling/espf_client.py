"""A client of PortaBilling's ESPF API: provisioning statuses, service groups, scheduling."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import orjson

from opennsps.http_client import LazySession

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
    def __init__(self, settings: EspfApiSettings) -> None:
        self.settings = settings
        token = base64.b64encode(f"{settings.login}:{settings.password}".encode()).decode()
        self._base_url = settings.url.rstrip("/") + "/espf/v1"
        self._http = LazySession(
            timeout=settings.timeout,
            max_connections=8,
            verify_tls=settings.verify_tls,
            headers={"Authorization": f"Basic {token}"},
        )
        self._known_groups: set[str] = set()
        self._groups_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.close()

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
        # isoformat pads the year to four digits; strftime's %Y does not below 1000.
        moment = start_time.astimezone(UTC).replace(microsecond=0).isoformat(sep=" ")[:19]
        answer = await self._request(
            "POST",
            "/event/create",
            json={"event_type": event_type, "variables": variables, "start_time": moment},
        )
        return int(answer["i_event"])

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = await self._http.send(method, self._base_url + path, **kwargs)
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = str(exc) or f"no answer within {self.settings.timeout:g} s"
            raise EspfApiError(
                f"ESPF API {path}: {type(exc).__name__}: {reason}", retryable=True
            ) from None
        status, content = answer.status, answer.content
        if status == 200:
            try:
                body = orjson.loads(content) if content else {}
            except orjson.JSONDecodeError:
                body = {}
            return body if isinstance(body, dict) else {}
        retryable = status >= 500 or status in (401, 403, 408, 429)
        text = content[:300].decode("utf-8", errors="replace")
        raise EspfApiError(
            f"ESPF API {path}: HTTP {status}: {text}", retryable=retryable, status_code=status
        )
