from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opennsps.domain.deliveries import DeliveryState, next_step
from opennsps.domain.outcomes import Outcome, OutcomeKind
from opennsps.domain.retry import RetrySchedule
from opennsps.pipeline.dispatch import redact

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SCHEDULE = RetrySchedule(jitter=0)


def step(kind: OutcomeKind, failures: int = 0, since: timedelta = timedelta(0), **outcome: object):  # type: ignore[no-untyped-def]
    return next_step(
        Outcome(kind, "why", **outcome),  # type: ignore[arg-type]
        failures_before=failures,
        first_attempt_at=NOW - since,
        now=NOW,
        schedule=SCHEDULE,
    )


def test_final_outcomes() -> None:
    assert step(OutcomeKind.DELIVERED).state is DeliveryState.DELIVERED
    assert step(OutcomeKind.WAITING).state is DeliveryState.WAITING
    rejected = step(OutcomeKind.REJECTED)
    assert rejected.state is DeliveryState.REJECTED and rejected.next_attempt_at is None


def test_retry_follows_the_schedule_and_honours_retry_after() -> None:
    first = step(OutcomeKind.RETRY)
    assert first.state is DeliveryState.PENDING
    assert first.failures == 1
    assert first.next_attempt_at == NOW + timedelta(minutes=1)
    later = step(OutcomeKind.RETRY, retry_after=timedelta(minutes=30))
    assert later.next_attempt_at == NOW + timedelta(minutes=30)
    slow = step(OutcomeKind.RETRY, failures=100, since=timedelta(hours=17))
    assert slow.next_attempt_at == NOW + timedelta(hours=1)


def test_gives_up_after_about_a_month() -> None:
    dead = step(OutcomeKind.RETRY, failures=120, since=timedelta(days=29, hours=12))
    assert dead.state is DeliveryState.DEAD
    assert "gave up after 121 failed attempts" in dead.reason


def test_redaction_of_tokens_and_url_credentials() -> None:
    text = "POST http://user:pa55@host/x failed; Authorization: Bearer s3cret-token"
    shown = redact(text, ("s3cret-token",))
    assert shown is not None
    assert "pa55" not in shown and "s3cret-token" not in shown
    assert "http://[redacted]@host/x" in shown
