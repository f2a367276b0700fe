"""Probe results, incidents with their updates, and scheduled maintenance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import case, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import (
    OPEN_AUTOMATIC_INCIDENT,
    incident_updates,
    incidents,
    jobs,
    maintenances,
    probe_results,
)
from personae.storage.types import new_id, utcnow

CLOSED_INCIDENT_STATES = ("resolved", "postmortem")


@dataclass(frozen=True)
class ProbeRecord:
    component: str
    ok: bool
    latency_ms: int
    detail: str
    checked_at: datetime


@dataclass(frozen=True)
class IncidentRecord:
    id: str
    title: str
    status: str
    impact: str
    components: list[str]
    automatic: bool
    shortlink: str | None
    created_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class IncidentUpdateRecord:
    id: str
    incident_id: str
    status: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class MaintenanceRecord:
    id: str
    title: str
    body: str
    status: str
    scheduled_for: datetime
    scheduled_until: datetime
    components: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DailyUptime:
    component: str
    day: date
    checks: int
    passed: int


def _record(cls: Any, row: RowMapping) -> Any:
    return cls(**{f.name: row[f.name] for f in fields(cls)})


# --- probe results --------------------------------------------------------------------


async def insert_probe_results(tx: AsyncSession, results: Sequence[ProbeRecord]) -> None:
    """Store one round of probe results."""
    if results:
        await tx.execute(
            insert(probe_results),
            [{f.name: getattr(r, f.name) for f in fields(ProbeRecord)} for r in results],
        )


async def recent_probe_results(
    tx: AsyncSession, component: str, *, limit: int
) -> list[ProbeRecord]:
    """The component's latest results, newest first."""
    query = (
        select(probe_results)
        .where(probe_results.c.component == component)
        .order_by(probe_results.c.checked_at.desc(), probe_results.c.id.desc())
        .limit(limit)
    )
    return [_record(ProbeRecord, row) for row in (await tx.execute(query)).mappings()]


async def first_seen(tx: AsyncSession, components: Sequence[str]) -> dict[str, datetime]:
    """When each component was first checked (of the results still kept)."""
    query = (
        select(probe_results.c.component, func.min(probe_results.c.checked_at))
        .where(probe_results.c.component.in_(list(components)))
        .group_by(probe_results.c.component)
    )
    return {str(name): moment for name, moment in (await tx.execute(query)).all()}


async def daily_uptime(tx: AsyncSession, *, since: datetime) -> list[DailyUptime]:
    """Checks and passed checks per component and UTC day since `since`."""
    day = func.date(probe_results.c.checked_at)
    passed = func.sum(case((probe_results.c.ok, 1), else_=0))
    query = (
        select(probe_results.c.component, day.label("day"), func.count(), passed)
        .where(probe_results.c.checked_at >= since)
        .group_by(probe_results.c.component, day)
    )
    rows = (await tx.execute(query)).all()
    return [
        DailyUptime(
            component=str(component),
            day=value if isinstance(value, date) else date.fromisoformat(str(value)),
            checks=int(checks),
            passed=int(ok or 0),
        )
        for component, value, checks, ok in rows
    ]


async def delete_probe_results_before(tx: AsyncSession, cutoff: datetime) -> int:
    result = await tx.execute(delete(probe_results).where(probe_results.c.checked_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WaitingRoomRecord:
    waiting: int
    oldest_queued_at: datetime | None
    writing: int
    # Seconds each reply started since the window's start waited, newest first.
    recent_waits_s: list[float]


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):  # SQLite's min() hands back the stored text
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if isinstance(moment, datetime) else None


async def waiting_room(
    tx: AsyncSession, *, kind: str, started_since: datetime, sample: int = 100
) -> WaitingRoomRecord:
    """Jobs of `kind` waiting (and since when), being run under a live lease, and how
    long the latest `sample` of those started since `started_since` had waited."""
    now = utcnow()
    of_kind = jobs.c.kind == kind
    line = select(func.count(), func.min(jobs.c.created_at)).where(
        of_kind, jobs.c.status == "queued"
    )
    waiting, oldest = (await tx.execute(line)).one()
    running = select(func.count()).where(
        of_kind, jobs.c.status == "running", jobs.c.lease_expires_at >= now
    )
    writing = (await tx.execute(running)).scalar_one()
    started = (
        select(jobs.c.created_at, jobs.c.started_at)
        .where(of_kind, jobs.c.started_at >= started_since)
        .order_by(jobs.c.started_at.desc())
        .limit(sample)
    )
    waits = [
        max(0.0, (start - created).total_seconds())
        for created, start in (await tx.execute(started)).all()
    ]
    return WaitingRoomRecord(int(waiting), _aware(oldest), int(writing), waits)


# --- incidents ------------------------------------------------------------------------


async def insert_incident(
    tx: AsyncSession,
    *,
    title: str,
    status: str,
    impact: str,
    components: list[str],
    automatic: bool,
    started_at: datetime | None = None,
) -> str | None:
    """Store a new incident; it is dated `started_at` (when the trouble began) if given.

    An automatic incident is about its first component, and at most one is open per
    component (a unique index): when one is already open, nothing is stored and the
    answer is None, however many processes try at once.
    """
    now = utcnow()
    incident_id = new_id()
    values = {
        "id": incident_id,
        "title": title,
        "status": status,
        "impact": impact,
        "components": components,
        "automatic": automatic,
        "automatic_component": components[0] if automatic and components else None,
        "created_at": started_at or now,
        "updated_at": now,
        "monitoring_at": now if status == "monitoring" else None,
        "resolved_at": now if status in CLOSED_INCIDENT_STATES else None,
    }
    dialect_insert = (
        postgresql_insert if tx.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    statement = (
        dialect_insert(incidents)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[incidents.c.automatic_component],
            index_where=text(OPEN_AUTOMATIC_INCIDENT),
        )
        .returning(incidents.c.id)
    )
    stored = (await tx.execute(statement)).scalar_one_or_none()
    return None if stored is None else str(stored)


async def open_automatic_incident(tx: AsyncSession, component: str) -> IncidentRecord | None:
    """The open automatic incident about `component`, if there is one."""
    query = select(incidents).where(
        incidents.c.automatic_component == component,
        incidents.c.status.not_in(CLOSED_INCIDENT_STATES),
    )
    found = (await tx.execute(query)).mappings().first()
    return _record(IncidentRecord, found) if found else None


async def update_incident(tx: AsyncSession, incident_id: str, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    await tx.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))


