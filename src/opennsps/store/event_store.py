"""The event store: durable, deduplicated event writes through group commit, and reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from opennsps import metrics
from opennsps.config import StoreConfig
from opennsps.store import event_rows, migrate
from opennsps.store.committer import CommitterStopped, GroupCommitter
from opennsps.store.engine import build_engine
from opennsps.store.records import (
    EventWriteOutcome,
    NewEvent,
    RejectedRequest,
    StoredEvent,
    StoredRejectedRequest,
    StoreUnavailable,
)
from opennsps.store.schema import events, rejected_requests

# 12 parameters a row: well inside SQLite's 32,766 and PostgreSQL's 65,535 limits.
MAX_ROWS_PER_INSERT = 500
WriteItem = NewEvent | RejectedRequest
WriteResult = EventWriteOutcome | None

# Errors that mean "the database is not reachable or not writable now", not "bad row".
_UNAVAILABLE_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


class EventStore:
    """One interface over both engines; SQL differences stay inside this class."""

    def __init__(self, config: StoreConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine if engine is not None else build_engine(config)
        self.dialect = self.engine.dialect.name
        self._committer: GroupCommitter[WriteItem, WriteResult] = GroupCommitter(
            self._write_batch,
            max_batch=config.max_batch,
            name="store-group-commit",
            observe=metrics.observe_commit,
        )
        self.writes_failing = False

    # -- life cycle -------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str | None]:
        return migrate.upgrade(self.engine)

    def open(self, *, apply_migrations: bool = True) -> None:
        if apply_migrations:
            self.upgrade()
        self._committer.start()

    def close(self) -> None:
        self._committer.stop()
        self.engine.dispose()

    # -- writes -----------------------------------------------------------------------

    async def add_event(self, new: NewEvent) -> EventWriteOutcome:
        """Commit the event durably (or find its earlier copy); StoreUnavailable if not."""
        result = await self._submit(new)
        assert isinstance(result, EventWriteOutcome)
        return result

    async def add_rejected(self, rejected: RejectedRequest) -> None:
        await self._submit(rejected)

    async def _submit(self, item: WriteItem) -> WriteResult:
        try:
            future = self._committer.submit(item)
        except CommitterStopped as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            async with asyncio.timeout(self.config.commit_timeout):
                return await future
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"the store did not commit within {self.config.commit_timeout:g} s"
            ) from exc
        except _UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(_short_reason(exc)) from exc

    def _write_batch(self, items: Sequence[WriteItem]) -> Sequence[WriteResult | BaseException]:
        try:
            with self.engine.begin() as connection:
                results = self._write(connection, items)
        except _UNAVAILABLE_ERRORS:
            self.writes_failing = True
            raise
        except sa_exc.SQLAlchemyError:
            if len(items) == 1:
                raise
            # One bad item must not fail its neighbours: write each on its own.
            return [self._write_one(item) for item in items]
        self.writes_failing = False
        return results

    def _write_one(self, item: WriteItem) -> WriteResult | BaseException:
        try:
            with self.engine.begin() as connection:
                return self._write(connection, [item])[0]
        except sa_exc.SQLAlchemyError as exc:
            return exc

    def _write(self, connection: Connection, items: Sequence[WriteItem]) -> list[WriteResult]:
        new_events = [item for item in items if isinstance(item, NewEvent)]
        outcomes = self._insert_events(connection, new_events) if new_events else {}
        rejected = [item for item in items if isinstance(item, RejectedRequest)]
        if rejected:
            connection.execute(rejected_requests.insert(), [_rejected_row(r) for r in rejected])
        return [outcomes[id(item)] if isinstance(item, NewEvent) else None for item in items]

    def _insert_events(
        self, connection: Connection, new_events: list[NewEvent]
    ) -> dict[int, EventWriteOutcome]:
        first_of_key: dict[tuple[str, int], NewEvent] = {}
        for new in new_events:
            first_of_key.setdefault((new.source, new.event.i_event), new)
        inserted: set[str] = set()
        firsts = list(first_of_key.values())
        for start in range(0, len(firsts), MAX_ROWS_PER_INSERT):
            chunk = firsts[start : start + MAX_ROWS_PER_INSERT]
            values = [v for new in chunk for v in event_rows.row_values(new, self.dialect)]
            statement = event_rows.insert_statement(self.dialect, len(chunk))
            inserted.update(connection.exec_driver_sql(statement, tuple(values)).scalars())

        stored_id = {
            key: new.event_id for key, new in first_of_key.items() if new.event_id in inserted
        }
        earlier = [key for key in first_of_key if key not in stored_id]
        if earlier:
            stored_id.update(self._existing_event_ids(connection, earlier))
        return {
            id(new): EventWriteOutcome(
                event_id=stored_id[(new.source, new.event.i_event)],
                duplicate=new.event_id not in inserted,
            )
            for new in new_events
        }

    @staticmethod
    def _existing_event_ids(
        connection: Connection, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        by_source: dict[str, list[int]] = {}
        for source, i_event in keys:
            by_source.setdefault(source, []).append(i_event)
        for source, i_events in by_source.items():
            query = select(events.c.i_event, events.c.event_id).where(
                events.c.source == source, events.c.i_event.in_(i_events)
            )
            for i_event, event_id in connection.execute(query):
                found[(source, i_event)] = event_id
        return found

    # -- reads ------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers; after a failed write, only once it takes writes."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                if self.writes_failing:
                    # A write that touches no row still needs the write lock / a live server.
                    connection.execute(events.delete().where(events.c.seq < 0))
                    connection.rollback()
                    self.writes_failing = False
        except sa_exc.SQLAlchemyError:
            metrics.STORE_UP.set(0)
            return False
        metrics.STORE_UP.set(1)
        return True

    def get_event(self, event_id: str) -> StoredEvent | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(events).where(events.c.event_id == event_id)).first()
        return _stored_event(row) if row is not None else None

    def list_events(
        self,
        *,
        event_type: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[StoredEvent]:
        """The newest events first, optionally filtered (event_type accepts a `*` suffix)."""
        query: Select[Any] = select(events).order_by(events.c.seq.desc()).limit(limit)
        if event_type:
            if event_type.endswith("*"):
                query = query.where(events.c.event_type.startswith(event_type[:-1]))
            else:
                query = query.where(events.c.event_type == event_type)
        if source:
            query = query.where(events.c.source == source)
        if since:
            query = query.where(events.c.received_at >= since)
        with self.engine.connect() as connection:
            return [_stored_event(row) for row in connection.execute(query)]

    def count_events(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(events)).scalar_one())

    def list_rejected(
        self, *, since: datetime | None = None, limit: int = 50
    ) -> list[StoredRejectedRequest]:
        query: Select[Any] = (
            select(rejected_requests).order_by(rejected_requests.c.id.desc()).limit(limit)
        )
        if since:
            query = query.where(rejected_requests.c.received_at >= since)
        with self.engine.connect() as connection:
            return [_stored_rejected(row) for row in connection.execute(query)]


def _short_reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"the store is unavailable: {type(original).__name__}: {first_line}"[:300]


def _rejected_row(rejected: RejectedRequest) -> dict[str, Any]:
    return {
        "received_at": rejected.received_at,
        "source": rejected.source[:64] if rejected.source else None,
        "http_status": rejected.http_status,
        "error": rejected.error[:64],
        "reason": rejected.reason,
        "method": rejected.method[:16],
        "path": rejected.path,
        "remote_addr": rejected.remote_addr[:64] if rejected.remote_addr else None,
        "headers": rejected.headers,
        "body": rejected.body,
        "body_truncated": rejected.body_truncated,
        "request_id": rejected.request_id,
        "unique_id": rejected.unique_id,
    }


def _stored_event(row: Row[Any]) -> StoredEvent:
    m = row._mapping
    return StoredEvent(
        seq=m["seq"],
        event_id=m["event_id"],
        source=m["source"],
        i_env=m["i_env"],
        i_event=m["i_event"],
        event_type=m["event_type"],
        variables=m["variables"],
        raw_body=m["raw_body"],
        entity_key=m["entity_key"],
        event_time=m["event_time"],
        received_at=m["received_at"],
        request_id=m["request_id"],
        unique_id=m["unique_id"],
    )


def _stored_rejected(row: Row[Any]) -> StoredRejectedRequest:
    m = row._mapping
    return StoredRejectedRequest(
        id=m["id"],
        request=RejectedRequest(
            received_at=m["received_at"],
            source=m["source"],
            http_status=m["http_status"],
            error=m["error"],
            reason=m["reason"],
            method=m["method"],
            path=m["path"],
            remote_addr=m["remote_addr"],
            headers=m["headers"],
            body=m["body"],
            body_truncated=m["body_truncated"],
            request_id=m["request_id"],
            unique_id=m["unique_id"],
        ),
    )
