"""age_and_wellbeing: users' age declaration (age_declared_at, adult_from), their
"show mature characters" setting, when they last put the time-spent notice away,
and an index on messages (author_id, created_at) for that notice

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch copies the table and drops the
    # old one, and dropping users would cascade to every row that refers to it.
    op.add_column("users", sa.Column("age_declared_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("adult_from", sa.Date(), nullable=True))
    op.add_column(
        "users",
        sa.Column("show_mature", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "users", sa.Column("wellbeing_dismissed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_messages_author_created", "messages", ["author_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_author_created", table_name="messages")
    # Plain DROP COLUMN (SQLite 3.35 and later), for the same reason as above.
    for column in ("wellbeing_dismissed_at", "show_mature", "adult_from", "age_declared_at"):
        op.drop_column("users", column)
