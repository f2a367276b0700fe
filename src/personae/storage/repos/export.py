"""Reads for the personal data export: one owner's chats and every message, in pages.

Keyset pages (never offsets), so a long chat is read in bounded pieces however
far the export has gone.
"""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.tables import characters, chats, messages

_CHAT_FIELDS = [f.name for f in fields(ChatRecord)]
_MESSAGE_FIELDS = [f.name for f in fields(MessageRecord) if f.name != "swipe_count"]


async def owned_chats(
    tx: AsyncSession, owner_id: str, *, after: str | None, limit: int
) -> list[ChatRecord]:
    """One owner's chats (not deleted) in id order, after the id `after`."""
    statement = (
        select(
            *chats.c,
            characters.c.name.label("character_name"),
            characters.c.rating.label("character_rating"),
        )
        .select_from(chats.join(characters, characters.c.id == chats.c.character_id))
        .where(chats.c.owner_id == owner_id, chats.c.deleted_at.is_(None))
    )
    if after is not None:
        statement = statement.where(chats.c.id > after)
    statement = statement.order_by(chats.c.id).limit(limit)
    rows = (await tx.execute(statement)).mappings()
    return [ChatRecord(**{name: row[name] for name in _CHAT_FIELDS}) for row in rows]


async def chat_messages(
    tx: AsyncSession, chat_id: str, *, after: tuple[int, int] | None, limit: int
) -> list[MessageRecord]:
    """Every message of a chat that is not deleted, each swipe included (selected or not),
    in (position, swipe_index) order after the pair `after`."""
    statement = select(messages).where(
        messages.c.chat_id == chat_id, messages.c.deleted_at.is_(None)
    )
    if after is not None:
        position, swipe_index = after
        statement = statement.where(
            or_(
                messages.c.position > position,
                and_(messages.c.position == position, messages.c.swipe_index > swipe_index),
            )
        )
    statement = statement.order_by(messages.c.position, messages.c.swipe_index).limit(limit)
    rows = (await tx.execute(statement)).mappings()
    return [MessageRecord(**{name: row[name] for name in _MESSAGE_FIELDS}) for row in rows]
