"""chats.prompt_changed_at: when the chat last changed in a way its next prompt shows

A reply read ahead of its claim is current while this stays the same; a new
message at the end of the chat (updated_at) does not change an earlier reply's
prompt.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("prompt_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE chats SET prompt_changed_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("prompt_changed_at")
