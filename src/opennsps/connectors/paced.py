"""A rate-limited handler's connector, paced in this process: each request waits for its
turn right before it is sent, so the time enrichment takes between the claim and the
request cannot bunch requests above the limit. (The claim takes the limit from the store
for every process; this keeps one process's requests spread as the limit says.)"""

from __future__ import annotations

import asyncio
from typing import Any

from opennsps.config import RateLimitConfig
from opennsps.connectors.base import AttemptResult, Connector


class PacedConnector:
    def __init__(self, inner: Connector, limit: RateLimitConfig) -> None:
        self.inner = inner
        self.interval = 1.0 / limit.per_second
        self.allowance = (limit.allowed_burst - 1) * self.interval
        self._tat = 0.0  # the theoretical arrival time of the next request (loop clock)
        self.status_group: str | None = getattr(inner, "status_group", None)
        self.pb_data_parts: tuple[str, ...] | None = getattr(inner, "pb_data_parts", None)

    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult:
        await self._turn()
        return await self.inner.deliver(event, request_id=request_id, unique_id=unique_id)

    async def _turn(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(self._tat, now)
        self._tat = slot + self.interval
        wait = slot - self.allowance - now
        if wait > 0:
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self.inner.close()
