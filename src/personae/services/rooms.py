"""Group rooms: creating them, their characters, people, invite links, roles, mutes,
personas, who speaks (a pick, auto-mode) and typing notices. See docs/rooms.md.

A room is a chat of kind "room"; its messages, replies and stream are a chat's.
Every change here that members see is published on the chat's event log after its
transaction commits, so every member's stream shows it at the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from personae.errors import (
    CharacterNotInRoom,
    InvalidState,
    NotFound,
    RoomFull,
    RoomNeedsACharacter,
    ValidationFailed,
)
from personae.events.base import EventLog
from personae.events.presence import Presence
from personae.services import chat_events, room_access
from personae.services.avatars import image_url, image_urls, shown_avatar
from personae.services.characters import can_read
from personae.services.content_ratings import check_may_chat
from personae.services.macros import substitute
from personae.services.ratelimit import RateLimiter
from personae.services.room_access import MEMBER, OWNER, VIEWER
from personae.services.room_turns import (
    SPEAKER,
    TURN_MODES,
    CastMember,
    Notes,
    RoomTurns,
    load_cast,
)
from personae.services.send_path import JobSignals, admission_refusal
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import personas as persona_repo
from personae.storage.repos import rooms as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord
from personae.storage.repos.rooms import MemberRecord, TurnRecord
from personae.storage.types import utcnow

_DESCRIPTION_SHORT = 200
_LARGEST_AVATAR = 512


def live_stream(chat_id: str) -> str:
    """A room's ephemeral events (typing, presence): read live, never replayed."""
    return f"room-live:{chat_id}"


@dataclass(frozen=True)
class RoomView:
    chat: ChatRecord
    my_role: str
    members: list[MemberRecord]
    cast: list[CastMember]
    here: list[str]


def character_data(member: CastMember, viewer: UserRecord | None) -> dict[str, Any]:
    """A room's character as members see it: a private character of someone else
    shows its name and picture only (no definition anywhere)."""
    character = member.character
    image_id = character.avatar_image_id
    # The `room` event (viewer None) goes to every member alike: there only a
    # character anybody may read shows its description.
    open_to = can_read(character, viewer)
    short = (character.tagline or character.description)[:_DESCRIPTION_SHORT] if open_to else ""
    return {
        "character_id": character.id,
        "name": character.name,
        "avatar": image_url(image_id, _LARGEST_AVATAR)
        if image_id
        else shown_avatar(character.avatar),
        "avatar_urls": image_urls(image_id),
        "position": member.seat.position,
        "talkativeness": member.seat.talkativeness,
        "description_short": short,
    }


def member_data(member: MemberRecord, here: list[str]) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "username": member.username,
        "display_name": member.display_name,
        "role": member.role,
        "persona_name": member.persona_name,
        "muted_until": member.muted_until.isoformat() if member.muted_until else None,
        "here": member.user_id in here,
    }


def room_event_data(chat: ChatRecord, cast: list[CastMember]) -> dict[str, Any]:
    """The `room` event: a room's settings after a change (no private definitions)."""
    return {
        "id": chat.id,
        "title": chat.title,
        "turn_mode": chat.turn_mode,
        "auto_turns_left": chat.auto_turns_left,
        "characters": [character_data(member, None) for member in cast],
    }


