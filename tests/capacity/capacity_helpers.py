"""Recorded jobs for the capacity planner's tests, written straight into the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from personae.storage.db import Database
from personae.storage.tables import jobs
from personae.storage.types import new_id

# Yesterday at 14:10 UTC: inside a 7-day window whenever the test runs.
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BUSY_START = _TODAY - timedelta(days=1) + timedelta(hours=14, minutes=10)


async def record_job(
    database: Database,
    *,
    created_at: datetime,
    service_s: float | None,
    kind: str = "reply",
    priority: int = 0,
    wait_s: float = 1.0,
) -> None:
    """One job as the scheduler leaves it: finished after `service_s` on a backend
    (still queued when `service_s` is None)."""
    started = None if service_s is None else created_at + timedelta(seconds=wait_s)
    finished = (
        None if started is None or service_s is None else started + timedelta(seconds=service_s)
    )
    async with database.write() as tx:
        await tx.execute(
            insert(jobs).values(
                id=new_id(),
                kind=kind,
                status="queued" if started is None else "done",
                priority=priority,
                payload={},
                available_at=created_at,
                created_at=created_at,
                started_at=started,
                finished_at=finished,
            )
        )


async def record_busy_hour(database: Database) -> None:
    """Ten minutes of traffic from BUSY_START (14:10 to 14:20 UTC yesterday): 6 free
    replies of 2 s, 3 plus replies of 4 s, 1 summary of 10 s, a reply still queued,
    and jobs the planner leaves out (recall indexing; a reply 8 days old)."""
    minute = timedelta(minutes=1)
    for i in range(6):
        await record_job(database, created_at=BUSY_START + i * minute, service_s=2.0)
    for i in range(3):
        await record_job(
            database, created_at=BUSY_START + (i + 6) * minute, service_s=4.0, priority=10
        )
    await record_job(
        database, created_at=BUSY_START + 9 * minute, service_s=10.0, kind="summary", priority=-10
    )
    await record_job(database, created_at=BUSY_START + 10 * minute, service_s=None)
    await record_job(
        database, created_at=BUSY_START + 5 * minute, service_s=1.0, kind="recall_index"
    )
    await record_job(database, created_at=BUSY_START - timedelta(days=8), service_s=2.0)
