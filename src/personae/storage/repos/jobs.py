"""Durable jobs with leases: claimed with FOR UPDATE SKIP LOCKED on PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.repos import slots as slot_repo
from personae.storage.tables import jobs, processes
from personae.storage.types import new_id, utcnow

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: str
    priority: int
    user_id: str | None
    chat_id: str | None
    message_id: str | None
    payload: dict[str, Any]
    # Backend failures of this job (a process that died is not one: see takeovers).
    attempts: int
    max_attempts: int
    cancel_requested: bool
    # Times taken back from a process that died, or whose work ran out of time.
    takeovers: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    available_at: datetime
    created_at: datetime


def _job(row: RowMapping) -> JobRecord:
    return JobRecord(**{f.name: row[f.name] for f in fields(JobRecord)})


async def insert_job(
    tx: AsyncSession,
    *,
    kind: str,
    user_id: str | None,
    chat_id: str | None,
    message_id: str | None,
    payload: dict[str, Any] | None = None,
    priority: int = 0,
    max_attempts: int = 3,
) -> JobRecord:
    """Put a job in line; returns it as stored."""
    now = utcnow()
    job = JobRecord(
        id=new_id(),
        kind=kind,
        status=QUEUED,
        priority=priority,
        user_id=user_id,
        chat_id=chat_id,
        message_id=message_id,
        payload=payload or {},
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        takeovers=0,
        lease_owner=None,
        lease_expires_at=None,
        available_at=now,
        created_at=now,
    )
    await tx.execute(insert(jobs).values(**{f.name: getattr(job, f.name) for f in fields(job)}))
    return job


def _claimable(now: datetime) -> Any:
    return or_(
        and_(jobs.c.status == QUEUED, jobs.c.available_at <= now),
        and_(jobs.c.status == RUNNING, jobs.c.lease_expires_at < now),
    )


def _service_order(now: datetime, max_wait_s: float) -> list[Any]:
    """Jobs waiting past the bound first, oldest first (nobody starves); then by tier,
    then first come first served."""
    is_overdue = jobs.c.created_at <= now - timedelta(seconds=max_wait_s)
    overdue = case((is_overdue, 1), else_=0)
    tier = case((is_overdue, 0), else_=jobs.c.priority)
    return [overdue.desc(), tier.desc(), jobs.c.created_at, jobs.c.id]


def _next_pick(now: datetime, max_wait_s: float) -> Any:
    """The most urgent ready job (or one whose lease ran out) whose user has no reply
    being written: a user waits for their reply before their next one starts."""
    busy_users = select(jobs.c.user_id).where(
        jobs.c.status == RUNNING, jobs.c.lease_expires_at >= now, jobs.c.user_id.is_not(None)
    )
    return (
        select(jobs.c.id)
        .where(_claimable(now))
        .where(or_(jobs.c.user_id.is_(None), jobs.c.user_id.not_in(busy_users)))
        .order_by(*_service_order(now, max_wait_s))
        .limit(1)
    )


async def claim_next(
    tx: AsyncSession,
    *,
    owner: str,
    lease_s: float,
    skip_locked: bool,
    max_wait_s: float = 3600.0,
    created_before: datetime | None = None,
    kind: str | None = None,
) -> JobRecord | None:
    """Take the job `_next_pick` names and lease it (only one created before
    `created_before`, and of `kind`, when given). Taking a job whose lease ran out
    counts a takeover."""
    now = utcnow()
    query = _next_pick(now, max_wait_s)
    if created_before is not None:
        query = query.where(jobs.c.created_at < created_before)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    # One statement: pick and lease together (the classic queue UPDATE ... RETURNING).
    claimed = (
        update(jobs)
        .where(jobs.c.id == query.scalar_subquery())
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            takeovers=jobs.c.takeovers + case((jobs.c.status == RUNNING, 1), else_=0),
            started_at=func.coalesce(jobs.c.started_at, now),
        )
        .returning(*(jobs.c[f.name] for f in fields(JobRecord)))
    )
    row = (await tx.execute(claimed)).mappings().first()
    return _job(row) if row else None


async def renew_lease(tx: AsyncSession, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend a lease we still hold; False means another worker took the job back."""
    result = await tx.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish(tx: AsyncSession, job_id: str, status: str, error: str | None = None) -> None:
    await tx.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=status,
            finished_at=utcnow(),
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


async def requeue(
    tx: AsyncSession,
    job_id: str,
    *,
    delay_s: float,
    error: str | None,
    failed_attempts: int = 0,
    takeover: bool = False,
) -> None:
    """Put a job back in line, ready after a delay (retry backoff, a wait for a backend,
    or a graceful stop), counting the backend failures and the takeover it ends with."""
    await tx.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=QUEUED,
            attempts=jobs.c.attempts + failed_attempts,
            takeovers=jobs.c.takeovers + (1 if takeover else 0),
            available_at=utcnow() + timedelta(seconds=delay_s),
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


