"""Recorded traffic for the capacity planner: jobs by hour of day (UTC) and priority."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import jobs


@dataclass(frozen=True)
class HourlyJobs:
    """Jobs of one priority created in one hour of the day (UTC), over a window."""

    hour: int
    priority: int
    arrivals: int
    # Jobs that started and finished: their time on a backend is measured.
    served: int
    service_s_total: float


@dataclass(frozen=True)
class TrafficWindow:
    """Per-hour figures, the first and last arrival they were recorded between, and
    the last moment one of those jobs finished."""

    hours: list[HourlyJobs]
    first_arrival: datetime | None
    last_arrival: datetime | None
    last_finish: datetime | None = None


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):  # SQLite's min() hands back the stored text
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if isinstance(moment, datetime) else None


def _hour_of_day(tx: AsyncSession, column: Any) -> Any:
    if tx.get_bind().dialect.name == "postgresql":
        return cast(func.extract("hour", func.timezone("UTC", column)), Integer)
    # SQLite keeps UTC datetimes as ISO text without a zone.
    return cast(func.strftime("%H", column), Integer)


def _seconds_between(tx: AsyncSession, start: Any, end: Any) -> Any:
    if tx.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


async def traffic_by_hour(
    tx: AsyncSession, *, kinds: Sequence[str], since: datetime
) -> TrafficWindow:
    """Arrivals and measured service times of jobs of `kinds` created since `since`,
    grouped by hour of day and priority, with the first and last arrival and the
    last finish."""
    recent = (jobs.c.kind.in_(list(kinds)), jobs.c.created_at >= since)
    hour = _hour_of_day(tx, jobs.c.created_at).label("hour")
    service_s = _seconds_between(tx, jobs.c.started_at, jobs.c.finished_at)
    grouped = (
        select(hour, jobs.c.priority, func.count(), func.count(service_s), func.sum(service_s))
        .where(*recent)
        .group_by(hour, jobs.c.priority)
        .order_by(hour, jobs.c.priority)
    )
    rows = (await tx.execute(grouped)).all()
    span = select(
        func.min(jobs.c.created_at), func.max(jobs.c.created_at), func.max(jobs.c.finished_at)
    ).where(*recent)
    first, last, last_finish = (await tx.execute(span)).one()
    return TrafficWindow(
        hours=[
            HourlyJobs(int(h), int(p), int(n), int(served), float(total or 0.0))
            for h, p, n, served, total in rows
        ],
        first_arrival=_aware(first),
        last_arrival=_aware(last),
        last_finish=_aware(last_finish),
    )
