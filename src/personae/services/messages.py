"""What a chatter does to one message: swipe, continue, edit, select a swipe, delete,
rate, stop."""

from __future__ import annotations

import asyncio

from personae.errors import InvalidState, NotAReply, NotFound, NotLatestReply, ReplyInProgress
from personae.events.base import EventLog
from personae.services import chat_events, room_access
from personae.services.chat_events import FINAL_STATES, FINISH_OF_STATE, QUEUED, STOPPED
from personae.services.job_state import CONTINUE_FROM
from personae.services.moderation import ModerationService
from personae.services.room_turns import SPEAKER, Notes, RoomTurns
from personae.services.send_path import (
    REPLY_JOB,
    JobSignals,
    QueuePlace,
    admission_refusal,
    check_content,
    insert_reply,
    priority_of,
    queue_place,
)
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import chats as repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import memories as memory_repo
from personae.storage.repos import speech as speech_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.types import utcnow

_STOP_WAIT_S = 3.0


async def _room_is_free(tx: Transaction, chat: ChatRecord) -> None:
    """Replies never interleave in a room: another one waits for the room's open reply."""
    if chat.is_room and await repo.unfinished_replies(tx, chat.id):
        raise ReplyInProgress(
            "A reply is being written in this room; wait for it or stop it first."
        )


