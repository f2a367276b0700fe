"""Chats and messages: idempotent sends, swipes, edits, ratings, stop.

The rules that keep messages safe live here: a user message, its reply
placeholder and the generation job are written in one transaction before the
send is acknowledged, and a `client_id` sent again returns the same pair.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Protocol

from personae.errors import (
    AppError,
    InvalidState,
    NotFound,
    RoomRoleForbidden,
    ValidationFailed,
)
from personae.events.base import EventLog
from personae.services import chat_events, room_access
from personae.services.characters import can_read
from personae.services.content_ratings import check_may_chat
from personae.services.crisis import CrisisDirectory
from personae.services.macros import substitute
from personae.services.memory import MemoryService
from personae.services.moderation import InputCheck, ModerationService
from personae.services.ratelimit import RateLimiter
from personae.services.send_path import (
    WAITING,
    JobSignals,
    SendResult,
    admission_refusal,
    check_content,
    check_same_content,
    digest,
    insert_reply,
    job_place,
    priority_of,
    queue_place,
    store_user_message,
)
from personae.services.warmup import PrefixWarmer
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chat_list as chat_list_repo
from personae.storage.repos import chats as repo
from personae.storage.repos import personas as persona_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chat_list import ChatSummaryRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RoomSender(Protocol):
    """How a message sent in a room is stored and its turns planned (room_sends.py)."""

    async def send_once(
        self,
        user: UserRecord,
        chat_id: str,
        client_id: str,
        content: str,
        *,
        respond_with: str | None,
        respond: bool,
    ) -> SendResult: ...


async def _persona_for(
    tx: Transaction, user: UserRecord, persona_id: str | None
) -> persona_repo.PersonaRecord | None:
    """The user's persona `persona_id` (404 if not theirs), or their default one."""
    if persona_id is None:
        return await persona_repo.default_persona(tx, user.id)
    persona = await persona_repo.get_persona(tx, persona_id)
    if persona is None or persona.user_id != user.id:
        raise NotFound("No persona with this id.")
    return persona


