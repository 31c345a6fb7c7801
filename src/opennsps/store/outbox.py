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
from typing import Literal

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


@dataclass(frozen=True)
class Outcome:
    """How sending one report went."""

    entry_id: int
    kind: Literal["sent", "refused", "retry"]
    reason: str | None = None
    retry_at: datetime | None = None


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

    def finish(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Record how a batch of sends went, in one transaction: `sent` leaves the outbox,
        `refused` too (PortaBilling will never take it, e.g. the account is gone, and the
        reason is kept), `retry` waits until its `retry_at`."""
        sent = [o.entry_id for o in outcomes if o.kind == "sent"]
        c = status_outbox.c
        released = {"lease_owner": None, "lease_expires_at": None}
        with write_transaction(self.work_engine) as connection:
            if sent:
                connection.execute(
                    update(status_outbox)
                    .where(c.id.in_(sent))
                    .values(state="sent", sent_at=now, last_error=None, **released)
                )
            for outcome in outcomes:
                reason = (outcome.reason or "")[:4000]
                if outcome.kind == "refused":
                    values: dict[str, object] = {"state": "refused", "sent_at": now}
                elif outcome.kind == "retry":
                    values = {"state": "pending", "next_attempt_at": outcome.retry_at}
                else:
                    continue
                connection.execute(
                    update(status_outbox)
                    .where(c.id == outcome.entry_id)
                    .values(last_error=reason, **values, **released)
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
