"""The delivery queue: claiming due deliveries under a lease, recording what each attempt
did, and handing back work whose worker stopped or died.

Order is kept by the claim itself: a delivery is only claimable while no earlier delivery
of the same handler and entity is still pending or in flight, and no delivery of the same
event for a handler of higher priority (a lower number) holds it back (as long as that
handler's `holds_back` says: until done, until its first attempt has failed, or never).
On PostgreSQL the claim locks rows with FOR UPDATE SKIP LOCKED, so several processes never
claim the same delivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import BindParameter, ColumnClause

from opennsps.config import RateLimitConfig
from opennsps.domain.circuit import Circuit, CircuitPolicy, Signal
from opennsps.domain.deliveries import OPEN_STATES, DeliveryState
from opennsps.domain.subjects import Subject
from opennsps.store.circuits import record as record_circuits
from opennsps.store.engine import write_transaction
from opennsps.store.predecessors import open_predecessor
from opennsps.store.rate_limits import RateBudget
from opennsps.store.schema import (
    UtcDateTime,
    attempts,
    deliveries,
    events,
    handlers,
    status_outbox,
)

# Written into the SQL as literals, not bound: SQLite uses a partial index only when it
# can see that the query's condition implies the index's WHERE clause.
OPEN: list[ColumnClause[str]] = [literal_column(f"'{s.value}'") for s in OPEN_STATES]
PENDING: ColumnClause[str] = literal_column(f"'{DeliveryState.PENDING.value}'")


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    handler_id: str
    entity_key: str
    failures: int
    attempts: int  # including the one just claimed
    first_attempt_at: datetime
    reported_status: str | None
    created_at: datetime
    event_seq: int
    event_id: str
    source: str
    event_type: str
    variables: dict[str, Any]
    received_at: datetime
    request_id: str | None
    unique_id: str | None


NO_SUBJECT = Subject(None, None, None)


@dataclass(frozen=True)
class AttemptRecord:
    started_at: datetime
    duration_ms: float
    status_code: int | None
    outcome: str
    error: str | None
    configuration_problem: bool
    response_excerpt: str | None
    pb_data: dict[str, Any] | None
    subject: Subject = NO_SUBJECT
    sent_status: str | None = None


@dataclass(frozen=True)
class StatusReport:
    source: str
    i_account: int
    group_name: str
    status: str
    error: str | None
    origin: str


@dataclass(frozen=True)
class Completion:
    """One finished attempt and what it made of its delivery."""

    delivery: ClaimedDelivery
    attempt: AttemptRecord
    state: DeliveryState
    failures: int
    next_attempt_at: datetime | None
    last_error: str | None
    report: StatusReport | None
    health: Signal | None = None  # what the attempt says of the connector, if anything


class DeliveryQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # Built once: constructing the aliased statements cost more CPU than running them.
        self._due_statement = self._due("due")
        self._statements = _Statements()
        self._probe_statement = self._due("probe")
        self._expired_statement = self._due("expired")

    def claim(
        self,
        owner: str,
        limits: Mapping[str, int],
        now: datetime,
        lease_until: datetime,
        rates: Mapping[str, RateLimitConfig] | None = None,
    ) -> list[ClaimedDelivery]:
        """Claim up to limits[handler] due deliveries per handler, oldest due first, and
        no more than a rate-limited handler's limit allows now."""
        wanted = {handler: n for handler, n in limits.items() if n > 0}
        if not wanted:
            return []
        with write_transaction(self.engine) as connection:
            ids: list[int] = []
            for handler_id in sorted(wanted):  # one lock order for every process
                limit = wanted[handler_id]
                rate = (rates or {}).get(handler_id)
                budget = RateBudget(connection, handler_id, rate, now) if rate else None
                if budget is not None:
                    limit = min(limit, budget.allowed())
                    if limit <= 0:
                        continue
                found = self._ids(connection, self._due_statement, handler_id, now, limit)
                if budget is not None:
                    budget.spend(len(found))
                ids += found
            return self._take(connection, ids, owner, now, lease_until)

    def claim_probe(
        self, owner: str, handler_id: str, now: datetime, lease_until: datetime
    ) -> ClaimedDelivery | None:
        """The delivery a circuit's probe tries: one not held back, whatever its next retry
        slot, the one tried longest ago first (so one bad event cannot be every probe)."""
        with write_transaction(self.engine) as connection:
            ids = self._ids(connection, self._probe_statement, handler_id, now, 1)
            taken = self._take(connection, ids, owner, now, lease_until)
        return taken[0] if taken else None

    def claim_expired(
        self,
        owner: str,
        handler_id: str,
        waiting_since: datetime,
        limit: int,
        now: datetime,
        lease_until: datetime,
    ) -> list[ClaimedDelivery]:
        """Deliveries of a handler whose circuit is open that have waited past their retry
        schedule's give-up age (since their first attempt, or since due if never tried):
        claimed to be given up, not attempted."""
        with write_transaction(self.engine) as connection:
            ids = self._ids(connection, self._expired_statement, handler_id, waiting_since, limit)
            return self._take(connection, ids, owner, now, lease_until)

    @staticmethod
    def _ids(
        connection: Connection, statement: Any, handler_id: str, now: datetime, limit: int
    ) -> list[int]:
        return list(
            connection.execute(
                statement, {"due_handler": handler_id, "due_now": now, "due_limit": limit}
            )
            .scalars()
            .all()
        )

    def _take(
        self,
        connection: Connection,
        ids: list[int],
        owner: str,
        now: datetime,
        lease_until: datetime,
    ) -> list[ClaimedDelivery]:
        if not ids:
            return []
        connection.execute(
            self._statements.take,
            {"ids": ids, "owner": owner, "now": now, "lease_until": lease_until},
        )
        rows = connection.execute(self._statements.taken, {"ids": ids}).all()
        return [ClaimedDelivery(*tuple(row)) for row in rows]

    def _due(self, kind: Literal["due", "probe", "expired"]) -> Any:
        """Deliveries of one handler not held back by an earlier one: due now ("due"),
        whatever their slot ("probe"), or waiting since before due_now ("expired")."""
        d = deliveries.alias("d")
        before = deliveries.alias("before")
        entity_blocked = open_predecessor(deliveries, d, ("handler_id", "entity_key"), OPEN)
        # A higher-priority delivery of the same event holds this one back as its handler
        # says (handlers.holds_back): until done, until its first attempt has failed, or not.
        holder = handlers.alias("holder")
        priority_blocked = (
            select(before.c.id)
            .join(holder, holder.c.id == before.c.handler_id)
            .where(
                before.c.event_seq == d.c.event_seq,
                before.c.priority < d.c.priority,
                before.c.state.in_(OPEN),
                or_(
                    holder.c.holds_back == "until_done",
                    and_(holder.c.holds_back == "until_first_attempt", before.c.failures == 0),
                ),
            )
            .exists()
        )
        due_now = bindparam("due_now", type_=UtcDateTime())
        slot: Any = true()
        order: list[Any] = [d.c.next_attempt_at, d.c.id]
        if kind == "due":
            slot = d.c.next_attempt_at <= due_now
        elif kind == "probe":
            order = [d.c.last_attempt_at.nulls_first(), d.c.id]
        else:
            slot = func.coalesce(d.c.first_attempt_at, d.c.next_attempt_at) <= due_now
        query = (
            select(d.c.id)
            .where(
                d.c.state == PENDING,
                d.c.handler_id == bindparam("due_handler"),
                slot,
                ~entity_blocked,
                ~priority_blocked,
            )
            .order_by(*order)
            .limit(bindparam("due_limit"))
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=d)
        return query

    def complete(
        self,
        owner: str,
        completions: Sequence[Completion],
        now: datetime,
        circuit_signals: Mapping[str, Sequence[Signal]] | None = None,
        policies: Mapping[str, CircuitPolicy] | None = None,
    ) -> dict[str, Circuit]:
        """Record the attempts; apply each outcome only where this owner still holds the
        lease (a delivery taken over after its lease expired belongs to its new owner);
        count `circuit_signals` into their handlers' circuits in the same transaction.

        Returns the circuits of the handlers signalled, as they now are.
        """
        if not completions:
            return {}
        with write_transaction(self.engine) as connection:
            connection.execute(
                self._statements.record_attempts, [_attempt_row(c, owner) for c in completions]
            )
            owned = set(
                connection.execute(
                    self._statements.still_owned,
                    {"ids": [c.delivery.id for c in completions], "owner": owner},
                ).scalars()
            )
            applied = [c for c in completions if c.delivery.id in owned]
            if applied:
                connection.execute(
                    self._statements.apply_outcome, [_delivery_update(c, now) for c in applied]
                )
            reports = [c.report for c in applied if c.report is not None]
            if reports:
                add_status_reports(connection, reports, now)
            if not circuit_signals:
                return {}
            return record_circuits(connection, circuit_signals, policies or {}, now)

    def release(self, owner: str, now: datetime) -> int:
        """Hand back this owner's in-flight deliveries (graceful shutdown)."""
        with write_transaction(self.engine) as connection:
            return connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.lease_owner == owner,
                    deliveries.c.state == DeliveryState.IN_FLIGHT.value,
                )
                .values(
                    state=DeliveryState.PENDING.value,
                    attempts=deliveries.c.attempts - 1,
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            ).rowcount

    def extend_leases(self, owner: str, ids: Sequence[int], lease_until: datetime) -> int:
        """Keep the leases of deliveries still being worked on from expiring."""
        if not ids:
            return 0
        with write_transaction(self.engine) as connection:
            return connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(ids),
                    deliveries.c.lease_owner == owner,
                    deliveries.c.state == DeliveryState.IN_FLIGHT.value,
                )
                .values(lease_expires_at=lease_until)
            ).rowcount

    def take_over_expired(self, now: datetime, *, any_lease: bool = False) -> int:
        """Make deliveries whose lease expired (their worker died) due again; with
        any_lease, every in-flight delivery (a single-process store after a restart)."""
        with write_transaction(self.engine) as connection:
            return connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.state == DeliveryState.IN_FLIGHT.value,
                    true() if any_lease else deliveries.c.lease_expires_at < now,
                )
                .values(
                    state=DeliveryState.PENDING.value,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error="taken over: the worker holding it stopped answering",
                    next_attempt_at=now,
                    updated_at=now,
                )
            ).rowcount

    def finish_waiting(
        self, event_id: str, handler_id: str, state: DeliveryState, error: str | None, now: datetime
    ) -> bool:
        """An asynchronous status arrived for a delivery that was waiting for it."""
        with write_transaction(self.engine) as connection:
            seq = connection.execute(
                select(events.c.seq).where(events.c.event_id == event_id)
            ).scalar()
            if seq is None:
                return False
            return bool(
                connection.execute(
                    update(deliveries)
                    .where(
                        and_(
                            deliveries.c.event_seq == seq,
                            deliveries.c.handler_id == handler_id,
                            deliveries.c.state == DeliveryState.WAITING.value,
                        )
                    )
                    .values(state=state.value, last_error=error, finished_at=now, updated_at=now)
                ).rowcount
            )


