"""How long a handler's delivery of an event holds back the handlers of larger priority
numbers (`holds_back`); until now it was until done, which let one dead connector hold
every lower-priority handler of its events for the whole retry schedule.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handlers") as batch:
        batch.add_column(
            sa.Column(
                "holds_back",
                sa.String(24),
                nullable=False,
                server_default="until_first_attempt",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("handlers") as batch:
        batch.drop_column("holds_back")
