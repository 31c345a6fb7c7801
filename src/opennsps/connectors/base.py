"""What every connector is to the pipeline: something that takes one NSPS Event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opennsps.domain.outcomes import Outcome

EXCERPT_BYTES = 4096


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None  # HTTP status, or a script's exit code
    response_excerpt: str  # at most EXCERPT_BYTES of the answer
    error: str | None
    duration_ms: float


class Connector(Protocol):
    async def deliver(
        self, event: dict[str, Any], *, request_id: str | None, unique_id: str | None
    ) -> AttemptResult: ...

    async def close(self) -> None: ...
