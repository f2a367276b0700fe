"""Who may do what in a chat: the owner of a one-on-one chat; the current members of
a room, by their role. One place, so every route that reads or writes a chat asks the
same question (a removed member is refused everywhere at once)."""

from __future__ import annotations

from datetime import datetime

from personae.errors import MemberMuted, NotARoom, NotFound, RoomRoleForbidden
from personae.services.content_ratings import RATINGS, check_may_chat
from personae.storage.db import Transaction
from personae.storage.repos import rooms as rooms_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord
from personae.storage.repos.rooms import MemberRecord
from personae.storage.types import utcnow

OWNER, MEMBER, VIEWER = "owner", "member", "viewer"
SENDING_ROLES = frozenset({OWNER, MEMBER})


async def role_in(tx: Transaction, chat: ChatRecord, user: UserRecord) -> str | None:
    """The user's role in the chat (a one-on-one chat's owner is its "owner"), or None."""
    if not chat.is_room:
        return OWNER if chat.owner_id == user.id else None
    member = await rooms_repo.get_member(tx, chat.id, user.id)
    return member.role if member is not None else None


async def may_read(tx: Transaction, chat: ChatRecord | None, user: UserRecord) -> bool:
    return chat is not None and await role_in(tx, chat, user) is not None


async def check_read(tx: Transaction, chat: ChatRecord | None, user: UserRecord) -> ChatRecord:
    """The chat, if the user may read it; anybody else's is simply not found."""
    if chat is None or not await may_read(tx, chat, user):
        raise NotFound("No chat with this id.")
    return chat


def muted(member: MemberRecord, now: datetime | None = None) -> bool:
    return member.muted_until is not None and member.muted_until > (now or utcnow())


async def check_send(tx: Transaction, chat: ChatRecord | None, user: UserRecord) -> str:
    """The user's role if they may write in the chat (send, swipe, continue, stop,
    edit, rate): a room's owner or a member who is not muted."""
    chat = await check_read(tx, chat, user)
    if not chat.is_room:
        return OWNER
    member = await rooms_repo.get_member(tx, chat.id, user.id)
    assert member is not None
    if member.role not in SENDING_ROLES:
        raise RoomRoleForbidden("Viewers of a room read along; they do not write in it.")
    if muted(member):
        assert member.muted_until is not None
        raise MemberMuted(
            "The room's owner muted you for now.",
            extra={"muted_until": member.muted_until.isoformat()},
        )
    return member.role


async def check_owner(tx: Transaction, chat: ChatRecord | None, user: UserRecord) -> ChatRecord:
    """A room whose owner the user is (a member gets 403 room_role_forbidden)."""
    chat = await check_read(tx, chat, user)
    if not chat.is_room:
        raise NotARoom("This is a one-on-one chat, not a room.")
    if chat.owner_id != user.id:
        raise RoomRoleForbidden("Only the room's owner may do this.")
    return chat


async def rating_of(tx: Transaction, chat: ChatRecord) -> str:
    """The rating a chat is gated by: a one-on-one chat's character's; a room's highest
    among its characters (the owner may add a mature one: the room is mature then)."""
    if not chat.is_room:
        return chat.character_rating
    ratings = await rooms_repo.character_ratings(tx, chat.id) or [chat.character_rating]
    return max(ratings, key=lambda r: RATINGS.index(r) if r in RATINGS else 0)


async def check_may_chat_in(tx: Transaction, chat: ChatRecord, user: UserRecord) -> None:
    """Refuse writing in a chat whose (highest) rating is mature to anybody who is not
    a confirmed adult (content_ratings.check_may_chat)."""
    check_may_chat(await rating_of(tx, chat), user)


def check_room(chat: ChatRecord) -> None:
    if not chat.is_room:
        raise NotARoom("This is a one-on-one chat, not a room.")
