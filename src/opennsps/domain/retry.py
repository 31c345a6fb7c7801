"""When a failed delivery is tried again: a retry schedule is data, not code.

The default follows PortaOne's published NSPS behaviour: a fast phase of 100 attempts a few
minutes apart, then a slow phase of 1 h, 2 h, 4 h, 8 h, 16 h, then every 24 h, until about
30 days after the first attempt; then the delivery is dead.

Note on the published figures: "100 attempts, 1-10 min apart" cannot add up to "about
24 h" (at most 100 x 10 min = 16.7 h). The fast phase here doubles from 1 min up to
10 min and stays there, which totals about 16 h; the slow phase then covers the month.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class RetrySchedule:
    fast_attempts: int = 100
    fast_first: timedelta = MINUTE
    fast_max: timedelta = 10 * MINUTE
    slow_steps: tuple[timedelta, ...] = (HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 16 * HOUR, 24 * HOUR)
    give_up_after: timedelta = timedelta(days=30)
    jitter: float = 0.2  # each delay is spread by up to +/-20 % so failures do not synchronise
    _rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.fast_attempts < 0 or not 0 <= self.jitter < 1:
            raise ValueError("fast_attempts must be >= 0 and jitter in [0, 1)")
        if not self.slow_steps:
            raise ValueError("slow_steps needs at least one delay")

    def base_delay(self, failures: int) -> timedelta:
        """The delay before the next attempt after `failures` failed ones (no jitter)."""
        if failures < 1:
            raise ValueError("failures starts at 1")
        if failures <= self.fast_attempts:
            doubling: timedelta = self.fast_first * (2 ** min(failures - 1, 30))
            return min(doubling, self.fast_max)
        slow = failures - self.fast_attempts - 1
        return self.slow_steps[min(slow, len(self.slow_steps) - 1)]

    def next_delay(
        self, failures: int, elapsed: timedelta, at_least: timedelta | None = None
    ) -> timedelta | None:
        """The delay before trying again, or None when the delivery should be given up.

        `elapsed` is the time since the first attempt; `at_least` honours a server's
        Retry-After.
        """
        if elapsed >= self.give_up_after:
            return None
        base = self.base_delay(failures)
        spread = 1 + self._rng.uniform(-self.jitter, self.jitter)
        delay = base * spread
        if at_least is not None and delay < at_least:
            delay = at_least
        if elapsed + delay > self.give_up_after:
            return None
        return delay


NSPS_DEFAULT = RetrySchedule()
