"""Messages as a moderator reads them: deleted and removed ones too, with their chat
and character, the few around one, and a moderator's removal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import characters, chats, messages, speech_clips


@dataclass(frozen=True)
class ReviewedMessage:
    """A message as a moderator sees it: deleted and removed ones too, with its chat."""

    id: str
    chat_id: str
    chat_owner_id: str
    chat_deleted: bool
    character_id: str
    character_owner_id: str
    character_name: str
    author_id: str | None
    role: str
    position: int
    content: str
    status: str
    deleted_at: datetime | None
    removed_at: datetime | None
    created_at: datetime


def _reviewed_query() -> Any:
    return select(
        messages.c.id,
        messages.c.chat_id,
        chats.c.owner_id.label("chat_owner_id"),
        chats.c.deleted_at.label("chat_deleted_at"),
        chats.c.character_id,
        characters.c.owner_id.label("character_owner_id"),
        characters.c.name.label("character_name"),
        messages.c.author_id,
        messages.c.role,
        messages.c.position,
        messages.c.content,
        messages.c.status,
        messages.c.deleted_at,
        messages.c.removed_at,
        messages.c.created_at,
    ).select_from(
        messages.join(chats, chats.c.id == messages.c.chat_id).join(
            characters, characters.c.id == chats.c.character_id
        )
    )


def _reviewed(row: RowMapping) -> ReviewedMessage:
    values = dict(row)
    values["chat_deleted"] = values.pop("chat_deleted_at") is not None
    return ReviewedMessage(**values)


async def get_reviewed_message(tx: AsyncSession, message_id: str) -> ReviewedMessage | None:
    """A message by id whatever became of it (deleted, removed, its chat deleted)."""
    row = (
        (await tx.execute(_reviewed_query().where(messages.c.id == message_id))).mappings().first()
    )
    return _reviewed(row) if row else None


async def messages_around(
    tx: AsyncSession, chat_id: str, position: int, *, span: int
) -> list[ReviewedMessage]:
    """The selected messages `span` positions either side of one, oldest first (deleted
    ones too: a moderator reads what was said)."""
    query = (
        _reviewed_query()
        .where(
            messages.c.chat_id == chat_id,
            messages.c.position >= position - span,
            messages.c.position <= position + span,
            messages.c.selected.is_(True),
        )
        .order_by(messages.c.position)
    )
    return [_reviewed(row) for row in (await tx.execute(query)).mappings()]


async def mark_removed(tx: AsyncSession, message_id: str, when: datetime) -> None:
    """A moderator removed the message: it leaves the chat (deleted, not selected) and
    keeps its text for the record."""
    await tx.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(removed_at=when, selected=False, updated_at=when)
    )
    await tx.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.deleted_at.is_(None))
        .values(deleted_at=when)
    )
    # Its read-aloud audio goes with it (the text stays, for the record).
    await tx.execute(delete(speech_clips).where(speech_clips.c.message_id == message_id))
