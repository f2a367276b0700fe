"""Reports and appeals: file one, read one's own with its outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.reports import (
    AppealCreate,
    AppealPublic,
    MyCases,
    ReportCreate,
    ReportPublic,
)

router = APIRouter(prefix="/api/v1", tags=["reports"])


@router.post("/reports", status_code=status.HTTP_201_CREATED)
async def file_report(
    body: ReportCreate, user: CurrentUser, container: ContainerDep
) -> ReportPublic:
    """Report a character, a message (of one's own chats) or a user to the moderators."""
    report = await container.reports.report(
        user, body.target, body.target_id, body.reason, body.note
    )
    return ReportPublic.model_validate(report)


@router.get("/reports/mine")
async def my_reports(
    user: CurrentUser,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MyCases:
    """The caller's reports and appeals, newest first, with what became of them."""
    filed = await container.reports.mine(user, limit=limit)
    return MyCases.model_validate(filed)


@router.post("/appeals", status_code=status.HTTP_201_CREATED)
async def file_appeal(
    body: AppealCreate, user: CurrentUser, container: ContainerDep
) -> AppealPublic:
    """Ask for a review of a refusal: the refused text, or a filtered reply's message_id."""
    appeal = await container.reports.appeal(
        user,
        category=body.category,
        content=body.content,
        message_id=body.message_id,
        chat_id=body.chat_id,
        note=body.note,
    )
    return AppealPublic.model_validate(appeal)
