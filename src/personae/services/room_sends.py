"""Sending in a room: the message, its turns and (when no reply of the room is open)
the first reply's placeholder and job, in one transaction under the chat's lock. The
lock gives every message its place: two people sending at once get one order, and
the event log (published after the commit, in that order) shows it to everybody.
"""

from __future__ import annotations

from personae.errors import AppError, InvalidState
from personae.events.base import EventLog
from personae.services import chat_events, room_access
from personae.services.room_turns import SPEAKER, Notes, RoomTurns
from personae.services.send_path import (
    WAITING,
    JobSignals,
    QueuePlace,
    SendResult,
    admission_refusal,
    check_same_content,
    digest,
    queue_place,
    store_user_message,
)
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import chats as repo
from personae.storage.repos import rooms as rooms_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord


class RoomSends:
    def __init__(
        self,
        database: Database,
        events: EventLog,
        signals: JobSignals,
        settings: Settings,
        turns: RoomTurns,
    ) -> None:
        self._db = database
        self._events = events
        self._signals = signals
        self._settings = settings
        self._turns = turns

    async def send_once(
        self,
        user: UserRecord,
        chat_id: str,
        client_id: str,
        content: str,
        *,
        respond_with: str | None,
        respond: bool,
    ) -> SendResult:
        content_hash = digest(content)
        refusal: AppError | None = None
        notes: Notes | None = None
        message: MessageRecord | None = None
        queue: QueuePlace | None = None
        try:
            async with self._db.write() as tx:
                chat = await repo.lock_chat(tx, chat_id)
                await room_access.check_send(tx, chat, user)
                assert chat is not None
                await room_access.check_may_chat_in(tx, chat, user)
                existing = await repo.get_by_client_id(tx, chat_id, user.id, client_id)
                if existing is not None and existing.status != WAITING:
                    message = None
                else:
                    if existing is not None:
                        check_same_content(existing, content_hash)
                    if respond:
                        refusal = await admission_refusal(tx, user, self._settings, self._signals)
                    message = await self._store(
                        tx, chat, user, existing, client_id, content, content_hash, refusal
                    )
                    if refusal is None:
                        notes = await self._plan(tx, chat, message, respond_with, respond)
                    # Told while the chat row is locked: in the order of the commits.
                    await chat_events.publish_message(self._events, message)
                    if notes is not None:
                        queue = await self._tell(tx, message, notes)
        except repo.DuplicateMessage:
            message, notes, existing = None, None, None
            async with self._db.read() as tx:
                existing = await repo.get_by_client_id(tx, chat_id, user.id, client_id)
            if existing is None:
                raise
        if message is None:
            assert existing is not None
            return await self._existing(existing, content_hash)
        if refusal is not None:
            refusal.extra["message"] = chat_events.message_data(message)
            raise refusal
        assert notes is not None
        self._turns.wake(notes)
        return self._accepted(message, notes, queue)

    async def _plan(
        self,
        tx: Transaction,
        chat: ChatRecord,
        message: MessageRecord,
        respond_with: str | None,
        respond: bool,
    ) -> Notes:
        """The message's turns, and the first of them started if the room is free."""
        notes = Notes(chat.id)
        await self._turns.plan_message(
            tx, chat, message, respond_with=respond_with, respond=respond, notes=notes
        )
        settled = await self._turns.settle(tx, chat.id)
        notes.events += settled.events
        notes.started = settled.started
        return notes

    async def _tell(
        self, tx: Transaction, message: MessageRecord, notes: Notes
    ) -> QueuePlace | None:
        """Publish the turns (and the message's first reply with its place in line)."""
        reply = _first_reply(message, notes)
        queue = await queue_place(tx, reply.id, self._signals) if reply is not None else None
        await self._turns.tell(notes, queue)
        return queue

    def _accepted(
        self, message: MessageRecord, notes: Notes, queue: QueuePlace | None
    ) -> SendResult:
        reply = _first_reply(message, notes)
        turns = [
            {"character_id": data["character_id"], "name": data["name"], "reason": data["reason"]}
            for name, data in notes.events
            if name == "turn" and data.get("status") == rooms_repo.PLANNED
        ]
        return SendResult(message=message, reply=reply, queue=queue, turns=turns)

    async def _existing(self, message: MessageRecord, content_hash: str) -> SendResult:
        """The same client_id again: the message as stored and its first reply, if any."""
        check_same_content(message, content_hash)
        async with self._db.read() as tx:
            stored = await repo.get_message(tx, message.id)
            if stored is None:
                raise InvalidState("This message was deleted.")
            reply = await repo.get_reply_to(tx, message.id)
            if reply is not None:
                reply = await repo.get_message(tx, reply.id) or reply
            queue = await queue_place(tx, reply.id, self._signals) if reply else None
        return SendResult(message=stored, reply=reply, queue=queue)

    async def _store(
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
        """The message at the room's next place (its replies take their places when
        they start), named with the sender's persona in this room."""
        member = await rooms_repo.get_member(tx, chat.id, user.id)
        name = member.persona_name if member is not None else user.display_name
        return await store_user_message(
            tx,
            chat,
            user,
            existing,
            status=WAITING if refusal is not None else "complete",
            client_id=client_id,
            content=content,
            content_hash=content_hash,
            positions=1,
            labels={SPEAKER: name},
        )


def _first_reply(message: MessageRecord, notes: Notes) -> MessageRecord | None:
    started = notes.started
    return started if started is not None and started.parent_id == message.id else None
