"""The retry schedule and the routing patterns (pure rules)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opennsps.domain.retry import HOUR, MINUTE, NSPS_DEFAULT, RetrySchedule
from opennsps.domain.routing import PatternError, Subscription, matches, route


def test_the_default_fast_phase_doubles_from_one_to_ten_minutes() -> None:
    delays = [NSPS_DEFAULT.base_delay(n) for n in range(1, 7)]
    assert delays == [MINUTE, 2 * MINUTE, 4 * MINUTE, 8 * MINUTE, 10 * MINUTE, 10 * MINUTE]
    assert NSPS_DEFAULT.base_delay(100) == 10 * MINUTE


def test_then_the_slow_phase_and_daily_attempts() -> None:
    slow = [NSPS_DEFAULT.base_delay(n) for n in range(101, 109)]
    assert slow == [HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 16 * HOUR, 24 * HOUR, 24 * HOUR, 24 * HOUR]


def test_a_full_run_lasts_about_a_month_then_gives_up() -> None:
    schedule = RetrySchedule(jitter=0.0)
    elapsed, failures = timedelta(0), 0
    while True:
        failures += 1
        delay = schedule.next_delay(failures, elapsed)
        if delay is None:
            break
        elapsed += delay
        assert failures < 200
    fast_phase = sum((schedule.base_delay(n) for n in range(1, 101)), timedelta(0))
    assert timedelta(hours=15) < fast_phase < timedelta(hours=17)
    assert timedelta(days=29) <= elapsed <= timedelta(days=30)


@given(st.integers(min_value=1, max_value=500), st.floats(min_value=0, max_value=29.9))
def test_jitter_stays_within_twenty_percent(failures: int, days: float) -> None:
    schedule = RetrySchedule(_rng=random.Random(failures))
    delay = schedule.next_delay(failures, timedelta(days=days))
    if delay is not None:
        base = schedule.base_delay(failures)
        assert base * 0.8 <= delay <= base * 1.2
        assert timedelta(days=days) + delay <= schedule.give_up_after


def test_retry_after_is_honoured() -> None:
    delay = RetrySchedule(jitter=0).next_delay(1, timedelta(0), at_least=timedelta(minutes=7))
    assert delay == timedelta(minutes=7)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("Subscriber/Created", "Subscriber/Created", True),
        ("Subscriber/Created", "Subscriber/Updated", False),
        ("SIM/*", "SIM/Replaced", True),
        ("SIM/*", "Subscriber/Created", False),
        ("*", "Custom/NextMonth", True),
        ("Account/*", "Account/Service/QuotaExceeded", True),
        ("*/Deleted", "DID/Deleted", True),
        ("Sub*", "Subscriber/Updated", True),
    ],
)
def test_patterns(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


def test_bad_patterns_are_refused() -> None:
    for bad in ("", "SIM/(.*)", "a b"):
        with pytest.raises(PatternError):
            matches(bad, "SIM/Replaced")


def test_route_orders_by_priority() -> None:
    hss = Subscription("hss", 1, ("Subscriber/*", "SIM/*"))
    crm = Subscription("crm", 5, ("*",))
    radius = Subscription("radius", 2, ("Subscriber/*",))
    assert [s.handler_id for s in route("Subscriber/Updated", [crm, radius, hss])] == [
        "hss",
        "radius",
        "crm",
    ]
    assert [s.handler_id for s in route("Invoice/Created", [crm, radius, hss])] == ["crm"]
