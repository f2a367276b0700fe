"""Invite links of rooms: made by the owner (the token shown once, its SHA-256
stored), listed, revoked at once, and accepted to join with the link's role."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from personae.errors import (
    InviteExpired,
    InviteRevoked,
    InviteUsedUp,
    NotFound,
    RemovedFromRoom,
    RoomFull,
)
from personae.services import room_access
from personae.services.room_access import MEMBER, VIEWER
from personae.services.rooms import RoomService, RoomView
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import personas as persona_repo
from personae.storage.repos import rooms as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.rooms import InviteRecord, MemberRecord
from personae.storage.types import utcnow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RoomInvites:
    def __init__(self, database: Database, settings: Settings, rooms: RoomService) -> None:
        self._db = database
        self._settings = settings
        self._rooms = rooms

    # --- invites ---------------------------------------------------------------------

    async def create_invite(
        self,
        user: UserRecord,
        room_id: str,
        *,
        role: str,
        expires_in_s: int,
        max_uses: int | None,
    ) -> tuple[InviteRecord, str]:
        """A link that lets people join as `role`; the token is returned only here."""
        token = secrets.token_urlsafe(24)
        async with self._db.write() as tx:
            chat = await self._rooms.locked_owner(tx, user, room_id)
            invite = await repo.insert_invite(
                tx,
                chat_id=chat.id,
                token_sha256=token_hash(token),
                role=role,
                created_by=user.id,
                expires_at=utcnow() + timedelta(seconds=expires_in_s),
                max_uses=max_uses,
            )
        return invite, token

    async def list_invites(self, user: UserRecord, room_id: str) -> list[InviteRecord]:
        async with self._db.read() as tx:
            chat = await room_access.check_owner(tx, await chat_repo.get_chat(tx, room_id), user)
            return await repo.list_invites(tx, chat.id)

    async def revoke_invite(self, user: UserRecord, room_id: str, invite_id: str) -> None:
        async with self._db.write() as tx:
            chat = await self._rooms.locked_owner(tx, user, room_id)
            invite = await repo.get_invite(tx, invite_id)
            if invite is None or invite.chat_id != chat.id:
                raise NotFound("No invite with this id in this room.")
            await repo.revoke_invite(tx, invite.id)

    async def accept(self, user: UserRecord, token: str) -> RoomView:
        """Join a room by its link (a current member is simply shown the room)."""
        async with self._db.write() as tx:
            invite = await repo.invite_by_hash(tx, token_hash(token))
            chat = await chat_repo.lock_chat(tx, invite.chat_id) if invite else None
            if invite is None or chat is None:
                raise NotFound("No invite with this link.")
            # A room with a mature character is for confirmed adults, as such a chat is.
            await room_access.check_may_chat_in(tx, chat, user)
            member = await repo.get_member(tx, chat.id, user.id)
            if member is None:
                member = await self._join(tx, chat.id, user, invite)
                joined = True
            else:
                joined = False
            view = await self._rooms.view_in(tx, chat, user)
        if joined:
            await self._rooms.publish_member(chat.id, member, "joined")
        return view

    async def _join(
        self, tx: Transaction, chat_id: str, user: UserRecord, invite: InviteRecord
    ) -> MemberRecord:
        before = await repo.get_member(tx, chat_id, user.id, include_removed=True)
        # A member the owner removed may come back only by a link made after that.
        removed_at = before.removed_at if before is not None and before.removed_by else None
        if removed_at is not None and invite.created_at <= removed_at:
            raise RemovedFromRoom("The room's owner removed you from this room.")
        _check_usable(invite, utcnow())
        if await repo.count_members(tx, chat_id) >= self._settings.room_max_members:
            raise RoomFull(f"A room has at most {self._settings.room_max_members} people.")
        if not await repo.use_invite(tx, invite.id):
            raise InviteUsedUp("This invite link has been used as often as it may.")
        persona = await persona_repo.default_persona(tx, user.id)
        await repo.upsert_member(
            tx,
            chat_id=chat_id,
            user_id=user.id,
            role=_rejoin_role(before, invite.role),
            persona_name=persona.name if persona else user.display_name,
            persona_description=persona.description if persona else "",
        )
        member = await repo.get_member(tx, chat_id, user.id)
        assert member is not None
        return member


def _rejoin_role(before: MemberRecord | None, link_role: str) -> str:
    """Someone who left comes back with the lower of their old role and the link's: a
    viewer does not become a member by leaving and following a member's link, nor
    does a member the owner made a viewer."""
    if before is None or before.role == MEMBER or link_role == VIEWER:
        return link_role
    return VIEWER


def _check_usable(invite: InviteRecord, now: datetime) -> None:
    if invite.revoked_at is not None:
        raise InviteRevoked("This invite link was revoked.")
    if invite.expires_at <= now:
        raise InviteExpired("This invite link has expired; ask for a new one.")
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        raise InviteUsedUp("This invite link has been used as often as it may.")