class MessageService:
    def __init__(
        self,
        database: Database,
        events: EventLog,
        signals: JobSignals,
        settings: Settings,
        moderation: ModerationService | None = None,
        turns: RoomTurns | None = None,
    ) -> None:
        self._turns = turns
        self._moderation = moderation
        self._db = database
        self._events = events
        self._signals = signals
        self._settings = settings

    async def _owned(
        self, tx: Transaction, user: UserRecord, message_id: str, *, write: bool = True
    ) -> MessageRecord:
        """A message of a chat the user may read; to change it, one they may write in
        (in a room: its owner and members who are not muted, see room_access.py)."""
        message = await repo.get_message(tx, message_id)
        chat = await repo.get_chat(tx, message.chat_id) if message else None
        if message is None or not await room_access.may_read(tx, chat, user):
            raise NotFound("No message with this id.")
        if write and chat is not None and chat.is_room:
            await room_access.check_send(tx, chat, user)
        return message

    async def get(self, user: UserRecord, message_id: str) -> MessageRecord:
        async with self._db.read() as tx:
            return await self._owned(tx, user, message_id, write=False)

    async def swipe(
        self, user: UserRecord, message_id: str
    ) -> tuple[MessageRecord, QueuePlace | None]:
        """Write another reply beside the latest one; the new swipe is selected."""
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            if message.role != "assistant":
                raise InvalidState("Only a character's reply can be swiped.")
            chat = await repo.lock_chat(tx, message.chat_id)
            assert chat is not None
            await room_access.check_may_chat_in(tx, chat, user)
            if await repo.latest_position(tx, chat.id) != message.position:
                raise InvalidState("Only the latest reply can be swiped.")
            swipes = await repo.list_swipes(tx, chat.id, message.position)
            if any(swipe.status not in FINAL_STATES for swipe in swipes):
                raise InvalidState("A reply at this place is still being written; stop it first.")
            await _room_is_free(tx, chat)
            refusal = await admission_refusal(tx, user, self._settings, self._signals)
            if refusal is not None:
                raise refusal
            inserted, _job = await insert_reply(
                tx,
                chat_id=chat.id,
                user_id=user.id,
                position=message.position,
                parent_id=message.parent_id,
                swipe_index=await repo.max_swipe_index(tx, chat.id, message.position) + 1,
                max_attempts=self._settings.job_max_attempts,
                priority=priority_of(user),
                # In a room the same character writes the new swipe.
                character_id=message.character_id,
                labels={SPEAKER: message.labels[SPEAKER]} if SPEAKER in message.labels else None,
            )
            reply_id = inserted.id
            await repo.select_swipe(tx, chat.id, message.position, reply_id)
            await repo.prompt_changed(tx, chat.id)
        return await self._queued(reply_id)

    async def continue_reply(
        self, user: UserRecord, message_id: str
    ) -> tuple[MessageRecord, QueuePlace | None]:
        """Go on writing the chat's last reply from its end: a reply job on the same
        message (and swipe), whose prompt ends with the reply so far; what it writes
        is appended. Any finished reply may be continued, not only one cut short."""
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            if message.role != "assistant":
                raise NotAReply("Only a character's reply can be continued; send a message.")
            chat = await repo.lock_chat(tx, message.chat_id)
            assert chat is not None
            await room_access.check_may_chat_in(tx, chat, user)
            if await repo.latest_position(tx, chat.id) != message.position:
                raise NotLatestReply("Only the chat's last reply can be continued.")
            swipes = await repo.list_swipes(tx, chat.id, message.position)
            if any(swipe.status not in FINAL_STATES for swipe in swipes):
                raise ReplyInProgress(
                    "A reply at this place is still being written; wait for it or stop it."
                )
            if not message.selected:
                raise NotLatestReply("Show this swipe first: only the shown reply goes on.")
            await _room_is_free(tx, chat)
            refusal = await admission_refusal(tx, user, self._settings, self._signals)
            if refusal is not None:
                raise refusal
            await job_repo.insert_job(
                tx,
                kind=REPLY_JOB,
                user_id=user.id,
                chat_id=chat.id,
                message_id=message.id,
                payload={CONTINUE_FROM: len(message.content)},
                max_attempts=self._settings.job_max_attempts,
                priority=priority_of(user),
            )
            # The reply's read-aloud ended with its old end: it is spoken again in full.
            await speech_repo.delete_for_messages(tx, [message.id])
            await repo.update_message(
                tx,
                message.id,
                status=QUEUED,
                error_code=None,
                retryable=False,
                filtered_category=None,
                finish_reason=None,
                cut_short=False,
            )
        return await self._queued(message.id)

    async def _queued(self, reply_id: str) -> tuple[MessageRecord, QueuePlace | None]:
        """A reply just put in line, its place, told to its chat and the scheduler."""
        async with self._db.read() as tx:
            reply = await repo.get_message(tx, reply_id)
            assert reply is not None
            queue = await queue_place(tx, reply_id, self._signals)
        await chat_events.publish_reply_state(self._events, reply)
        self._signals.job_queued()
        return reply, queue

    async def edit(self, user: UserRecord, message_id: str, content: str) -> MessageRecord:
        """Change a message's text (not while its reply is being written). New text the
        content rules refuse raises ContentRefused, the message unchanged."""
        check_content(content, self._settings.message_max_chars)
        if self._moderation is not None and self._moderation.enabled:
            async with self._db.read() as tx:
                message = await self._owned(tx, user, message_id)
                chat = await repo.get_chat(tx, message.chat_id)
            rating = chat.character_rating if chat is not None else "general"
            await self._moderation.check_input(content, rating)
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            if message.role == "assistant" and message.status not in FINAL_STATES:
                raise InvalidState("This reply is still being written; stop it first.")
            await repo.update_message(tx, message.id, content=content)
            # Its vector (for recall) and its read-aloud audio were made of the old
            # text: neither may be used any more.
            await memory_repo.delete_vectors(tx, [message.id])
            await speech_repo.delete_for_messages(tx, [message.id])
            await repo.prompt_changed(tx, message.chat_id)
            updated = await repo.get_message(tx, message.id)
        assert updated is not None
        await chat_events.publish_message(self._events, updated)
        return updated

    async def select_swipe(self, user: UserRecord, message_id: str, index: int) -> MessageRecord:
        """Show another swipe at this message's place."""
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            swipes = await repo.list_swipes(tx, message.chat_id, message.position)
            chosen = next((s for s in swipes if s.swipe_index == index), None)
            if chosen is None:
                raise NotFound(f"There is no swipe {index} here (there are {len(swipes)}).")
            await repo.select_swipe(tx, message.chat_id, message.position, chosen.id)
            await repo.prompt_changed(tx, message.chat_id)
            selected = await repo.get_message(tx, chosen.id)
        assert selected is not None
        await chat_events.publish_message(self._events, selected)
        return selected

    async def delete(self, user: UserRecord, message_id: str) -> None:
        """Hide a message (kept in the database); a reply being written is stopped first."""
        await self.stop(user, message_id, wait=False, missing_ok=True)
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            await repo.update_message(tx, message.id, deleted_at=utcnow(), selected=False)
            await speech_repo.delete_for_messages(tx, [message.id])
            if message.selected:
                others = await repo.list_swipes(tx, message.chat_id, message.position)
                if others:
                    await repo.select_swipe(tx, message.chat_id, message.position, others[-1].id)
            await repo.prompt_changed(tx, message.chat_id)
            deleted = await repo.get_message(tx, message.id) or message
        await chat_events.publish_message(self._events, deleted)

    async def rate(self, user: UserRecord, message_id: str, stars: int) -> MessageRecord:
        """Rate a reply; the character's rating totals change with it (a rating given
        counts for the character even once its message is deleted)."""
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            if message.role != "assistant":
                raise InvalidState("Only a character's reply can be rated.")
            # Held until commit, so two ratings of one reply at once count once.
            chat = await repo.lock_chat(tx, message.chat_id)
            if chat is None:
                raise NotFound("No message with this id.")
            message = await self._owned(tx, user, message_id)
            await repo.update_message(tx, message.id, rating=stars)
            # In a room the reply is its own character's, not the room's first one's.
            await characters_repo.change_rating(
                tx, message.character_id or chat.character_id, old=message.rating, new=stars
            )
            rated = await repo.get_message(tx, message.id)
        assert rated is not None
        return rated

    async def stop(
        self, user: UserRecord, message_id: str, *, wait: bool = True, missing_ok: bool = False
    ) -> MessageRecord:
        """Stop a reply, keeping what was written. Stopping a finished reply changes nothing.

        A reply being written is stopped by its runner within moments; we ask again
        until it is final, since the runner may have put it back in line meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_WAIT_S
        while True:
            message, final = await self._stop_once(user, message_id, missing_ok=missing_ok)
            if final or not wait or loop.time() > deadline:
                return message
            await asyncio.sleep(0.05)

    async def _stop_once(
        self, user: UserRecord, message_id: str, *, missing_ok: bool
    ) -> tuple[MessageRecord, bool]:
        notes: Notes | None = None
        async with self._db.write() as tx:
            message = await self._owned(tx, user, message_id)
            if message.character_id is not None and self._turns is not None:
                # A room: its chat row before the job and the message, the order in
                # which sends and finished replies take them (no lock cycle).
                await repo.lock_chat(tx, message.chat_id)
            job = await job_repo.get_open_job_for_message(tx, message.id)
            if job is None:
                if message.role != "assistant" and not missing_ok:
                    raise InvalidState("Only a character's reply can be stopped.")
                return message, True
            if job.status == job_repo.QUEUED:
                await job_repo.finish(tx, job.id, job_repo.CANCELLED, "stopped by the user")
                await repo.update_message(
                    tx,
                    message.id,
                    status=STOPPED,
                    finish_reason=FINISH_OF_STATE[STOPPED],
                    cut_short=False,
                )
                stopped = await repo.get_message(tx, message.id)
                assert stopped is not None
                if self._turns is not None and stopped.character_id is not None:
                    notes = await self._turns.settle(tx, stopped.chat_id)
                    # Told before the commit, the chat row locked (room_turns.tell).
                    await chat_events.publish_reply_state(self._events, stopped)
                    await self._turns.tell(notes)
            else:
                await job_repo.request_cancel(tx, job.id)
                stopped = None
        if stopped is None:
            self._signals.cancel(job.id)
            return message, False
        if notes is None:
            await chat_events.publish_reply_state(self._events, stopped)
        elif self._turns is not None:
            self._turns.wake(notes)
        return stopped, True
