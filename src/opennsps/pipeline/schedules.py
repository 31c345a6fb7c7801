"""Retry schedules from configuration (the schedule itself is domain/retry.py)."""

from __future__ import annotations

from datetime import timedelta

from opennsps.config import RetryConfig
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
