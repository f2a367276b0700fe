"""reports: reports of characters, messages and users; appeals of refusals; the
moderators' audit log and warnings; characters.hidden_at, messages.removed_at and
users.suspended_until, the effects of moderators' actions

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_OPEN_REPORT = "status = 'open'"
_ID = sa.String(length=26)


def _time(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _resolution() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("resolved_by", _ID, nullable=True),
        _time("resolved_at", nullable=True),
        _time("created_at"),
    ]


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to (or, once a chat refers to it, fails on) every
    # row that refers to it.
    op.add_column("users", _time("suspended_until", nullable=True))
    op.add_column("characters", _time("hidden_at", nullable=True))
    op.add_column("messages", _time("removed_at", nullable=True))
    op.create_table(
        "reports",
        sa.Column("id", _ID, nullable=False),
        sa.Column("reporter_id", _ID, nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", _ID, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        *_resolution(),
        sa.ForeignKeyConstraint(
            ["reporter_id"],
            ["users.id"],
            name=op.f("fk_reports_reporter_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index("ix_reports_status_id", "reports", ["status", "id"])
    op.create_index("ix_reports_reporter_id", "reports", ["reporter_id", "id"])
    op.create_index("ix_reports_target", "reports", ["target_kind", "target_id"])
    op.create_index(
        "ux_reports_open",
        "reports",
        ["reporter_id", "target_kind", "target_id"],
        unique=True,
        postgresql_where=sa.text(_OPEN_REPORT),
        sqlite_where=sa.text(_OPEN_REPORT),
    )
    op.create_table(
        "appeals",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("chat_id", _ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        *_resolution(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_appeals_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
    )
    op.create_index("ix_appeals_status_id", "appeals", ["status", "id"])
    op.create_index("ix_appeals_user_id", "appeals", ["user_id", "id"])
    op.create_table(
        "moderation_audit",
        sa.Column("id", _ID, nullable=False),
        sa.Column("actor_id", _ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", _ID, nullable=False),
        sa.Column("case_kind", sa.String(length=16), nullable=True),
        sa.Column("case_id", _ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_audit")),
    )
    op.create_table(
        "user_warnings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", _ID, nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_warnings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_warnings")),
    )
    op.create_index("ix_user_warnings_user_id", "user_warnings", ["user_id"])


def downgrade() -> None:
    op.drop_table("user_warnings")
    op.drop_table("moderation_audit")
    op.drop_table("appeals")
    op.drop_index("ux_reports_open", table_name="reports")
    op.drop_table("reports")
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("messages", "removed_at")
    op.drop_column("characters", "hidden_at")
    op.drop_column("users", "suspended_until")
