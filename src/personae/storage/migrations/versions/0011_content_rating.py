"""content_rating: characters.rating, the character's content rating (general, teen
or mature); what moderation allows in its chats and who may chat with it follow it

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to (or, once a chat refers to it, fails on) every
    # row that refers to it.
    op.add_column(
        "characters", sa.Column("rating", sa.String(16), nullable=False, server_default="general")
    )


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("characters", "rating")