async def get_incident(tx: AsyncSession, incident_id: str) -> IncidentRecord | None:
    row = (await tx.execute(select(incidents).where(incidents.c.id == incident_id))).mappings()
    found = row.first()
    return _record(IncidentRecord, found) if found else None


async def list_incidents(
    tx: AsyncSession, *, unresolved_only: bool = False, limit: int = 50
) -> list[IncidentRecord]:
    """Newest first."""
    query = select(incidents).order_by(incidents.c.created_at.desc(), incidents.c.id.desc())
    if unresolved_only:
        query = query.where(incidents.c.status.not_in(CLOSED_INCIDENT_STATES))
    rows = (await tx.execute(query.limit(limit))).mappings()
    return [_record(IncidentRecord, row) for row in rows]


async def insert_incident_update(
    tx: AsyncSession, incident_id: str, *, status: str, body: str
) -> str:
    update_id = new_id()
    await tx.execute(
        insert(incident_updates).values(
            id=update_id, incident_id=incident_id, status=status, body=body, created_at=utcnow()
        )
    )
    return update_id


async def list_incident_updates(
    tx: AsyncSession, incident_ids: Iterable[str]
) -> dict[str, list[IncidentUpdateRecord]]:
    """Each incident's updates, newest first (as Statuspage lists them)."""
    ids = list(incident_ids)
    found: dict[str, list[IncidentUpdateRecord]] = {incident_id: [] for incident_id in ids}
    if not ids:
        return found
    query = (
        select(incident_updates)
        .where(incident_updates.c.incident_id.in_(ids))
        .order_by(incident_updates.c.created_at.desc(), incident_updates.c.id.desc())
    )
    for row in (await tx.execute(query)).mappings():
        found[row["incident_id"]].append(_record(IncidentUpdateRecord, row))
    return found


# --- maintenance ----------------------------------------------------------------------


async def insert_maintenance(
    tx: AsyncSession,
    *,
    title: str,
    body: str,
    status: str,
    scheduled_for: datetime,
    scheduled_until: datetime,
    components: list[str],
) -> str:
    now = utcnow()
    maintenance_id = new_id()
    await tx.execute(
        insert(maintenances).values(
            id=maintenance_id,
            title=title,
            body=body,
            status=status,
            scheduled_for=scheduled_for,
            scheduled_until=scheduled_until,
            components=components,
            created_at=now,
            updated_at=now,
        )
    )
    return maintenance_id


async def update_maintenance(tx: AsyncSession, maintenance_id: str, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    query = update(maintenances).where(maintenances.c.id == maintenance_id).values(**values)
    await tx.execute(query)


async def get_maintenance(tx: AsyncSession, maintenance_id: str) -> MaintenanceRecord | None:
    query = select(maintenances).where(maintenances.c.id == maintenance_id)
    row = (await tx.execute(query)).mappings().first()
    return _record(MaintenanceRecord, row) if row else None


async def list_maintenances(
    tx: AsyncSession, *, statuses: Sequence[str] | None = None, limit: int = 50
) -> list[MaintenanceRecord]:
    """Soonest first."""
    query = select(maintenances).order_by(maintenances.c.scheduled_for, maintenances.c.id)
    if statuses is not None:
        query = query.where(maintenances.c.status.in_(statuses))
    rows = (await tx.execute(query.limit(limit))).mappings()
    return [_record(MaintenanceRecord, row) for row in rows]
