"""A delivery's life: its states, and the one place where an attempt's outcome decides
what happens next (delivered, waiting, rejected, retried at a time, or dead)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args

from opennsps.domain.outcomes import Outcome, OutcomeKind
from opennsps.domain.retry import RetrySchedule

# What the API and the CLI filter on: an event's derived state, a delivery's state.
EventState = Literal["unrouted", "pending", "waiting", "delivered", "rejected", "dead"]
EVENT_STATES: tuple[str, ...] = get_args(EventState)
DeliveryStateName = Literal[
    "pending", "in_flight", "waiting", "delivered", "rejected", "dead", "skipped"
]
DELIVERY_STATES: tuple[str, ...] = get_args(DeliveryStateName)


class DeliveryState(StrEnum):
    PENDING = "pending"  # due now or at next_attempt_at (a retry)
    IN_FLIGHT = "in_flight"  # claimed by a worker under a lease
    WAITING = "waiting"  # the connector accepted it; its status comes later
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the connector refused it for good
    DEAD = "dead"  # retried until the schedule gave up
    SKIPPED = "skipped"  # the handler's filter was false for the event: nothing was sent


# States that hold back the later deliveries of the same handler and entity.
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)

# The provisioning status PortaBilling is told for each state a delivery reaches.
ESPF_STATUS = {
    DeliveryState.WAITING: "IN_PROGRESS",
    DeliveryState.DELIVERED: "OK",
    DeliveryState.PENDING: "RETRY",
    DeliveryState.REJECTED: "FAILED",
    DeliveryState.DEAD: "FAILED",
    DeliveryState.SKIPPED: "OK",  # only when the handler's filter_status says so
}


@dataclass(frozen=True)
class NextStep:
    state: DeliveryState
    next_attempt_at: datetime | None
    failures: int
    reason: str


def next_step(
    outcome: Outcome,
    *,
    failures_before: int,
    first_attempt_at: datetime,
    now: datetime,
    schedule: RetrySchedule,
    counted: bool = True,
) -> NextStep:
    """What an attempt's outcome makes of its delivery. A failure not `counted` (a circuit's
    probe) leaves the retry schedule where it was: due again at once (it waits for the
    circuit), dead only once the schedule's give-up age has passed."""
    if outcome.kind is OutcomeKind.DELIVERED:
        return NextStep(DeliveryState.DELIVERED, None, failures_before, outcome.reason)
    if outcome.kind is OutcomeKind.WAITING:
        return NextStep(DeliveryState.WAITING, None, failures_before, outcome.reason)
    if outcome.kind is OutcomeKind.REJECTED:
        return NextStep(DeliveryState.REJECTED, None, failures_before, outcome.reason)
    if outcome.kind is OutcomeKind.SKIPPED:
        return NextStep(DeliveryState.SKIPPED, None, failures_before, outcome.reason)
    if not counted:
        if now - first_attempt_at >= schedule.give_up_after:
            given_up = f"{outcome.reason}; gave up after {schedule.give_up_after} of retries"
            return NextStep(DeliveryState.DEAD, None, failures_before, given_up)
        return NextStep(DeliveryState.PENDING, now, failures_before, outcome.reason)
    failures = failures_before + 1
    delay = schedule.next_delay(failures, now - first_attempt_at, outcome.retry_after)
    if delay is None:
        given_up = f"{outcome.reason}; gave up after {failures} failed attempts"
        return NextStep(DeliveryState.DEAD, None, failures, given_up)
    return NextStep(DeliveryState.PENDING, now + delay, failures, outcome.reason)