async def release_running(tx: AsyncSession, *, except_owner: str | None = None) -> int:
    """Expire every running lease (of dead processes) so the jobs are claimed again now."""
    condition = jobs.c.status == RUNNING
    if except_owner is not None:
        condition = and_(condition, jobs.c.lease_owner != except_owner)
    result = await tx.execute(
        update(jobs).where(condition).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _database_now(tx: AsyncSession) -> Any:
    """The time by the database's clock on PostgreSQL, where processes on several hosts
    compare heartbeats (their own clocks may disagree); this process's on SQLite."""
    return func.now() if tx.get_bind().dialect.name == "postgresql" else utcnow()


async def clear_takeovers(tx: AsyncSession, job_id: str) -> None:
    """The job made progress since it was taken back: its takeovers start again at 0."""
    await tx.execute(update(jobs).where(jobs.c.id == job_id).values(takeovers=0))


async def heartbeat(tx: AsyncSession, owner: str) -> None:
    """Say that process `owner` is alive (its row is made on the first beat)."""
    now = _database_now(tx)
    touched = await tx.execute(
        update(processes).where(processes.c.id == owner).values(heartbeat_at=now)
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        await tx.execute(insert(processes).values(id=owner, started_at=now, heartbeat_at=now))


async def requeue_owned(tx: AsyncSession, owner: str) -> int:
    """Put every job still leased to `owner` (stopping) back in line, ready now."""
    result = await tx.execute(
        update(jobs)
        .where(jobs.c.status == RUNNING, jobs.c.lease_owner == owner)
        .values(status=QUEUED, available_at=utcnow(), lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def forget_process(tx: AsyncSession, owner: str) -> None:
    """A process that stops cleanly takes its row with it."""
    await tx.execute(processes.delete().where(processes.c.id == owner))
    await slot_repo.forget_owner(tx, owner)


async def release_dead(tx: AsyncSession, *, owner: str, dead_after_s: float) -> int:
    """Expire the leases of running jobs whose process has not beaten for `dead_after_s`
    (or has no row), so they are claimed again now; forget those processes. `owner`,
    the caller, is alive by definition."""
    cutoff = _database_now(tx) - timedelta(seconds=dead_after_s)
    alive = select(processes.c.id).where(processes.c.heartbeat_at >= cutoff)
    result = await tx.execute(
        update(jobs)
        .where(
            jobs.c.status == RUNNING,
            jobs.c.lease_owner != owner,
            jobs.c.lease_owner.not_in(alive),
            jobs.c.lease_expires_at >= utcnow(),
        )
        .values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    await tx.execute(
        processes.delete().where(processes.c.heartbeat_at < cutoff, processes.c.id != owner)
    )
    # Their backend slots are free again (requests of a dead process are not in flight).
    await slot_repo.forget_dead(tx)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def get_job(tx: AsyncSession, job_id: str) -> JobRecord | None:
    row = (await tx.execute(select(jobs).where(jobs.c.id == job_id))).mappings().first()
    return _job(row) if row else None


async def get_open_job_for_message(tx: AsyncSession, message_id: str) -> JobRecord | None:
    query = select(jobs).where(
        jobs.c.message_id == message_id, jobs.c.status.in_((QUEUED, RUNNING))
    )
    row = (await tx.execute(query)).mappings().first()
    return _job(row) if row else None


async def request_cancel(tx: AsyncSession, job_id: str) -> None:
    await tx.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))


async def is_cancel_requested(tx: AsyncSession, job_id: str) -> bool:
    query = select(jobs.c.cancel_requested).where(jobs.c.id == job_id)
    return bool((await tx.execute(query)).scalar_one_or_none())


async def queue_position(tx: AsyncSession, job: JobRecord, *, max_wait_s: float = 3600.0) -> int:
    """1 + how many queued jobs will be served before this one (in service order),
    counted in one statement whatever the length of the line."""
    cutoff = utcnow() - timedelta(seconds=max_wait_s)
    overdue = jobs.c.created_at <= cutoff
    earlier = or_(
        jobs.c.created_at < job.created_at,
        and_(jobs.c.created_at == job.created_at, jobs.c.id < job.id),
    )
    if job.created_at <= cutoff:
        ahead = and_(overdue, earlier)
    else:
        same_tier = and_(jobs.c.priority == job.priority, earlier)
        ahead = or_(overdue, jobs.c.priority > job.priority, same_tier)
    query = select(func.count()).where(jobs.c.status == QUEUED, jobs.c.id != job.id, ahead)
    return 1 + int((await tx.execute(query)).scalar_one())


async def admission_counts(tx: AsyncSession, user_id: str) -> tuple[int, int]:
    """The user's replies queued or being written, and all jobs waiting in line."""
    query = select(
        func.count().filter(jobs.c.user_id == user_id, jobs.c.status.in_((QUEUED, RUNNING))),
        func.count().filter(jobs.c.status == QUEUED),
    ).where(jobs.c.status.in_((QUEUED, RUNNING)))
    pending, waiting = (await tx.execute(query)).one()
    return int(pending), int(waiting)


async def queue_summary(tx: AsyncSession) -> dict[int, tuple[int, datetime | None]]:
    """Per priority: how many jobs are queued and since when the oldest waits."""
    query = (
        select(jobs.c.priority, func.count(), func.min(jobs.c.created_at))
        .where(jobs.c.status == QUEUED)
        .group_by(jobs.c.priority)
    )
    return {int(p): (int(n), oldest) for p, n, oldest in (await tx.execute(query)).all()}


async def count_by_status(tx: AsyncSession, status: str) -> int:
    query = select(func.count()).where(jobs.c.status == status)
    return int((await tx.execute(query)).scalar_one())


async def list_queued(
    tx: AsyncSession, *, limit: int, max_wait_s: float = 3600.0
) -> list[JobRecord]:
    """Queued jobs in the order they will be served."""
    query = (
        select(jobs)
        .where(jobs.c.status == QUEUED)
        .order_by(*_service_order(utcnow(), max_wait_s))
        .limit(limit)
    )
    return [_job(row) for row in (await tx.execute(query)).mappings()]


async def queue_stats(tx: AsyncSession) -> tuple[int, datetime | None]:
    """How many jobs wait in line, and when the one waiting longest was queued."""
    query = select(func.count(), func.min(jobs.c.created_at)).where(jobs.c.status == QUEUED)
    count, oldest = (await tx.execute(query)).one()
    if isinstance(oldest, str):  # SQLite's min() hands back the stored text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), oldest
