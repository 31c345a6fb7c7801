"""The status outbox: provisioning statuses waiting to be reported to PortaBilling.

A report is written in the same transaction as the outcome that caused it, and leaves
the outbox only once PortaBilling took it (or refused it for good, with the reason kept).
Reports for one account and group go out in the order they were made, so the status
PortaBilling ends up with is the latest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update

from opennsps.store.deliveries import StatusReport, add_status_reports
from opennsps.store.engine import write_transaction
from opennsps.store.predecessors import open_predecessor
from opennsps.store.schema import status_outbox

OPEN = ("pending", "in_flight")


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    source: str
    i_account: int
    group_name: str
    status: str
    error: str | None
    attempts: int
    created_at: datetime


class StatusOutbox:
    """`engine` takes new reports (durably); `work_engine` (by default the same) the
    sender's bookkeeping, whose loss only means a report is sent again."""

    def __init__(self, engine: Engine, *, work_engine: Engine | None = None) -> None:
        self.engine = engine
        self.work_engine = work_engine or engine
        self.dialect = engine.dialect.name

    def add(self, reports: Sequence[StatusReport], now: datetime) -> None:
        with write_transaction(self.engine) as connection:
            add_status_reports(connection, reports, now)

    def claim(
        self, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[OutboxEntry]:
        o = status_outbox.alias("o")
        blocked = open_predecessor(status_outbox, o, ("source", "i_account", "group_name"), OPEN)
        query = (
            select(o.c.id)
            .where(o.c.state == "pending", o.c.next_attempt_at <= now, ~blocked)
            .order_by(o.c.next_attempt_at, o.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=o)
        with write_transaction(self.work_engine) as connection:
            ids = connection.execute(query).scalars().all()
            if not ids:
                return []
            connection.execute(
                update(status_outbox)
                .where(status_outbox.c.id.in_(ids))
                .values(
                    state="in_flight",
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    attempts=status_outbox.c.attempts + 1,
                )
            )
            rows = connection.execute(
                select(
                    status_outbox.c.id,
                    status_outbox.c.source,
                    status_outbox.c.i_account,
                    status_outbox.c.group_name,
                    status_outbox.c.status,
                    status_outbox.c.error,
                    status_outbox.c.attempts,
                    status_outbox.c.created_at,
                )
                .where(status_outbox.c.id.in_(ids))
                .order_by(status_outbox.c.id)
            ).all()
        return [OutboxEntry(*row) for row in rows]

    def sent(self, entry_id: int, now: datetime) -> None:
        self._finish(entry_id, state="sent", sent_at=now, last_error=None)

    def refused(self, entry_id: int, reason: str, now: datetime) -> None:
        """PortaBilling will never take this report (e.g. the account is gone)."""
        self._finish(entry_id, state="refused", sent_at=now, last_error=reason[:4000])

    def retry_at(self, entry_id: int, at: datetime, reason: str) -> None:
        self._finish(entry_id, state="pending", next_attempt_at=at, last_error=reason[:4000])

    def _finish(self, entry_id: int, **values: object) -> None:
        with write_transaction(self.work_engine) as connection:
            connection.execute(
                update(status_outbox)
                .where(status_outbox.c.id == entry_id)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )

    def release(self, owner: str, now: datetime) -> int:
        with write_transaction(self.work_engine) as connection:
            return connection.execute(
                update(status_outbox)
                .where(status_outbox.c.state == "in_flight", status_outbox.c.lease_owner == owner)
                .values(state="pending", lease_owner=None, lease_expires_at=None)
            ).rowcount

    def extend_leases(self, owner: str, ids: list[int], until: datetime) -> None:
        """Keep the reports still being sent claimed (another process takes over a claim
        only once its lease has run out)."""
        with write_transaction(self.work_engine) as connection:
            connection.execute(
                update(status_outbox)
                .where(
                    status_outbox.c.id.in_(ids),
                    status_outbox.c.state == "in_flight",
                    status_outbox.c.lease_owner == owner,
                )
                .values(lease_expires_at=until)
            )

    def take_over_expired(self, now: datetime) -> int:
        with write_transaction(self.work_engine) as connection:
            return connection.execute(
                update(status_outbox)
                .where(status_outbox.c.state == "in_flight", status_outbox.c.lease_expires_at < now)
                .values(state="pending", lease_owner=None, lease_expires_at=None)
            ).rowcount

    def backlog(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(status_outbox)
                    .where(status_outbox.c.state.in_(OPEN))
                ).scalar_one()
            )