class _Statements:
    """The claim's and complete()'s statements, built once: building them per call (and
    their cache keys) cost more CPU than running them (bench/realistic's profile)."""

    def __init__(self) -> None:
        ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
        now = bindparam("now", type_=UtcDateTime())
        self.take = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(
                state=DeliveryState.IN_FLIGHT.value,
                lease_owner=bindparam("owner"),
                lease_expires_at=bindparam("lease_until", type_=UtcDateTime()),
                attempts=deliveries.c.attempts + 1,
                first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, now),
                last_attempt_at=now,
                updated_at=now,
            )
        )
        self.taken = (
            select(
                deliveries.c.id,
                deliveries.c.handler_id,
                deliveries.c.entity_key,
                deliveries.c.failures,
                deliveries.c.attempts,
                deliveries.c.first_attempt_at,
                deliveries.c.reported_status,
                deliveries.c.created_at,
                events.c.seq,
                events.c.event_id,
                events.c.source,
                events.c.event_type,
                events.c.variables,
                events.c.received_at,
                events.c.request_id,
                events.c.unique_id,
            )
            .join(events, events.c.seq == deliveries.c.event_seq)
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        )
        self.record_attempts = insert(attempts)
        self.still_owned = select(deliveries.c.id).where(
            deliveries.c.id.in_(bindparam("ids", expanding=True)),
            deliveries.c.lease_owner == bindparam("owner"),
            deliveries.c.state == DeliveryState.IN_FLIGHT.value,
        )
        self.apply_outcome = (
            update(deliveries)
            .where(deliveries.c.id == bindparam("delivery_id"))
            .values(
                state=bindparam("new_state"),
                failures=bindparam("new_failures"),
                next_attempt_at=bindparam("due", type_=UtcDateTime()),
                finished_at=bindparam("finished", type_=UtcDateTime()),
                lease_owner=None,
                lease_expires_at=None,
                last_error=bindparam("error"),
                configuration_problem=bindparam("flagged"),
                reported_status=bindparam("reported"),
                updated_at=bindparam("now", type_=UtcDateTime()),
            )
        )


