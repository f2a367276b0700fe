"""Incidents and scheduled maintenance, as operators and the probes write them.

States and their order follow Atlassian Statuspage, so its clients read ours:
an incident is investigating → identified → monitoring (in any order, as often
as needed), then resolved, then optionally a postmortem; a maintenance is
scheduled → in_progress ⇄ verifying → completed. Nothing moves backwards out of
a closed state: a resolved incident that comes back is a new incident.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from personae.errors import InvalidTransition, NotFound, ValidationFailed
from personae.storage.db import Database
from personae.storage.repos import status as repo
from personae.storage.repos.status import IncidentRecord, IncidentUpdateRecord, MaintenanceRecord
from personae.storage.types import utcnow

log = logging.getLogger("personae.incidents")

INCIDENT_STATES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
OPEN_INCIDENT_STATES = frozenset({"investigating", "identified", "monitoring"})
IMPACTS = ("none", "minor", "major", "critical")
MAINTENANCE_STATES = ("scheduled", "in_progress", "verifying", "completed")
ACTIVE_MAINTENANCE_STATES = ("in_progress", "verifying")

_INCIDENT_NEXT: dict[str, frozenset[str]] = {
    **{state: OPEN_INCIDENT_STATES | {"resolved"} for state in OPEN_INCIDENT_STATES},
    "resolved": frozenset({"postmortem"}),
    "postmortem": frozenset(),
}
_MAINTENANCE_NEXT: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"scheduled", "in_progress", "completed"}),
    "in_progress": frozenset({"in_progress", "verifying", "completed"}),
    "verifying": frozenset({"verifying", "in_progress", "completed"}),
    "completed": frozenset(),
}
_MAX_TITLE = 200
_MAX_BODY = 10_000


@dataclass(frozen=True)
class IncidentView:
    """An incident with its updates, newest first."""

    incident: IncidentRecord
    updates: list[IncidentUpdateRecord]


# Told about every incident change (webhooks); must not raise and must not block.
IncidentListener = Callable[[IncidentView], Awaitable[None]]


def _check_text(field: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise ValidationFailed(f"{field}: must have 1 to {limit} characters")
    return value


def _check_choice(field: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValidationFailed(f"{field}: must be one of {', '.join(choices)}")
    return value


class IncidentService:
    """Open, update and resolve incidents; schedule and run maintenance windows."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._listeners: list[IncidentListener] = []

    def subscribe(self, listener: IncidentListener) -> None:
        self._listeners.append(listener)

    async def _changed(self, view: IncidentView) -> None:
        for listener in self._listeners:
            try:
                await listener(view)
            except Exception:  # a listener's failure never undoes the incident change
                log.exception(
                    "an incident listener failed", extra={"incident_id": view.incident.id}
                )

    # --- incidents --------------------------------------------------------------------

    async def open(
        self,
        title: str,
        body: str,
        *,
        status: str = "investigating",
        impact: str = "minor",
        components: Sequence[str] = (),
        automatic: bool = False,
        started_at: datetime | None = None,
    ) -> IncidentView:
        """Open an incident with its first update; `started_at` dates it from when the
        trouble began (the first failed check) rather than from now.

        An automatic incident is about one component, and opening one while another
        is open for that component (another process's probes were first) answers the
        open one, unchanged.
        """
        title = _check_text("title", title, _MAX_TITLE)
        body = _check_text("body", body, _MAX_BODY)
        _check_choice("status", status, sorted(OPEN_INCIDENT_STATES))
        _check_choice("impact", impact, IMPACTS)
        if automatic and len(components) != 1:
            raise ValidationFailed("components: an automatic incident is about one component")
        async with self._db.write() as tx:
            incident_id = await repo.insert_incident(
                tx,
                title=title,
                status=status,
                impact=impact,
                components=list(components),
                automatic=automatic,
                started_at=started_at,
            )
            if incident_id is not None:
                await repo.insert_incident_update(tx, incident_id, status=status, body=body)
        if incident_id is None:
            return await self._already_open(components[0])
        view = await self.get(incident_id)
        log.info("incident opened", extra={"incident_id": incident_id, "automatic": automatic})
        await self._changed(view)
        return view

    async def post_update(
        self, incident_id: str, status: str, body: str, *, impact: str | None = None
    ) -> IncidentView:
        """Add an update, moving the incident to `status` if that move is allowed."""
        _check_choice("status", status, INCIDENT_STATES)
        body = _check_text("body", body, _MAX_BODY)
        if impact is not None:
            _check_choice("impact", impact, IMPACTS)
        async with self._db.write() as tx:
            incident = await repo.get_incident(tx, incident_id)
            if incident is None:
                raise NotFound("No incident with this id.")
            if status not in _INCIDENT_NEXT[incident.status]:
                raise InvalidTransition(_refusal("incident", incident.status, status))
            now = utcnow()
            changes: dict[str, object] = {"status": status, "updated_at": now}
            if impact is not None:
                changes["impact"] = impact
            if status == "monitoring" and incident.monitoring_at is None:
                changes["monitoring_at"] = now
            if status == "resolved":
                changes["resolved_at"] = now
            await repo.update_incident(tx, incident_id, **changes)
            await repo.insert_incident_update(tx, incident_id, status=status, body=body)
        view = await self.get(incident_id)
        await self._changed(view)
        return view

    async def resolve(self, incident_id: str, body: str) -> IncidentView:
        return await self.post_update(incident_id, "resolved", body)

    async def get(self, incident_id: str) -> IncidentView:
        async with self._db.read() as tx:
            incident = await repo.get_incident(tx, incident_id)
            if incident is None:
                raise NotFound("No incident with this id.")
            updates = await repo.list_incident_updates(tx, [incident_id])
        return IncidentView(incident, updates[incident_id])

    async def list_incidents(
        self, *, unresolved_only: bool = False, limit: int = 50
    ) -> list[IncidentView]:
        """Incidents newest first, each with its updates."""
        async with self._db.read() as tx:
            found = await repo.list_incidents(tx, unresolved_only=unresolved_only, limit=limit)
            updates = await repo.list_incident_updates(tx, [i.id for i in found])
        return [IncidentView(incident, updates[incident.id]) for incident in found]

    async def open_automatic(self, component: str) -> IncidentView | None:
        """The unresolved incident the probes opened for `component`, if any."""
        async with self._db.read() as tx:
            incident = await repo.open_automatic_incident(tx, component)
            if incident is None:
                return None
            updates = await repo.list_incident_updates(tx, [incident.id])
        return IncidentView(incident, updates[incident.id])

    async def _already_open(self, component: str) -> IncidentView:
        view = await self.open_automatic(component)
        if view is None:  # resolved between our insert and this read: a rare race
            raise InvalidTransition(
                f"An incident about {component} was opened and resolved meanwhile."
            )
        log.info("automatic incident already open", extra={"incident_id": view.incident.id})
        return view

    # --- maintenance ------------------------------------------------------------------

    async def schedule_maintenance(
        self,
        title: str,
        body: str,
        *,
        scheduled_for: datetime,
        scheduled_until: datetime,
        components: Sequence[str] = (),
        status: str = "scheduled",
    ) -> MaintenanceRecord:
        """Announce a maintenance window (or start one at once with status in_progress)."""
        title = _check_text("title", title, _MAX_TITLE)
        body = body.strip()[:_MAX_BODY]
        _check_choice("status", status, MAINTENANCE_STATES[:2])
        _check_window(scheduled_for, scheduled_until)
        async with self._db.write() as tx:
            maintenance_id = await repo.insert_maintenance(
                tx,
                title=title,
                body=body,
                status=status,
                scheduled_for=scheduled_for,
                scheduled_until=scheduled_until,
                components=list(components),
            )
        return await self.get_maintenance(maintenance_id)

    async def change_maintenance(
        self,
        maintenance_id: str,
        *,
        status: str | None = None,
        title: str | None = None,
        body: str | None = None,
        scheduled_for: datetime | None = None,
        scheduled_until: datetime | None = None,
    ) -> MaintenanceRecord:
        """Move a maintenance along (start, verify, complete) or change its window or text."""
        async with self._db.write() as tx:
            current = await repo.get_maintenance(tx, maintenance_id)
            if current is None:
                raise NotFound("No maintenance with this id.")
            if current.status == "completed":
                raise InvalidTransition("This maintenance is completed; schedule a new one.")
            changes: dict[str, object] = {}
            if status is not None:
                _check_choice("status", status, MAINTENANCE_STATES)
                if status not in _MAINTENANCE_NEXT[current.status]:
                    raise InvalidTransition(_refusal("maintenance", current.status, status))
                changes["status"] = status
            if title is not None:
                changes["title"] = _check_text("title", title, _MAX_TITLE)
            if body is not None:
                changes["body"] = body.strip()[:_MAX_BODY]
            start = scheduled_for or current.scheduled_for
            end = scheduled_until or current.scheduled_until
            _check_window(start, end)
            changes.update(scheduled_for=start, scheduled_until=end)
            await repo.update_maintenance(tx, maintenance_id, **changes)
        return await self.get_maintenance(maintenance_id)

    async def get_maintenance(self, maintenance_id: str) -> MaintenanceRecord:
        async with self._db.read() as tx:
            found = await repo.get_maintenance(tx, maintenance_id)
        if found is None:
            raise NotFound("No maintenance with this id.")
        return found

    async def list_maintenances(
        self, *, statuses: Sequence[str] | None = None, limit: int = 50
    ) -> list[MaintenanceRecord]:
        async with self._db.read() as tx:
            return await repo.list_maintenances(tx, statuses=statuses, limit=limit)


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("scheduled_for, scheduled_until: give a time zone (e.g. Z)")
    if end <= start:
        raise ValidationFailed("scheduled_until: must be after scheduled_for")


def _refusal(kind: str, current: str, wanted: str) -> str:
    allowed = sorted(
        (_INCIDENT_NEXT if kind == "incident" else _MAINTENANCE_NEXT)[current] - {current}
    )
    then = f"it can go to {', '.join(allowed)}" if allowed else "it cannot change any more"
    return f"This {kind} is {current}; it cannot go to {wanted} ({then})."
