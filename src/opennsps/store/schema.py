"""The tables of the event store (SQLAlchemy Core), shared by both engines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        converted = value.astimezone(UTC)
        return converted.replace(tzinfo=None) if dialect.name == "sqlite" else converted

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
SequenceId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", SequenceId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("source", String(64), nullable=False),
    Column("i_env", Integer),
    Column("i_event", BigInteger, nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("variables", Json, nullable=False),
    Column("raw_body", Text, nullable=False),
    Column("entity_key", String(300)),
    Column("event_time", UtcDateTime()),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("request_id", String(128)),
    Column("unique_id", String(128)),
    UniqueConstraint("source", "i_event", name="uq_events_source_i_event"),
    Index("ix_events_received_at", "received_at"),
    Index("ix_events_type_received_at", "event_type", "received_at"),
    Index("ix_events_entity_key_seq", "entity_key", "seq"),
)

rejected_requests = Table(
    "rejected_requests",
    metadata,
    Column("id", SequenceId, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("source", String(64)),
    Column("http_status", Integer, nullable=False),
    Column("error", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("remote_addr", String(64)),
    Column("headers", Json, nullable=False),
    Column("body", Text),
    Column("body_truncated", Boolean, nullable=False, default=False),
    Column("request_id", String(128)),
    Column("unique_id", String(128)),
    Index("ix_rejected_requests_received_at", "received_at"),
)
