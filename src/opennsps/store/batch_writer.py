"""The hot write path: a batch of events and rejected requests in one transaction, written
straight through the DB-API driver (sqlite3 or psycopg).

SQLAlchemy Core's per-row parameter processing costs tens of microseconds of CPU per
event, most of the ingress budget; here a batch is one multi-row INSERT. The rows are
written in exactly the formats the Core tables (schema.py) read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from opennsps.store.records import EventWriteOutcome, NewEvent, RejectedRequest
from opennsps.utc_text import stored_utc_text

EVENT_COLUMNS = (
    "event_id",
    "source",
    "i_env",
    "i_event",
    "event_type",
    "variables",
    "raw_body",
    "entity_key",
    "event_time",
    "received_at",
    "request_id",
    "unique_id",
)
REJECTED_COLUMNS = (
    "received_at",
    "source",
    "http_status",
    "error",
    "reason",
    "method",
    "path",
    "remote_addr",
    "headers",
    "body",
    "body_truncated",
    "request_id",
    "unique_id",
)
JSON_COLUMNS = frozenset({"variables", "headers"})
# 12 parameters a row: well inside SQLite's 32,766 and PostgreSQL's 65,535 limits.
MAX_ROWS_PER_INSERT = 500

WriteItem = NewEvent | RejectedRequest
WriteResult = EventWriteOutcome | None


def _sqlite_time(value: datetime | None) -> str | None:
    return None if value is None else stored_utc_text(value)


def db_time(dialect: str, value: datetime | None) -> Any:
    """A time as the DB-API driver must be given it for the Core tables to read it back."""
    return _sqlite_time(value) if dialect == "sqlite" else value


def route_events(cursor: Any, dialect: str, seqs: Sequence[int], at: datetime | None = None) -> int:
    """Create one pending delivery per enabled handler whose patterns match each event
    (GLOB on SQLite, LIKE on PostgreSQL, against handler_routes.match), due at `at`, or
    at the event's receipt when `at` is None. Returns how many were created."""
    param = "?" if dialect == "sqlite" else "%s"
    marks = ", ".join([param] * len(seqs))
    match = "GLOB" if dialect == "sqlite" else "LIKE"
    due = "e.received_at" if at is None else param
    cursor.execute(
        "INSERT INTO deliveries (event_seq, handler_id, priority, entity_key, state,"  # noqa: S608
        " failures, attempts, next_attempt_at, configuration_problem, created_at,"
        " updated_at)"
        " SELECT e.seq, h.id, h.priority, COALESCE(e.entity_key, 'event:' || e.event_id),"
        f" 'pending', 0, 0, {due}, FALSE, {due}, {due}"
        " FROM events e JOIN handlers h ON h.status = 'enabled'"
        f" WHERE e.seq IN ({marks}) AND EXISTS (SELECT 1 FROM handler_routes r"
        f" WHERE r.handler_id = h.id AND e.event_type {match} r.match)",
        [*([] if at is None else [db_time(dialect, at)] * 3), *seqs],
    )
    return int(cursor.rowcount)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


