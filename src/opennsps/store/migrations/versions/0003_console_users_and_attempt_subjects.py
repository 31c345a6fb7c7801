"""Console users, and what each attempt was about (account, MSISDN, IMSI) and sent as its
status, for the execution log's search and exact payloads.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from opennsps.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("i_account", sa.BigInteger))
        batch.add_column(sa.Column("msisdn", sa.String(32)))
        batch.add_column(sa.Column("imsi", sa.String(32)))
        batch.add_column(sa.Column("sent_status", sa.String(16)))
    # The execution log pages newest first (by id) within a filter.
    op.create_index("ix_attempts_handler_id", "attempts", ["handler_id", "id"])
    op.create_index("ix_attempts_outcome", "attempts", ["outcome", "id"])
    op.create_index("ix_attempts_event_seq", "attempts", ["event_seq", "id"])
    op.create_index("ix_attempts_i_account", "attempts", ["i_account", "id"])
    op.create_index("ix_attempts_msisdn", "attempts", ["msisdn", "id"])
    op.create_index("ix_attempts_imsi", "attempts", ["imsi", "id"])


def downgrade() -> None:
    op.drop_index("ix_attempts_imsi", "attempts")
    op.drop_index("ix_attempts_msisdn", "attempts")
    op.drop_index("ix_attempts_i_account", "attempts")
    op.drop_index("ix_attempts_event_seq", "attempts")
    op.drop_index("ix_attempts_outcome", "attempts")
    op.drop_index("ix_attempts_handler_id", "attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("sent_status")
        batch.drop_column("imsi")
        batch.drop_column("msisdn")
        batch.drop_column("i_account")
    op.drop_table("console_users")
