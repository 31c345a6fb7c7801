"""Handler circuits (consecutive failures open one; a probe closes it) and rate limits,
each one row per handler shared by every process on the store. New tables only: safe
with older processes still running (they neither read nor write them).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handler_circuits",
        sa.Column("handler_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("probe_at", sa.DateTime(timezone=True)),
        sa.Column("probe_interval_seconds", sa.Float),
        sa.Column("probe_owner", sa.String(64)),
        sa.Column("probe_started_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "handler_rate_limits",
        sa.Column("handler_id", sa.String(64), primary_key=True),
        sa.Column("tat", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("handler_rate_limits")
    op.drop_table("handler_circuits")
