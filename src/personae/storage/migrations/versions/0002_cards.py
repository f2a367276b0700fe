"""character cards: V2/V3 fields on characters, and the files that came with a card

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("characters") as batch:
        batch.add_column(sa.Column("nickname", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("creator", sa.String(128), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("character_version", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("group_only_greetings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("creation_date", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("character_book", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("card", sa.JSON(), nullable=True))
    op.create_table(
        "character_assets",
        sa.Column("character_id", sa.String(length=26), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("ext", sa.Text(), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name=op.f("fk_character_assets_character_id_characters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("character_id", "path", name=op.f("pk_character_assets")),
    )


def downgrade() -> None:
    op.drop_table("character_assets")
    with op.batch_alter_table("characters") as batch:
        for name in (
            "card",
            "character_book",
            "creation_date",
            "group_only_greetings",
            "character_version",
            "creator",
            "nickname",
        ):
            batch.drop_column(name)
