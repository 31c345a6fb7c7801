"""The tables of the event store (SQLAlchemy Core), shared by both engines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
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

handlers = Table(
    "handlers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("definition", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    # How long this handler's open delivery of an event holds back larger priority numbers
    Column("holds_back", String(24), nullable=False, server_default="until_first_attempt"),
    Column("paused", Boolean, nullable=False, default=False),
    Column("managed_by", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

handler_routes = Table(
    "handler_routes",
    metadata,
    Column(
        "handler_id", String(64), ForeignKey("handlers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("pattern", String(255), primary_key=True),
    # The pattern in the database's own matching syntax: GLOB on SQLite, LIKE on PostgreSQL.
    Column("match", String(300), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", SequenceId, primary_key=True, autoincrement=True),
    Column("event_seq", SequenceId, ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
    Column("handler_id", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("entity_key", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("first_attempt_at", UtcDateTime()),
    Column("last_attempt_at", UtcDateTime()),
    Column("finished_at", UtcDateTime()),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime()),
    Column("last_error", Text),
    Column("configuration_problem", Boolean, nullable=False, default=False),
    Column("reported_status", String(16)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_deliveries_event_seq", "event_seq"),
    Index("ix_deliveries_state_handler", "state", "handler_id"),
    Index(
        "ix_deliveries_open_entity",
        "handler_id",
        "entity_key",
        "id",
        sqlite_where=text("state IN ('pending', 'in_flight')"),
        postgresql_where=text("state IN ('pending', 'in_flight')"),
    ),
    Index(
        "ix_deliveries_due",
        "handler_id",
        "next_attempt_at",
        "id",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
)

# A handler's circuit breaker (domain/circuit.py), shared by every process on the store.
# No row means closed with no failures.
handler_circuits = Table(
    "handler_circuits",
    metadata,
    Column("handler_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("failing_since", UtcDateTime()),
    Column("since", UtcDateTime()),
    Column("probe_at", UtcDateTime()),
    Column("probe_interval_seconds", Float),
    Column("probe_owner", String(64)),
    Column("probe_started_at", UtcDateTime()),
    Column("last_error", Text),
)

# A handler's rate limit (domain/rate_limit.py): its theoretical arrival time.
handler_rate_limits = Table(
    "handler_rate_limits",
    metadata,
    Column("handler_id", String(64), primary_key=True),
    Column("tat", UtcDateTime(), nullable=False),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", SequenceId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id", SequenceId, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False
    ),
    Column("event_seq", SequenceId, nullable=False),
    Column("handler_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("configuration_problem", Boolean, nullable=False, default=False),
    Column("response_excerpt", Text),
    Column("pb_data", Json),
    Column("worker", String(64)),
    # Who the attempt was about, for the execution log's search (migration 0003).
    Column("i_account", BigInteger),
    Column("msisdn", String(32)),
    Column("imsi", String(32)),
    # The NSPS Event's `status` as sent (queued or retrying); the rest of the payload is
    # the event's, the delivery's and this row's.
    Column("sent_status", String(16)),
    Index("ix_attempts_delivery_id", "delivery_id"),
    Index("ix_attempts_started_at", "started_at"),
    Index("ix_attempts_handler_started_at", "handler_id", "started_at"),
    Index("ix_attempts_handler_id", "handler_id", "id"),
    Index("ix_attempts_outcome", "outcome", "id"),
    Index("ix_attempts_event_seq", "event_seq", "id"),
    Index("ix_attempts_i_account", "i_account", "id"),
    Index("ix_attempts_msisdn", "msisdn", "id"),
    Index("ix_attempts_imsi", "imsi", "id"),
)

status_outbox = Table(
    "status_outbox",
    metadata,
    Column("id", SequenceId, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("i_account", BigInteger, nullable=False),
    Column("group_name", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("origin", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UtcDateTime()),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Index("ix_status_outbox_state_due", "state", "next_attempt_at"),
    Index("ix_status_outbox_account", "source", "i_account", "group_name", "id"),
)

runtime_flags = Table(
    "runtime_flags",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The readiness probe's write (migration 0004): one row, rewritten with an event's worth
# of bytes, so that a full disk or a read-only database shows.
store_probe = Table(
    "store_probe",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("written_at", UtcDateTime(), nullable=False),
    Column("payload", Text, nullable=False),
)

console_users = Table(
    "console_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# A console session: the cookie is a random token and only its SHA-256 is stored, so the
# table gives no one a usable session. Ending a session is deleting its row.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("username", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("client", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# Failed console logins, counted per user name and per client address by every process.
console_login_failures = Table(
    "console_login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),
    Column("failed_at", UtcDateTime(), nullable=False, index=True),
    Index("ix_console_login_failures_key_time", "key", "failed_at"),
)
