"""speech_clips: read-aloud audio of replies, per message, voice and piece

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "speech_clips",
        sa.Column("message_id", sa.String(26), nullable=False),
        sa.Column("voice_key", sa.String(512), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("pcm", sa.LargeBinary(), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("is_last", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_speech_clips_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "voice_key", "idx", name=op.f("pk_speech_clips")),
    )
    op.create_index("ix_speech_clips_created_at", "speech_clips", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_speech_clips_created_at", table_name="speech_clips")
    op.drop_table("speech_clips")
