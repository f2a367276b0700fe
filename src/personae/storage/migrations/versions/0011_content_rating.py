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
    with op.batch_alter_table("characters") as batch:
        batch.add_column(
            sa.Column("rating", sa.String(16), nullable=False, server_default="general")
        )


def downgrade() -> None:
    with op.batch_alter_table("characters") as batch:
        batch.drop_column("rating")
