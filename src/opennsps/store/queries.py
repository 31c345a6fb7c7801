"""What the management API, the CLI and the stats read: events with their delivery state,
an event's timeline, attempts, deliveries, and queue figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    Select,
    and_,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnClause

from opennsps.domain.deliveries import (
    EVENT_STATES,
    EventState,
)
from opennsps.store.schema import attempts, deliveries, events

MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventFilter:
    event_type: str | None = None  # exact, or with a trailing `*`
    i_account: int | None = None
    i_event: int | None = None
    source: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AttemptFilter:
    handler_id: str | None = None
    outcome: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None  # exact, or with a trailing `*`
    handler_ids: tuple[str, ...] | None = None  # e.g. the handlers of one type
    i_account: int | None = None
    msisdn: str | None = None
    imsi: str | None = None


@dataclass(frozen=True)
class DeadFilter:
    """Dead letters: dead deliveries, by handler, event type and time of death."""

    handler_id: str | None = None
    event_type: str | None = None  # exact, or with a trailing `*`
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class StateCounts:
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> EventState:
        c = self.counts
        if not c:
            return "unrouted"
        if c.get("dead"):
            return "dead"
        if c.get("rejected"):
            return "rejected"
        if c.get("pending") or c.get("in_flight"):
            return "pending"
        if c.get("waiting"):
            return "waiting"
        return "delivered"


def _has(state: str) -> Any:
    states = ("pending", "in_flight") if state == "pending" else (state,)
    return (
        select(deliveries.c.id)
        .where(deliveries.c.event_seq == events.c.seq, deliveries.c.state.in_(states))
        .exists()
    )


def _state_condition(state: str) -> Any:
    """Events whose derived state (see StateCounts.state) is `state`."""
    any_delivery = select(deliveries.c.id).where(deliveries.c.event_seq == events.c.seq).exists()
    if state == "unrouted":
        return ~any_delivery
    if state == "dead":
        return _has("dead")
    if state == "rejected":
        return and_(_has("rejected"), ~_has("dead"))
    if state == "pending":
        return and_(_has("pending"), ~_has("dead"), ~_has("rejected"))
    if state == "waiting":
        return and_(_has("waiting"), ~_has("pending"), ~_has("dead"), ~_has("rejected"))
    if state == "delivered":
        others = (
            select(deliveries.c.id)
            .where(
                deliveries.c.event_seq == events.c.seq,
                deliveries.c.state.notin_(("delivered", "skipped")),  # nothing failed
            )
            .exists()
        )
        return and_(any_delivery, ~others)
    raise ValueError(f"state must be one of {', '.join(EVENT_STATES)}")


def _event_type_condition(pattern: str) -> Any:
    if pattern.endswith("*"):
        return events.c.event_type.startswith(pattern[:-1], autoescape=True)
    return events.c.event_type == pattern


def event_query(f: EventFilter) -> Select[Any]:
    query: Select[Any] = select(events)
    if f.event_type:
        query = query.where(_event_type_condition(f.event_type))
    if f.i_account is not None:
        query = query.where(events.c.entity_key == f"account:{f.i_account}")
    if f.i_event is not None:
        query = query.where(events.c.i_event == f.i_event)
    if f.source:
        query = query.where(events.c.source == f.source)
    if f.since:
        query = query.where(events.c.received_at >= f.since)
    if f.until:
        query = query.where(events.c.received_at < f.until)
    if f.state:
        query = query.where(_state_condition(f.state))
    return query


def dead_query(f: DeadFilter) -> Select[Any]:
    query: Select[Any] = (
        select(
            deliveries,
            events.c.event_id,
            events.c.event_type,
            events.c.i_event,
            events.c.variables,
            events.c.received_at,
        )
        .join(events, events.c.seq == deliveries.c.event_seq)
        .where(deliveries.c.state == "dead")
    )
    if f.handler_id:
        query = query.where(deliveries.c.handler_id == f.handler_id)
    if f.event_type:
        query = query.where(_event_type_condition(f.event_type))
    if f.since:
        query = query.where(deliveries.c.finished_at >= f.since)
    if f.until:
        query = query.where(deliveries.c.finished_at < f.until)
    return query


def jsonable(mapping: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row (or any mapping) with its times as ISO text, ready for JSON."""
    out = {}
    for key, value in mapping.items():
        if key in drop:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _states(*names: str) -> list[ColumnClause[str]]:
    """States written into the SQL as literals: with bound values SQLite does not use the
    state index (the oldest-pending lookup took 114 ms on a million deliveries, not 0.1)."""
    return [literal_column(f"'{name}'") for name in names]


