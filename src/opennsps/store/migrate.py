"""Bringing a database to the newest schema with Alembic; safe for several processes at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same for every OpenNSPS process.
ADVISORY_LOCK_ID = 0x0E5F_0001


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (revision before, revision after)."""
    return _migrate(engine, lambda config: command.upgrade(config, "head"))


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Go back to `revision` (e.g. "0005", or "base" for an empty schema); returns
    (revision before, revision after)."""
    return _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, move: Callable[[Config], None]) -> tuple[str | None, str | None]:
    """Run `move` in one transaction, under the advisory lock on PostgreSQL (several
    processes may start at once)."""
    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        move(config)
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after
