"""Handler rate limits in the database (the rule is domain/rate_limit.py): each claim
takes what the handler's limit allows under a row lock, so every process shares it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from opennsps.config import RateLimitConfig
from opennsps.domain.rate_limit import advanced, allowance
from opennsps.store.circuits import upsert
from opennsps.store.schema import handler_rate_limits

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class RateBudget:
    """What one claim transaction may send to one rate-limited handler."""

    def __init__(
        self, connection: Connection, handler_id: str, limit: RateLimitConfig, now: datetime
    ) -> None:
        self.connection = connection
        self.handler_id = handler_id
        self.limit = limit
        self.now = now
        dialect = connection.dialect.name
        connection.execute(
            upsert(dialect)(handler_rate_limits)
            .values(handler_id=handler_id, tat=LONG_AGO)
            .on_conflict_do_nothing(index_elements=["handler_id"])
        )
        query = select(handler_rate_limits.c.tat).where(
            handler_rate_limits.c.handler_id == handler_id
        )
        if dialect == "postgresql":
            query = query.with_for_update()
        self.tat: datetime = connection.execute(query).scalar_one()

    def allowed(self) -> int:
        return allowance(self.tat, self.now, self.limit.per_second, self.limit.allowed_burst)

    def spend(self, sent: int) -> None:
        if sent <= 0:
            return
        self.connection.execute(
            update(handler_rate_limits)
            .where(handler_rate_limits.c.handler_id == self.handler_id)
            .values(tat=advanced(self.tat, self.now, sent, self.limit.per_second))
        )
