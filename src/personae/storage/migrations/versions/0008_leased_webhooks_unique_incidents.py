"""Leased webhook deliveries, one open automatic incident per component

`webhook_deliveries` gets a lease (owner and expiry): a delivery is sent by one
process at a time, and sent again when its sender died. `incidents` gets
`automatic_component` and a partial unique index over the open automatic
incidents, so two processes whose probes fail at once open one incident, not two.
Existing automatic incidents are linked to their component; where several are
open for one component (opened before this constraint), only the newest is.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN_AUTOMATIC = "automatic_component IS NOT NULL AND status NOT IN ('resolved', 'postmortem')"
_CLOSED = ("resolved", "postmortem")


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("automatic_component", sa.String(64), nullable=True))
    _link_automatic_incidents()
    op.create_index(
        "ux_incidents_open_automatic",
        "incidents",
        ["automatic_component"],
        unique=True,
        postgresql_where=sa.text(_OPEN_AUTOMATIC),
        sqlite_where=sa.text(_OPEN_AUTOMATIC),
    )


def _link_automatic_incidents() -> None:
    incidents = sa.table(
        "incidents",
        sa.column("id", sa.String),
        sa.column("status", sa.String),
        sa.column("components", sa.JSON),
        sa.column("automatic", sa.Boolean),
        sa.column("created_at", sa.DateTime),
        sa.column("automatic_component", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(incidents.c.id, incidents.c.status, incidents.c.components)
        .where(incidents.c.automatic.is_(True))
        .order_by(incidents.c.created_at.desc(), incidents.c.id.desc())
    ).all()
    linked_open: set[str] = set()
    for incident_id, status, components in rows:
        if not components:
            continue
        component = str(components[0])[:64]
        if status not in _CLOSED:
            if component in linked_open:
                continue  # an older duplicate: the index allows only the newest
            linked_open.add(component)
        connection.execute(
            sa.update(incidents)
            .where(incidents.c.id == incident_id)
            .values(automatic_component=component)
        )


def downgrade() -> None:
    op.drop_index("ux_incidents_open_automatic", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("automatic_component")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
