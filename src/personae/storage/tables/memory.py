"""What is kept beside a chat: personas, memories, message vectors, read-aloud audio."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from personae.storage.tables.base import ID, metadata
from personae.storage.types import UTCDateTime

# Personas and long-term memory (migration 0004).

personas = Table(
    "personas",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("avatar", Text, nullable=True),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Pinned facts and rolling summaries of a chat. A summary row is one version: the
# newest not deleted is in use; deleting it brings back the one before.
memories = Table(
    "memories",
    metadata,
    Column("id", ID, primary_key=True),
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("source_message_id", ID, nullable=True),
    # For a summary: the last message position it covers.
    Column("through_position", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Index("ix_memories_chat_kind", "chat_id", "kind"),
)

# One vector per indexed message, for recall by meaning (float32 bytes).
message_vectors = Table(
    "message_vectors",
    metadata,
    Column("message_id", ID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("model", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Index("ix_message_vectors_chat_model_position", "chat_id", "model", "position"),
)


# Read-aloud audio (migration 0020): one row per spoken piece of a reply in one voice
# (`voice_key`, VoiceChoice.key()), 16-bit mono PCM; `is_last` marks the piece that
# completes the message. Dropped with the message's text changes (services/speech.py).
speech_clips = Table(
    "speech_clips",
    metadata,
    Column("message_id", ID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("voice_key", String(512), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("pcm", LargeBinary, nullable=False),
    Column("byte_count", Integer, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("is_last", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_speech_clips_created_at", "created_at"),
)
