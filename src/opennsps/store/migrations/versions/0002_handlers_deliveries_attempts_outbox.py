"""Handlers, their routes, deliveries, attempts (the execution log), the status outbox and
runtime flags (pause).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from opennsps.store.schema import Json, SequenceId, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handlers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("definition", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, default=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "handler_routes",
        sa.Column(
            "handler_id",
            sa.String(64),
            sa.ForeignKey("handlers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("pattern", sa.String(255), primary_key=True),
        sa.Column("match", sa.String(300), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", SequenceId, primary_key=True, autoincrement=True),
        sa.Column(
            "event_seq", SequenceId, sa.ForeignKey("events.seq", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("handler_id", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("entity_key", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, default=0),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("first_attempt_at", UtcDateTime()),
        sa.Column("last_attempt_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", UtcDateTime()),
        sa.Column("last_error", sa.Text),
        sa.Column("configuration_problem", sa.Boolean, nullable=False, default=False),
        sa.Column("reported_status", sa.String(16)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_event_seq", "deliveries", ["event_seq"])
    op.create_index("ix_deliveries_state_handler", "deliveries", ["state", "handler_id"])
    op.create_index(
        "ix_deliveries_open_entity",
        "deliveries",
        ["handler_id", "entity_key", "id"],
        sqlite_where=sa.text("state IN ('pending', 'in_flight')"),
        postgresql_where=sa.text("state IN ('pending', 'in_flight')"),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["handler_id", "next_attempt_at", "id"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", SequenceId, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            SequenceId,
            sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_seq", SequenceId, nullable=False),
        sa.Column("handler_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("configuration_problem", sa.Boolean, nullable=False, default=False),
        sa.Column("response_excerpt", sa.Text),
        sa.Column("pb_data", Json),
        sa.Column("worker", sa.String(64)),
    )
    op.create_index("ix_attempts_delivery_id", "attempts", ["delivery_id"])
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])
    op.create_index("ix_attempts_handler_started_at", "attempts", ["handler_id", "started_at"])
    op.create_table(
        "status_outbox",
        sa.Column("id", SequenceId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("i_account", sa.BigInteger, nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", UtcDateTime()),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime()),
    )
    op.create_index("ix_status_outbox_state_due", "status_outbox", ["state", "next_attempt_at"])
    op.create_index(
        "ix_status_outbox_account", "status_outbox", ["source", "i_account", "group_name", "id"]
    )
    op.create_table(
        "runtime_flags",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runtime_flags")
    op.drop_table("status_outbox")
    op.drop_table("attempts")
    op.drop_table("deliveries")
    op.drop_table("handler_routes")
    op.drop_table("handlers")
