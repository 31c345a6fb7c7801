"""A rate limit as a generic cell rate algorithm: one timestamp per handler (the
theoretical arrival time, TAT) says how many requests may go now. Pure: the store keeps
the TAT under a row lock, so every process shares one limit."""

from __future__ import annotations

import math
from datetime import datetime, timedelta


def allowance(tat: datetime, now: datetime, per_second: float, burst: int) -> int:
    """How many requests may go at `now`."""
    ahead = max((tat - now).total_seconds(), 0.0)
    return max(0, math.floor(burst - ahead * per_second + 1e-9))


def advanced(tat: datetime, now: datetime, sent: int, per_second: float) -> datetime:
    """The TAT once `sent` requests went at `now`."""
    return max(tat, now) + timedelta(seconds=sent / per_second)