def _epoch_seconds(dialect: str) -> Any:
    """A stored timestamp as whole Unix seconds, in SQL (timestamps are UTC)."""
    if dialect == "sqlite":
        return lambda column: cast(func.strftime("%s", column), Integer)
    return lambda column: cast(func.extract("epoch", column), BigInteger)


def _replay_query(f: EventFilter, handler_id: str | None) -> Select[Any]:
    """The events a search finds; with a handler, only those it has a delivery of."""
    query = event_query(f)
    if handler_id is not None:
        query = query.where(
            select(deliveries.c.id)
            .where(deliveries.c.event_seq == events.c.seq, deliveries.c.handler_id == handler_id)
            .exists()
        )
    return query


SAMPLE = 10  # what a replay preview shows of what it would replay


def _sampled(
    event_id: str, event_type: str, i_event: int, variables: Any, handler_id: str | None
) -> dict[str, Any]:
    account = variables.get("i_account") if isinstance(variables, dict) else None
    return {
        "event_id": event_id,
        "event_type": event_type,
        "i_event": i_event,
        "i_account": account,
        "handler_id": handler_id,
    }


class Queries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def search_events(
        self, f: EventFilter, *, limit: int = 50, before_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; page with before_seq (the last seq of the previous page)."""
        query = event_query(f).order_by(events.c.seq.desc()).limit(min(limit, MAX_LIMIT))
        if before_seq is not None:
            query = query.where(events.c.seq < before_seq)
        with self.engine.connect() as connection:
            rows = [row._mapping for row in connection.execute(query)]
            counts = self._delivery_counts(connection, [r["seq"] for r in rows])
        found = []
        for row in rows:
            item = jsonable(row, drop=("raw_body",))
            state = counts.get(row["seq"], StateCounts())
            item["state"] = state.state
            item["deliveries"] = state.counts
            found.append(item)
        return found

    def _delivery_counts(self, connection: Any, seqs: list[int]) -> dict[int, StateCounts]:
        if not seqs:
            return {}
        rows = connection.execute(
            select(deliveries.c.event_seq, deliveries.c.state, func.count())
            .where(deliveries.c.event_seq.in_(seqs))
            .group_by(deliveries.c.event_seq, deliveries.c.state)
        )
        result: dict[int, StateCounts] = {}
        for seq, state, count in rows:
            result.setdefault(seq, StateCounts()).counts[state] = count
        return result

    def event_detail(self, event_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(events).where(events.c.event_id == event_id)).first()
            if row is None:
                return None
            event = jsonable(row._mapping)
            delivery_rows = connection.execute(
                select(deliveries)
                .where(deliveries.c.event_seq == row.seq)
                .order_by(deliveries.c.priority, deliveries.c.id)
            ).all()
            attempt_rows = connection.execute(
                select(attempts).where(attempts.c.event_seq == row.seq).order_by(attempts.c.id)
            ).all()
        by_delivery: dict[int, list[dict[str, Any]]] = {}
        for a in attempt_rows:
            by_delivery.setdefault(a.delivery_id, []).append(jsonable(a._mapping))
        timeline = []
        counts = StateCounts()
        for d in delivery_rows:
            item = jsonable(d._mapping)
            item["attempt_log"] = by_delivery.get(d.id, [])
            timeline.append(item)
            counts.counts[d.state] = counts.counts.get(d.state, 0) + 1
        event["state"] = counts.state
        event["deliveries"] = timeline
        return event

    def search_attempts(
        self, f: AttemptFilter, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        query = (
            select(attempts, events.c.event_id, events.c.event_type)
            .join(events, events.c.seq == attempts.c.event_seq)
            .order_by(attempts.c.id.desc())
            .limit(min(limit, MAX_LIMIT))
        )
        if f.handler_id:
            query = query.where(attempts.c.handler_id == f.handler_id)
        if f.handler_ids is not None:
            query = query.where(attempts.c.handler_id.in_(f.handler_ids))
        if f.event_type:
            query = query.where(_event_type_condition(f.event_type))
        if f.i_account is not None:
            query = query.where(attempts.c.i_account == f.i_account)
        if f.msisdn:
            query = query.where(attempts.c.msisdn == f.msisdn.lstrip("+"))
        if f.imsi:
            query = query.where(attempts.c.imsi == f.imsi)
        if f.outcome:
            query = query.where(attempts.c.outcome == f.outcome)
        if f.event_id:
            query = query.where(events.c.event_id == f.event_id)
        if f.since:
            query = query.where(attempts.c.started_at >= f.since)
        if f.until:
            query = query.where(attempts.c.started_at < f.until)
        if before_id is not None:
            query = query.where(attempts.c.id < before_id)
        with self.engine.connect() as connection:
            return [jsonable(row._mapping) for row in connection.execute(query)]

    def time_series(self, since: datetime, until: datetime, bucket_seconds: int) -> dict[str, Any]:
        """Events received and attempt outcomes per time bucket in [since, until)."""
        epoch = _epoch_seconds(self.engine.dialect.name)
        start = int(since.timestamp()) // bucket_seconds * bucket_seconds
        buckets = (until.timestamp() - start) // bucket_seconds + 1
        starts = [start + k * bucket_seconds for k in range(int(buckets))]
        received = dict.fromkeys(starts, 0)
        outcomes = {s: dict.fromkeys(("delivered", "errors"), 0) for s in starts}
        since_start = datetime.fromtimestamp(start, UTC)
        with self.engine.connect() as connection:
            slot = (epoch(events.c.received_at) // bucket_seconds).label("slot")
            for number, count in connection.execute(
                select(slot, func.count())
                .where(events.c.received_at >= since_start, events.c.received_at < until)
                .group_by(slot)
            ):
                key = int(number) * bucket_seconds
                if key in received:
                    received[key] += count
            slot = (epoch(attempts.c.started_at) // bucket_seconds).label("slot")
            for number, outcome, count in connection.execute(
                select(slot, attempts.c.outcome, func.count())
                .where(attempts.c.started_at >= since_start, attempts.c.started_at < until)
                .group_by(slot, attempts.c.outcome)
            ):
                key = int(number) * bucket_seconds
                if key in outcomes:
                    kind = "delivered" if outcome in ("delivered", "waiting") else "errors"
                    outcomes[key][kind] += count
        return {
            "bucket_seconds": bucket_seconds,
            "points": [
                {
                    "at": datetime.fromtimestamp(s, UTC).isoformat(),
                    "received": received[s],
                    "delivered": outcomes[s]["delivered"],
                    "errors": outcomes[s]["errors"],
                }
                for s in starts
            ],
        }

    def dead_letters(
        self, f: DeadFilter, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        # In order of death, newest first; a page continues after its last delivery.
        query = (
            dead_query(f)
            .order_by(deliveries.c.finished_at.desc(), deliveries.c.id.desc())
            .limit(min(limit, MAX_LIMIT))
        )
        if before_id is not None:
            died = (
                select(deliveries.c.finished_at)
                .where(deliveries.c.id == before_id)
                .scalar_subquery()
            )
            query = query.where(
                or_(
                    deliveries.c.finished_at < died,
                    and_(deliveries.c.finished_at == died, deliveries.c.id < before_id),
                )
            )
        with self.engine.connect() as connection:
            return [jsonable(row._mapping) for row in connection.execute(query)]

    def replay_preview(
        self, f: EventFilter, *, handler_id: str | None, limit: int
    ) -> dict[str, Any]:
        """What a replay by this filter would take: how many events (at most `limit`) and
        the newest of them, as a sample."""
        matching = min(self.count_events(f, handler_id=handler_id), limit)
        newest = (
            _replay_query(f, handler_id)
            .with_only_columns(
                events.c.event_id, events.c.event_type, events.c.i_event, events.c.variables
            )
            .order_by(events.c.seq.desc())
            .limit(min(SAMPLE, matching))
        )
        with self.engine.connect() as connection:
            rows = connection.execute(newest).all() if matching else []
        sample = [_sampled(*row, handler_id) for row in rows]
        return {"matching": matching, "sample": sample}

    def dead_preview(self, f: DeadFilter, *, limit: int) -> dict[str, Any]:
        """What a dead-letter replay by this filter would take (the latest deaths first)."""
        matching = min(self.count_dead(f), limit)
        sample = (
            [
                _sampled(
                    d["event_id"], d["event_type"], d["i_event"], d["variables"], d["handler_id"]
                )
                for d in self.dead_letters(f, limit=min(SAMPLE, matching))
            ]
            if matching
            else []
        )
        return {"matching": matching, "sample": sample}

    def count_dead(self, f: DeadFilter) -> int:
        query = dead_query(f).with_only_columns(func.count())
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def count_events(self, f: EventFilter, *, handler_id: str | None = None) -> int:
        """How many events a search finds (with a handler: only events it has a delivery
        of), as a replay by that filter would take them."""
        query = _replay_query(f, handler_id).with_only_columns(func.count())
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def attempt_detail(self, attempt_id: int) -> dict[str, Any] | None:
        """One attempt with its event's id, type and variables and its delivery's creation
        time: everything the NSPS Event it sent was made of."""
        query = (
            select(
                attempts,
                events.c.event_id,
                events.c.event_type,
                events.c.variables,
                deliveries.c.created_at.label("delivery_created_at"),
            )
            .join(events, events.c.seq == attempts.c.event_seq)
            .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(attempts.c.id == attempt_id)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return dict(row._mapping) if row is not None else None

    def list_deliveries(
        self,
        *,
        state: str | None = None,
        handler_id: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        query = (
            select(
                deliveries,
                events.c.event_id,
                events.c.event_type,
                events.c.i_event,
                events.c.received_at,
            )
            .join(events, events.c.seq == deliveries.c.event_seq)
            .order_by(deliveries.c.id.desc())
            .limit(min(limit, MAX_LIMIT))
        )
        if state:
            query = query.where(deliveries.c.state == state)
        if handler_id:
            query = query.where(deliveries.c.handler_id == handler_id)
        if before_id is not None:
            query = query.where(deliveries.c.id < before_id)
        with self.engine.connect() as connection:
            return [jsonable(row._mapping) for row in connection.execute(query)]

    def stats(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        hour_ago = now - timedelta(hours=1)
        with self.engine.connect() as connection:
            depth: dict[str, dict[str, int]] = {}
            for handler_id, state, count in connection.execute(
                select(deliveries.c.handler_id, deliveries.c.state, func.count())
                .where(deliveries.c.state.in_(_states("pending", "in_flight", "waiting", "dead")))
                .group_by(deliveries.c.handler_id, deliveries.c.state)
            ):
                depth.setdefault(handler_id, {})[state] = count
            oldest = connection.execute(
                select(func.min(deliveries.c.created_at)).where(
                    deliveries.c.state.in_(_states("pending", "in_flight"))
                )
            ).scalar()
            totals: dict[str, int] = {
                state: count
                for state, count in connection.execute(
                    select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                )
            }
            retrying_by_handler: dict[str, int] = {
                handler_id: count
                for handler_id, count in connection.execute(
                    select(deliveries.c.handler_id, func.count())
                    .where(deliveries.c.state == "pending", deliveries.c.failures > 0)
                    .group_by(deliveries.c.handler_id)
                )
            }
            retrying = sum(retrying_by_handler.values())
            outcomes: dict[str, dict[str, int]] = {}
            for handler_id, outcome, count in connection.execute(
                select(attempts.c.handler_id, attempts.c.outcome, func.count())
                .where(attempts.c.started_at >= hour_ago)
                .group_by(attempts.c.handler_id, attempts.c.outcome)
            ):
                outcomes.setdefault(handler_id, {})[outcome] = count
            received = connection.execute(
                select(func.count()).select_from(events).where(events.c.received_at >= hour_ago)
            ).scalar_one()
            configuration_problems: dict[str, int] = {
                handler_id: count
                for handler_id, count in connection.execute(
                    select(deliveries.c.handler_id, func.count())
                    .where(
                        deliveries.c.configuration_problem.is_(True),
                        deliveries.c.state == "pending",
                    )
                    .group_by(deliveries.c.handler_id)
                )
            }
        delivered_last_hour = sum(o.get("delivered", 0) for o in outcomes.values())
        errors_last_hour = sum(
            count
            for o in outcomes.values()
            for outcome, count in o.items()
            if outcome in ("retry", "rejected", "dead")
        )
        return {
            "queue_depth": depth,
            "deliveries_by_state": totals,
            "retrying": retrying,
            "retrying_by_handler": retrying_by_handler,
            "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else None,
            "last_hour": {
                "events_received": received,
                "delivered": delivered_last_hour,
                "errors": errors_last_hour,
                "by_handler": outcomes,
            },
            "configuration_problems": configuration_problems,
        }
