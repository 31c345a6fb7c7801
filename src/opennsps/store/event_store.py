"""The event store: durable, deduplicated event writes through group commit, and reads."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, func, select, text
from sqlalchemy import exc as sa_exc

from opennsps import metrics
from opennsps.config import StoreConfig
from opennsps.logging import get_logger
from opennsps.store import migrate
from opennsps.store.batch_writer import BatchWriter, WriteItem, WriteResult
from opennsps.store.committer import (
    CommitterStopped,
    CommitTimedOut,
    LoopCommitter,
    RetryLater,
    ThreadCommitter,
)
from opennsps.store.engine import SQLITE_BUSY_CODES, build_engine
from opennsps.store.records import (
    EventNotStorable,
    EventWriteOutcome,
    NewEvent,
    RejectedRequest,
    StoredEvent,
    StoredRejectedRequest,
    StoreUnavailable,
)
from opennsps.store.schema import events, rejected_requests, store_probe

# Errors that mean "the database cannot take writes now", not "this row is bad".
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)
log = get_logger("opennsps.store")
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
DEADLOCK_ATTEMPTS = 5
PROBE_BYTES = 64 * 1024  # a large event's worth


class EventStore:
    """One interface over both engines; SQL differences stay inside store/."""

    def __init__(self, config: StoreConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine if engine is not None else build_engine(config)
        self.dialect = self.engine.dialect.name
        self._writer = BatchWriter(self.dialect)
        dbapi = self.engine.dialect.dbapi
        assert dbapi is not None
        self._dbapi = dbapi
        self._sqlite_writer: Any = None
        self._committer: (
            LoopCommitter[WriteItem, WriteResult] | ThreadCommitter[WriteItem, WriteResult]
        )
        if self.dialect == "sqlite":
            self._committer = LoopCommitter(
                self._write_batch,
                max_batch=config.max_batch,
                timeout=config.commit_timeout,
                observe=metrics.observe_commit,
            )
        else:
            self._committer = ThreadCommitter(
                self._write_batch, max_batch=config.max_batch, observe=metrics.observe_commit
            )
        self.writes_failing = False

    # -- life cycle -------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str | None]:
        return migrate.upgrade(self.engine)

    def open(self, *, apply_migrations: bool = True) -> None:
        if apply_migrations:
            self.upgrade()
        if self.dialect == "sqlite":
            self._sqlite_writer = self._open_sqlite_writer()
        self._committer.start()

    def close(self) -> None:
        self._committer.stop()
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()
            self._sqlite_writer = None
        self.engine.dispose()

    def _open_sqlite_writer(self) -> Any:
        # The loop committer's own connection: it never waits for a lock (busy_timeout=0);
        # a locked database makes the batch retry later instead of stalling the event loop.
        pooled = self.engine.raw_connection()
        pooled.detach()
        connection = pooled.dbapi_connection
        assert connection is not None
        connection.execute("PRAGMA busy_timeout=0")
        return connection

    # -- writes -----------------------------------------------------------------------

    async def add_event(self, new: NewEvent) -> EventWriteOutcome:
        """Commit the event durably (or find its earlier copy).

        Raises StoreUnavailable when it cannot be committed in time, EventNotStorable
        when the database refuses this event's values (it never will take them).
        """
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
            if isinstance(self._committer, LoopCommitter):
                return await future  # it times its items out itself
            async with asyncio.timeout(self.config.commit_timeout):
                return await future
        except (TimeoutError, CommitTimedOut) as exc:
            raise StoreUnavailable(
                f"the store did not commit within {self.config.commit_timeout:g} s"
            ) from exc

    def _write_batch(self, items: Sequence[WriteItem]) -> Sequence[WriteResult | BaseException]:
        try:
            results = self._write_with_isolation(items)
        except (RetryLater, StoreUnavailable):
            self.writes_failing = True
            raise
        self.writes_failing = False
        return results

    def _write_with_isolation(
        self, items: Sequence[WriteItem]
    ) -> Sequence[WriteResult | BaseException]:
        try:
            return self._write_transaction(items)
        except self._dbapi.DataError as exc:
            if len(items) == 1:
                return [EventNotStorable(_short_reason(exc))]
        # One bad value must not fail its neighbours: write each on its own.
        results: list[WriteResult | BaseException] = []
        for item in items:
            try:
                results.extend(self._write_transaction([item]))
            except self._dbapi.DataError as exc:
                results.append(EventNotStorable(_short_reason(exc)))
        return results

    def _write_transaction(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        if self.dialect == "sqlite":
            return self._sqlite_transaction(items)
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return self._pooled_transaction(items)
            except StoreUnavailable as exc:
                # Two processes inserting overlapping (source, i_event) keys in different
                # orders can deadlock; PostgreSQL aborts one, which is safe to run again.
                if exc.sqlstate not in RETRYABLE_SQLSTATES or attempt == DEADLOCK_ATTEMPTS:
                    raise
                log.warning("write batch retried", sqlstate=exc.sqlstate, attempt=attempt)
                time.sleep(random.uniform(0.001, 0.01) * attempt)
        raise AssertionError("unreachable")

    def _sqlite_transaction(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        connection = self._sqlite_writer
        if connection is None:
            raise StoreUnavailable("the store is closed")
        try:
            connection.execute("BEGIN IMMEDIATE")
        except self._dbapi.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) in SQLITE_BUSY_CODES:
                raise RetryLater from exc
            raise StoreUnavailable(_short_reason(exc)) from exc
        try:
            cursor = connection.cursor()
            results = self._writer.write(cursor, items)
            connection.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(self._dbapi.Error):
                connection.execute("ROLLBACK")
            raise self._classified(exc) from exc
        return results

    def _pooled_transaction(self, items: Sequence[WriteItem]) -> list[WriteResult]:
        cannot_connect: tuple[type[BaseException], ...] = (*_UNAVAILABLE_ERRORS, self._dbapi.Error)
        try:
            connection = self.engine.raw_connection()
        except cannot_connect as exc:
            raise StoreUnavailable(_short_reason(exc)) from exc
        try:
            cursor = connection.cursor()
            results = self._writer.write(cursor, items)
            connection.commit()
        except BaseException as exc:
            classified = self._classified(exc)
            if isinstance(classified, StoreUnavailable):
                connection.invalidate()
            else:
                with contextlib.suppress(self._dbapi.Error):
                    connection.rollback()
            raise classified from exc
        finally:
            connection.close()
        return results

    def _classified(self, exc: BaseException) -> BaseException:
        """DataError stays (that item is refused); everything else means "retry later".

        A database error that is our fault (a missing table, a constraint) must never
        turn into a 4xx: ESPF would drop the event for good.
        """
        data_error: type[BaseException] = self._dbapi.DataError
        if isinstance(exc, data_error):
            return exc
        if isinstance(exc, self._dbapi.Error | sa_exc.SQLAlchemyError):
            unavailable = StoreUnavailable(_short_reason(exc))
            unavailable.sqlstate = getattr(exc, "sqlstate", None)
            return unavailable
        return exc

    # -- reads ------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers; after a failed write, only once it commits a
        write of an event's size again (one that touches no row needs no disk space)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if self.writes_failing:
                self._probe_write()
                self.writes_failing = False
        except sa_exc.SQLAlchemyError:
            metrics.STORE_UP.set(0)
            return False
        metrics.STORE_UP.set(1)
        return True

    def _probe_write(self) -> None:
        payload = secrets.token_hex(PROBE_BYTES // 2)  # incompressible, as events are
        with self.engine.begin() as connection:
            connection.execute(store_probe.delete())
            connection.execute(
                store_probe.insert().values(id=1, written_at=datetime.now(UTC), payload=payload)
            )

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
