"""Reports, appeals, what moderators did, and warnings (migration 0014)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    text,
)

from personae.storage.tables.base import ID, metadata
from personae.storage.types import UTCDateTime

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
