"""Running the service: reply jobs, processes, backend slots and states, and the
status page (probes, incidents, maintenance, webhooks)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from personae.storage.tables.base import ID, metadata
from personae.storage.types import UTCDateTime

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
