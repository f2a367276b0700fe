"""age_and_wellbeing: users' age declaration (age_declared_at, adult_from), their
"show mature characters" setting, when they last put the time-spent notice away,
and an index on messages (author_id, created_at) for that notice

Revision ID: 0013
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("age_declared_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("adult_from", sa.Date(), nullable=True))
        batch.add_column(
            sa.Column("show_mature", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("wellbeing_dismissed_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index("ix_messages_author_created", "messages", ["author_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_author_created", table_name="messages")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("wellbeing_dismissed_at")
        batch.drop_column("show_mature")
        batch.drop_column("adult_from")
        batch.drop_column("age_declared_at")
