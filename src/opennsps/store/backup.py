"""An online backup of a SQLite store: a consistent copy while OpenNSPS keeps running
(SQLite's backup API copies the database page by page under its own locking). A
PostgreSQL store is backed up with PostgreSQL's tools (docs/operations.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

PAGES_PER_STEP = 1024


class BackupError(RuntimeError):
    """The backup cannot be made; the message says why."""


def sqlite_path(store_url: str) -> Path:
    url = make_url(store_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError(
            "opennsps db backup copies a SQLite store; back a PostgreSQL store up with "
            "pg_dump (docs/operations.md, Backups)"
        )
    return Path(url.database)


def backup_sqlite(
    store_url: str, target: Path, progress: Callable[[int, int], None] | None = None
) -> int:
    """Copy the store to `target` (which must not exist); returns the pages copied."""
    source_path = sqlite_path(store_url)
    if not source_path.exists():
        raise BackupError(f"there is no store at {source_path}")
    if target.exists():
        raise BackupError(f"{target} exists already: choose a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:

        def step(_status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        source.backup(copy, pages=PAGES_PER_STEP, progress=step)
        pages: int = copy.execute("PRAGMA page_count").fetchone()[0]
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copy at {target} failed its integrity check: {check}")
    except BaseException:
        copy.close()
        target.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    copy.close()
    return pages
