"""Storing the states a reply goes through as its job runs, and telling its chat's
stream: generating, checkpoints, back in line, quarantined, failed, ended."""

from __future__ import annotations

import dataclasses
import logging

from personae.events.base import EventLog
from personae.services import chat_events
from personae.services.chat_events import (
    BACKEND_UNAVAILABLE,
    COMPLETE,
    FAILED,
    FILTERED,
    FINISH_LENGTH,
    FINISH_OF_STATE,
    FINISH_STOP,
    GENERATING,
    QUEUED,
    STOPPED,
)
from personae.services.job_state import Draft, JobControl
from personae.services.metrics import ReplyRecorder
from personae.services.room_turns import Notes, RoomTurns
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import chats as repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.chats import MessageRecord
from personae.storage.repos.jobs import JobRecord

log = logging.getLogger("personae.generation")


class ReplyStates:
    """Writes a reply's state (message and job, in one transaction) and publishes it."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        settings: Settings,
        recorder: ReplyRecorder | None = None,
        turns: RoomTurns | None = None,
    ) -> None:
        self._turns = turns
        self._db = database
        self._events = events
        self._settings = settings
        self._recorder = recorder

    async def announce_generating(self, reply: MessageRecord, text: str) -> None:
        """Tell the stream at once; the database learns it with the first checkpoint
        (one write fewer before the first token; a crash before it leaves "queued",
        which is what the recovered job then is)."""
        writing = dataclasses.replace(reply, status=GENERATING, content=text, error_code=None)
        await chat_events.publish_reply_state(self._events, writing)

    async def checkpoint(
        self, job: JobRecord, reply: MessageRecord, text: str, control: JobControl
    ) -> bool:
        """Save the text so far; returns whether a stop was asked (from any process).
        The first checkpoint of a job taken back before clears its takeovers: it wrote
        something, so what killed its process was not the reply itself (only takeovers
        in a row with nothing written quarantine a reply)."""
        async with self._db.write(urgent=True) as tx:
            await repo.update_message(tx, reply.id, content=text, status=GENERATING)
            if job.takeovers and not control.progressed:
                await job_repo.clear_takeovers(tx, job.id)
            control.progressed = True
            return await job_repo.is_cancel_requested(tx, job.id)

    async def stop_asked(self, job: JobRecord) -> bool:
        async with self._db.read() as tx:
            return await job_repo.is_cancel_requested(tx, job.id)

    async def set_status(self, reply: MessageRecord, text: str, status: str) -> None:
        async with self._db.write(urgent=True) as tx:
            await repo.update_message(tx, reply.id, status=status, content=text, error_code=None)
            updated = await repo.get_message(tx, reply.id)
        assert updated is not None
        await chat_events.publish_reply_state(self._events, updated)

    async def announce_waiting_for_backend(self, job: JobRecord, reply: MessageRecord) -> None:
        """Tell the chat's stream that its reply waits because no model answers."""
        async with self._db.read() as tx:
            position = await job_repo.queue_position(
                tx, job, max_wait_s=self._settings.queue_max_wait_s
            )
        await chat_events.publish_queue_place(
            self._events, reply.chat_id, reply.id, position, None, reason=BACKEND_UNAVAILABLE
        )

    async def requeue_job(
        self, job: JobRecord, *, delay_s: float, error: str, takeover: bool = False
    ) -> None:
        async with self._db.write(urgent=True) as tx:
            await job_repo.requeue(tx, job.id, delay_s=delay_s, error=error, takeover=takeover)

    async def quarantine(self, job: JobRecord, reply: MessageRecord, draft: Draft) -> None:
        """End a reply that was taken back too often (its process died while writing it,
        or its prompt ran out of time, each time): whatever it does must not take the
        next process down too. Its text is kept."""
        log.warning(
            "reply quarantined after repeated takeovers",
            extra={"job_id": job.id, "takeovers": job.takeovers},
        )
        if self._recorder is not None:
            self._recorder.reply_quarantined()
        detail = (
            f"Writing this reply was interrupted {job.takeovers} times, so it was set aside. "
            "Its text so far is kept; you can ask for another reply."
        )
        await self.fail(job, reply, draft, "reply_quarantined", retryable=False, detail=detail)

    async def requeue(
        self,
        job: JobRecord,
        reply: MessageRecord,
        draft: Draft,
        *,
        delay_s: float,
        error: str,
        failures: int = 0,
        takeover: bool = False,
    ) -> None:
        await draft.saved()
        async with self._db.write(urgent=True) as tx:
            await repo.update_message(
                tx, reply.id, status=QUEUED, content=draft.text, labels=draft.labels
            )
            await job_repo.requeue(
                tx,
                job.id,
                delay_s=delay_s,
                error=error,
                failed_attempts=failures,
                takeover=takeover,
            )
            updated = await repo.get_message(tx, reply.id)
        assert updated is not None
        await chat_events.publish_reply_state(self._events, updated)

    async def fail(
        self,
        job: JobRecord,
        reply: MessageRecord,
        draft: Draft,
        code: str,
        *,
        retryable: bool,
        detail: str | None = None,
    ) -> None:
        """End a reply as failed, keeping its text, with a code and whether to retry."""
        log.warning("reply failed", extra={"job_id": job.id, "code": code, "detail": detail})
        await self.finalize(job, reply, draft, FAILED, error_code=code, retryable=retryable)
        await self._events.publish(
            chat_events.chat_stream(reply.chat_id),
            "error",
            {
                "message_id": reply.id,
                "code": code,
                "retryable": retryable,
                "detail": detail or code,
            },
        )

    async def finalize(
        self,
        job: JobRecord,
        reply: MessageRecord,
        draft: Draft,
        status: str,
        *,
        error_code: str | None = None,
        retryable: bool = False,
        chat_backend: str | None = None,
        filtered_category: str | None = None,
    ) -> None:
        """Store how the reply ended (and, for a primary, keep the chat on its backend).
        A filtered reply's job is done: the reply ended as the rules say it must."""
        job_status = {
            COMPLETE: job_repo.DONE,
            FILTERED: job_repo.DONE,
            STOPPED: job_repo.CANCELLED,
        }.get(status, job_repo.FAILED)
        cut_short = status == COMPLETE and draft.cut_short
        finish_reason = FINISH_OF_STATE.get(status) or (FINISH_LENGTH if cut_short else FINISH_STOP)
        await draft.saved()
        notes: Notes | None = None
        async with self._db.write(urgent=True) as tx:
            if self._turns is not None and reply.character_id is not None:
                # A room: its chat row first, as a send takes it (no lock cycle).
                await repo.lock_chat(tx, reply.chat_id)
            await repo.update_message(
                tx,
                reply.id,
                status=status,
                content=draft.text,
                error_code=error_code,
                retryable=retryable,
                generation=draft.generation or None,
                labels=draft.labels,
                backend=draft.backend,
                filtered_category=filtered_category,
                finish_reason=finish_reason,
                cut_short=cut_short,
            )
            await job_repo.finish(tx, job.id, job_status, error_code)
            if chat_backend and not draft.labels.get("fallback"):
                await repo.set_chat_backend(tx, reply.chat_id, chat_backend)
            updated = await repo.get_message(tx, reply.id)
            assert updated is not None
            if self._turns is not None and reply.character_id is not None:
                # The room's next turn starts in the transaction that ends this reply,
                # and both are told before the commit (the chat row still locked), so
                # nobody can see the next reply start before this one ended.
                notes = await self._turns.settle(tx, reply.chat_id)
                await chat_events.publish_reply_state(self._events, updated)
                await self._turns.tell(notes)
        draft.final = updated
        if notes is None:
            await chat_events.publish_reply_state(self._events, updated)
        elif self._turns is not None:
            self._turns.wake(notes)
        if self._recorder is not None:
            self._recorder.reply_finished(status, draft.generation)

    async def finish_job(self, job: JobRecord, status: str, note: str) -> None:
        """End a job without its reply (gone, or already final); a room goes on."""
        notes: Notes | None = None
        async with self._db.write(urgent=True) as tx:
            # A one-on-one chat's jobs (summaries, recall too) have no turns: its chat
            # row is not locked for them.
            chat = await repo.get_chat(tx, job.chat_id) if job.chat_id is not None else None
            if self._turns is not None and chat is not None and chat.is_room:
                await repo.lock_chat(tx, chat.id)  # chat row first, as everywhere
                await job_repo.finish(tx, job.id, status, note)
                notes = await self._turns.settle(tx, chat.id)
                await self._turns.tell(notes)
            else:
                await job_repo.finish(tx, job.id, status, note)
        if notes is not None and self._turns is not None:
            self._turns.wake(notes)
