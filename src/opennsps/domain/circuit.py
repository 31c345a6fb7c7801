"""A handler's circuit: closed (deliveries go one by one), open (they wait together while
single probe attempts, at growing intervals, find out when the connector is back), or
half-open (a probe is under way). Pure: the store keeps the state, this decides it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class CircuitPolicy:
    open_after_failures: int = 5
    # ...and only once they have gone on this long: a few events failing together (each
    # holding its entity's later ones back) is not an outage.
    open_after: timedelta = timedelta(seconds=30)
    probe_first: timedelta = timedelta(seconds=5)
    probe_max: timedelta = timedelta(seconds=60)
    enabled: bool = True


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # consecutive failed attempts
    failing_since: datetime | None = None  # the first of them
    since: datetime | None = None  # when the state last changed
    probe_at: datetime | None = None  # when open: the next probe is due
    probe_interval: timedelta | None = None
    last_error: str | None = None

    @property
    def holding(self) -> bool:
        """Its deliveries wait (no attempts but the probe)."""
        return self.state is not CircuitState.CLOSED


CLOSED = Circuit()


@dataclass(frozen=True)
class Signal:
    """What one finished attempt says about its connector's health."""

    healthy: bool
    probe: bool
    error: str | None


def after(circuit: Circuit, signals: list[Signal], policy: CircuitPolicy, now: datetime) -> Circuit:
    """The circuit once these attempts (in the order they finished) are counted."""
    for signal in signals:
        circuit = _after_one(circuit, signal, policy, now)
    return circuit


def _after_one(circuit: Circuit, signal: Signal, policy: CircuitPolicy, now: datetime) -> Circuit:
    if signal.healthy:
        if circuit.state is CircuitState.CLOSED:
            return replace(circuit, failures=0, failing_since=None)
        return closed(now)
    failing = replace(
        circuit,
        failures=circuit.failures + 1,
        failing_since=circuit.failing_since or now,
        last_error=signal.error,
    )
    if signal.probe:
        interval = min((circuit.probe_interval or policy.probe_first) * 2, policy.probe_max)
        return replace(
            failing, state=CircuitState.OPEN, probe_at=now + interval, probe_interval=interval
        )
    if circuit.holding or not policy.enabled:
        return failing
    assert failing.failing_since is not None
    if (
        failing.failures >= policy.open_after_failures
        and now - failing.failing_since >= policy.open_after
    ):
        interval = policy.probe_first
        return replace(
            failing,
            state=CircuitState.OPEN,
            since=now,
            probe_at=now + interval,
            probe_interval=interval,
        )
    return failing


def closed(now: datetime) -> Circuit:
    return Circuit(CircuitState.CLOSED, 0, None, now)
