"""Group rooms (migration 0019): members, characters, invite links, planned turns."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from personae.storage.tables.base import ID, metadata
from personae.storage.types import UTCDateTime

# Group rooms (migration 0019): the people in a room, its characters, its invite links
# and the durable plan of who speaks next.

room_members = Table(
    "room_members",
    metadata,
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("persona_name", String(64), nullable=False),
    Column("persona_description", Text, nullable=False, default="", server_default=""),
    Column("muted_until", UTCDateTime, nullable=True),
    Column("joined_at", UTCDateTime, nullable=False),
    # Set when the member left or was removed; joining again clears it.
    Column("removed_at", UTCDateTime, nullable=True),
    # Who removed them: the owner (an invite link then lets them in no more); NULL
    # when they left by themselves. No foreign key: the owner's account may go first.
    Column("removed_by", ID, nullable=True),
    Index("ix_room_members_user_id", "user_id"),
)

room_characters = Table(
    "room_characters",
    metadata,
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
    Column("character_id", ID, ForeignKey("characters.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("talkativeness", Float, nullable=False, default=0.5, server_default="0.5"),
    Column("added_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime, nullable=True),
)

room_invites = Table(
    "room_invites",
    metadata,
    Column("id", ID, primary_key=True),
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    # Only the token's hash is stored: the token is shown once, to its creator.
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("role", String(8), nullable=False),
    Column("created_by", ID, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_room_invites_chat_id", "chat_id"),
)

room_turns = Table(
    "room_turns",
    metadata,
    Column("id", ID, primary_key=True),
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("character_id", ID, nullable=False),
    # The user charged for the reply in the waiting room.
    Column("requested_by", ID, nullable=False),
    Column("reason", String(16), nullable=False),
    # planned -> started (its reply placeholder and job exist) -> done; or dropped.
    Column("status", String(8), nullable=False),
    Column("message_id", ID, nullable=True),
    # The user message that asked for it (NULL for a turn asked by other means).
    Column("parent_id", ID, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("chat_id", "seq", name="uq_room_turns_chat_id"),
    Index("ix_room_turns_chat_status", "chat_id", "status"),
)
