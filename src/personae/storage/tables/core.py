"""Accounts, characters, pictures, chats and messages."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from personae.storage.tables.base import ID, metadata
from personae.storage.types import UTCDateTime

app_meta = Table(
    "app_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("role", String(16), nullable=False, default="user"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    # Until when a moderator suspended the account (migration 0014); null or past: not.
    Column("suspended_until", UTCDateTime, nullable=True),
    # The age declaration: when it was made, and the day from which the account is
    # adult (the day of the declaration for an adult, the 18th birthday for a minor);
    # the birth date itself is not kept.
    Column("age_declared_at", UTCDateTime, nullable=True),
    Column("adult_from", Date, nullable=True),
    Column("show_mature", Boolean, nullable=False, default=False, server_default=false()),
    # The last time the user put the time-spent notice away.
    Column("wellbeing_dismissed_at", UTCDateTime, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("user_agent", String(256), nullable=True),
    Column("ip", String(64), nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

characters = Table(
    "characters",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("tagline", String(256), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("personality", Text, nullable=False, default=""),
    Column("scenario", Text, nullable=False, default=""),
    Column("first_message", Text, nullable=False, default=""),
    Column("alternate_greetings", JSON, nullable=False),
    Column("example_dialogues", Text, nullable=False, default=""),
    Column("system_prompt", Text, nullable=False, default=""),
    Column("post_history_instructions", Text, nullable=False, default=""),
    Column("creator_notes", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("avatar", Text, nullable=True),
    Column("visibility", String(16), nullable=False, default="public"),
    Column("extensions", JSON, nullable=False),
    # Character Card V2/V3 fields beyond the basics (migration 0002).
    Column("nickname", String(128), nullable=False, default="", server_default=""),
    Column("creator", String(128), nullable=False, default="", server_default=""),
    Column("character_version", String(64), nullable=False, default="", server_default=""),
    Column("group_only_greetings", JSON, nullable=True),
    Column("creation_date", BigInteger, nullable=True),
    Column("character_book", JSON, nullable=True),
    # The imported card's JSON object, verbatim: the base of every export.
    Column("card", JSON, nullable=True),
    Column("chat_count", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    # When a moderator featured it on the discover page (migration 0005); null: not featured.
    Column("featured_at", UTCDateTime, nullable=True),
    # Whether others see its definition when they inspect a reply's prompt (migration 0010).
    Column("definition_visible", Boolean, nullable=False, default=False, server_default=false()),
    # Its content rating: general, teen or mature (migration 0011).
    Column("rating", String(16), nullable=False, default="general", server_default="general"),
    # When a moderator hid it (migration 0014): only its owner (and staff) still see it.
    Column("hidden_at", UTCDateTime, nullable=True),
    # Its stored picture (migration 0016, table images); null: `avatar` (an https
    # URL) or none. No foreign key: a plain ALTER TABLE on SQLite cannot add one.
    Column("avatar_image_id", ID, nullable=True),
    # The stars of its rated replies, summed and counted (migration 0018), kept as
    # ratings change so lists and sorts read two columns instead of every message.
    Column("rating_sum", Integer, nullable=False, default=0, server_default="0"),
    Column("rating_count", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_characters_visibility_created", "visibility", "created_at"),
    Index("ix_characters_featured_at", "featured_at"),
)

character_tags = Table(
    "character_tags",
    metadata,
    Column(
        "character_id",
        ID,
        ForeignKey("characters.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(64), primary_key=True),
    Index("ix_character_tags_tag", "tag"),
)

# Files that came with a card (a CHARX archive's assets, a PNG card's image).
character_assets = Table(
    "character_assets",
    metadata,
    Column(
        "character_id",
        ID,
        ForeignKey("characters.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("path", String(512), primary_key=True),
    Column("type", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("ext", Text, nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("uri", Text, nullable=True),
    Column("data", LargeBinary, nullable=False),
)

# Pictures (migration 0016): avatars and card images, as sent, with resized variants.
images = Table(
    "images",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    # The character whose picture it is: who may see it follows the character.
    Column(
        "character_id",
        ID,
        ForeignKey("characters.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("sha256", String(64), nullable=False),
    Column("media_type", String(32), nullable=False),
    # 0 until the picture was read (avatars moved here from data: URLs by 0016 are
    # read, and their variants made, when first asked for).
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    # The original's bytes and every variant's, for the quota.
    Column("byte_count", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

image_variants = Table(
    "image_variants",
    metadata,
    Column("image_id", ID, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("size", Integer, primary_key=True),
    Column("media_type", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Chats, messages and reply jobs.

chats = Table(
    "chats",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("character_id", ID, ForeignKey("characters.id"), nullable=False, index=True),
    Column("title", String(128), nullable=False),
    Column("persona_name", String(64), nullable=False),
    Column("persona_description", Text, nullable=False, default=""),
    Column("next_position", Integer, nullable=False, default=0),
    Column("backend", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    # The persona chosen for this chat (migration 0004); its name and description
    # are copied into persona_name/persona_description.
    Column("persona_id", ID, nullable=True),
    # When the chat last changed in a way its next prompt shows (migration 0006): an
    # edit, a deletion, a swipe choice, a memory, the persona. A new message does not.
    Column("prompt_changed_at", UTCDateTime, nullable=True),
    # Group rooms (migration 0019): 'direct' (one owner, one character) or 'room'.
    Column("kind", String(8), nullable=False, default="direct", server_default="direct"),
    # Who speaks next in a room: natural, list, random or manual.
    Column("turn_mode", String(8), nullable=False, default="natural", server_default="natural"),
    Column("auto_turns_left", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_chats_owner_updated", "owner_id", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", ID, primary_key=True),
    Column("chat_id", ID, ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    Column("author_id", ID, nullable=True),
    Column("role", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Column("swipe_index", Integer, nullable=False, default=0),
    Column("selected", Boolean, nullable=False, default=True),
    Column("parent_id", ID, nullable=True),
    Column("client_id", String(64), nullable=True),
    Column("content_hash", String(64), nullable=True),
    Column("content", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("retryable", Boolean, nullable=False, default=False),
    Column("rating", Integer, nullable=True),
    Column("labels", JSON, nullable=False),
    Column("generation", JSON, nullable=True),
    Column("backend", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    # The moderation category that ended a reply in state "filtered".
    Column("filtered_category", String(32), nullable=True),
    # When a moderator removed it (migration 0014): deleted_at is set too, so it leaves
    # the chat and its prompts; the row stays for the audit record.
    Column("removed_at", UTCDateTime, nullable=True),
    # Why a reply ended (migration 0015): stop, length, stopped, filtered or failed;
    # NULL while it is written, and for replies stored before.
    Column("finish_reason", String(16), nullable=True),
    # Cut by the token limit and trimmed to its last whole sentence (Continue goes on).
    Column("cut_short", Boolean, nullable=False, default=False, server_default=false()),
    # Which character of a room wrote an assistant message (migration 0019; NULL in a
    # one-on-one chat, whose character is the chat's).
    Column("character_id", ID, nullable=True),
    UniqueConstraint("chat_id", "author_id", "client_id", name="uq_messages_client_id"),
    UniqueConstraint("chat_id", "position", "swipe_index", name="uq_messages_position"),
    # The time-spent notice reads a user's recent messages.
    Index("ix_messages_author_created", "author_id", "created_at"),
    # Trending counts the messages of the last days (migration 0018).
    Index("ix_messages_created_at", "created_at"),
)