def add_status_reports(connection: Any, reports: Sequence[StatusReport], now: datetime) -> None:
    connection.execute(
        insert(status_outbox),
        [
            {
                "source": r.source,
                "i_account": r.i_account,
                "group_name": r.group_name,
                "status": r.status,
                "error": r.error,
                "origin": r.origin,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for r in reports
        ],
    )


def _delivery_update(c: Completion, now: datetime) -> dict[str, Any]:
    return {
        "now": now,
        "delivery_id": c.delivery.id,
        "new_state": c.state.value,
        "new_failures": c.failures,
        "due": c.next_attempt_at or now,
        "finished": now if c.state not in OPEN_STATES else None,
        "error": c.last_error,
        "flagged": c.attempt.configuration_problem,
        "reported": c.report.status if c.report else c.delivery.reported_status,
    }


def _attempt_row(c: Completion, owner: str) -> dict[str, Any]:
    a = c.attempt
    return {
        "delivery_id": c.delivery.id,
        "event_seq": c.delivery.event_seq,
        "handler_id": c.delivery.handler_id,
        "number": c.delivery.attempts,
        "started_at": a.started_at,
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "outcome": a.outcome,
        "error": a.error,
        "configuration_problem": a.configuration_problem,
        "response_excerpt": a.response_excerpt,
        "pb_data": a.pb_data,
        "worker": owner,
        "i_account": a.subject.i_account,
        "msisdn": a.subject.msisdn,
        "imsi": a.subject.imsi,
        "sent_status": a.sent_status,
    }
