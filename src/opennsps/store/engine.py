"""Creating a SQLAlchemy engine for either store engine, with its durability settings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from opennsps.config import StoreConfig

WRITE_OPTION = "opennsps_writes"


_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


class WriterBusy(Exception):
    """Raised on the event loop's thread instead of waiting for SQLite's write lock."""


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: committed on success, rolled back on error.

    On SQLite, this process's writers take turns on a lock first: SQLite's own busy
    handler sleeps 1, 2, 5, 10... ms between tries, which throttled the pipeline's
    concurrent claim and completion transactions to a fraction of the disk's pace. On
    the event loop's thread nothing waits: a held lock raises WriterBusy (the caller
    tries again shortly, see pipeline.store_calls).
    """
    if engine.dialect.name != "sqlite":
        with (
            engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection
        return
    lock = _sqlite_writer_lock(engine)
    if not lock.acquire(blocking=not _on_event_loop()):
        raise WriterBusy
    try:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            try:
                transaction = connection.begin()
            except sa_exc.OperationalError as exc:
                if getattr(exc.orig, "sqlite_errorcode", None) in SQLITE_BUSY_CODES:
                    raise WriterBusy from exc
                raise
            with transaction:
                yield connection
    finally:
        lock.release()


SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _sqlite_writer_lock(engine: Engine) -> threading.Lock:
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(str(engine.url), threading.Lock())


def normalized_url(url: str) -> str:
    """Accept plain postgresql:// DSNs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def build_engine(config: StoreConfig, *, relaxed: bool = False) -> Engine:
    """An engine for the store. `relaxed` is for the worker's own writes (claims, attempt
    outcomes, sent reports), whose loss means work done again: their commits do not wait
    for the disk. On SQLite (on the event loop): synchronous=NORMAL, and never waiting for
    a lock (busy_timeout=0, see WriterBusy). On PostgreSQL: synchronous_commit=off. Either
    survives a crash of OpenNSPS; a power loss (or a crash of PostgreSQL) may undo the last
    moment of them."""
    url = normalized_url(config.url)
    if is_sqlite(url):
        if relaxed:
            return _sqlite_engine(url, config, "NORMAL", busy_timeout=0.0)
        return _sqlite_engine(url, config, "FULL", busy_timeout=config.busy_timeout)
    options = {"options": "-c synchronous_commit=off"} if relaxed else {}
    return create_engine(
        url,
        pool_size=config.pool_size,
        max_overflow=config.pool_size,
        pool_pre_ping=True,
        pool_timeout=config.connect_timeout,
        connect_args={
            "connect_timeout": max(1, round(config.connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "opennsps",
            **options,
        },
    )


def _sqlite_engine(
    url: str, config: StoreConfig, synchronous: str, *, busy_timeout: float
) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=config.pool_size,
        max_overflow=config.pool_size,
        pool_timeout=config.connect_timeout,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
    )
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        # Leave transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A transaction that will write takes the write lock up front: one that reads
        # first and writes later would fail at once when another writer got in between.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine
