"""Bodies of the admin status API and the in-app notice."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from personae.api.schemas.common import Input, Output

IncidentState = Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]
OpenIncidentState = Literal["investigating", "identified", "monitoring"]
Impact = Literal["none", "minor", "major", "critical"]
MaintenanceState = Literal["scheduled", "in_progress", "verifying", "completed"]
Components = list[str]


class IncidentCreate(Input):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)
    status: OpenIncidentState = "investigating"
    impact: Impact = "minor"
    components: Components = Field(default_factory=list, max_length=50)


class IncidentUpdateCreate(Input):
    status: IncidentState
    body: str = Field(min_length=1, max_length=10_000)
    impact: Impact | None = None


class MaintenanceCreate(Input):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)
    scheduled_for: datetime
    scheduled_until: datetime
    components: Components = Field(default_factory=list, max_length=50)
    status: Literal["scheduled", "in_progress"] = "scheduled"


class MaintenanceUpdate(Input):
    status: MaintenanceState | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=10_000)
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None


class WebhookCreate(Input):
    url: str = Field(min_length=8, max_length=2048)


class NoticePublic(Output):
    """What the web app's banner shows now; `kind` none means: show nothing."""

    kind: Literal["none", "maintenance", "incident", "degraded", "busy", "upcoming_maintenance"]
    level: Literal["none", "info", "warning", "critical"]
    title: str
    message: str
    read_only: bool
    incident_id: str | None
    maintenance_id: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    queue_length: int
    queue_wait_s: float
    status_url: str
