"""Failed console logins, counted per key (a user name, a client address) in the store:
after too many in a short time, further attempts are refused for a while. Every process
on the database counts together, so two processes do not double the allowance.

The client address is the one the HTTP server gives: behind a reverse proxy, list the
proxy in `server.trusted_proxies` so that it is the address the proxy saw (uvicorn reads
X-Forwarded-For from trusted peers only).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select

from opennsps.store.schema import console_login_failures

MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
KEY_CHARS = 300


class LoginThrottle:
    def __init__(
        self,
        engine: Engine,
        kind: str,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.kind = kind
        self.max_failures = max_failures
        self.window = timedelta(seconds=window)
        self.clock = clock

    def _key(self, key: str) -> str:
        return f"{self.kind}:{key}"[:KEY_CHARS]

    def wait_seconds(self, key: str) -> float:
        """How long `key` must wait before trying again (0 when it may try)."""
        now = self.clock()
        recent = (
            select(console_login_failures.c.failed_at)
            .where(console_login_failures.c.key == self._key(key))
            .where(console_login_failures.c.failed_at > now - self.window)
            .order_by(console_login_failures.c.failed_at.desc())
            .limit(self.max_failures)
            .subquery()
        )
        with self.engine.connect() as connection:
            count, oldest = connection.execute(
                select(func.count(), func.min(recent.c.failed_at))
            ).one()
        if count < self.max_failures:
            return 0.0
        waited: timedelta = oldest + self.window - now
        return max(0.0, waited.total_seconds())

    def failed(self, key: str) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            # bounded storage: what is out of every window is forgotten
            connection.execute(
                delete(console_login_failures).where(
                    console_login_failures.c.failed_at <= now - self.window
                )
            )
            connection.execute(
                insert(console_login_failures).values(key=self._key(key), failed_at=now)
            )

    def succeeded(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(console_login_failures).where(console_login_failures.c.key == self._key(key))
            )
