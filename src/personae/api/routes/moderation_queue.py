"""The moderators' queue: open reports and appeals, actions on them, the audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.reports import (
    AppealActionRequest,
    AppealDecided,
    AuditPage,
    AuditPublic,
    CaseStatus,
    QueueItemPublic,
    QueuePage,
    ReportActionRequest,
    ReportDecided,
)
from personae.services.moderator_actions import require_staff
from personae.storage.repos.accounts import UserRecord

router = APIRouter(prefix="/api/v1/moderation", tags=["moderation"])


async def _staff(user: CurrentUser) -> UserRecord:
    # A dependency, so a user is refused before the body is read.
    require_staff(user)
    return user


Staff = Annotated[UserRecord, Depends(_staff)]


@router.get("/queue")
async def queue(
    moderator: Staff,
    container: ContainerDep,
    status: CaseStatus = "open",
    kind: Literal["report", "appeal"] | None = None,
    after: Annotated[str | None, Query(max_length=64, description="the last id of a page")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> QueuePage:
    """Reports and appeals, oldest first, each with its target's context."""
    items, has_more = await container.moderation_desk.queue(
        moderator, status=status, kind=kind, after=after, limit=limit
    )
    return QueuePage(
        items=[QueueItemPublic.model_validate(item) for item in items], has_more=has_more
    )


@router.post("/reports/{report_id}/actions")
async def act_on_report(
    report_id: str, body: ReportActionRequest, moderator: Staff, container: ContainerDep
) -> ReportDecided:
    """Decide a report: dismiss it, hide the character, remove the message, warn or
    suspend the account responsible. Audited."""
    report = await container.moderation_desk.act_on_report(
        moderator, report_id, body.action, body.note, suspend_hours=body.suspend_hours
    )
    return ReportDecided.model_validate(report)


@router.post("/appeals/{appeal_id}/actions")
async def act_on_appeal(
    appeal_id: str, body: AppealActionRequest, moderator: Staff, container: ContainerDep
) -> AppealDecided:
    """Decide an appeal: uphold the refusal or overturn it. Audited."""
    appeal = await container.moderation_desk.act_on_appeal(
        moderator, appeal_id, body.action, body.note
    )
    return AppealDecided.model_validate(appeal)


@router.get("/audit")
async def audit(
    moderator: Staff,
    container: ContainerDep,
    before: Annotated[str | None, Query(max_length=64, description="the last id of a page")] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Every moderator action, newest first."""
    rows, has_more = await container.moderation_desk.audit(
        moderator, before=before, target_id=target_id, limit=limit
    )
    return AuditPage(items=[AuditPublic.model_validate(r) for r in rows], has_more=has_more)
