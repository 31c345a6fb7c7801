"""Server-side console sessions: logout, a password or role change and a user's removal
end them at once, in every process on the database; failed console logins counted in the
store, so that every process throttles together.

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
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("failed_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_console_login_failures_failed_at", "console_login_failures", ["failed_at"])
    op.create_index(
        "ix_console_login_failures_key_time", "console_login_failures", ["key", "failed_at"]
    )
    # The signing key of the former stateless session cookies: those cookies end here.
    op.execute("DELETE FROM runtime_flags WHERE name = 'console_session_key'")


def downgrade() -> None:
    op.drop_table("console_login_failures")
    op.drop_index("ix_console_sessions_username", "console_sessions")
    op.drop_table("console_sessions")
