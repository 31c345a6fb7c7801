"""A table for the readiness probe's write: /ready proves the store takes a write of an
event's size (a write that touches no row needs no disk space, so it proves nothing when
the disk is full).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from opennsps.store.schema import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_probe",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("written_at", UtcDateTime(), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_probe")
