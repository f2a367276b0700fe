"""Process heartbeats and job takeovers

`processes` holds one row per running scheduler process, touched every second:
the jobs of a process whose heartbeat stopped are taken back within seconds,
not after their whole lease. `jobs.takeovers` counts how often a job was taken
back from a process that died (or whose work ran out of time): a reply taken
back too often is quarantined instead of taking down every process in turn.
`jobs.attempts` now counts only the backend failures of a job.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "processes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processes")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("takeovers")
