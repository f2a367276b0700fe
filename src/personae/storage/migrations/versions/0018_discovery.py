"""discovery: characters.rating_sum and rating_count (the stars of their rated
replies, filled from the messages), and an index on messages.created_at for trending

Revision ID: 0018
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

# A rating given counts even once its message is deleted (as the live counters do).
# Portable SQL (SQLite and PostgreSQL): correlated subqueries, no UPDATE ... FROM.
_RATED = (
    "FROM messages m JOIN chats c ON c.id = m.chat_id "
    "WHERE c.character_id = characters.id AND m.rating IS NOT NULL"
)


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch (a batch on SQLite rebuilds the table and drops
    # the old one, which cascades to every row that refers to it).
    op.add_column(
        "characters",
        sa.Column("rating_sum", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "characters",
        sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        f"UPDATE characters SET rating_sum = (SELECT COALESCE(SUM(m.rating), 0) {_RATED}), "
        f"rating_count = (SELECT COUNT(m.rating) {_RATED})"
    )
    op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_column("characters", "rating_count")
    op.drop_column("characters", "rating_sum")
