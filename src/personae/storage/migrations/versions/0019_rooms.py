"""group rooms: chats.kind, turn_mode and auto_turns_left; messages.character_id;
room_members, room_characters, room_invites and room_turns

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.String(26)


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Plain ALTER TABLE (a batch on SQLite rebuilds the table and cascades deletes).
    op.add_column("chats", sa.Column("kind", sa.String(8), nullable=False, server_default="direct"))
    op.add_column(
        "chats", sa.Column("turn_mode", sa.String(8), nullable=False, server_default="natural")
    )
    op.add_column(
        "chats", sa.Column("auto_turns_left", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("messages", sa.Column("character_id", _ID, nullable=True))
    op.create_table(
        "room_members",
        sa.Column("chat_id", _ID, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("persona_name", sa.String(64), nullable=False),
        sa.Column("persona_description", sa.Text(), nullable=False, server_default=""),
        _when("muted_until", True),
        _when("joined_at"),
        _when("removed_at", True),
        sa.Column("removed_by", _ID, nullable=True),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name="pk_room_members"),
    )
    op.create_index("ix_room_members_user_id", "room_members", ["user_id"])
    op.create_table(
        "room_characters",
        sa.Column("chat_id", _ID, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("character_id", _ID, sa.ForeignKey("characters.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("talkativeness", sa.Float(), nullable=False, server_default="0.5"),
        _when("added_at"),
        _when("removed_at", True),
        sa.PrimaryKeyConstraint("chat_id", "character_id", name="pk_room_characters"),
    )
    op.create_table(
        "room_invites",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("chat_id", _ID, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("created_by", _ID, nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("revoked_at", True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_room_invites_chat_id", "room_invites", ["chat_id"])
    op.create_table(
        "room_turns",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("chat_id", _ID, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("character_id", _ID, nullable=False),
        sa.Column("requested_by", _ID, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("parent_id", _ID, nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("chat_id", "seq", name="uq_room_turns_chat_id"),
    )
    op.create_index("ix_room_turns_chat_status", "room_turns", ["chat_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_room_turns_chat_status", table_name="room_turns")
    op.drop_table("room_turns")
    op.drop_index("ix_room_invites_chat_id", table_name="room_invites")
    op.drop_table("room_invites")
    op.drop_table("room_characters")
    op.drop_index("ix_room_members_user_id", table_name="room_members")
    op.drop_table("room_members")
    op.drop_column("messages", "character_id")
    op.drop_column("chats", "auto_turns_left")
    op.drop_column("chats", "turn_mode")
    op.drop_column("chats", "kind")
