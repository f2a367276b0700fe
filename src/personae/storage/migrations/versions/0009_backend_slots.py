"""Backend slot leases and backend states shared by every process

`backend_slots` holds one row per request in flight on an inference backend,
by the process that sent it. A process takes a row only while the backend's
rows number fewer than its slots (under a lock per backend), so several
workers together never send a backend more requests than it has slots. A row
lives as long as its process's heartbeat: the rows of a process that died go
with its row in `processes`.

`backend_states` holds what the workers see of each backend (its role and slots,
its probe's answer and breaker, whether it can take replies, the moving measure
of a reply's time on it), so every
process, api or worker, tells a waiting reply the same place and estimate.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backend_slots",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_backend_slots_backend", "backend_slots", ["backend"])
    op.create_index("ix_backend_slots_owner", "backend_slots", ["owner"])
    op.create_table(
        "backend_states",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("breaker", sa.String(16), nullable=False),
        sa.Column("usable", sa.Boolean(), nullable=False),
        sa.Column("service_s", sa.Float(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("backend_states")
    op.drop_table("backend_slots")
