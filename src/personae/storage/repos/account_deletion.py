"""The statements of deleting an account (services/account_deletion.py says what
happens to what). Each runs in the caller's one transaction: all or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.repos.jobs import RUNNING
from personae.storage.tables import (
    api_tokens,
    appeals,
    character_assets,
    character_tags,
    characters,
    chats,
    jobs,
    memories,
    message_vectors,
    messages,
    personas,
    room_characters,
    room_invites,
    room_members,
    room_turns,
    sessions,
    speech_clips,
    user_warnings,
    users,
)
from personae.storage.types import utcnow


@dataclass(frozen=True)
class OwnedCharacter:
    id: str
    visibility: str
    deleted: bool
    # Whether anybody else has (or had: deleted ones count) a chat with it.
    chatted_by_others: bool
    card: dict[str, Any] | None


async def owned_characters(tx: AsyncSession, user_id: str) -> list[OwnedCharacter]:
    """Every character the user created, deleted ones too."""
    others = exists().where(
        chats.c.character_id == characters.c.id, chats.c.owner_id != user_id
    ) | exists().where(  # a character of someone else's room (migration 0019)
        room_characters.c.character_id == characters.c.id,
        room_characters.c.chat_id == chats.c.id,
        chats.c.owner_id != user_id,
    )
    query = select(
        characters.c.id,
        characters.c.visibility,
        characters.c.deleted_at,
        characters.c.card,
        others.label("chatted_by_others"),
    ).where(characters.c.owner_id == user_id)
    return [
        OwnedCharacter(
            id=row["id"],
            visibility=row["visibility"],
            deleted=row["deleted_at"] is not None,
            chatted_by_others=bool(row["chatted_by_others"]),
            card=row["card"],
        )
        for row in (await tx.execute(query)).mappings()
    ]


async def delete_chats_of(tx: AsyncSession, user_id: str) -> int:
    """Delete the user's chats (deleted ones too) with their messages, memories,
    recall vectors and reply jobs; give back the chat counts of their characters.
    A reply being written is asked to stop (its job row goes when it ends)."""
    owned = select(chats.c.id).where(chats.c.owner_id == user_id).scalar_subquery()
    live = (
        select(chats.c.character_id, func.count().label("n"))
        .where(chats.c.owner_id == user_id, chats.c.deleted_at.is_(None))
        .group_by(chats.c.character_id)
    )
    for row in (await tx.execute(live)).mappings():
        await tx.execute(
            update(characters)
            .where(characters.c.id == row["character_id"])
            .values(chat_count=characters.c.chat_count - row["n"])
        )
    await tx.execute(delete(message_vectors).where(message_vectors.c.chat_id.in_(owned)))
    await tx.execute(delete(memories).where(memories.c.chat_id.in_(owned)))
    chat_messages = select(messages.c.id).where(messages.c.chat_id.in_(owned))
    await tx.execute(delete(speech_clips).where(speech_clips.c.message_id.in_(chat_messages)))
    await tx.execute(delete(messages).where(messages.c.chat_id.in_(owned)))
    await _recharge_to_room_owners(tx, user_id)
    mine = (jobs.c.chat_id.in_(owned)) | (jobs.c.user_id == user_id)
    await tx.execute(
        update(jobs).where(mine, jobs.c.status == RUNNING).values(cancel_requested=True)
    )
    await tx.execute(delete(jobs).where(mine, jobs.c.status != RUNNING))
    # Their own rooms' members, characters, invites and turns go with them; in others'
    # rooms they are no longer members.
    for table in (room_members, room_characters, room_invites, room_turns):
        await tx.execute(delete(table).where(table.c.chat_id.in_(owned)))
    await tx.execute(
        update(room_members)
        .where(room_members.c.user_id == user_id, room_members.c.removed_at.is_(None))
        .values(removed_at=utcnow())
    )
    result = await tx.execute(delete(chats).where(chats.c.owner_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _recharge_to_room_owners(tx: AsyncSession, user_id: str) -> None:
    """The user's replies and planned turns in others' rooms are the room's: they
    are charged to its owner from now on, not deleted (a reply left `queued` with no
    job would keep the room from ever starting another)."""
    room_owner = (
        select(chats.c.owner_id)
        .where(chats.c.id == jobs.c.chat_id, chats.c.kind == "room")
        .scalar_subquery()
    )
    in_others_room = exists().where(
        chats.c.id == jobs.c.chat_id, chats.c.kind == "room", chats.c.owner_id != user_id
    )
    await tx.execute(
        update(jobs).where(jobs.c.user_id == user_id, in_others_room).values(user_id=room_owner)
    )
    turn_owner = (
        select(chats.c.owner_id).where(chats.c.id == room_turns.c.chat_id).scalar_subquery()
    )
    turn_in_others_room = exists().where(
        chats.c.id == room_turns.c.chat_id, chats.c.owner_id != user_id
    )
    await tx.execute(
        update(room_turns)
        .where(room_turns.c.requested_by == user_id, turn_in_others_room)
        .values(requested_by=turn_owner)
    )


async def delete_characters(tx: AsyncSession, character_ids: list[str]) -> None:
    """Delete characters nobody else has a chat with, their tags and files."""
    if not character_ids:
        return
    for table in (character_tags, character_assets):
        await tx.execute(delete(table).where(table.c.character_id.in_(character_ids)))
    await tx.execute(delete(characters).where(characters.c.id.in_(character_ids)))


async def retire_characters(tx: AsyncSession, character_ids: list[str]) -> None:
    """Take characters out of every list (as their owner's delete does) whose row must
    stay because others' chats name it; their card files go."""
    if not character_ids:
        return
    now = utcnow()
    await tx.execute(
        update(characters)
        .where(characters.c.id.in_(character_ids), characters.c.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
    )
    await tx.execute(
        delete(character_assets).where(character_assets.c.character_id.in_(character_ids))
    )


async def clear_creator(tx: AsyncSession, character_id: str, card: dict[str, Any] | None) -> None:
    """Forget who made a character that stays: the `creator` field, here and in its card."""
    await tx.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(creator="", card=card, updated_at=utcnow())
    )


async def delete_belongings(tx: AsyncSession, user_id: str) -> None:
    """The user's personas, sessions, API tokens, appeals and the warnings they got."""
    for table in (personas, sessions, api_tokens, appeals, user_warnings):
        await tx.execute(delete(table).where(table.c.user_id == user_id))


async def count_admins(tx: AsyncSession) -> int:
    query = select(func.count()).where(users.c.role == "admin", users.c.deleted_at.is_(None))
    return int((await tx.execute(query)).scalar_one())


async def scrub_user(tx: AsyncSession, user_id: str, *, username: str, display_name: str) -> None:
    """Turn the account into an anonymous tombstone: no name, password or age; marked
    deleted, so no session, token or login finds it. Reports it filed and characters
    it leaves to others still point at this row."""
    now = utcnow()
    await tx.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            username=username,
            display_name=display_name,
            password_hash=None,
            role="user",
            deleted_at=now,
            updated_at=now,
            suspended_until=None,
            age_declared_at=None,
            adult_from=None,
            show_mature=False,
            wellbeing_dismissed_at=None,
        )
    )
