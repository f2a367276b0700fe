"""The moderators' queue: open reports and appeals with their context, the actions
taken on them, and the audit log every action writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from personae.errors import Conflict, Forbidden, NotFound, ValidationFailed
from personae.services import case_context
from personae.services.accounts import STAFF_ROLES
from personae.services.reports import check_note
from personae.storage.db import Database, Transaction
from personae.storage.repos import accounts as accounts_repo
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import chats as chats_repo
from personae.storage.repos import reports as repo
from personae.storage.repos import reviewed_messages as reviewed
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.reports import AppealRecord, AuditRecord, ReportRecord, Resolution
from personae.storage.types import utcnow

REPORT_ACTIONS = ("dismiss", "hide_character", "remove_message", "warn", "suspend")
APPEAL_ACTIONS = ("uphold", "overturn")
# The longest suspension a moderator gives at once: a year.
SUSPEND_MAX_HOURS = 24 * 366
CaseKind = Literal["report", "appeal"]


class CaseClosed(Conflict):
    code = "case_closed"
    title = "This report or appeal was decided already"


class OwnCase(Forbidden):
    """Nobody decides their own report, or acts against themselves."""

    code = "own_case"
    title = "You cannot decide your own case"


class ActionNotApplicable(ValidationFailed):
    code = "action_not_applicable"
    title = "This action does not fit this report"


class CannotSuspend(Forbidden):
    """Admins are never suspended; only an admin suspends a moderator."""

    code = "cannot_suspend"
    title = "You cannot suspend this account"


@dataclass(frozen=True)
class QueueItem:
    """A report or an appeal as a moderator sees it."""

    kind: CaseKind
    id: str
    status: str
    created_at: datetime
    by_id: str
    by_username: str
    reason: str  # a report's reason, an appeal's category
    note: str
    target_kind: str
    target_id: str | None
    content: str | None  # an appeal's refused text
    snapshot: dict[str, Any] | None  # a report's target as it was when reported
    context: dict[str, Any]
    action: str | None
    resolved_at: datetime | None


def require_staff(user: UserRecord) -> None:
    if user.role not in STAFF_ROLES:
        raise Forbidden("Only moderators and admins work the moderation queue.")


class ModerationDesk:
    """Read the queue, decide reports and appeals, read the audit log (staff only)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # --- reading ------------------------------------------------------------------

    async def queue(
        self,
        moderator: UserRecord,
        *,
        status: str = "open",
        kind: CaseKind | None = None,
        after: str | None = None,
        limit: int = 25,
    ) -> tuple[list[QueueItem], bool]:
        """Reports and appeals in `status`, oldest first after the id `after` (ids sort
        by time across both tables), with context; and whether more follow."""
        require_staff(moderator)
        async with self._db.read() as tx:
            cases: list[ReportRecord | AppealRecord] = []
            if kind in (None, "report"):
                cases += await repo.list_reports(tx, status=status, after=after, limit=limit + 1)
            if kind in (None, "appeal"):
                cases += await repo.list_appeals(tx, status=status, after=after, limit=limit + 1)
            cases.sort(key=lambda case: case.id)
            items = [await self._item(tx, case) for case in cases[:limit]]
        return items, len(cases) > limit

    async def _item(self, tx: Transaction, case: ReportRecord | AppealRecord) -> QueueItem:
        common: dict[str, Any] = {
            "id": case.id,
            "status": case.status,
            "created_at": case.created_at,
            "note": case.note,
            "action": case.action,
            "resolved_at": case.resolved_at,
        }
        if isinstance(case, ReportRecord):
            return QueueItem(
                kind="report",
                by_id=case.reporter_id,
                by_username=case.reporter_username,
                reason=case.reason,
                target_kind=case.target_kind,
                target_id=case.target_id,
                content=None,
                snapshot=case.snapshot,
                context=await case_context.target_context(tx, case.target_kind, case.target_id),
                **common,
            )
        context = (
            await case_context.message_context(tx, case.message_id)
            if case.message_id is not None
            else {}
        )
        return QueueItem(
            kind="appeal",
            by_id=case.user_id,
            by_username=case.username,
            reason=case.category,
            target_kind="message" if case.message_id else "content",
            target_id=case.message_id,
            content=case.content,
            snapshot=None,
            context=context,
            **common,
        )

    async def audit(
        self,
        moderator: UserRecord,
        *,
        before: str | None,
        target_id: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditRecord], bool]:
        """The audit log, newest first, before the id `before`."""
        require_staff(moderator)
        async with self._db.read() as tx:
            rows = await repo.list_audit(tx, before=before, target_id=target_id, limit=limit + 1)
        return rows[:limit], len(rows) > limit

    # --- deciding -----------------------------------------------------------------

    async def act_on_report(
        self,
        moderator: UserRecord,
        report_id: str,
        action: str,
        note: str,
        *,
        suspend_hours: int | None = None,
    ) -> ReportRecord:
        """Take `action` on an open report: its effect, the report (and every other
        open report of the same target) closed with it, and an audit row, in one
        transaction."""
        require_staff(moderator)
        if action not in REPORT_ACTIONS:
            raise ValidationFailed(
                f"Unknown action '{action}'; one of {', '.join(REPORT_ACTIONS)}."
            )
        note = check_note(note)
        async with self._db.write() as tx:
            report = await repo.get_report(tx, report_id)
            if report is None:
                raise NotFound("No report with this id.")
            if report.reporter_id == moderator.id:
                raise OwnCase("Another moderator decides a report you filed.")
            if report.status != "open":
                raise CaseClosed(f"This report was {report.status} already.")
            target_kind, target_id, details = await self._apply(
                tx, moderator, report, action, note, suspend_hours
            )
            resolution = Resolution(
                status="dismissed" if action == "dismiss" else "actioned",
                action=action,
                note=note,
                resolved_by=moderator.id,
                resolved_at=utcnow(),
            )
            if not await repo.resolve_report(tx, report.id, resolution):
                # Another moderator decided it meanwhile: this transaction's effects go.
                raise CaseClosed("This report was decided meanwhile.")
            if action != "dismiss":
                closed = await repo.resolve_open_reports_of(
                    tx, report.target_kind, report.target_id, resolution
                )
                details["other_reports_closed"] = closed
            await repo.insert_audit(
                tx,
                actor_id=moderator.id,
                action=action,
                target_kind=target_kind,
                target_id=target_id,
                case_kind="report",
                case_id=report.id,
                note=note,
                details={"reason": report.reason, **details},
            )
            updated = await repo.get_report(tx, report.id)
        assert updated is not None
        return updated

    async def _apply(
        self,
        tx: Transaction,
        moderator: UserRecord,
        report: ReportRecord,
        action: str,
        note: str,
        suspend_hours: int | None,
    ) -> tuple[str, str, dict[str, Any]]:
        """Do what the action says; returns the target acted on and details to audit."""
        kind, target = report.target_kind, report.target_id
        if action == "dismiss":
            return kind, target, {}
        if action == "hide_character":
            if kind != "character":
                raise ActionNotApplicable("Only a report of a character can hide one.")
            if await characters_repo.get_character(tx, target, include_deleted=True) is None:
                raise NotFound("The reported character no longer exists.")
            await characters_repo.set_hidden(tx, target, utcnow())
            return kind, target, {}
        if action == "remove_message":
            if kind != "message":
                raise ActionNotApplicable("Only a report of a message can remove one.")
            await self._remove_message(tx, target)
            return kind, target, {}
        user = await self._responsible_user(tx, report)
        if user.id == moderator.id:
            raise OwnCase("You cannot warn or suspend yourself.")
        if action == "warn":
            await repo.insert_warning(
                tx, user_id=user.id, reason=report.reason, note=note, created_by=moderator.id
            )
            return "user", user.id, {"from": kind, "from_id": target}
        return (
            "user",
            user.id,
            await self._suspend(tx, moderator, user, suspend_hours, kind, target),
        )

    async def _suspend(
        self,
        tx: Transaction,
        moderator: UserRecord,
        user: UserRecord,
        hours: int | None,
        kind: str,
        target: str,
    ) -> dict[str, Any]:
        if hours is None or not 1 <= hours <= SUSPEND_MAX_HOURS:
            raise ValidationFailed(
                f"A suspension needs suspend_hours, from 1 to {SUSPEND_MAX_HOURS}."
            )
        if user.role == "admin":
            raise CannotSuspend("Admins cannot be suspended; an admin can change their role.")
        if user.role == "moderator" and moderator.role != "admin":
            raise CannotSuspend("Only an admin suspends a moderator.")
        until = utcnow() + timedelta(hours=hours)
        await accounts_repo.set_suspended_until(tx, user.id, until)
        return {"until": until.isoformat(), "hours": hours, "from": kind, "from_id": target}

    async def _remove_message(self, tx: Transaction, message_id: str) -> None:
        message = await reviewed.get_reviewed_message(tx, message_id)
        if message is None:
            raise NotFound("The reported message no longer exists.")
        live = await chats_repo.get_message(tx, message_id)
        await reviewed.mark_removed(tx, message_id, utcnow())
        if live is not None and live.selected:
            others = await chats_repo.list_swipes(tx, live.chat_id, live.position)
            if others:
                await chats_repo.select_swipe(tx, live.chat_id, live.position, others[-1].id)
        await chats_repo.prompt_changed(tx, message.chat_id)

    async def _responsible_user(self, tx: Transaction, report: ReportRecord) -> UserRecord:
        """Whom a warning or a suspension is for: the reported user; a character's
        owner; a message's author, or for a character's reply the character's owner."""
        user_id = report.target_id
        if report.target_kind == "character":
            character = await characters_repo.get_character(
                tx, report.target_id, include_deleted=True
            )
            user_id = character.owner_id if character else ""
        elif report.target_kind == "message":
            message = await reviewed.get_reviewed_message(tx, report.target_id)
            if message is None:
                user_id = ""
            elif message.role == "user" and message.author_id:
                user_id = message.author_id
            else:
                user_id = message.character_owner_id
        user = await accounts_repo.get_user(tx, user_id)
        if user is None:
            raise NotFound("The account to act on no longer exists.")
        return user

    async def act_on_appeal(
        self, moderator: UserRecord, appeal_id: str, action: str, note: str
    ) -> AppealRecord:
        """Uphold the refusal (the appeal is dismissed) or overturn it (actioned); the
        decision is audited and the user sees it among their reports."""
        require_staff(moderator)
        if action not in APPEAL_ACTIONS:
            raise ValidationFailed(
                f"Unknown action '{action}'; one of {', '.join(APPEAL_ACTIONS)}."
            )
        note = check_note(note)
        async with self._db.write() as tx:
            appeal = await repo.get_appeal(tx, appeal_id)
            if appeal is None:
                raise NotFound("No appeal with this id.")
            if appeal.user_id == moderator.id:
                raise OwnCase("Another moderator decides an appeal you filed.")
            if appeal.status != "open":
                raise CaseClosed(f"This appeal was {appeal.status} already.")
            resolution = Resolution(
                status="dismissed" if action == "uphold" else "actioned",
                action=action,
                note=note,
                resolved_by=moderator.id,
                resolved_at=utcnow(),
            )
            if not await repo.resolve_appeal(tx, appeal.id, resolution):
                raise CaseClosed("This appeal was decided meanwhile.")
            await repo.insert_audit(
                tx,
                actor_id=moderator.id,
                action=action,
                target_kind="message" if appeal.message_id else "appeal",
                target_id=appeal.message_id or appeal.id,
                case_kind="appeal",
                case_id=appeal.id,
                note=note,
                details={"category": appeal.category, "user_id": appeal.user_id},
            )
            updated = await repo.get_appeal(tx, appeal.id)
        assert updated is not None
        return updated
