"""Group rooms: members, characters, invite links and the plan of who speaks next."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import (
    characters,
    chats,
    room_characters,
    room_invites,
    room_members,
    room_turns,
    users,
)
from personae.storage.types import new_id, utcnow

PLANNED, STARTED, DONE, DROPPED = "planned", "started", "done", "dropped"


@dataclass(frozen=True)
class MemberRecord:
    chat_id: str
    user_id: str
    username: str
    display_name: str
    role: str
    persona_name: str
    persona_description: str
    muted_until: datetime | None
    joined_at: datetime
    removed_at: datetime | None
    removed_by: str | None = None


@dataclass(frozen=True)
class RoomCharacterRecord:
    chat_id: str
    character_id: str
    position: int
    talkativeness: float
    added_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class InviteRecord:
    id: str
    chat_id: str
    token_sha256: str
    role: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    max_uses: int | None
    uses: int


@dataclass(frozen=True)
class TurnRecord:
    id: str
    chat_id: str
    seq: int
    character_id: str
    requested_by: str
    reason: str
    status: str
    message_id: str | None
    created_at: datetime
    parent_id: str | None = None


def _of(cls: Any, row: RowMapping) -> Any:
    return cls(**{f.name: row[f.name] for f in fields(cls)})


# --- members ---------------------------------------------------------------------

_MEMBER_QUERY = select(*room_members.c, users.c.username, users.c.display_name).select_from(
    room_members.join(users, users.c.id == room_members.c.user_id)
)


async def upsert_member(
    tx: AsyncSession,
    *,
    chat_id: str,
    user_id: str,
    role: str,
    persona_name: str,
    persona_description: str = "",
) -> None:
    """Add a member, or bring back one who left or was removed (with this role; a mute
    still running stays: leaving and joining again does not end it)."""
    now = utcnow()
    existing = await get_member(tx, chat_id, user_id, include_removed=True)
    if existing is None:
        await tx.execute(
            insert(room_members).values(
                chat_id=chat_id,
                user_id=user_id,
                role=role,
                persona_name=persona_name,
                persona_description=persona_description,
                joined_at=now,
            )
        )
        return
    await update_member(
        tx, chat_id, user_id, role=role, removed_at=None, removed_by=None, joined_at=now
    )


async def get_member(
    tx: AsyncSession, chat_id: str, user_id: str, *, include_removed: bool = False
) -> MemberRecord | None:
    query = _MEMBER_QUERY.where(
        room_members.c.chat_id == chat_id, room_members.c.user_id == user_id
    )
    if not include_removed:
        query = query.where(room_members.c.removed_at.is_(None))
    row = (await tx.execute(query)).mappings().first()
    return _of(MemberRecord, row) if row else None


async def list_members(tx: AsyncSession, chat_id: str) -> list[MemberRecord]:
    """Current members, in the order they joined."""
    query = _MEMBER_QUERY.where(
        room_members.c.chat_id == chat_id, room_members.c.removed_at.is_(None)
    ).order_by(room_members.c.joined_at, room_members.c.user_id)
    return [_of(MemberRecord, row) for row in (await tx.execute(query)).mappings()]


async def count_members(tx: AsyncSession, chat_id: str) -> int:
    query = select(func.count()).where(
        room_members.c.chat_id == chat_id, room_members.c.removed_at.is_(None)
    )
    return int((await tx.execute(query)).scalar_one())


async def update_member(tx: AsyncSession, chat_id: str, user_id: str, **values: Any) -> None:
    await tx.execute(
        update(room_members)
        .where(room_members.c.chat_id == chat_id, room_members.c.user_id == user_id)
        .values(**values)
    )


async def rooms_of(tx: AsyncSession, user_id: str) -> list[str]:
    """The ids of the rooms (not deleted) the user is a current member of."""
    query = (
        select(room_members.c.chat_id)
        .join(chats, chats.c.id == room_members.c.chat_id)
        .where(
            room_members.c.user_id == user_id,
            room_members.c.removed_at.is_(None),
            chats.c.deleted_at.is_(None),
        )
    )
    return [str(value) for value in (await tx.execute(query)).scalars()]


# --- characters ------------------------------------------------------------------


async def add_character(
    tx: AsyncSession, *, chat_id: str, character_id: str, position: int, talkativeness: float = 0.5
) -> None:
    """Add a character to a room, or bring one back that was removed."""
    now = utcnow()
    existing = await get_room_character(tx, chat_id, character_id, include_removed=True)
    if existing is None:
        await tx.execute(
            insert(room_characters).values(
                chat_id=chat_id,
                character_id=character_id,
                position=position,
                talkativeness=talkativeness,
                added_at=now,
            )
        )
        return
    await update_room_character(
        tx, chat_id, character_id, removed_at=None, position=position, added_at=now
    )


async def get_room_character(
    tx: AsyncSession, chat_id: str, character_id: str, *, include_removed: bool = False
) -> RoomCharacterRecord | None:
    query = select(room_characters).where(
        room_characters.c.chat_id == chat_id, room_characters.c.character_id == character_id
    )
    if not include_removed:
        query = query.where(room_characters.c.removed_at.is_(None))
    row = (await tx.execute(query)).mappings().first()
    return _of(RoomCharacterRecord, row) if row else None


async def list_room_characters(tx: AsyncSession, chat_id: str) -> list[RoomCharacterRecord]:
    """A room's characters in list order (ties by the time they were added)."""
    query = (
        select(room_characters)
        .where(room_characters.c.chat_id == chat_id, room_characters.c.removed_at.is_(None))
        .order_by(
            room_characters.c.position, room_characters.c.added_at, room_characters.c.character_id
        )
    )
    return [_of(RoomCharacterRecord, row) for row in (await tx.execute(query)).mappings()]


