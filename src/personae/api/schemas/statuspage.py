"""The Statuspage v2 JSON shapes (Atlassian's field names and enums), built from records.

Existing Statuspage clients and widgets read these unmodified; times are ISO 8601
with milliseconds and an offset, as Statuspage writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from personae.services.incidents import IncidentView
from personae.services.status import ComponentState, Overview
from personae.storage.repos.status import MaintenanceRecord

Json = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


def page(overview: Overview) -> Json:
    return {
        "id": overview.page_id,
        "name": overview.name,
        "url": overview.url,
        "time_zone": "Etc/UTC",
        "updated_at": iso(overview.updated_at),
    }


def status(overview: Overview) -> Json:
    return {"indicator": overview.indicator, "description": overview.description}


def component(state: ComponentState, page_id: str) -> Json:
    """Statuspage's component; busy (not in its enum) reads operational there, and our
    own `personae` field says busy and about how long replies wait."""
    return {
        "id": state.id,
        "name": state.name,
        "status": "operational" if state.status == "busy" else state.status,
        "created_at": iso(state.created_at),
        "updated_at": iso(state.updated_at),
        "position": state.position,
        "description": state.description,
        "showcase": True,
        "start_date": state.created_at.date().isoformat(),
        "group_id": None,
        "page_id": page_id,
        "group": False,
        "only_show_if_degraded": False,
        "personae": {"status": state.status, "wait_s": state.wait_s, "text": state.busy_text},
    }


def _affected(ids: list[str], overview: Overview) -> list[Json]:
    known = {state.id: state for state in overview.components}
    return [component(known[i], overview.page_id) for i in ids if i in known]


def _shortlink(overview: Overview, anchor: str) -> str:
    return f"{overview.url}#{anchor}"


def incident(view: IncidentView, overview: Overview) -> Json:
    found = view.incident
    affected = _affected(found.components, overview)
    codes = [{"code": c["id"], "name": c["name"], "new_status": c["status"]} for c in affected]
    return {
        "id": found.id,
        "name": found.title,
        "status": found.status,
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
        "monitoring_at": iso(found.monitoring_at),
        "resolved_at": iso(found.resolved_at),
        "impact": found.impact,
        "shortlink": found.shortlink or _shortlink(overview, f"incident-{found.id}"),
        "started_at": iso(found.created_at),
        "page_id": overview.page_id,
        "incident_updates": [
            {
                "id": update.id,
                "status": update.status,
                "body": update.body,
                "incident_id": found.id,
                "created_at": iso(update.created_at),
                "updated_at": iso(update.created_at),
                "display_at": iso(update.created_at),
                "affected_components": codes or None,
            }
            for update in view.updates
        ],
        "components": affected,
    }


def maintenance(record: MaintenanceRecord, overview: Overview) -> Json:
    affected = _affected(record.components, overview)
    done = record.status == "completed"
    return {
        "id": record.id,
        "name": record.title,
        "status": record.status,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "monitoring_at": None,
        "resolved_at": iso(record.updated_at) if done else None,
        "impact": "maintenance",
        "shortlink": _shortlink(overview, f"maintenance-{record.id}"),
        "started_at": iso(record.scheduled_for),
        "page_id": overview.page_id,
        "incident_updates": [
            {
                "id": f"{record.id}-{record.status}",
                "status": record.status,
                "body": record.body or record.title,
                "incident_id": record.id,
                "created_at": iso(record.updated_at),
                "updated_at": iso(record.updated_at),
                "display_at": iso(record.updated_at),
                "affected_components": None,
            }
        ],
        "components": affected,
        "scheduled_for": iso(record.scheduled_for),
        "scheduled_until": iso(record.scheduled_until),
    }


def maintenances(overview: Overview, statuses: tuple[str, ...] | None = None) -> list[Json]:
    return [
        maintenance(m, overview)
        for m in overview.maintenances
        if statuses is None or m.status in statuses
    ]


def summary(overview: Overview) -> Json:
    return {
        "page": page(overview),
        "components": [component(c, overview.page_id) for c in overview.components],
        "incidents": [incident(v, overview) for v in overview.unresolved],
        "scheduled_maintenances": maintenances(overview, ("scheduled", "in_progress", "verifying")),
        "status": status(overview),
    }
