"""The circuit's and the rate limit's rules (domain/circuit.py, domain/rate_limit.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from opennsps.domain.circuit import (
    CLOSED,
    Circuit,
    CircuitPolicy,
    CircuitState,
    Signal,
    after,
)
from opennsps.domain.deliveries import DeliveryState, next_step
from opennsps.domain.outcomes import Outcome, OutcomeKind
from opennsps.domain.rate_limit import advanced, allowance
from opennsps.domain.retry import RetrySchedule

NOW = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = CircuitPolicy(
    open_after_failures=3, open_after=timedelta(0), probe_first=timedelta(seconds=5)
)
FAIL = Signal(healthy=False, probe=False, error="HTTP 503")
OK = Signal(healthy=True, probe=False, error=None)


def test_consecutive_failures_open_the_circuit_and_a_success_in_between_resets_them() -> None:
    assert after(CLOSED, [FAIL, FAIL, OK, FAIL, FAIL], POLICY, NOW) == Circuit(
        CircuitState.CLOSED, 2, NOW, last_error="HTTP 503"
    )
    opened = after(CLOSED, [FAIL, FAIL, FAIL], POLICY, NOW)
    assert opened.state is CircuitState.OPEN and opened.holding
    assert opened.since == NOW and opened.probe_at == NOW + timedelta(seconds=5)
    assert opened.last_error == "HTTP 503"


def test_failed_probes_reopen_at_growing_intervals_up_to_the_maximum() -> None:
    circuit = after(CLOSED, [FAIL] * 3, POLICY, NOW)
    probe_failed = Signal(healthy=False, probe=True, error="refused")
    intervals = []
    for _ in range(6):
        circuit = after(circuit, [probe_failed], POLICY, NOW)
        assert circuit.state is CircuitState.OPEN and circuit.since == NOW
        intervals.append(circuit.probe_interval)
    assert intervals == [timedelta(seconds=s) for s in (10, 20, 40, 60, 60, 60)]
    assert circuit.last_error == "refused"


def test_a_successful_probe_or_any_success_closes_it() -> None:
    opened = after(CLOSED, [FAIL] * 3, POLICY, NOW)
    later = NOW + timedelta(minutes=1)
    for signal in (Signal(True, True, None), OK):
        closed = after(opened, [signal], POLICY, later)
        assert closed == Circuit(CircuitState.CLOSED, 0, None, later)


def test_a_burst_of_failures_shorter_than_open_after_does_not_open_it() -> None:
    policy = CircuitPolicy(open_after_failures=3, open_after=timedelta(seconds=30))
    burst = after(CLOSED, [FAIL] * 20, policy, NOW)
    assert burst.state is CircuitState.CLOSED and burst.failing_since == NOW
    still = after(burst, [FAIL], policy, NOW + timedelta(seconds=29))
    assert still.state is CircuitState.CLOSED
    assert after(still, [FAIL], policy, NOW + timedelta(seconds=30)).state is CircuitState.OPEN
    # a success in between starts the count and the clock again
    again = after(burst, [OK, FAIL, FAIL, FAIL], policy, NOW + timedelta(seconds=40))
    assert again.state is CircuitState.CLOSED and again.failing_since == NOW + timedelta(seconds=40)


def test_failures_while_open_are_counted_without_moving_the_probe() -> None:
    opened = after(CLOSED, [FAIL] * 3, POLICY, NOW)
    more = after(opened, [FAIL, FAIL], POLICY, NOW + timedelta(seconds=1))
    assert more.state is CircuitState.OPEN and more.failures == 5
    assert more.probe_at == opened.probe_at


def test_a_disabled_circuit_counts_but_never_opens() -> None:
    policy = CircuitPolicy(open_after_failures=1, enabled=False)
    assert after(CLOSED, [FAIL] * 10, policy, NOW).state is CircuitState.CLOSED


def test_a_failed_probe_does_not_burn_the_retry_budget_but_the_delivery_still_dies_of_age() -> None:
    schedule = RetrySchedule(give_up_after=timedelta(days=30), jitter=0)
    failed = Outcome(OutcomeKind.RETRY, "HTTP 503")
    young = next_step(
        failed,
        failures_before=7,
        first_attempt_at=NOW,
        now=NOW + timedelta(days=1),
        schedule=schedule,
        counted=False,
    )
    assert (young.state, young.failures, young.next_attempt_at) == (
        DeliveryState.PENDING,
        7,
        NOW + timedelta(days=1),
    )
    old = next_step(
        failed,
        failures_before=7,
        first_attempt_at=NOW,
        now=NOW + timedelta(days=30),
        schedule=schedule,
        counted=False,
    )
    assert old.state is DeliveryState.DEAD and old.failures == 7


def test_the_rate_limit_allows_a_burst_then_its_rate() -> None:
    tat = NOW - timedelta(days=1)
    assert allowance(tat, NOW, per_second=10, burst=3) == 3
    tat = advanced(tat, NOW, 3, per_second=10)
    assert allowance(tat, NOW, 10, 3) == 0
    assert allowance(tat, NOW + timedelta(seconds=0.1), 10, 3) == 1
    assert allowance(tat, NOW + timedelta(seconds=1), 10, 3) == 3  # never more than the burst


@given(
    per_second=st.floats(min_value=0.5, max_value=500),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=0, max_value=100)),
        max_size=60,
    ),
)
def test_no_sequence_of_claims_sends_more_than_burst_plus_rate_times_time(
    per_second: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    tat, now, sent = NOW - timedelta(days=1), NOW, 0
    for pause, wanted in steps:
        now += timedelta(seconds=pause)
        take = min(wanted, allowance(tat, now, per_second, burst))
        tat = advanced(tat, now, take, per_second)
        sent += take
    elapsed = (now - NOW).total_seconds()
    assert sent <= burst + elapsed * per_second + 1e-6
