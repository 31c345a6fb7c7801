"""Events received from ESPF and rejected ingress requests.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from opennsps.store.schema import Json, SequenceId, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SequenceId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("i_env", sa.Integer),
        sa.Column("i_event", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("variables", Json, nullable=False),
        sa.Column("raw_body", sa.Text, nullable=False),
        sa.Column("entity_key", sa.String(300)),
        sa.Column("event_time", UtcDateTime()),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("unique_id", sa.String(128)),
        sa.UniqueConstraint("source", "i_event", name="uq_events_source_i_event"),
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_type_received_at", "events", ["event_type", "received_at"])
    op.create_index("ix_events_entity_key_seq", "events", ["entity_key", "seq"])

    op.create_table(
        "rejected_requests",
        sa.Column("id", SequenceId, primary_key=True, autoincrement=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("error", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.String(64)),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("body_truncated", sa.Boolean, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("unique_id", sa.String(128)),
    )
    op.create_index("ix_rejected_requests_received_at", "rejected_requests", ["received_at"])


def downgrade() -> None:
    op.drop_table("rejected_requests")
    op.drop_table("events")
