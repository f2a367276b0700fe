"""definition_visible: characters.definition_visible, whether others may see a
character's definition (system prompt, description, lorebook, ...) when they
inspect a reply's prompt; off unless the creator turns it on

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to (or, once a chat refers to it, fails on) every
    # row that refers to it.
    op.add_column(
        "characters",
        sa.Column("definition_visible", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("characters", "definition_visible")