async def character_ratings(tx: AsyncSession, chat_id: str) -> list[str]:
    """The content ratings of a room's characters (deleted ones keep their seat)."""
    query = (
        select(characters.c.rating)
        .join(room_characters, room_characters.c.character_id == characters.c.id)
        .where(room_characters.c.chat_id == chat_id, room_characters.c.removed_at.is_(None))
    )
    return [str(rating) for rating in (await tx.execute(query)).scalars()]


async def update_room_character(
    tx: AsyncSession, chat_id: str, character_id: str, **values: Any
) -> None:
    await tx.execute(
        update(room_characters)
        .where(room_characters.c.chat_id == chat_id, room_characters.c.character_id == character_id)
        .values(**values)
    )


async def next_character_position(tx: AsyncSession, chat_id: str) -> int:
    query = select(func.max(room_characters.c.position)).where(
        room_characters.c.chat_id == chat_id, room_characters.c.removed_at.is_(None)
    )
    value = (await tx.execute(query)).scalar_one_or_none()
    return int(value) + 1 if value is not None else 0


# --- invites ---------------------------------------------------------------------


async def insert_invite(
    tx: AsyncSession,
    *,
    chat_id: str,
    token_sha256: str,
    role: str,
    created_by: str,
    expires_at: datetime,
    max_uses: int | None,
) -> InviteRecord:
    record = InviteRecord(
        id=new_id(),
        chat_id=chat_id,
        token_sha256=token_sha256,
        role=role,
        created_by=created_by,
        created_at=utcnow(),
        expires_at=expires_at,
        revoked_at=None,
        max_uses=max_uses,
        uses=0,
    )
    values = {f.name: getattr(record, f.name) for f in fields(InviteRecord)}
    await tx.execute(insert(room_invites).values(**values))
    return record


async def invite_by_hash(tx: AsyncSession, token_sha256: str) -> InviteRecord | None:
    query = select(room_invites).where(room_invites.c.token_sha256 == token_sha256)
    row = (await tx.execute(query)).mappings().first()
    return _of(InviteRecord, row) if row else None


async def get_invite(tx: AsyncSession, invite_id: str) -> InviteRecord | None:
    row = (
        (await tx.execute(select(room_invites).where(room_invites.c.id == invite_id)))
        .mappings()
        .first()
    )
    return _of(InviteRecord, row) if row else None


