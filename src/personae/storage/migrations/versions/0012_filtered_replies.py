"""filtered_replies: messages.filtered_category, the moderation category that ended a
reply in state `filtered` (the text before the offending sentence is kept)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to (or, once a chat refers to it, fails on) every
    # row that refers to it.
    op.add_column("messages", sa.Column("filtered_category", sa.String(32), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("messages", "filtered_category")
