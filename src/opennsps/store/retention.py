"""Purging history older than the retention period, in bounded batches.

An event is purged only once none of its deliveries is still open (pending, in flight or
waiting): retention never drops work that has not finished.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, select

from opennsps.store.engine import write_transaction
from opennsps.store.schema import attempts, deliveries, events, rejected_requests, status_outbox

UNFINISHED = ("pending", "in_flight", "waiting")


def purge_batch(engine: Engine, before: datetime, batch_size: int) -> int:
    """Delete up to batch_size old rows of each kind; returns how many went."""
    removed = 0
    with write_transaction(engine) as connection:
        old_attempts = select(attempts.c.id).where(attempts.c.started_at < before).limit(batch_size)
        removed += connection.execute(
            delete(attempts).where(attempts.c.id.in_(old_attempts.scalar_subquery()))
        ).rowcount
        unfinished = select(deliveries.c.event_seq).where(deliveries.c.state.in_(UNFINISHED))
        old_events = (
            select(events.c.seq)
            .where(events.c.received_at < before, events.c.seq.not_in(unfinished))
            .order_by(events.c.seq)
            .limit(batch_size)
        )
        seqs = connection.execute(old_events).scalars().all()
        if seqs:
            delivery_ids = select(deliveries.c.id).where(deliveries.c.event_seq.in_(seqs))
            connection.execute(delete(attempts).where(attempts.c.delivery_id.in_(delivery_ids)))
            connection.execute(delete(deliveries).where(deliveries.c.event_seq.in_(seqs)))
            removed += connection.execute(delete(events).where(events.c.seq.in_(seqs))).rowcount
        old_rejected = (
            select(rejected_requests.c.id)
            .where(rejected_requests.c.received_at < before)
            .limit(batch_size)
        )
        removed += connection.execute(
            delete(rejected_requests).where(
                rejected_requests.c.id.in_(old_rejected.scalar_subquery())
            )
        ).rowcount
        old_reports = (
            select(status_outbox.c.id)
            .where(
                status_outbox.c.created_at < before,
                status_outbox.c.state.in_(("sent", "refused")),
            )
            .limit(batch_size)
        )
        removed += connection.execute(
            delete(status_outbox).where(status_outbox.c.id.in_(old_reports.scalar_subquery()))
        ).rowcount
    return removed
