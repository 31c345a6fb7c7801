"""Which key of an external system a connector provisioned for which PortaBilling account.

Network elements have no field for PortaBilling's i_account, and a deleted account's data is
gone from PortaBilling, so the link is kept here: it tells which object to remove when an
account is deleted or its key changes (a SIM's IMSI, a RADIUS user name), and which objects
reconciliation must account for. Any SQLAlchemy URL works; several OpenNSPS processes need
a shared database (PostgreSQL).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url


def link_table(metadata: MetaData, name: str, key: str, length: int) -> Table:
    """A table of account → key links: one key per account, a key indexed for lookups."""
    return Table(
        name,
        metadata,
        Column("i_account", BigInteger, primary_key=True, autoincrement=False),
        Column(key, String(length), nullable=False, index=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def sql_engine(url: str, *, wal: bool = False) -> Engine:
    """An engine for a connector's own database (a SQLite file's folder is created). With
    `wal`, a SQLite file is put in write-ahead-log mode: its readers never wait for a
    writer, so a LinkStore reads it on the event loop (only for a database no other
    program opens: FreeRADIUS's own file stays as FreeRADIUS made it)."""
    parsed = make_url(url)
    sqlite_file = parsed.database if parsed.drivername.startswith("sqlite") else None
    if sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if wal and sqlite_file:

        @event.listens_for(engine, "connect")
        def _write_ahead_log(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


class LinkStore:
    """Reads run on the event loop where they cannot wait (a local SQLite file in WAL
    mode: a primary-key lookup costs microseconds, a thread hand-off far more); otherwise,
    like every write (a commit waits for the disk), in a thread.

    Writes are committed in groups: the links asked for while a commit is under way go
    together in the next one, so concurrent deliveries share a disk flush instead of
    queueing for one each. `link()` returns once its own change is committed."""

    def __init__(self, engine: Engine, table: Table, key: str) -> None:
        self.engine = engine
        self.table = table
        self.key = table.c[key]
        table.create(engine, checkfirst=True)
        self.inline_reads = engine.dialect.name == "sqlite" and _in_wal_mode(engine)
        self._waiting: list[tuple[int, str | None, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    def close(self) -> None:
        self.engine.dispose()

    async def key_of(self, i_account: int) -> str | None:
        if self.inline_reads:
            return self._key_of(i_account)
        return await asyncio.to_thread(self._key_of, i_account)

    async def accounts_of(self, key: str) -> set[int]:
        if self.inline_reads:
            return self._accounts_of(key)
        return await asyncio.to_thread(self._accounts_of, key)

    async def link(self, i_account: int, key: str | None) -> None:
        """Link the account to `key`; None removes its link."""
        loop = asyncio.get_running_loop()
        committing = self._committing
        if committing is None or committing.done() or committing.get_loop() is not loop:
            # (A caller that runs one event loop after another leaves nothing waiting.)
            self._waiting = []
            self._committing = loop.create_task(self._commit_waiting())
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((i_account, key, done))
        await done

    async def _commit_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self._link_all, [(a, k) for a, k, _ in group])
            except Exception as exc:
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, _, done in group:
                    if not done.done():
                        done.set_result(None)

    async def all_links(self) -> dict[int, str]:
        return await asyncio.to_thread(self._all)

    def _key_of(self, i_account: int) -> str | None:
        table = self.table
        with self.engine.connect() as connection:
            found = connection.execute(
                select(self.key).where(table.c.i_account == i_account)
            ).scalar_one_or_none()
        return str(found) if found is not None else None

    def _accounts_of(self, key: str) -> set[int]:
        table = self.table
        with self.engine.connect() as connection:
            rows = connection.execute(select(table.c.i_account).where(self.key == key)).scalars()
            return {int(row) for row in rows}

    def _link_all(self, changes: list[tuple[int, str | None]]) -> None:
        """Apply the changes in order (a later change of one account wins), in one
        transaction."""
        table = self.table
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            for i_account, key in changes:
                if key is None:
                    connection.execute(delete(table).where(table.c.i_account == i_account))
                    continue
                values = {self.key.name: key, "updated_at": now}
                changed = connection.execute(
                    update(table).where(table.c.i_account == i_account).values(values)
                ).rowcount
                if not changed:
                    connection.execute(insert(table).values(i_account=i_account, **values))

    def _all(self) -> dict[int, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(self.table.c.i_account, self.key))
            return {int(i_account): str(key) for i_account, key in rows}


def _in_wal_mode(engine: Engine) -> bool:
    with engine.connect() as connection:
        mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
    return str(mode).lower() == "wal"