@lru_cache(maxsize=128)
def insert_sql(
    dialect: str, table: str, columns: tuple[str, ...], rows: int, tail: str = ""
) -> str:
    """A multi-row INSERT; only constants and placeholders are joined, values are bound."""
    if dialect == "sqlite":
        one = "(" + ", ".join("?" for _ in columns) + ")"
    else:
        one = "(" + ", ".join("%s::jsonb" if c in JSON_COLUMNS else "%s" for c in columns) + ")"
    values = ", ".join([one] * rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{tail}"  # noqa: S608


class BatchWriter:
    """Writes one batch with a DB-API cursor; the caller owns the transaction."""

    def __init__(self, dialect: str) -> None:
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported dialect {dialect}")
        self.dialect = dialect
        self._param = "?" if dialect == "sqlite" else "%s"

    def write(self, cursor: Any, items: Sequence[WriteItem]) -> list[WriteResult]:
        new_events = [item for item in items if isinstance(item, NewEvent)]
        outcomes = self._insert_events(cursor, new_events) if new_events else {}
        rejected = [item for item in items if isinstance(item, RejectedRequest)]
        if rejected:
            self._insert_rejected(cursor, rejected)
        return [outcomes[id(item)] if isinstance(item, NewEvent) else None for item in items]

    def _time(self, value: datetime | None) -> Any:
        return db_time(self.dialect, value)

    def _event_values(self, new: NewEvent) -> tuple[Any, ...]:
        event = new.event
        return (
            new.event_id,
            new.source,
            new.i_env,
            event.i_event,
            event.event_type,
            event.variables_json,
            new.raw_body,
            event.entity_key,
            self._time(event.event_time),
            self._time(new.received_at),
            new.request_id,
            new.unique_id,
        )

    def _insert_events(
        self, cursor: Any, new_events: list[NewEvent]
    ) -> dict[int, EventWriteOutcome]:
        first_of_key: dict[tuple[str, int], NewEvent] = {}
        for new in new_events:
            first_of_key.setdefault((new.source, new.event.i_event), new)
        firsts = list(first_of_key.values())
        inserted: set[str] = set()
        for start in range(0, len(firsts), MAX_ROWS_PER_INSERT):
            chunk = firsts[start : start + MAX_ROWS_PER_INSERT]
            statement = insert_sql(
                self.dialect,
                "events",
                EVENT_COLUMNS,
                len(chunk),
                " ON CONFLICT (source, i_event) DO NOTHING RETURNING seq, event_id",
            )
            values = [value for new in chunk for value in self._event_values(new)]
            cursor.execute(statement, values)
            rows = cursor.fetchall()
            inserted.update(row[1] for row in rows)
            if rows:
                self._route(cursor, [row[0] for row in rows])

        stored_id = {
            key: new.event_id for key, new in first_of_key.items() if new.event_id in inserted
        }
        earlier = [key for key in first_of_key if key not in stored_id]
        if earlier:
            stored_id.update(self._existing_event_ids(cursor, earlier))
        return {
            id(new): EventWriteOutcome(
                event_id=stored_id[(new.source, new.event.i_event)],
                duplicate=new.event_id not in inserted,
            )
            for new in new_events
        }

    def _route(self, cursor: Any, seqs: list[int]) -> None:
        """One delivery per enabled handler whose patterns match, in the event's transaction."""
        route_events(cursor, self.dialect, seqs)

    def _existing_event_ids(
        self, cursor: Any, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        by_source: dict[str, list[int]] = {}
        for source, i_event in keys:
            by_source.setdefault(source, []).append(i_event)
        for source, i_events in by_source.items():
            marks = ", ".join([self._param] * len(i_events))
            cursor.execute(
                "SELECT i_event, event_id FROM events "  # noqa: S608
                f"WHERE source = {self._param} AND i_event IN ({marks})",
                [source, *i_events],
            )
            for i_event, event_id in cursor.fetchall():
                found[(source, i_event)] = event_id
        return found

    def _insert_rejected(self, cursor: Any, rejected: list[RejectedRequest]) -> None:
        for start in range(0, len(rejected), MAX_ROWS_PER_INSERT):
            chunk = rejected[start : start + MAX_ROWS_PER_INSERT]
            statement = insert_sql(self.dialect, "rejected_requests", REJECTED_COLUMNS, len(chunk))
            cursor.execute(statement, self._rejected_values(chunk))

    def _rejected_values(self, rejected: list[RejectedRequest]) -> list[Any]:
        values: list[Any] = []
        for r in rejected:
            values += (
                self._time(r.received_at),
                r.source[:64] if r.source else None,
                r.http_status,
                r.error[:64],
                r.reason,
                r.method[:16],
                r.path,
                r.remote_addr[:64] if r.remote_addr else None,
                _json(r.headers),
                r.body.replace("\x00", "\ufffd") if r.body else r.body,
                r.body_truncated,
                r.request_id,
                r.unique_id,
            )
        return values
