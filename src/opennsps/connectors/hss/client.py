"""PyHSS's provisioning API, with its quirks absorbed (shared/reference/pyhss-api.md),
checked against the real PyHSS 2.0.0 (tests/connectors/test_pyhss_contract.py):
- a lookup of nothing, and several internal errors, answer 200 `null`;
- a duplicate answers 400 with an integrity error, worded by PyHSS's database;
- a database operational error (e.g. "database is locked") answers 400 and is temporary;
- writes may need the `Provisioning-Key` header.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from opennsps.connector.errors import Rejected, ServiceError, Unauthorized, Unavailable
from opennsps.http_client import LazySession

# How each database PyHSS runs on words a unique-key violation: SQLite, PostgreSQL, MySQL.
DUPLICATE_MARKERS = (
    "UNIQUE constraint failed",
    "duplicate key value violates unique constraint",
    "Duplicate entry",
)
OPERATIONAL_MARKER = "database operational error"
MAX_CONNECTIONS = 16  # to one PyHSS: a handler's max_concurrency is 16 by default


class Duplicate(Exception):
    """PyHSS already holds an object with this unique key."""


class PyHssClient:
    def __init__(
        self,
        url: str,
        *,
        provisioning_key: str | None,
        timeout: float,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        headers = {"Provisioning-Key": provisioning_key} if provisioning_key else {}
        self.url = url.rstrip("/")
        # The project's one outbound HTTP client (http_client.py): the same limits, TLS
        # settings and answer cap as every other call OpenNSPS makes.
        self._http = LazySession(
            timeout=timeout, max_connections=max_connections, verify_tls=True, headers=headers
        )

    async def close(self) -> None:
        await self._http.close()

    async def auc_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        return await self._object("GET", f"/auc/imsi/{imsi}")

    async def subscriber_by_imsi(self, imsi: str) -> dict[str, Any] | None:
        return await self._object("GET", f"/subscriber/imsi/{imsi}")

    async def create_subscriber(self, body: dict[str, Any]) -> dict[str, Any]:
        """Raises Duplicate when the IMSI has a subscriber already. PyHSS on SQLite says so
        with a 400; on PostgreSQL it answers 200 `null` (its error handler does not know
        psycopg's wording), so a null answer is checked by reading the IMSI back."""
        created = await self._object("PUT", "/subscriber/", body)
        if created is not None:
            return created
        imsi = str(body.get("imsi"))
        if await self.subscriber_by_imsi(imsi) is not None:
            raise Duplicate(f"PyHSS already holds a subscriber for IMSI {imsi}")
        raise _null_answer("PUT /subscriber/", body)

    async def update_subscriber(self, subscriber_id: int, changes: dict[str, Any]) -> None:
        """PATCH only `changes` (PyHSS's PATCH is partial). PyHSS answers an update that
        failed inside it with 200 `null`: tell a subscriber removed meanwhile from that."""
        path = f"/subscriber/{subscriber_id}"
        if await self._object("PATCH", path, changes) is not None:
            return
        if await self._object("GET", path) is None:
            raise ServiceError(
                f"PyHSS answered PATCH {path} with null: subscriber {subscriber_id} was "
                "removed meanwhile (the retry creates it again)"
            )
        raise _null_answer(f"PATCH {path}", changes)

    async def delete_subscriber(self, subscriber_id: int) -> None:
        """Deleting one that is already gone is not an error (PyHSS answers null)."""
        await self._object("DELETE", f"/subscriber/{subscriber_id}")

    async def subscribers(self, page: int, page_size: int) -> list[dict[str, Any]]:
        answer = await self._request(
            "GET", "/subscriber/list", params={"page": str(page), "page_size": str(page_size)}
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

    async def _request(
        self,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            answer = await self._http.send(method, f"{self.url}{path}", json=json, params=params)
        except TimeoutError as exc:
            raise Unavailable(
                f"PyHSS at {self.url} did not answer {method} {path} in time"
            ) from exc
        except aiohttp.ClientError as exc:
            raise Unavailable(f"PyHSS at {self.url} cannot be reached: {exc}") from exc
        status, content = answer.status, answer.content
        try:
            parsed = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            parsed = content[:300].decode("utf-8", errors="replace")
        if status == 200:
            return parsed
        reason = _reason(parsed)
        if status == 401:
            raise Unauthorized(f"PyHSS refused the Provisioning-Key ({reason})")
        if status == 400 and any(m in reason for m in DUPLICATE_MARKERS):
            raise Duplicate(reason)
        if status == 400 and OPERATIONAL_MARKER in reason:
            raise Unavailable(f"PyHSS's database failed {method} {path} for now: {reason}")
        if 400 <= status < 500:
            raise Rejected(f"PyHSS refused {method} {path}: HTTP {status} {reason}")
        raise ServiceError(f"PyHSS failed {method} {path}: HTTP {status} {reason}")


def _null_answer(call: str, body: dict[str, Any]) -> ServiceError:
    return ServiceError(
        f"PyHSS answered {call} ({', '.join(sorted(body))}) with null, its answer to an "
        "error inside it: see PyHSS's API log"
    )


def _reason(answer: Any) -> str:
    """PyHSS's reason, without the SQL statement and parameters its database errors append."""
    if isinstance(answer, dict):
        text = str(answer.get("reason") or answer.get("Result") or answer.get("result") or answer)
        return text.split("\n[SQL:", 1)[0][:500]
    return str(answer)[:300]
