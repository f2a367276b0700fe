"""finish_reason: messages.finish_reason, why a reply ended (stop, length, stopped,
filtered, failed), and messages.cut_short, a reply the token limit cut and that was
trimmed to its last whole sentence

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to (or, once a chat refers to it, fails on) every
    # row that refers to it. Replies stored before keep a NULL finish_reason: how
    # they ended was not recorded.
    op.add_column("messages", sa.Column("finish_reason", sa.String(16), nullable=True))
    op.add_column(
        "messages",
        sa.Column("cut_short", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("messages", "cut_short")
    op.drop_column("messages", "finish_reason")
