"""Reports of characters, messages and users, and appeals of refusals: filed by any
signed-in user, read back with their outcome. Moderators work them in
services/moderator_actions.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from personae.errors import Conflict, NotFound, ValidationFailed
from personae.services import room_access
from personae.services.characters import can_read
from personae.services.ratelimit import RateLimiter
from personae.storage.db import Database, Transaction
from personae.storage.repos import accounts as accounts_repo
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import chats as chats_repo
from personae.storage.repos import reports as repo
from personae.storage.repos import reviewed_messages as reviewed
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.reports import AppealRecord, ReportRecord, WarningRecord

TARGET_KINDS = ("character", "message", "user")
REASONS = (
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
)
NOTE_MAX_CHARS = 2000
# What a report keeps of a message's text as it was when reported.
_SNAPSHOT_MAX_CHARS = 8000
_WARNINGS_SHOWN = 20


class AlreadyReported(Conflict):
    """The reporter has an open report of this target; `report_id` names it."""

    code = "already_reported"
    title = "You reported this already"


@dataclass(frozen=True)
class Filed:
    """A user's reports and appeals, newest first."""

    reports: list[ReportRecord]
    appeals: list[AppealRecord]


def check_note(note: str | None) -> str:
    """A report's, appeal's or moderator's note, trimmed; refused past the limit."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise ValidationFailed(
            f"A note has at most {NOTE_MAX_CHARS} characters.",
            extra={"errors": [{"field": "note", "message": "too long"}]},
        )
    return note


class ReportService:
    """File reports and appeals; read one's own with their outcome. No HTTP, no SQL."""

    def __init__(self, database: Database, limiter: RateLimiter, *, rate_per_user: str) -> None:
        self._db = database
        self._limiter = limiter
        self._rate = rate_per_user

    async def report(
        self, reporter: UserRecord, target_kind: str, target_id: str, reason: str, note: str | None
    ) -> ReportRecord:
        """Report a target the reporter can see; one that they cannot is not found.

        A second report of the same target while the first is open is refused
        (409 already_reported, naming the open one): reports are not votes.
        """
        if target_kind not in TARGET_KINDS:
            raise ValidationFailed(f"A report is about one of: {', '.join(TARGET_KINDS)}.")
        if reason not in REASONS:
            raise ValidationFailed(
                f"Unknown reason '{reason}'; choose one of {', '.join(REASONS)}."
            )
        note = check_note(note)
        await self._limiter.hit("report-user", reporter.id, self._rate)
        async with self._db.write() as tx:
            snapshot = await self._visible_target(tx, reporter, target_kind, target_id)
            try:
                report_id = await repo.insert_report(
                    tx,
                    reporter_id=reporter.id,
                    target_kind=target_kind,
                    target_id=target_id,
                    reason=reason,
                    note=note,
                    snapshot=snapshot,
                )
            except repo.DuplicateReport:
                existing = await repo.get_open_report(tx, reporter.id, target_kind, target_id)
                raise AlreadyReported(
                    "You have an open report of this; a moderator will look at it.",
                    extra={"report_id": existing.id if existing else None},
                ) from None
            report = await repo.get_report(tx, report_id)
        assert report is not None
        return report

    async def _visible_target(
        self, tx: Transaction, reporter: UserRecord, target_kind: str, target_id: str
    ) -> dict[str, Any]:
        """What the reporter sees of the target, kept with the report; NotFound when
        they cannot see it (a private character, another user's chat)."""
        if target_kind == "character":
            character = await characters_repo.get_character(tx, target_id)
            if character is None or not can_read(character, reporter):
                raise NotFound("No character with this id.")
            return {"name": character.name, "owner_id": character.owner_id}
        if target_kind == "message":
            message = await chats_repo.get_message(tx, target_id)
            chat = await chats_repo.get_chat(tx, message.chat_id) if message else None
            if message is None or not await room_access.may_read(tx, chat, reporter):
                raise NotFound("No message with this id.")
            return {"content": message.content[:_SNAPSHOT_MAX_CHARS], "role": message.role}
        user = await accounts_repo.get_user(tx, target_id)
        if user is None:
            raise NotFound("No user with this id.")
        if user.id == reporter.id:
            raise ValidationFailed("You cannot report yourself.")
        return {"username": user.username}

    async def appeal(
        self,
        user: UserRecord,
        *,
        category: str,
        content: str | None,
        message_id: str | None,
        chat_id: str | None,
        note: str | None,
    ) -> AppealRecord:
        """Ask moderators to review a refusal: of text sent (`content`) or of a reply
        (`message_id`, which must be in one of the user's own chats)."""
        category = category.strip()
        if not category:
            raise ValidationFailed("Name the category of the refusal you appeal.")
        if content is None and message_id is None:
            raise ValidationFailed("An appeal needs the refused content or a message_id.")
        note = check_note(note)
        await self._limiter.hit("report-user", user.id, self._rate)
        async with self._db.write() as tx:
            if message_id is not None:
                message = await reviewed.get_reviewed_message(tx, message_id)
                if (
                    message is None
                    or message.chat_owner_id != user.id
                    or message.chat_deleted
                    or (chat_id is not None and chat_id != message.chat_id)
                ):
                    raise NotFound("No message with this id in your chats.")
                chat_id = message.chat_id
            elif chat_id is not None:
                chat = await chats_repo.get_chat(tx, chat_id)
                if chat is None or chat.owner_id != user.id:
                    raise NotFound("No chat with this id.")
            appeal_id = await repo.insert_appeal(
                tx,
                user_id=user.id,
                category=category,
                content=content,
                message_id=message_id,
                chat_id=chat_id,
                note=note,
            )
            appeal = await repo.get_appeal(tx, appeal_id)
        assert appeal is not None
        return appeal

    async def mine(self, user: UserRecord, *, limit: int) -> Filed:
        """The user's own reports and appeals, newest first, with their outcome."""
        async with self._db.read() as tx:
            reports = await repo.list_reports(
                tx, status=None, reporter_id=user.id, newest_first=True, limit=limit
            )
            appeals = await repo.list_appeals(
                tx, status=None, user_id=user.id, newest_first=True, limit=limit
            )
        return Filed(reports=reports, appeals=appeals)

    async def warnings(self, user: UserRecord) -> list[WarningRecord]:
        """The warnings moderators gave the user, newest first."""
        async with self._db.read() as tx:
            return await repo.list_warnings(tx, user.id, limit=_WARNINGS_SHOWN)
