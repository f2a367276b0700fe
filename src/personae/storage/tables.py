"""Table definitions (SQLAlchemy Core). Migrations in storage/migrations follow these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from personae.storage.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(26)

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

jobs = Table(
    "jobs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("user_id", ID, nullable=True),
    Column("chat_id", ID, nullable=True),
    Column("message_id", ID, nullable=True, index=True),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("max_attempts", Integer, nullable=False, default=3),
    # Times taken back from a process that died or whose work ran out of time (0007).
    Column("takeovers", Integer, nullable=False, default=0, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("available_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_jobs_status_available", "status", "available_at"),
)

# One row per running scheduler process, touched every second (migration 0007): the
# jobs of a process whose heartbeat stopped are taken back without waiting out leases.
processes = Table(
    "processes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# One row per request in flight on a backend, by the process that sent it (migration
# 0009): the slots of every process together; a row lives as long as its process.
backend_slots = Table(
    "backend_slots",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("backend", String(64), nullable=False, index=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("taken_at", UTCDateTime, nullable=False),
)

# What the workers last saw of each backend (migration 0009): every process estimates
# the waiting room's starts from these rows and the slots taken above.
backend_states = Table(
    "backend_states",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("slots", Integer, nullable=False),
    Column("healthy", Boolean, nullable=False),
    Column("breaker", String(16), nullable=False),
    Column("usable", Boolean, nullable=False),
    Column("service_s", Float, nullable=True),
    Column("reported_at", UTCDateTime, nullable=False),
)

# Status and transparency (see migration 0003): probes, incidents, maintenance, webhooks.

probe_results = Table(
    "probe_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("component", String(64), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("checked_at", UTCDateTime, nullable=False),
    Index("ix_probe_results_component_checked", "component", "checked_at"),
)

# The rows `ux_incidents_open_automatic` keeps unique: automatic and not yet closed.
OPEN_AUTOMATIC_INCIDENT = (
    "automatic_component IS NOT NULL AND status NOT IN ('resolved', 'postmortem')"
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("title", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("impact", String(16), nullable=False),
    Column("components", JSON, nullable=False),
    Column("automatic", Boolean, nullable=False, default=False),
    Column("shortlink", String(256), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("monitoring_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    # The one component an automatic incident is about (migration 0008); NULL for an
    # operator's. The index below allows one open automatic incident per component,
    # whichever process's probes see the trouble first.
    Column("automatic_component", String(64), nullable=True),
    Index("ix_incidents_status_created", "status", "created_at"),
    Index(
        "ux_incidents_open_automatic",
        "automatic_component",
        unique=True,
        postgresql_where=text(OPEN_AUTOMATIC_INCIDENT),
        sqlite_where=text(OPEN_AUTOMATIC_INCIDENT),
    ),
)

incident_updates = Table(
    "incident_updates",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "incident_id",
        ID,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("status", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

maintenances = Table(
    "maintenances",
    metadata,
    Column("id", ID, primary_key=True),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("scheduled_until", UTCDateTime, nullable=False),
    Column("components", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_maintenances_status_scheduled", "status", "scheduled_for"),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "subscription_id",
        ID,
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    # The process sending it now (migration 0008): one sender at a time; a sender that
    # died leaves a lease that runs out, and the delivery is sent again.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
)

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

# Reports, appeals and what moderators did (migration 0014).

# The rows `ux_reports_open` keeps unique: one open report of a target per reporter.
OPEN_REPORT = "status = 'open'"

reports = Table(
    "reports",
    metadata,
    Column("id", ID, primary_key=True),
    Column("reporter_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", ID, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("note", Text, nullable=False, default=""),
    # What the target said when it was reported (a message's text, a character's name).
    Column("snapshot", JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("action", String(32), nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("resolved_by", ID, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_reports_status_id", "status", "id"),
    Index("ix_reports_reporter_id", "reporter_id", "id"),
    Index("ix_reports_target", "target_kind", "target_id"),
    Index(
        "ux_reports_open",
        "reporter_id",
        "target_kind",
        "target_id",
        unique=True,
        postgresql_where=text(OPEN_REPORT),
        sqlite_where=text(OPEN_REPORT),
    ),
)

appeals = Table(
    "appeals",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("category", String(64), nullable=False),
    Column("content", Text, nullable=True),
    Column("message_id", ID, nullable=True),
    Column("chat_id", ID, nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("action", String(32), nullable=True),
    Column("resolution_note", Text, nullable=True),
    Column("resolved_by", ID, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_appeals_status_id", "status", "id"),
    Index("ix_appeals_user_id", "user_id", "id"),
)

# One row per moderator action, never changed: who did what to which target, and why.
moderation_audit = Table(
    "moderation_audit",
    metadata,
    Column("id", ID, primary_key=True),
    Column("actor_id", ID, nullable=False),
    Column("action", String(32), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", ID, nullable=False),
    Column("case_kind", String(16), nullable=True),
    Column("case_id", ID, nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("details", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Warnings a moderator gave an account; the user sees them in GET /api/v1/me.
user_warnings = Table(
    "user_warnings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("reason", String(32), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("created_by", ID, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
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
