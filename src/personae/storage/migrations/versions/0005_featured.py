"""featured: characters.featured_at, set by moderators for the discover page

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("characters") as batch:
        batch.add_column(sa.Column("featured_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_characters_featured_at", "characters", ["featured_at"])


def downgrade() -> None:
    op.drop_index("ix_characters_featured_at", table_name="characters")
    with op.batch_alter_table("characters") as batch:
        batch.drop_column("featured_at")