class ChatService:
    """Everything a chatter does in a one-on-one chat."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        signals: JobSignals,
        settings: Settings,
        limiter: RateLimiter,
        memory: MemoryService | None = None,
        moderation: ModerationService | None = None,
        crisis: CrisisDirectory | None = None,
        *,
        warmer: PrefixWarmer | None = None,
        rooms: RoomSender | None = None,
    ) -> None:
        self.rooms = rooms
        self._warmer = warmer
        self._moderation = moderation
        self._crisis = crisis or CrisisDirectory()
        self._db = database
        self._events = events
        self._signals = signals
        self._settings = settings
        self._limiter = limiter
        self._memory = memory
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[SendResult]] = {}

    # --- chats ---------------------------------------------------------------------

    async def start_chat(
        self,
        user: UserRecord,
        character_id: str,
        *,
        persona_name: str | None = None,
        persona_description: str = "",
        persona_id: str | None = None,
    ) -> ChatRecord:
        """A new chat opening with the character's greeting (alternates become swipes).

        The user is the persona given inline, else the persona `persona_id`, else
        their default persona, else their display name.
        """
        async with self._db.write() as tx:
            character = await character_repo.get_character(tx, character_id)
            if character is None or not can_read(character, user):
                raise NotFound("No character with this id.")
            check_may_chat(character.rating, user)
            if persona_name is None:
                persona = await _persona_for(tx, user, persona_id)
                if persona is not None:
                    persona_id = persona.id
                    persona_name, persona_description = persona.name, persona.description
            else:
                persona_id = None
            name = (persona_name or user.display_name).strip() or user.username
            chat_id = await repo.insert_chat(
                tx,
                owner_id=user.id,
                character_id=character.id,
                title=character.name,
                persona_name=name,
                persona_description=persona_description,
                persona_id=persona_id,
            )
            greetings = [g for g in [character.first_message, *character.alternate_greetings] if g]
            if greetings:
                chat = await repo.lock_chat(tx, chat_id)
                assert chat is not None
                position = await repo.reserve_positions(tx, chat, 1)
                for index, greeting in enumerate(greetings):
                    await repo.insert_message(
                        tx,
                        chat_id=chat_id,
                        role="assistant",
                        position=position,
                        swipe_index=index,
                        selected=index == 0,
                        content=substitute(greeting, char=character.name, user=name),
                        status="complete",
                        labels={"greeting": True},
                    )
            await character_repo.add_chat_count(tx, character.id, 1)
            chat_record = await repo.get_chat(tx, chat_id)
        assert chat_record is not None
        return chat_record

    async def get_chat(self, user: UserRecord, chat_id: str) -> ChatRecord:
        """A chat of this user (a room of which they are a member); anybody else's is
        simply not found."""
        async with self._db.read() as tx:
            return await room_access.check_read(tx, await repo.get_chat(tx, chat_id), user)

    async def open_chat(self, user: UserRecord, chat_id: str) -> ChatRecord:
        """`get_chat`, for the chat being opened: its character's prompt prefix is
        warmed for its next reply in the background (lowest priority, see warmup.py)."""
        chat = await self.get_chat(user, chat_id)
        if (
            self._warmer is not None and not chat.is_room
        ):  # (a room's prefix is not one character's)
            self._warmer.chat_opened(chat)
        return chat

    async def list_chats(
        self, user: UserRecord, *, limit: int, offset: int
    ) -> list[ChatSummaryRecord]:
        """The user's chats, latest first, each with its last message and character avatar."""
        async with self._db.read() as tx:
            return await chat_list_repo.list_chat_summaries(tx, user.id, limit=limit, offset=offset)

    async def _owned_chat(self, user: UserRecord, chat_id: str) -> ChatRecord:
        """`get_chat`, for a change of the whole chat: in a room, its owner's."""
        chat = await self.get_chat(user, chat_id)
        if chat.is_room and chat.owner_id != user.id:
            raise RoomRoleForbidden("Only the room's owner may do this.")
        return chat

    async def rename_chat(self, user: UserRecord, chat_id: str, title: str) -> ChatRecord:
        await self._owned_chat(user, chat_id)
        async with self._db.write() as tx:
            await repo.update_chat(tx, chat_id, title=title.strip() or "Chat")
            chat = await repo.get_chat(tx, chat_id)
        assert chat is not None
        return chat

    async def choose_persona(self, user: UserRecord, chat_id: str, persona_id: str) -> ChatRecord:
        """Be another of one's personas in this chat from the next reply on."""
        if (await self.get_chat(user, chat_id)).is_room:
            raise InvalidState("In a room, choose your persona with PATCH /rooms/{id}/members/me.")
        async with self._db.write() as tx:
            persona = await _persona_for(tx, user, persona_id)
            assert persona is not None
            await repo.prompt_changed(
                tx,
                chat_id,
                persona_id=persona.id,
                persona_name=persona.name,
                persona_description=persona.description,
            )
            chat = await repo.get_chat(tx, chat_id)
        assert chat is not None
        return chat

    async def delete_chat(self, user: UserRecord, chat_id: str) -> None:
        """Hide a chat (soft delete: its messages stay stored). A room's members lose
        it at once (their streams end with `access_revoked`)."""
        chat = await self._owned_chat(user, chat_id)
        async with self._db.write() as tx:
            await repo.soft_delete_chat(tx, chat_id)
            await character_repo.add_chat_count(tx, chat.character_id, -1)
        if chat.is_room:
            await self._events.publish(
                chat_events.chat_stream(chat_id), "access_revoked", {"reason": "room_deleted"}
            )

    async def history(
        self, user: UserRecord, chat_id: str, *, before: str | None, limit: int
    ) -> tuple[list[MessageRecord], bool]:
        """Up to `limit` messages before the message `before` (newest page if None),
        oldest first, and whether older ones exist."""
        await self.get_chat(user, chat_id)
        async with self._db.read() as tx:
            before_position = None
            if before is not None:
                anchor = await repo.get_message(tx, before)
                if anchor is None or anchor.chat_id != chat_id:
                    raise NotFound("No message with this id in this chat.")
                before_position = anchor.position
            page = await repo.list_history(
                tx, chat_id, before_position=before_position, limit=limit + 1
            )
        has_more = len(page) > limit
        return (page[1:] if has_more else page), has_more

    # --- sending -------------------------------------------------------------------

    async def send(
        self,
        user: UserRecord,
        chat_id: str,
        client_id: str,
        content: str,
        *,
        ip: str | None = None,
        languages: list[str] | None = None,
        respond_with: str | None = None,
        respond: bool = True,
    ) -> SendResult:
        """Store a message and queue its reply, once per client_id.

        The same client_id again returns the same pair, whether the first try
        finished, is running in this process (it waits for it), or died halfway.
        A message the content rules refuse raises ContentRefused before anything is
        stored; `languages` (most wanted first) choose the crisis resources shown
        with a message that shows intent of self-harm.
        """
        if not _CLIENT_ID.match(client_id):
            raise ValidationFailed("client_id has 1 to 64 letters, digits, '-' or '_'.")
        check_content(content, self._settings.message_max_chars)
        await self._limiter.hit("send-user", user.id, self._settings.send_rate_per_user)
        if ip is not None:
            await self._limiter.hit("send-ip", ip, self._settings.send_rate_per_ip)
        check, chat = await self._moderate(user, chat_id, client_id, content)
        if chat.is_room:
            await self._limiter.hit("send-room", chat.id, self._settings.room_send_rate)
        room = (respond_with, respond) if chat.is_room else None
        result = await self._send_deduplicated(user, chat_id, client_id, content, room)
        if check is None:
            return result
        crisis = self._crisis.for_languages(languages or []) if check.self_harm else []
        return dataclasses.replace(result, warnings=check.warnings, crisis_resources=crisis)

    async def _moderate(
        self, user: UserRecord, chat_id: str, client_id: str, content: str
    ) -> tuple[InputCheck | None, ChatRecord]:
        """Check a message against the content rules before anything of it is stored
        (off the event loop; a classifier's call holds no transaction). A message
        already stored under this client_id is not refused again: it was let in.
        Returns the check and the chat (a room's sender may write in it)."""
        async with self._db.read() as tx:
            chat = await repo.get_chat(tx, chat_id)
            await room_access.check_send(tx, chat, user)
            assert chat is not None
        if self._moderation is None or not self._moderation.enabled:
            return None, chat
        try:
            return await self._moderation.check_input(content, chat.character_rating), chat
        except AppError:
            async with self._db.read() as tx:
                stored = await repo.get_by_client_id(tx, chat_id, user.id, client_id)
            if stored is not None and stored.status != WAITING:
                return None, chat
            raise

    async def _send_deduplicated(
        self,
        user: UserRecord,
        chat_id: str,
        client_id: str,
        content: str,
        room: tuple[str | None, bool] | None = None,
    ) -> SendResult:
        key = (chat_id, user.id, client_id)
        running = self._in_flight.get(key)
        if running is not None:
            result = await asyncio.shield(running)
            self._check_same_content(result.message, digest(content))
            return result
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            if room is not None and self.rooms is not None:
                result = await self.rooms.send_once(
                    user, chat_id, client_id, content, respond_with=room[0], respond=room[1]
                )
            else:
                result = await self._send_once(user, chat_id, client_id, content)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here; waiters still receive it
            raise
        else:
            future.set_result(result)
        finally:
            del self._in_flight[key]
        return result

    def _check_same_content(self, message: MessageRecord, content_hash: str) -> None:
        check_same_content(message, content_hash)

    async def _existing(self, message: MessageRecord, content_hash: str) -> SendResult:
        self._check_same_content(message, content_hash)
        async with self._db.read() as tx:
            reply = await repo.get_reply_to(tx, message.id)
            if reply is None:
                raise InvalidState("This message has no reply record.")
            message = await repo.get_message(tx, message.id) or message
            reply = await repo.get_message(tx, reply.id) or reply
            queue = await queue_place(tx, reply.id, self._signals)
        return SendResult(message=message, reply=reply, queue=queue)

    async def _send_once(
        self, user: UserRecord, chat_id: str, client_id: str, content: str
    ) -> SendResult:
        if self._memory is not None:  # the reply's recall will look for this message
            self._memory.prepare_recall(chat_id, content)
        content_hash = digest(content)
        refusal: AppError | None = None
        accepted: SendResult | None = None
        try:
            async with self._db.write() as tx:
                chat = await repo.lock_chat(tx, chat_id)
                if chat is None or chat.owner_id != user.id or chat.is_room:
                    raise NotFound("No chat with this id.")
                check_may_chat(chat.character_rating, user)
                # Keyed by author: another user's chat can hold no message of this user.
                existing = await repo.get_by_client_id(tx, chat_id, user.id, client_id)
                if existing is None or existing.status == WAITING:
                    if existing is not None:
                        self._check_same_content(existing, content_hash)
                    refusal = await admission_refusal(tx, user, self._settings, self._signals)
                    message = await self._store_message(
                        tx, chat, user, existing, client_id, content, content_hash, refusal
                    )
                    if refusal is None:
                        accepted = await self._admit(tx, chat, user, message)
        except repo.DuplicateMessage:
            # Another process stored this client_id between our read and our insert
            # (the transaction is void: nothing of this attempt was kept).
            refusal, accepted = None, None
            async with self._db.read() as tx:
                existing = await repo.get_by_client_id(tx, chat_id, user.id, client_id)
            if existing is None:
                raise
        if refusal is not None:
            await chat_events.publish_message(self._events, message)
            refusal.extra["message"] = chat_events.message_data(message)
            raise refusal
        if accepted is None:
            assert existing is not None
            return await self._existing(existing, content_hash)
        reply = accepted.reply
        assert reply is not None
        if accepted.queue is not None and not self._db.is_sqlite:
            # Sends committing at once do not see each other inside their transactions
            # (PostgreSQL): read the place again now that this one is stored, so two
            # replies are not both told the same place.
            async with self._db.read() as tx:
                queue = await queue_place(tx, reply.id, self._signals)
            accepted = dataclasses.replace(accepted, queue=queue)
        await chat_events.publish_message(self._events, accepted.message)
        await chat_events.publish_reply_state(self._events, reply)
        if accepted.queue is not None:
            await chat_events.publish_queue_place(
                self._events,
                chat_id,
                reply.id,
                accepted.queue.position,
                accepted.queue.estimated_start_s,
                reason=accepted.queue.reason,
            )
        # After the events above: the stream must not show the reply queued once its
        # generation has been announced.
        self._signals.job_queued(reply.id)
        return accepted

    async def _store_message(
        self,
        tx: Transaction,
        chat: ChatRecord,
        user: UserRecord,
        existing: MessageRecord | None,
        client_id: str,
        content: str,
        content_hash: str,
        refusal: AppError | None,
    ) -> MessageRecord:
        """The user message as stored: new, or the one the waiting room kept, now admitted.

        A refused message is stored all the same, marked as waiting for the user
        to send it again; its reply's place is reserved next to it.
        """
        return await store_user_message(
            tx,
            chat,
            user,
            existing,
            status=WAITING if refusal is not None else "complete",
            client_id=client_id,
            content=content,
            content_hash=content_hash,
            positions=2,
        )

    async def _admit(
        self, tx: Transaction, chat: ChatRecord, user: UserRecord, message: MessageRecord
    ) -> SendResult:
        """The reply placeholder and its job, in the same transaction as the message."""
        reply, job = await insert_reply(
            tx,
            chat_id=chat.id,
            user_id=user.id,
            position=message.position + 1,
            parent_id=message.id,
            max_attempts=self._settings.job_max_attempts,
            priority=priority_of(user),
        )
        place = await job_place(tx, job, self._signals)
        return SendResult(message=message, reply=reply, queue=place)
