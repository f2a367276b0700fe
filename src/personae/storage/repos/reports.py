"""Reports, appeals, the moderators' audit log and the warnings they gave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import appeals, moderation_audit, reports, user_warnings, users
from personae.storage.types import new_id, utcnow


class DuplicateReport(Exception):
    """The reporter has an open report of this target already (ux_reports_open)."""


@dataclass(frozen=True)
class Resolution:
    """How a moderator closed a report or an appeal."""

    status: str  # "dismissed" or "actioned"
    action: str
    note: str
    resolved_by: str
    resolved_at: datetime


@dataclass(frozen=True)
class ReportRecord:
    id: str
    reporter_id: str
    reporter_username: str
    target_kind: str
    target_id: str
    reason: str
    note: str
    snapshot: dict[str, Any] | None
    status: str
    action: str | None
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AppealRecord:
    id: str
    user_id: str
    username: str
    category: str
    content: str | None
    message_id: str | None
    chat_id: str | None
    note: str
    status: str
    action: str | None
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    id: str
    actor_id: str
    actor_username: str | None
    action: str
    target_kind: str
    target_id: str
    case_kind: str | None
    case_id: str | None
    note: str
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class WarningRecord:
    id: str
    user_id: str
    reason: str | None
    note: str
    created_at: datetime


_RESOLUTION = ("status", "action", "resolution_note", "resolved_by", "resolved_at", "created_at")


def _report(row: RowMapping) -> ReportRecord:
    return ReportRecord(
        id=row["id"],
        reporter_id=row["reporter_id"],
        reporter_username=row["username"],
        target_kind=row["target_kind"],
        target_id=row["target_id"],
        reason=row["reason"],
        note=row["note"],
        snapshot=row["snapshot"],
        **{name: row[name] for name in _RESOLUTION},
    )


def _appeal(row: RowMapping) -> AppealRecord:
    return AppealRecord(
        id=row["id"],
        user_id=row["user_id"],
        username=row["username"],
        category=row["category"],
        content=row["content"],
        message_id=row["message_id"],
        chat_id=row["chat_id"],
        note=row["note"],
        **{name: row[name] for name in _RESOLUTION},
    )


def _reports_query() -> Any:
    return select(reports, users.c.username).select_from(
        reports.join(users, users.c.id == reports.c.reporter_id)
    )


def _appeals_query() -> Any:
    return select(appeals, users.c.username).select_from(
        appeals.join(users, users.c.id == appeals.c.user_id)
    )


# --- reports -----------------------------------------------------------------------


async def insert_report(
    tx: AsyncSession,
    *,
    reporter_id: str,
    target_kind: str,
    target_id: str,
    reason: str,
    note: str,
    snapshot: dict[str, Any] | None,
) -> str:
    """Store an open report; raises DuplicateReport when the reporter has one open of
    this target (the partial unique index decides, so two at once store one)."""
    report_id = new_id()
    values = {
        "id": report_id,
        "reporter_id": reporter_id,
        "target_kind": target_kind,
        "target_id": target_id,
        "reason": reason,
        "note": note,
        "snapshot": snapshot,
        "status": "open",
        "created_at": utcnow(),
    }
    try:
        async with tx.begin_nested():
            await tx.execute(insert(reports).values(**values))
    except IntegrityError as error:
        raise DuplicateReport(target_id) from error
    return report_id


async def get_report(tx: AsyncSession, report_id: str) -> ReportRecord | None:
    row = (await tx.execute(_reports_query().where(reports.c.id == report_id))).mappings().first()
    return _report(row) if row else None


async def get_open_report(
    tx: AsyncSession, reporter_id: str, target_kind: str, target_id: str
) -> ReportRecord | None:
    query = _reports_query().where(
        reports.c.reporter_id == reporter_id,
        reports.c.target_kind == target_kind,
        reports.c.target_id == target_id,
        reports.c.status == "open",
    )
    row = (await tx.execute(query)).mappings().first()
    return _report(row) if row else None


async def list_reports(
    tx: AsyncSession,
    *,
    status: str | None,
    reporter_id: str | None = None,
    after: str | None = None,
    before: str | None = None,
    newest_first: bool = False,
    limit: int,
) -> list[ReportRecord]:
    """Reports oldest first after the id `after`, or newest first before `before`."""
    query = _reports_query()
    if status is not None:
        query = query.where(reports.c.status == status)
    if reporter_id is not None:
        query = query.where(reports.c.reporter_id == reporter_id)
    query = _paged(query, reports, after=after, before=before, newest_first=newest_first).limit(
        limit
    )
    return [_report(row) for row in (await tx.execute(query)).mappings()]


async def resolve_report(tx: AsyncSession, report_id: str, resolution: Resolution) -> bool:
    """Close an open report; False when it was not open any more."""
    return await _resolve(tx, reports, reports.c.id == report_id, resolution) > 0


async def resolve_open_reports_of(
    tx: AsyncSession, target_kind: str, target_id: str, resolution: Resolution
) -> int:
    """Close every other open report of one target with the same outcome."""
    where = (reports.c.target_kind == target_kind) & (reports.c.target_id == target_id)
    return await _resolve(tx, reports, where, resolution)


# --- appeals -----------------------------------------------------------------------


async def insert_appeal(
    tx: AsyncSession,
    *,
    user_id: str,
    category: str,
    content: str | None,
    message_id: str | None,
    chat_id: str | None,
    note: str,
) -> str:
    appeal_id = new_id()
    await tx.execute(
        insert(appeals).values(
            id=appeal_id,
            user_id=user_id,
            category=category,
            content=content,
            message_id=message_id,
            chat_id=chat_id,
            note=note,
            status="open",
            created_at=utcnow(),
        )
    )
    return appeal_id


async def get_appeal(tx: AsyncSession, appeal_id: str) -> AppealRecord | None:
    row = (await tx.execute(_appeals_query().where(appeals.c.id == appeal_id))).mappings().first()
    return _appeal(row) if row else None


async def list_appeals(
    tx: AsyncSession,
    *,
    status: str | None,
    user_id: str | None = None,
    after: str | None = None,
    before: str | None = None,
    newest_first: bool = False,
    limit: int,
) -> list[AppealRecord]:
    query = _appeals_query()
    if status is not None:
        query = query.where(appeals.c.status == status)
    if user_id is not None:
        query = query.where(appeals.c.user_id == user_id)
    query = _paged(query, appeals, after=after, before=before, newest_first=newest_first).limit(
        limit
    )
    return [_appeal(row) for row in (await tx.execute(query)).mappings()]


async def resolve_appeal(tx: AsyncSession, appeal_id: str, resolution: Resolution) -> bool:
    return await _resolve(tx, appeals, appeals.c.id == appeal_id, resolution) > 0


# --- shared ------------------------------------------------------------------------


def _paged(
    query: Any, table: Table, *, after: str | None, before: str | None, newest_first: bool
) -> Any:
    if before is not None:
        query = query.where(table.c.id < before)
    if before is not None or newest_first:
        return query.order_by(table.c.id.desc())
    if after is not None:
        query = query.where(table.c.id > after)
    return query.order_by(table.c.id)


async def _resolve(tx: AsyncSession, table: Table, where: Any, resolution: Resolution) -> int:
    result = await tx.execute(
        update(table)
        .where(where, table.c.status == "open")
        .values(
            status=resolution.status,
            action=resolution.action,
            resolution_note=resolution.note,
            resolved_by=resolution.resolved_by,
            resolved_at=resolution.resolved_at,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- the audit log and warnings -----------------------------------------------------


async def insert_audit(
    tx: AsyncSession,
    *,
    actor_id: str,
    action: str,
    target_kind: str,
    target_id: str,
    case_kind: str | None,
    case_id: str | None,
    note: str,
    details: dict[str, Any],
) -> str:
    audit_id = new_id()
    await tx.execute(
        insert(moderation_audit).values(
            id=audit_id,
            actor_id=actor_id,
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            case_kind=case_kind,
            case_id=case_id,
            note=note,
            details=details,
            created_at=utcnow(),
        )
    )
    return audit_id


async def list_audit(
    tx: AsyncSession, *, before: str | None, target_id: str | None, limit: int
) -> list[AuditRecord]:
    """The audit log, newest first, before the id `before`."""
    query = select(moderation_audit, users.c.username).select_from(
        moderation_audit.outerjoin(users, users.c.id == moderation_audit.c.actor_id)
    )
    if target_id is not None:
        query = query.where(moderation_audit.c.target_id == target_id)
    if before is not None:
        query = query.where(moderation_audit.c.id < before)
    query = query.order_by(moderation_audit.c.id.desc()).limit(limit)
    return [
        AuditRecord(
            id=row["id"],
            actor_id=row["actor_id"],
            actor_username=row["username"],
            action=row["action"],
            target_kind=row["target_kind"],
            target_id=row["target_id"],
            case_kind=row["case_kind"],
            case_id=row["case_id"],
            note=row["note"],
            details=row["details"],
            created_at=row["created_at"],
        )
        for row in (await tx.execute(query)).mappings()
    ]


async def insert_warning(
    tx: AsyncSession, *, user_id: str, reason: str | None, note: str, created_by: str
) -> None:
    await tx.execute(
        insert(user_warnings).values(
            id=new_id(),
            user_id=user_id,
            reason=reason,
            note=note,
            created_by=created_by,
            created_at=utcnow(),
        )
    )


async def list_warnings(tx: AsyncSession, user_id: str, *, limit: int) -> list[WarningRecord]:
    """A user's warnings, newest first."""
    query = (
        select(user_warnings)
        .where(user_warnings.c.user_id == user_id)
        .order_by(user_warnings.c.id.desc())
        .limit(limit)
    )
    return [
        WarningRecord(
            id=row["id"],
            user_id=row["user_id"],
            reason=row["reason"],
            note=row["note"],
            created_at=row["created_at"],
        )
        for row in (await tx.execute(query)).mappings()
    ]