async def list_invites(tx: AsyncSession, chat_id: str) -> list[InviteRecord]:
    query = (
        select(room_invites)
        .where(room_invites.c.chat_id == chat_id)
        .order_by(room_invites.c.created_at.desc(), room_invites.c.id)
    )
    return [_of(InviteRecord, row) for row in (await tx.execute(query)).mappings()]


async def revoke_invite(tx: AsyncSession, invite_id: str) -> None:
    await tx.execute(
        update(room_invites)
        .where(room_invites.c.id == invite_id, room_invites.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def use_invite(tx: AsyncSession, invite_id: str) -> bool:
    """Count one use, unless it is used up (one statement: two accepts at once count
    twice only if both fit)."""
    result = await tx.execute(
        update(room_invites)
        .where(
            room_invites.c.id == invite_id,
            (room_invites.c.max_uses.is_(None)) | (room_invites.c.uses < room_invites.c.max_uses),
        )
        .values(uses=room_invites.c.uses + 1)
    )
    return bool(getattr(result, "rowcount", 0))


# --- turns -----------------------------------------------------------------------


async def insert_turn(
    tx: AsyncSession,
    *,
    chat_id: str,
    character_id: str,
    requested_by: str,
    reason: str,
    parent_id: str | None = None,
) -> TurnRecord:
    """Plan a turn after every other one of the room (the caller holds the chat lock)."""
    last = await tx.execute(
        select(func.max(room_turns.c.seq)).where(room_turns.c.chat_id == chat_id)
    )
    value = last.scalar_one_or_none()
    record = TurnRecord(
        id=new_id(),
        chat_id=chat_id,
        seq=int(value) + 1 if value is not None else 0,
        character_id=character_id,
        requested_by=requested_by,
        reason=reason,
        status=PLANNED,
        message_id=None,
        created_at=utcnow(),
        parent_id=parent_id,
    )
    values = {f.name: getattr(record, f.name) for f in fields(TurnRecord)}
    await tx.execute(insert(room_turns).values(**values))
    return record


async def open_turns(tx: AsyncSession, chat_id: str) -> list[TurnRecord]:
    """Turns planned or started, in order."""
    query = (
        select(room_turns)
        .where(room_turns.c.chat_id == chat_id, room_turns.c.status.in_((PLANNED, STARTED)))
        .order_by(room_turns.c.seq)
    )
    return [_of(TurnRecord, row) for row in (await tx.execute(query)).mappings()]


async def last_turns(tx: AsyncSession, chat_id: str, limit: int) -> list[TurnRecord]:
    """The newest turns (any status), newest first."""
    query = (
        select(room_turns)
        .where(room_turns.c.chat_id == chat_id)
        .order_by(room_turns.c.seq.desc())
        .limit(limit)
    )
    return [_of(TurnRecord, row) for row in (await tx.execute(query)).mappings()]


async def set_turn(tx: AsyncSession, turn_id: str, **values: Any) -> None:
    await tx.execute(update(room_turns).where(room_turns.c.id == turn_id).values(**values))


async def drop_planned(tx: AsyncSession, chat_id: str, *, reason: str | None = None) -> int:
    """Drop the turns not started (of one reason only, when given)."""
    statement = update(room_turns).where(
        room_turns.c.chat_id == chat_id, room_turns.c.status == PLANNED
    )
    if reason is not None:
        statement = statement.where(room_turns.c.reason == reason)
    result = await tx.execute(statement.values(status=DROPPED))
    return int(getattr(result, "rowcount", 0) or 0)


async def shares_room(tx: AsyncSession, user_id: str, character_id: str) -> bool:
    """Whether the user is a current member of a room (not deleted) the character is
    in: its name and picture are shown there, even if it is private."""
    query = (
        select(room_characters.c.chat_id)
        .join(
            room_members,
            (room_members.c.chat_id == room_characters.c.chat_id)
            & (room_members.c.user_id == user_id)
            & room_members.c.removed_at.is_(None),
        )
        .join(chats, chats.c.id == room_characters.c.chat_id)
        .where(
            room_characters.c.character_id == character_id,
            room_characters.c.removed_at.is_(None),
            chats.c.deleted_at.is_(None),
        )
        .limit(1)
    )
    return (await tx.execute(query)).first() is not None
