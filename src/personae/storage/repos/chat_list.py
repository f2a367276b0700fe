"""A user's list of chats, each with what the list shows of it: the character's avatar
and the chat's last message (its start, who wrote it, when), read in one query."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.repos.chats import ChatRecord
from personae.storage.tables import characters, chats, messages, room_members

# The list shows one line of the last message: its start is enough, and a long reply
# is not read whole for it.
PREVIEW_CHARS = 200


@dataclass(frozen=True)
class ChatSummaryRecord(ChatRecord):
    character_avatar: str | None = None
    character_avatar_image_id: str | None = None
    last_message: str | None = None
    last_message_role: str | None = None
    last_message_at: datetime | None = None


def _last_message_id() -> object:
    """The id of a chat's last shown message with some text: the selected swipe at the
    highest position (found through the (chat_id, position, swipe_index) index)."""
    return (
        select(messages.c.id)
        .where(
            messages.c.chat_id == chats.c.id,
            messages.c.selected.is_(True),
            messages.c.deleted_at.is_(None),
            messages.c.content != "",
        )
        .order_by(messages.c.position.desc())
        .limit(1)
        .correlate(chats)
        .scalar_subquery()
    )


def _one_line(text: str | None) -> str | None:
    return " ".join(text.split()) if text is not None else None


def _member_rooms(user_id: str) -> Any:
    """The rooms (of other owners) the user is a current member of."""
    return select(room_members.c.chat_id).where(
        room_members.c.user_id == user_id, room_members.c.removed_at.is_(None)
    )


async def list_chat_summaries(
    tx: AsyncSession, owner_id: str, *, limit: int, offset: int
) -> list[ChatSummaryRecord]:
    """The owner's chats, the most recently changed first, with their last messages."""
    last = messages.alias("last_message")
    query = (
        select(
            *chats.c,
            characters.c.name.label("character_name"),
            characters.c.rating.label("character_rating"),
            characters.c.avatar.label("character_avatar"),
            characters.c.avatar_image_id.label("character_avatar_image_id"),
            func.substr(last.c.content, 1, PREVIEW_CHARS).label("last_message"),
            last.c.role.label("last_message_role"),
            last.c.created_at.label("last_message_at"),
        )
        .select_from(
            chats.join(characters, characters.c.id == chats.c.character_id).outerjoin(
                last, last.c.id == _last_message_id()
            )
        )
        .where(
            or_(chats.c.owner_id == owner_id, chats.c.id.in_(_member_rooms(owner_id))),
            chats.c.deleted_at.is_(None),
        )
        .order_by(chats.c.updated_at.desc(), chats.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    names = [f.name for f in fields(ChatSummaryRecord)]
    rows = (await tx.execute(query)).mappings()
    summaries = []
    for row in rows:
        values = {name: row[name] for name in names}
        values["last_message"] = _one_line(values["last_message"])
        summaries.append(ChatSummaryRecord(**values))
    return summaries
