"""Helpers shared by the status tests: staff clients and Statuspage field checks."""

from __future__ import annotations

import re
from typing import Any

import httpx

from conftest import Api

PAGE_FIELDS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_FIELDS = {
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
    "start_date", "group_id", "page_id", "group", "only_show_if_degraded", "personae",
}  # fmt: skip
INCIDENT_FIELDS = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at",
    "impact", "shortlink", "started_at", "page_id", "incident_updates", "components",
}  # fmt: skip
UPDATE_FIELDS = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
    "affected_components",
}  # fmt: skip
COMPONENT_STATES = {
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance",
}  # fmt: skip
INDICATORS = {"none", "minor", "major", "critical", "maintenance"}
INCIDENT_STATES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATES = {"scheduled", "in_progress", "verifying", "completed"}
IMPACTS = {"none", "minor", "major", "critical", "maintenance"}
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


async def staff(api: Api, role: str = "admin") -> httpx.AsyncClient:
    """A logged-in client whose account has `role`."""
    client = await api.user()
    me = (await client.get("/api/v1/me")).json()
    await api.container.accounts.set_role(me["username"], role)
    return client


def check_time(value: Any, *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    assert isinstance(value, str) and _ISO.match(value), value


def check_component(component: dict[str, Any]) -> None:
    assert set(component) == COMPONENT_FIELDS, set(component) ^ COMPONENT_FIELDS
    assert component["status"] in COMPONENT_STATES
    check_time(component["created_at"])
    check_time(component["updated_at"])
    assert isinstance(component["position"], int)
    ours = component["personae"]
    assert ours["status"] in COMPONENT_STATES | {"busy"}
    assert (ours["status"] == "busy") == (ours["wait_s"] is not None)


def check_incident(incident: dict[str, Any], *, maintenance: bool = False) -> None:
    expected = INCIDENT_FIELDS | ({"scheduled_for", "scheduled_until"} if maintenance else set())
    assert set(incident) == expected, set(incident) ^ expected
    states = MAINTENANCE_STATES if maintenance else INCIDENT_STATES
    assert incident["status"] in states
    assert incident["impact"] in IMPACTS
    for name in ("created_at", "updated_at", "started_at"):
        check_time(incident[name])
    for name in ("monitoring_at", "resolved_at"):
        check_time(incident[name], nullable=True)
    for update in incident["incident_updates"]:
        assert set(update) == UPDATE_FIELDS, set(update) ^ UPDATE_FIELDS
        assert update["status"] in states
        assert update["incident_id"] == incident["id"]
    for component in incident["components"]:
        check_component(component)
    if maintenance:
        check_time(incident["scheduled_for"])
        check_time(incident["scheduled_until"])


def check_page(page: dict[str, Any]) -> None:
    assert set(page) == PAGE_FIELDS
    check_time(page["updated_at"])
