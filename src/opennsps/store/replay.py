"""Replay: make finished (or retrying) deliveries due again, as a fresh round.

A replayed delivery starts its retry schedule over, keeps its event_id, and is enriched
again when it goes out. An event that was never routed is routed now, by the handlers
enabled at this moment. Deliveries in flight are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from opennsps.store.batch_writer import route_events
from opennsps.store.engine import write_transaction
from opennsps.store.queries import DeadFilter, EventFilter, dead_query, event_query
from opennsps.store.schema import deliveries, events

REPLAYABLE = ("pending", "waiting", "delivered", "rejected", "dead", "skipped")


class Replayer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def event(self, event_id: str, now: datetime) -> int | None:
        """Replay every delivery of one event (route it first if it has none); None if the
        event does not exist."""
        with write_transaction(self.engine) as connection:
            seq = connection.execute(
                select(events.c.seq).where(events.c.event_id == event_id)
            ).scalar()
            if seq is None:
                return None
            return self._replay_events(connection, [seq], now)

    def delivery(self, delivery_id: int, now: datetime) -> bool:
        with write_transaction(self.engine) as connection:
            return bool(self._reset(connection, deliveries.c.id == delivery_id, now))

    def dead(self, f: DeadFilter, now: datetime, *, limit: int | None = 10_000) -> int:
        """Replay the dead deliveries a dead-letter filter finds (the oldest `limit` of
        them; all with None)."""
        chosen = dead_query(f).with_only_columns(deliveries.c.id).order_by(deliveries.c.id)
        if limit is not None:
            chosen = chosen.limit(limit)
        with write_transaction(self.engine) as connection:
            return self._reset(connection, deliveries.c.id.in_(chosen.scalar_subquery()), now)

    def matching(
        self, f: EventFilter, now: datetime, *, handler_id: str | None = None, limit: int = 10_000
    ) -> int:
        """Replay the events a search finds (at most `limit`, oldest first)."""
        with write_transaction(self.engine) as connection:
            seqs = list(
                connection.execute(
                    event_query(f)
                    .with_only_columns(events.c.seq)
                    .order_by(events.c.seq)
                    .limit(limit)
                ).scalars()
            )
            if not seqs:
                return 0
            return self._replay_events(connection, seqs, now, handler_id=handler_id)

    def _replay_events(
        self,
        connection: Connection,
        seqs: Sequence[int],
        now: datetime,
        *,
        handler_id: str | None = None,
    ) -> int:
        condition: Any = deliveries.c.event_seq.in_(seqs)
        if handler_id is not None:
            condition = condition & (deliveries.c.handler_id == handler_id)
        replayed = self._reset(connection, condition, now)
        routed = {
            seq
            for seq in connection.execute(
                select(deliveries.c.event_seq).where(deliveries.c.event_seq.in_(seqs)).distinct()
            ).scalars()
        }
        unrouted = [seq for seq in seqs if seq not in routed]
        if unrouted and handler_id is None:
            replayed += self._route_now(connection, unrouted, now)
        return replayed

    def _reset(self, connection: Connection, condition: Any, now: datetime) -> int:
        return connection.execute(
            update(deliveries)
            .where(condition, deliveries.c.state.in_(REPLAYABLE))
            .values(
                state="pending",
                failures=0,
                first_attempt_at=None,
                next_attempt_at=now,
                finished_at=None,
                configuration_problem=False,
                reported_status=None,
                last_error=None,
                updated_at=now,
            )
        ).rowcount

    def _route_now(self, connection: Connection, seqs: Sequence[int], now: datetime) -> int:
        # The same routing statement as at ingest, inside this transaction.
        cursor = connection.connection.cursor()
        try:
            return route_events(cursor, self.dialect, seqs, at=now)
        finally:
            cursor.close()
