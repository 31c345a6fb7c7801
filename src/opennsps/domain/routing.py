"""Which handlers an event goes to: event-type patterns, exact or with `*` wildcards."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

EVENT_PATTERN_TEXT = r"^[A-Za-z0-9_*/.-]+$"
_PATTERN_TEXT = re.compile(EVENT_PATTERN_TEXT)


class PatternError(ValueError):
    pass


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    if not pattern or not _PATTERN_TEXT.match(pattern):
        raise PatternError(
            f"event pattern {pattern!r} may only hold letters, digits, '/', '_', '-', '.', '*'"
        )
    # `*` matches any text, including further `/` levels: `Account/*` covers
    # `Account/Service/QuotaExceeded`.
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def validate_pattern(pattern: str) -> str:
    _compiled(pattern)
    return pattern


def matches(pattern: str, event_type: str) -> bool:
    return _compiled(pattern).match(event_type) is not None


@dataclass(frozen=True)
class Subscription:
    """A handler's interest: its id, priority (1 runs first) and event patterns."""

    handler_id: str
    priority: int
    patterns: tuple[str, ...]

    def wants(self, event_type: str) -> bool:
        return any(matches(pattern, event_type) for pattern in self.patterns)


def route(event_type: str, subscriptions: list[Subscription]) -> list[Subscription]:
    """The subscriptions that want this event type, by priority then id."""
    wanted = [s for s in subscriptions if s.wants(event_type)]
    return sorted(wanted, key=lambda s: (s.priority, s.handler_id))
