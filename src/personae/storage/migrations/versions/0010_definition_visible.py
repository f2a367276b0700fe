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
    with op.batch_alter_table("characters") as batch:
        batch.add_column(
            sa.Column("definition_visible", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("characters") as batch:
        batch.drop_column("definition_visible")
