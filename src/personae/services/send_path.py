"""What every send shares, 1:1 chat or room: the user message stored once per
client_id, the reply placeholder and its job, admission to the waiting room, and
where a reply waits in line. The rules that keep messages safe (all of it written
in the caller's one transaction before the send is acknowledged) are in chats.py
and room_sends.py, which use these."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Protocol

from personae.errors import (
    AppError,
    ClientIdReused,
    QueueFull,
    TooManyPendingReplies,
    ValidationFailed,
)
from personae.services import chat_events
from personae.services.chat_events import BACKEND_UNAVAILABLE, QUEUED
from personae.settings import Settings
from personae.storage.db import Transaction
from personae.storage.repos import chats as repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.types import utcnow
from personae.words import plural

REPLY_JOB = "reply"
# A user message refused by the waiting room: stored, waiting for the user to send again.
WAITING = "waiting"
PRIORITY_BY_ROLE = {"plus": 10, "moderator": 10, "admin": 10}


class JobSignals(Protocol):
    """How the chat service tells the scheduler about work (implemented in jobs/)."""

    def job_queued(self, reply_id: str | None = None) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def estimate_start_s(self, position: int) -> float | None: ...

    async def refresh_estimates(self, tx: Transaction) -> None:
        """Read what the estimates rest on again now, in `tx`, where it is shared by
        processes (a place told to one waiting reply must not be a second old)."""
        ...

    def backend_unavailable(self) -> bool:
        """Whether no backend can take a reply now (replies wait until one is back)."""
        ...

    def service_time_s(self, backend: str) -> float: ...

    @property
    def max_wait_s(self) -> float: ...


@dataclass(frozen=True)
class QueuePlace:
    position: int
    estimated_start_s: float | None
    # Why it waits when that is not just the line (chat_events.BACKEND_UNAVAILABLE).
    reason: str | None = None


@dataclass(frozen=True)
class SendResult:
    message: MessageRecord
    # None in a room when no reply starts at once (one is being written, or the turn
    # order plans none): `turns` says who will speak.
    reply: MessageRecord | None
    queue: QueuePlace | None
    # Moderation's word on the message: categories allowed with a warning, and crisis
    # resources when it shows intent of self-harm (see services/moderation.py).
    warnings: list[dict[str, str]] = dataclasses.field(default_factory=list)
    crisis_resources: list[dict[str, str]] = dataclasses.field(default_factory=list)
    # In a room: the turns this message planned ({character_id, name, reason}).
    turns: list[dict[str, str]] = dataclasses.field(default_factory=list)


async def insert_reply(
    tx: Transaction,
    *,
    chat_id: str,
    user_id: str,
    position: int,
    parent_id: str | None,
    max_attempts: int,
    swipe_index: int = 0,
    priority: int = 0,
    character_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> tuple[MessageRecord, job_repo.JobRecord]:
    """A reply placeholder and the job that will write it (inside the caller's
    transaction); in a room, `character_id` is the character who speaks."""
    reply = await repo.insert_message(
        tx,
        chat_id=chat_id,
        role="assistant",
        position=position,
        swipe_index=swipe_index,
        content="",
        status=QUEUED,
        parent_id=parent_id,
        character_id=character_id,
        labels=dict(labels) if labels else None,
    )
    job = await job_repo.insert_job(
        tx,
        kind=REPLY_JOB,
        user_id=user_id,
        chat_id=chat_id,
        message_id=reply.id,
        max_attempts=max_attempts,
        priority=priority,
    )
    return reply, job


def priority_of(user: UserRecord) -> int:
    """Paying and staff tiers go first in the waiting room."""
    return PRIORITY_BY_ROLE.get(user.role, 0)


async def admission_refusal(
    tx: Transaction, user: UserRecord, settings: Settings, signals: JobSignals
) -> AppError | None:
    """The error to answer when one more reply may not wait in line, else None."""
    pending, waiting = await job_repo.admission_counts(tx, user.id)
    if pending >= settings.queue_max_per_user:
        return TooManyPendingReplies(
            f"You have {plural(pending, 'reply', 'replies')} waiting or being written; send "
            "again when one "
            "is done. Your message is saved.",
            retry_after=signals.estimate_start_s(1) or 5.0,
        )
    if waiting >= settings.queue_max_length:
        return QueueFull(
            f"{plural(waiting, 'reply', 'replies')} {'is' if waiting == 1 else 'are'} waiting, "
            "the most we queue. Your message is saved; "
            "send it again (same client_id) in a moment and it will be answered.",
            retry_after=signals.estimate_start_s(waiting) or 30.0,
        )
    return None


async def queue_place(tx: Transaction, reply_id: str, signals: JobSignals) -> QueuePlace | None:
    """Where a reply waits in line, or None once it is being written (or done)."""
    job = await job_repo.get_open_job_for_message(tx, reply_id)
    return await job_place(tx, job, signals) if job is not None else None


async def job_place(
    tx: Transaction, job: job_repo.JobRecord, signals: JobSignals
) -> QueuePlace | None:
    """Where a job waits in line, or None once it is running (or done)."""
    if job.status != job_repo.QUEUED:
        return None
    position = await job_repo.queue_position(tx, job, max_wait_s=signals.max_wait_s)
    await signals.refresh_estimates(tx)
    reason = BACKEND_UNAVAILABLE if signals.backend_unavailable() else None
    return QueuePlace(position, signals.estimate_start_s(position), reason)


def check_content(content: str, limit: int) -> None:
    """A message has some text and at most `limit` characters."""
    problem = None
    if not content.strip():
        problem = "A message cannot be empty."
    elif len(content) > limit:
        problem = f"A message has at most {limit} characters ({len(content)} sent)."
    if problem:
        field_error = {"field": "content", "location": "body", "message": problem}
        raise ValidationFailed(problem, extra={"errors": [field_error]})


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def check_same_content(message: MessageRecord, content_hash: str) -> None:
    """A client_id sent again must carry the same text."""
    if message.content_hash != content_hash:
        raise ClientIdReused(
            "This client_id was already used for another message; use a new id for new "
            "content. The original message is unchanged.",
            extra={"original": chat_events.message_data(message)},
        )


async def store_user_message(
    tx: Transaction,
    chat: ChatRecord,
    user: UserRecord,
    existing: MessageRecord | None,
    *,
    status: str,
    client_id: str,
    content: str,
    content_hash: str,
    positions: int,
    labels: dict[str, str] | None = None,
) -> MessageRecord:
    """The user message as stored: new (reserving `positions` places: its own, and its
    reply's when that follows at once), or the one kept before, now in `status`."""
    if existing is not None:
        if status != existing.status:
            now = utcnow()
            await repo.update_message(tx, existing.id, status=status, updated_at=now)
            return dataclasses.replace(existing, status=status, updated_at=now)
        return existing
    position = await repo.reserve_positions(tx, chat, positions)
    return await repo.insert_message(
        tx,
        chat_id=chat.id,
        role="user",
        author_id=user.id,
        position=position,
        content=content,
        status=status,
        client_id=client_id,
        content_hash=content_hash,
        labels=labels,
    )
