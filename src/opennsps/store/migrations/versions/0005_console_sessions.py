"""Server-side console sessions: logout, a password or role change and a user's removal
end them at once, in every process on the database.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from opennsps.store.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_console_sessions_username", "console_sessions", ["username"])
    # The signing key of the former stateless session cookies: those cookies end here.
    op.execute("DELETE FROM runtime_flags WHERE name = 'console_session_key'")


def downgrade() -> None:
    op.drop_index("ix_console_sessions_username", "console_sessions")
    op.drop_table("console_sessions")
