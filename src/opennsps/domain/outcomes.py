"""What a connector's answer means for a delivery (the NSPS contract's status codes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

REJECTED_STATUSES = frozenset({400, 404, 405, 409, 410, 422})
CONFIGURATION_STATUSES = frozenset({401, 403})
RETRY_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER = timedelta(days=1)


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    WAITING = "waiting"  # accepted; the connector reports the result later (202 IN_PROGRESS)
    REJECTED = "rejected"  # the connector refused it for good: not retried
    RETRY = "retry"
    SKIPPED = "skipped"  # the handler's filter is false for this event: nothing was sent


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str
    configuration_problem: bool = False
    retry_after: timedelta | None = None


def classify(
    status: int | None,
    *,
    body_status: str | None = None,
    error: str | None = None,
    retry_after: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """The outcome of one attempt: an HTTP status, or no status with the transport error."""
    if status is None:
        return Outcome(OutcomeKind.RETRY, error or "no answer")
    if 200 <= status < 300:
        if status == 202 and (body_status or "").upper() == "IN_PROGRESS":
            return Outcome(OutcomeKind.WAITING, "accepted; waiting for an asynchronous status")
        return Outcome(OutcomeKind.DELIVERED, f"HTTP {status}")
    if status in CONFIGURATION_STATUSES:
        # A wrong token must never silently drop provisioning: retry, and say so.
        return Outcome(
            OutcomeKind.RETRY,
            f"HTTP {status}: the connector refused our credentials (check the handler's token)",
            configuration_problem=True,
        )
    if status in RETRY_STATUSES or status >= 500:
        return Outcome(
            OutcomeKind.RETRY, f"HTTP {status}", retry_after=parse_retry_after(retry_after, now)
        )
    if 300 <= status < 400:
        return Outcome(
            OutcomeKind.RETRY,
            f"HTTP {status}: redirects are not followed (check the handler's URL)",
            configuration_problem=True,
        )
    if status in REJECTED_STATUSES or 400 <= status < 500:
        return Outcome(OutcomeKind.REJECTED, f"HTTP {status}")
    return Outcome(OutcomeKind.RETRY, f"HTTP {status}")


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """Retry-After as seconds or an HTTP date; capped at a day, None when absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        delay = timedelta(seconds=int(text))
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delay = moment - (now or datetime.now(UTC))
    if delay < timedelta(0):
        return timedelta(0)
    return min(delay, MAX_RETRY_AFTER)
