"""Retry schedules and circuit policies from configuration (the rules themselves are
domain/retry.py and domain/circuit.py)."""

from __future__ import annotations

from datetime import timedelta

from opennsps.config import CircuitConfig, RetryConfig
from opennsps.domain.circuit import CircuitPolicy
from opennsps.domain.retry import RetrySchedule


def schedule_from(config: RetryConfig) -> RetrySchedule:
    return RetrySchedule(
        fast_attempts=config.fast_attempts,
        fast_first=timedelta(seconds=config.fast_first_seconds),
        fast_max=timedelta(seconds=config.fast_max_seconds),
        slow_steps=tuple(timedelta(seconds=s) for s in config.slow_steps_seconds),
        give_up_after=timedelta(seconds=config.give_up_after_seconds),
        jitter=config.jitter,
    )


def circuit_policy(config: CircuitConfig) -> CircuitPolicy:
    return CircuitPolicy(
        open_after_failures=config.open_after_failures,
        open_after=timedelta(seconds=config.open_after_seconds),
        probe_first=timedelta(seconds=config.probe_first_seconds),
        probe_max=timedelta(seconds=config.probe_max_seconds),
        enabled=config.enabled,
    )
