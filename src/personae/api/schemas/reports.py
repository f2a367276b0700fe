"""Bodies of the report, appeal and moderation-queue endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from personae.api.schemas.common import Input, Output

TargetKind = Literal["character", "message", "user"]
Reason = Literal[
    "sexual_minors",
    "self_harm",
    "violence",
    "hate",
    "harassment",
    "sexual",
    "illegal",
    "spam",
    "impersonation",
    "other",
]
ReportAction = Literal["dismiss", "hide_character", "remove_message", "warn", "suspend"]
AppealAction = Literal["uphold", "overturn"]
CaseStatus = Literal["open", "dismissed", "actioned"]


class ReportCreate(Input):
    target: TargetKind
    target_id: str = Field(min_length=1, max_length=64)
    reason: Reason
    note: str = Field(default="", max_length=2000)


class AppealCreate(Input):
    category: str = Field(min_length=1, max_length=64)
    content: str | None = Field(default=None, max_length=100_000)
    message_id: str | None = Field(default=None, min_length=1, max_length=64)
    chat_id: str | None = Field(default=None, min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class ReportPublic(Output):
    """A report as its reporter sees it: the outcome, not the moderator's note."""

    id: str
    target: str = Field(validation_alias="target_kind")
    target_id: str
    reason: str
    note: str
    status: CaseStatus
    action: str | None = Field(description="What the moderator did; null while open.")
    resolved_at: datetime | None
    created_at: datetime


class AppealPublic(Output):
    id: str
    category: str
    content: str | None
    message_id: str | None
    chat_id: str | None
    note: str
    status: CaseStatus
    action: str | None = Field(description="uphold or overturn; null while open.")
    resolved_at: datetime | None
    created_at: datetime


class MyCases(Output):
    reports: list[ReportPublic]
    appeals: list[AppealPublic]


class ReportDecided(ReportPublic):
    """A report as a moderator sees it after acting."""

    resolution_note: str | None
    resolved_by: str | None


class AppealDecided(AppealPublic):
    resolution_note: str | None
    resolved_by: str | None


class ReportActionRequest(Input):
    action: ReportAction
    note: str = Field(default="", max_length=2000)
    suspend_hours: int | None = Field(default=None, ge=1, le=24 * 366)


class AppealActionRequest(Input):
    action: AppealAction
    note: str = Field(default="", max_length=2000)


class QueueItemPublic(Output):
    kind: Literal["report", "appeal"]
    id: str
    status: CaseStatus
    created_at: datetime
    by_id: str
    by_username: str
    reason: str = Field(description="A report's reason; an appeal's category.")
    note: str
    target_kind: str = Field(
        description="character, message or user; content for an appeal of refused text."
    )
    target_id: str | None
    content: str | None = Field(description="An appeal's refused text.")
    snapshot: dict[str, Any] | None = Field(description="The target as it was when reported.")
    context: dict[str, Any] = Field(description="The target as it is now.")
    action: str | None
    resolved_at: datetime | None


class QueuePage(Output):
    items: list[QueueItemPublic]
    has_more: bool = Field(description="Ask again with after=<the last id> for more.")


class AuditPublic(Output):
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


class AuditPage(Output):
    items: list[AuditPublic]
    has_more: bool = Field(description="Ask again with before=<the last id> for more.")
