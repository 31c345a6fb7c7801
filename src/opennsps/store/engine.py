"""Creating a SQLAlchemy engine for either store engine, with its durability settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from opennsps.config import StoreConfig

WRITE_OPTION = "opennsps_writes"


_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: committed on success, rolled back on error.

    On SQLite, this process's writers take turns on a lock first: SQLite's own busy
    handler sleeps 1, 2, 5, 10... ms between tries, which throttled the pipeline's
    concurrent claim and completion transactions to a fraction of the disk's pace.
    """
    if engine.dialect.name != "sqlite":
        with (
            engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection
        return
    with (
        _sqlite_writer_lock(engine),
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        yield connection


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
    """An engine for the store. `relaxed` (SQLite only): commits skip the fsync
    (synchronous=NORMAL); they survive a crash of the process but may be undone by a power
    loss. Only for writes whose loss means work done again (claims, attempt outcomes)."""
    url = normalized_url(config.url)
    if is_sqlite(url):
        return _sqlite_engine(url, config, "NORMAL" if relaxed else "FULL")
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
        },
    )


def _sqlite_engine(url: str, config: StoreConfig, synchronous: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=config.pool_size,
        max_overflow=config.pool_size,
        pool_timeout=config.connect_timeout,
        connect_args={"timeout": config.busy_timeout, "check_same_thread": False},
    )
    busy_ms = int(config.busy_timeout * 1000)

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
