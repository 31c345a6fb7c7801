"""PyHSS's provisioning API, with its quirks absorbed (shared/reference/pyhss-api.md):
a lookup of nothing answers 200 `null`; a duplicate answers 400 with an integrity error;
writes may need the `Provisioning-Key` header."""

from __future__ import annotations

from typing import Any

import httpx

from opennsps.connector.errors import Rejected, ServiceError, Unauthorized, Unavailable

DUPLICATE_MARKER = "UNIQUE constraint failed"


class Duplicate(Exception):
    """PyHSS already holds an object with this unique key."""


class PyHssClient:
    def __init__(self, url: str, *, provisioning_key: str | None, timeout: float) -> None:
        headers = {"Provisioning-Key": provisioning_key} if provisioning_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=headers)

    async def close(self) -> None:
        await self._http.aclose()

    async def auc_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        return await self._object("GET", f"/auc/imsi/{imsi}")

    async def subscriber_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        return await self._object("GET", f"/subscriber/imsi/{imsi}")

    async def create_subscriber(self, body: dict[str, Any]) -> dict[str, Any]:
        created = await self._object("PUT", "/subscriber/", body)
        if created is None:
            raise ServiceError("PyHSS answered null to a subscriber creation")
        return created

    async def update_subscriber(self, subscriber_id: int, body: dict[str, Any]) -> None:
        if await self._object("PATCH", f"/subscriber/{subscriber_id}", body) is None:
            raise ServiceError(f"PyHSS lost subscriber {subscriber_id} during the update")

    async def delete_subscriber(self, subscriber_id: int) -> None:
        """Deleting one that is already gone is not an error (PyHSS answers null)."""
        await self._object("DELETE", f"/subscriber/{subscriber_id}")

    async def subscribers(self, page: int, page_size: int) -> list[dict[str, Any]]:
        answer = await self._request(
            "GET", "/subscriber/list", params={"page": page, "page_size": page_size}
        )
        return answer if isinstance(answer, list) else []

    async def _object(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        answer = await self._request(method, path, json=body)
        if answer is None:
            return None
        if not isinstance(answer, dict):
            raise ServiceError(f"PyHSS answered {method} {path} with {str(answer)[:200]}")
        return answer

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"PyHSS at {self.url} did not answer {method} {path} in time"
            ) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"PyHSS at {self.url} cannot be reached: {exc}") from exc
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = response.text[:300]
        if response.status_code == 200:
            return answer
        reason = _reason(answer)
        if response.status_code == 401:
            raise Unauthorized(f"PyHSS refused the Provisioning-Key ({reason})")
        if response.status_code == 400 and DUPLICATE_MARKER in reason:
            raise Duplicate(reason)
        if 400 <= response.status_code < 500:
            raise Rejected(f"PyHSS refused {method} {path}: HTTP {response.status_code} {reason}")
        raise ServiceError(f"PyHSS failed {method} {path}: HTTP {response.status_code} {reason}")


def _reason(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("reason") or answer.get("Result") or answer.get("result") or answer)
    return str(answer)[:300]
