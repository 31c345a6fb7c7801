"""Handler circuits in the database (the rules are domain/circuit.py): one row per handler
that has had a failure, read by every worker, changed under a row lock in the same
transaction as the outcomes that change it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from opennsps.domain.circuit import (
    CLOSED,
    Circuit,
    CircuitPolicy,
    CircuitState,
    Signal,
    after,
    closed,
)
from opennsps.domain.deliveries import DeliveryState
from opennsps.store.engine import write_transaction
from opennsps.store.schema import deliveries, handler_circuits


def upsert(dialect: str) -> Any:
    """The dialect's INSERT with ON CONFLICT clauses."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class CircuitStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def all(self) -> dict[str, Circuit]:
        """Every handler's circuit that is not plainly closed (absent: closed, no failures)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(handler_circuits)).all()
        return {row.handler_id: _circuit(row._mapping) for row in rows}

    def get(self, handler_id: str) -> Circuit:
        return self.all().get(handler_id, CLOSED)

    def take_probe(
        self, handler_id: str, owner: str, now: datetime, stale_before: datetime
    ) -> bool:
        """Become the one process that probes an open circuit whose probe is due (or whose
        last prober went silent before `stale_before`)."""
        c = handler_circuits.c
        with write_transaction(self.engine) as connection:
            taken = connection.execute(
                update(handler_circuits)
                .where(
                    c.handler_id == handler_id,
                    or_(
                        and_(c.state == CircuitState.OPEN.value, c.probe_at <= now),
                        and_(
                            c.state == CircuitState.HALF_OPEN.value,
                            c.probe_started_at < stale_before,
                        ),
                    ),
                )
                .values(state=CircuitState.HALF_OPEN.value, probe_owner=owner, probe_started_at=now)
            ).rowcount
        return bool(taken)

    def give_back_probe(self, handler_id: str, owner: str, now: datetime) -> None:
        """Nothing was there to probe with: open again, next probe after the same interval."""
        c = handler_circuits.c
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(c.probe_interval_seconds).where(
                    c.handler_id == handler_id, c.probe_owner == owner
                )
            ).first()
            interval = timedelta(seconds=(row[0] if row and row[0] else 1.0))
            connection.execute(
                update(handler_circuits)
                .where(
                    c.handler_id == handler_id,
                    c.state == CircuitState.HALF_OPEN.value,
                    c.probe_owner == owner,
                )
                .values(state=CircuitState.OPEN.value, probe_at=now + interval, probe_owner=None)
            )

    def retry_now(self, handler_id: str, now: datetime) -> int:
        """The operator's "retry now": close the circuit and make every pending delivery of
        the handler due at once. Returns how many deliveries were made due earlier."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(handler_circuits)
                .where(handler_circuits.c.handler_id == handler_id)
                .values(**_row(closed(now)))
            )
            return release_backlog(connection, handler_id, now)


def record(
    connection: Connection,
    signals: Mapping[str, Sequence[Signal]],
    policies: Mapping[str, CircuitPolicy],
    now: datetime,
) -> dict[str, Circuit]:
    """Count finished attempts into their handlers' circuits (inside the caller's
    transaction); a circuit that closes releases its handler's backlog at once.
    Returns the circuits as they now are."""
    dialect = connection.dialect.name
    changed: dict[str, Circuit] = {}
    for handler_id in sorted(signals):  # one lock order for every process
        query = select(handler_circuits).where(handler_circuits.c.handler_id == handler_id)
        if dialect == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).first()
        current = _circuit(row._mapping) if row is not None else CLOSED
        policy = policies.get(handler_id, CircuitPolicy())
        new = after(current, list(signals[handler_id]), policy, now)
        if new != current:
            values = _row(new)
            if new.state is CircuitState.HALF_OPEN:
                # Still probing: the prober's claim on the probe stays.
                del values["probe_owner"], values["probe_started_at"]
            statement = upsert(dialect)(handler_circuits).values(handler_id=handler_id, **values)
            connection.execute(
                statement.on_conflict_do_update(index_elements=["handler_id"], set_=values)
            )
            if current.holding and not new.holding:
                release_backlog(connection, handler_id, now)
        changed[handler_id] = new
    return changed


def release_backlog(connection: Connection, handler_id: str, now: datetime) -> int:
    """Every pending delivery of the handler due now, not at its own next retry slot."""
    return connection.execute(
        update(deliveries)
        .where(
            deliveries.c.handler_id == handler_id,
            deliveries.c.state == DeliveryState.PENDING.value,
            deliveries.c.next_attempt_at > now,
        )
        .values(next_attempt_at=now, updated_at=now)
    ).rowcount


def _circuit(row: RowMapping) -> Circuit:
    seconds = row["probe_interval_seconds"]
    return Circuit(
        state=CircuitState(row["state"]),
        failures=row["failures"],
        failing_since=row["failing_since"],
        since=row["since"],
        probe_at=row["probe_at"],
        probe_interval=timedelta(seconds=seconds) if seconds is not None else None,
        last_error=row["last_error"],
    )


def _row(circuit: Circuit) -> dict[str, Any]:
    interval = circuit.probe_interval
    return {
        "state": circuit.state.value,
        "failures": circuit.failures,
        "failing_since": circuit.failing_since,
        "since": circuit.since,
        "probe_at": circuit.probe_at,
        "probe_interval_seconds": interval.total_seconds() if interval is not None else None,
        "probe_owner": None,
        "probe_started_at": None,
        "last_error": circuit.last_error,
    }
