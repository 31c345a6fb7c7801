"""Failed console logins, counted per key (a user name, a client address): after too many
in a short time, further attempts are refused for a while (per process, in memory)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
MAX_KEYS = 10_000


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def wait_seconds(self, key: str) -> float:
        """How long `key` must wait before trying again (0 when it may try)."""
        now = self.clock()
        recent = self._recent(key, now)
        if len(recent) < self.max_failures:
            return 0.0
        return recent[0] + self.window - now

    def failed(self, key: str) -> None:
        now = self.clock()
        self._recent(key, now).append(now)
        if len(self._failures) > MAX_KEYS:  # bounded memory: forget the quietest keys
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[
                : len(self._failures) - MAX_KEYS
            ]:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times
