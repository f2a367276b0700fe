"""The rolling summary: a background job, behind every reply, in which the model
folds the history a prompt had to leave out into the chat's summary.

Each run writes a new summary version (the old one is kept: deleting the new one
brings it back) covering the previous summary plus the next messages after it,
as many as fit the summarizer's prompt.
"""

from __future__ import annotations

import contextlib
import logging
import time

from personae.llm.base import ChatTurn, PermanentBackendError, SamplingParams, TransientBackendError
from personae.llm.router import Router
from personae.services.job_state import JobControl, Outcome
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import memories as memory_repo
from personae.storage.repos.chats import MessageRecord

log = logging.getLogger("personae.summaries")
# Bytes of new history one summary run reads at most (a small model's context).
_MAX_NEW_BYTES = 4000

_INSTRUCTIONS = (
    "You keep a running summary of a role-play chat between {user} and {char}. "
    "Rewrite the summary so it also covers the new messages. Keep names, facts, "
    "places, promises and feelings; drop small talk. Write plain prose, at most "
    "{words} words, and nothing else."
)


def summary_turns(
    user: str, char: str, previous: str, new: list[MessageRecord], words: int
) -> list[ChatTurn]:
    lines = "\n".join(f"{user if m.role == 'user' else char}: {m.content.strip()}" for m in new)
    body = f"Summary so far:\n{previous.strip() or '(none yet)'}\n\nNew messages:\n{lines}"
    instructions = _INSTRUCTIONS.format(user=user, char=char, words=words)
    return [ChatTurn("system", instructions), ChatTurn("user", body)]


class SummaryJobs:
    """Runs `summary` jobs through the router, like replies but at lower priority."""

    def __init__(self, database: Database, router: Router, settings: Settings) -> None:
        self._db = database
        self._router = router
        self._settings = settings

    async def run(self, job: job_repo.JobRecord, control: JobControl) -> Outcome:
        started = time.monotonic()
        status = await self._run(job, control)
        return Outcome(status, time.monotonic() - started)

    async def _finish(self, job_id: str, status: str, note: str | None = None) -> str:
        async with self._db.write() as tx:
            await job_repo.finish(tx, job_id, status, note)
        return status

    async def _run(self, job: job_repo.JobRecord, control: JobControl) -> str:
        before = int(job.payload.get("before_position", 0))
        async with self._db.read() as tx:
            chat = await chat_repo.get_chat(tx, job.chat_id or "")
            if chat is None:
                return await self._finish(job.id, job_repo.CANCELLED, "chat gone")
            character = await character_repo.get_character(
                tx, chat.character_id, include_deleted=True
            )
            previous = await memory_repo.current_summary(tx, chat.id)
            start = (previous.through_position or 0) + 1 if previous else 0
            window = await chat_repo.list_history_between(
                tx, chat.id, from_position=start, before_position=before
            )
        new = _within_bytes([m for m in window if m.content.strip()], _MAX_NEW_BYTES)
        if character is None or not new:
            return await self._finish(job.id, job_repo.DONE, "nothing new to summarize")
        turns = summary_turns(
            chat.persona_name,
            character.name,
            previous.content if previous else "",
            new,
            self._settings.summary_max_words,
        )
        try:
            text = await self._write(chat.id, chat.backend, turns, control)
        except (TransientBackendError, PermanentBackendError) as error:
            if job.attempts + 1 >= job.max_attempts:
                return await self._finish(job.id, job_repo.FAILED, str(error))
            async with self._db.write() as tx:
                await job_repo.requeue(
                    tx,
                    job.id,
                    delay_s=self._settings.job_retry_base_s * 2**job.attempts,
                    error=str(error),
                    failed_attempts=1,
                )
            return job_repo.QUEUED
        if not text.strip():
            return await self._finish(job.id, job_repo.FAILED, "the model wrote no summary")
        async with self._db.write() as tx:
            await memory_repo.insert_memory(
                tx,
                chat_id=chat.id,
                kind=memory_repo.SUMMARY,
                content=text.strip(),
                source_message_id=new[-1].id,
                through_position=new[-1].position,
            )
            await job_repo.finish(tx, job.id, job_repo.DONE, None)
        log.info("summary written", extra={"chat_id": chat.id, "through": new[-1].position})
        return job_repo.DONE

    async def _write(
        self, chat_id: str, preferred: str | None, turns: list[ChatTurn], control: JobControl
    ) -> str:
        choice = await self._router.take(chat_id, preferred)
        if choice is None:
            raise TransientBackendError("no inference backend is available")
        backend = choice.backend
        params = SamplingParams(
            max_tokens=self._settings.summary_max_tokens, temperature=0.3, repeat_penalty=1.1
        )
        text = ""
        try:
            async with contextlib.aclosing(backend.provider.stream_chat(turns, params)) as pieces:
                async for piece in pieces:
                    text += piece
                    if control.stop_requested.is_set() or control.should_pause():
                        raise TransientBackendError("interrupted")
        finally:
            await choice.give_back()
        return text


def _within_bytes(messages: list[MessageRecord], limit: int) -> list[MessageRecord]:
    """The oldest messages whose text fits `limit` bytes (at least one)."""
    taken: list[MessageRecord] = []
    used = 0
    for message in messages:
        used += len(message.content.encode())
        if taken and used > limit:
            break
        taken.append(message)
    return taken