class RoomService:
    def __init__(
        self,
        database: Database,
        events: EventLog,
        presence: Presence,
        signals: JobSignals,
        settings: Settings,
        limiter: RateLimiter,
        turns: RoomTurns,
    ) -> None:
        self._db = database
        self._events = events
        self.presence = presence
        self._signals = signals
        self._settings = settings
        self._limiter = limiter
        self._turns = turns

    # --- reading ---------------------------------------------------------------------

    async def view(self, user: UserRecord, room_id: str) -> RoomView:
        async with self._db.read() as tx:
            chat = await room_access.check_read(tx, await chat_repo.get_chat(tx, room_id), user)
            room_access.check_room(chat)
            return await self.view_in(tx, chat, user)

    async def view_in(self, tx: Transaction, chat: ChatRecord, user: UserRecord) -> RoomView:
        role = await room_access.role_in(tx, chat, user)
        assert role is not None
        members = await repo.list_members(tx, chat.id)
        cast = await load_cast(tx, chat.id)
        here = await self.presence.here(chat.id)
        return RoomView(chat, role, members, cast, here)

    async def locked_owner(self, tx: Transaction, user: UserRecord, room_id: str) -> ChatRecord:
        return await room_access.check_owner(tx, await chat_repo.lock_chat(tx, room_id), user)

    async def _locked_sender(self, tx: Transaction, user: UserRecord, room_id: str) -> ChatRecord:
        chat = await chat_repo.lock_chat(tx, room_id)
        await room_access.check_send(tx, chat, user)
        assert chat is not None
        room_access.check_room(chat)
        return chat

    # --- the room --------------------------------------------------------------------

    async def create(
        self, user: UserRecord, title: str, character_ids: list[str], turn_mode: str | None
    ) -> RoomView:
        """A room of its owner and characters, opened by their group greetings."""
        ids = list(dict.fromkeys(character_ids))
        if not ids:
            raise RoomNeedsACharacter("Choose at least one character for the room.")
        if len(ids) > self._settings.room_max_characters:
            raise RoomFull(f"A room has at most {self._settings.room_max_characters} characters.")
        async with self._db.write() as tx:
            characters = [await self._usable_character(tx, user, cid) for cid in ids]
            persona = await persona_repo.default_persona(tx, user.id)
            name = persona.name if persona else user.display_name
            chat_id = await chat_repo.insert_chat(
                tx,
                owner_id=user.id,
                character_id=characters[0].id,
                title=title.strip() or "Room",
                persona_name=name,
                persona_description=persona.description if persona else "",
                kind="room",
                turn_mode=turn_mode or "natural",
            )
            await repo.upsert_member(
                tx,
                chat_id=chat_id,
                user_id=user.id,
                role=OWNER,
                persona_name=name,
                persona_description=persona.description if persona else "",
            )
            for position, character in enumerate(characters):
                await repo.add_character(
                    tx, chat_id=chat_id, character_id=character.id, position=position
                )
                await character_repo.add_chat_count(tx, character.id, 1)
            await self._greet(tx, chat_id, name)
            chat = await chat_repo.get_chat(tx, chat_id)
            assert chat is not None
            return await self.view_in(tx, chat, user)

    async def _usable_character(
        self, tx: Transaction, user: UserRecord, character_id: str
    ) -> character_repo.CharacterRecord:
        character = await character_repo.get_character(tx, character_id)
        if character is None or not can_read(character, user):
            raise NotFound("No character with this id.")
        check_may_chat(character.rating, user)
        return character

    async def _greet(self, tx: Transaction, chat_id: str, user_name: str) -> None:
        """`group_only_greetings` open a room: each character's first one (the others
        as swipes), in list order; with none, the first character's own greeting."""
        cast = await load_cast(tx, chat_id)
        openings = [(m, list(m.character.group_only_greetings or [])) for m in cast]
        openings = [(m, [g for g in greetings if g]) for m, greetings in openings]
        openings = [(m, greetings) for m, greetings in openings if greetings]
        if not openings and cast:
            first = cast[0].character
            greetings = [g for g in [first.first_message, *first.alternate_greetings] if g]
            openings = [(cast[0], greetings)] if greetings else []
        chat = await chat_repo.lock_chat(tx, chat_id)
        assert chat is not None
        position = await chat_repo.reserve_positions(tx, chat, len(openings))
        for offset, (member, greetings) in enumerate(openings):
            for index, greeting in enumerate(greetings):
                await chat_repo.insert_message(
                    tx,
                    chat_id=chat_id,
                    role="assistant",
                    position=position + offset,
                    swipe_index=index,
                    selected=index == 0,
                    content=substitute(greeting, char=member.name, user=user_name),
                    status="complete",
                    labels={"greeting": True, SPEAKER: member.name},
                    character_id=member.id,
                )

    async def update(
        self, user: UserRecord, room_id: str, *, title: str | None, turn_mode: str | None
    ) -> RoomView:
        if turn_mode is not None and turn_mode not in TURN_MODES:
            raise ValidationFailed(f"turn_mode is one of {', '.join(TURN_MODES)}.")
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            values: dict[str, Any] = {}
            if title is not None:
                values["title"] = title.strip() or "Room"
            if turn_mode is not None:
                values["turn_mode"] = turn_mode
            if values:
                await chat_repo.update_chat(tx, chat.id, **values)
            view = await self.view_in(tx, await self._reread(tx, chat.id), user)
        await self._publish_room(view)
        return view

    async def _reread(self, tx: Transaction, chat_id: str) -> ChatRecord:
        chat = await chat_repo.get_chat(tx, chat_id)
        assert chat is not None
        return chat

    async def _publish_room(self, view: RoomView) -> None:
        await self._events.publish(
            chat_events.chat_stream(view.chat.id), "room", room_event_data(view.chat, view.cast)
        )

    async def publish_member(self, chat_id: str, member: MemberRecord, change: str) -> None:
        data = {
            "user_id": member.user_id,
            "username": member.username,
            "role": member.role,
            "persona_name": member.persona_name,
            "change": change,
        }
        await self._events.publish(chat_events.chat_stream(chat_id), "member", data)

    # --- characters ------------------------------------------------------------------

    async def add_character(self, user: UserRecord, room_id: str, character_id: str) -> RoomView:
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            character = await self._usable_character(tx, user, character_id)
            if await repo.get_room_character(tx, chat.id, character.id) is None:
                cast = await load_cast(tx, chat.id)
                if len(cast) >= self._settings.room_max_characters:
                    raise RoomFull(
                        f"A room has at most {self._settings.room_max_characters} characters."
                    )
                position = await repo.next_character_position(tx, chat.id)
                await repo.add_character(
                    tx, chat_id=chat.id, character_id=character.id, position=position
                )
                await chat_repo.prompt_changed(tx, chat.id)
            view = await self.view_in(tx, chat, user)
        await self._publish_room(view)
        return view

    async def update_character(
        self,
        user: UserRecord,
        room_id: str,
        character_id: str,
        *,
        talkativeness: float | None,
        position: int | None,
    ) -> RoomView:
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            if await repo.get_room_character(tx, chat.id, character_id) is None:
                raise CharacterNotInRoom("This character is not in the room.")
            values: dict[str, Any] = {}
            if talkativeness is not None:
                values["talkativeness"] = talkativeness
            if position is not None:
                values["position"] = position
            if values:
                await repo.update_room_character(tx, chat.id, character_id, **values)
            view = await self.view_in(tx, chat, user)
        await self._publish_room(view)
        return view

    async def remove_character(self, user: UserRecord, room_id: str, character_id: str) -> RoomView:
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            cast = await load_cast(tx, chat.id)
            if all(member.id != character_id for member in cast):
                raise CharacterNotInRoom("This character is not in the room.")
            if len(cast) == 1:
                raise RoomNeedsACharacter("A room keeps at least one character.")
            await repo.update_room_character(tx, chat.id, character_id, removed_at=utcnow())
            rest = [member for member in cast if member.id != character_id]
            if chat.character_id == character_id:  # the room's first character stays one of its
                await chat_repo.update_chat(tx, chat.id, character_id=rest[0].id)
            await chat_repo.prompt_changed(tx, chat.id)
            view = await self.view_in(tx, await self._reread(tx, chat.id), user)
        await self._publish_room(view)
        return view

    # --- members ---------------------------------------------------------------------

    async def update_member(
        self,
        user: UserRecord,
        room_id: str,
        member_id: str,
        *,
        role: str | None,
        muted_until: datetime | None,
        set_mute: bool,
    ) -> RoomView:
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            member = await repo.get_member(tx, chat.id, member_id)
            if member is None:
                raise NotFound("No member with this id in this room.")
            if member.role == OWNER:
                raise InvalidState("The room's owner keeps their role and cannot be muted.")
            values: dict[str, Any] = {}
            if role is not None:
                values["role"] = role
            if set_mute:
                values["muted_until"] = muted_until
            if values:
                await repo.update_member(tx, chat.id, member_id, **values)
            updated = await repo.get_member(tx, chat.id, member_id)
            view = await self.view_in(tx, chat, user)
        assert updated is not None
        await self.publish_member(chat.id, updated, "updated")
        return view

    async def remove_member(self, user: UserRecord, room_id: str, member_id: str) -> None:
        """The owner removes someone: from this moment they read nothing of the room,
        and their open streams end (`access_revoked`)."""
        async with self._db.write() as tx:
            chat = await self.locked_owner(tx, user, room_id)
            member = await repo.get_member(tx, chat.id, member_id)
            if member is None:
                raise NotFound("No member with this id in this room.")
            if member.role == OWNER:
                raise InvalidState("The owner cannot be removed; delete the room instead.")
            await repo.update_member(
                tx, chat.id, member_id, removed_at=utcnow(), removed_by=user.id
            )
        await self.publish_member(chat.id, member, "removed")

    async def leave(self, user: UserRecord, room_id: str) -> None:
        async with self._db.write() as tx:
            chat = await room_access.check_read(tx, await chat_repo.lock_chat(tx, room_id), user)
            room_access.check_room(chat)
            if chat.owner_id == user.id:
                raise InvalidState("The owner cannot leave the room; delete it instead.")
            member = await repo.get_member(tx, chat.id, user.id)
            assert member is not None
            await repo.update_member(tx, chat.id, user.id, removed_at=utcnow())
        await self.publish_member(chat.id, member, "left")

    async def update_me(
        self,
        user: UserRecord,
        room_id: str,
        *,
        persona_id: str | None,
        persona_name: str | None,
        persona_description: str | None,
        default_persona: bool = False,
    ) -> RoomView:
        """Be one of one's personas in this room (or a name given here); with
        `default_persona`, one's default persona (else one's display name) again."""
        async with self._db.write() as tx:
            chat = await room_access.check_read(tx, await chat_repo.lock_chat(tx, room_id), user)
            room_access.check_room(chat)
            values: dict[str, Any] = {}
            if default_persona:
                default = await persona_repo.default_persona(tx, user.id)
                values.update(
                    persona_name=default.name if default else user.display_name,
                    persona_description=default.description if default else "",
                )
            if persona_id is not None:
                persona = await persona_repo.get_persona(tx, persona_id)
                if persona is None or persona.user_id != user.id:
                    raise NotFound("No persona with this id.")
                values.update(persona_name=persona.name, persona_description=persona.description)
            if persona_name is not None:
                values["persona_name"] = persona_name.strip() or user.display_name
            if persona_description is not None:
                values["persona_description"] = persona_description
            if values:
                await repo.update_member(tx, chat.id, user.id, **values)
                await chat_repo.prompt_changed(tx, chat.id)
            member = await repo.get_member(tx, chat.id, user.id)
            view = await self.view_in(tx, chat, user)
        assert member is not None
        await self.publish_member(chat.id, member, "updated")
        return view

    # --- who speaks ------------------------------------------------------------------

    async def speak(self, user: UserRecord, room_id: str, character_id: str) -> TurnRecord:
        """A person picks who speaks next (any turn order)."""
        async with self._db.write() as tx:
            chat = await self._locked_sender(tx, user, room_id)
            await room_access.check_may_chat_in(tx, chat, user)
            refusal = await admission_refusal(tx, user, self._settings, self._signals)
            if refusal is not None:
                raise refusal
            notes = Notes(chat.id)
            turn = await self._turns.speak_now(tx, chat, character_id, user.id, notes)
            settled = await self._turns.settle(tx, chat.id)
            # Told before the commit, the chat row locked (RoomTurns.tell).
            await self._turns.tell(notes)
            await self._turns.tell(settled)
        self._turns.wake(settled)
        return turn

    async def start_auto(self, user: UserRecord, room_id: str, turns: int) -> int:
        if turns > self._settings.room_max_auto_turns:
            raise ValidationFailed(
                f"Auto-mode asks for at most {self._settings.room_max_auto_turns} replies."
            )
        async with self._db.write() as tx:
            chat = await self._locked_sender(tx, user, room_id)
            await room_access.check_may_chat_in(tx, chat, user)
            refusal = await admission_refusal(tx, user, self._settings, self._signals)
            if refusal is not None:
                raise refusal
            notes = Notes(chat.id)
            await self._turns.start_auto(tx, chat, turns, user.id, notes)
            settled = await self._turns.settle(tx, chat.id)
            # Told before the commit, the chat row locked (RoomTurns.tell).
            await self._turns.tell(notes)
            await self._turns.tell(settled)
        self._turns.wake(settled)
        return turns

    async def stop_auto(self, user: UserRecord, room_id: str) -> None:
        async with self._db.write() as tx:
            chat = await self._locked_sender(tx, user, room_id)
            notes = Notes(chat.id)
            await self._turns.stop_auto(tx, chat, user.id, notes)
            await self._turns.tell(notes)

    async def typing(self, user: UserRecord, room_id: str) -> None:
        """Tell the room this member is typing (ephemeral: live streams only)."""
        async with self._db.read() as tx:
            chat = await chat_repo.get_chat(tx, room_id)
            await room_access.check_send(tx, chat, user)
            assert chat is not None
            room_access.check_room(chat)
            member = await repo.get_member(tx, chat.id, user.id)
        await self._limiter.hit(
            "room-typing", f"{room_id}:{user.id}", self._settings.room_typing_rate
        )
        name = member.persona_name if member else user.display_name
        await self._events.publish(
            live_stream(room_id), "typing", {"user_id": user.id, "name": name}
        )


ROLES = (OWNER, MEMBER, VIEWER)
