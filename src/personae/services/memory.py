"""Long-term memory of a chat: pinned memories, the rolling summary, recall, and
the bounded history a prompt is built from.

A prompt never reads a whole long chat: only a tail of recent messages that can
fit (read in pages of positions, so the tail's start moves seldom and the prompt
prefix stays stable), the summary that stands for what came before, and the few
older messages recall finds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from personae.errors import Conflict, NotFound, ValidationFailed
from personae.llm.prompt import DEFAULT_TURN_OVERHEAD
from personae.services import room_access
from personae.services.chat_events import FINAL_STATES
from personae.services.prompting import (
    PromptMemory,
)
from personae.services.recall import Recall, Recalled
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import memories as memory_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.repos.memories import PINNED, SUMMARY, MemoryRecord

log = logging.getLogger("personae.memory")
SUMMARY_JOB = "summary"
RECALL_INDEX_JOB = "recall_index"
# History is read in aligned pages of this many positions.
_PAGE = 32
# Fewer bytes per token than any tokenizer we know: a safe lower bound of a message's cost.
_MAX_BYTES_PER_TOKEN = 8
# Chats whose last window start is remembered (to read the next window in one
# query), per chat whose material is kept (settings.cached_chats): a start is one int.
_WINDOW_STARTS_PER_KEPT_CHAT = 2
# Kept chats per chat whose last window's finished messages are kept (a context's
# worth of text each; most are the very records the kept material holds).
_KEPT_CHATS_PER_KNOWN_WINDOW = 2
# Recall looks for this many more messages than it may give, in case some of those
# found were deleted or edited since their vectors were made.
_RECALL_SPARE = 2


class TooManyPins(Conflict):
    code = "too_many_pinned_memories"


@dataclass(frozen=True)
class HistoryWindow:
    messages: list[MessageRecord]
    # The first position read; everything before it is left to the summary and recall.
    start_position: int


@dataclass(frozen=True)
class _KnownWindow:
    """The finished messages at the start of a chat's last window, as of a prompt
    version: until the version changes, none of them can (an edit, a deletion or a
    swipe changes it; a reply being written is not finished)."""

    version: datetime
    start: int
    messages: list[MessageRecord]
    # Every message in [start, before) is in `messages`.
    before: int

    @classmethod
    def of(cls, window: HistoryWindow, before: int, version: datetime) -> _KnownWindow:
        finished = window.messages
        for index, message in enumerate(window.messages):
            if message.status not in FINAL_STATES:
                finished, before = window.messages[:index], message.position
                break
        return cls(version, window.start_position, finished, before)

    def between(self, start: int, before: int) -> list[MessageRecord]:
        return [m for m in self.messages if start <= m.position < before]


_Remembered = TypeVar("_Remembered")


def _remember(memory: dict[str, _Remembered], chat_id: str, value: _Remembered, most: int) -> None:
    """Keep `value` for a chat, newest last, forgetting the oldest beyond `most`."""
    memory.pop(chat_id, None)
    memory[chat_id] = value
    while len(memory) > most:
        del memory[next(iter(memory))]


def _least_cost(message: MessageRecord) -> int:
    return len(message.content.encode()) // _MAX_BYTES_PER_TOKEN + 1 + DEFAULT_TURN_OVERHEAD


class MemoryService:
    """Pins, summaries and recall for one chat at a time."""

    def __init__(self, database: Database, settings: Settings, recall: Recall | None) -> None:
        self._db = database
        self._settings = settings
        self.recall = recall
        self._window_starts: dict[str, int] = {}
        self._known_windows: dict[str, _KnownWindow] = {}

    # --- for the API --------------------------------------------------------------

    async def _own_chat(self, user: UserRecord, chat_id: str) -> ChatRecord:
        async with self._db.read() as tx:
            return await room_access.check_read(tx, await chat_repo.get_chat(tx, chat_id), user)

    async def _writable_chat(self, user: UserRecord, chat_id: str) -> None:
        """Changing a chat's memory changes every later prompt, so it takes the right to
        write in the chat: a room's viewer or muted member reads the memory only."""
        async with self._db.read() as tx:
            await room_access.check_send(tx, await chat_repo.get_chat(tx, chat_id), user)

    async def _writable_memory(self, user: UserRecord, memory_id: str) -> MemoryRecord:
        async with self._db.read() as tx:
            memory = await memory_repo.get_memory(tx, memory_id)
            chat = await chat_repo.get_chat(tx, memory.chat_id) if memory else None
            if memory is None or not await room_access.may_read(tx, chat, user):
                raise NotFound("No memory with this id.")
            await room_access.check_send(tx, chat, user)
        return memory

    async def list_memories(self, user: UserRecord, chat_id: str) -> list[MemoryRecord]:
        """Pinned memories, then every live summary version (the last one is in use)."""
        await self._own_chat(user, chat_id)
        async with self._db.read() as tx:
            pinned = await memory_repo.list_memories(tx, chat_id, PINNED)
            summaries = await memory_repo.list_memories(tx, chat_id, SUMMARY)
        return pinned + summaries

    async def pin(
        self, user: UserRecord, chat_id: str, content: str, *, source_message_id: str | None = None
    ) -> MemoryRecord:
        """Keep a fact in every prompt of this chat (at most `memory_max_pinned`)."""
        content = content.strip()
        limit = self._settings.memory_max_chars
        if not content or len(content) > limit:
            raise ValidationFailed(f"A memory has 1 to {limit} characters ({len(content)} sent).")
        await self._writable_chat(user, chat_id)
        async with self._db.write() as tx:
            pinned = await memory_repo.count_pinned(tx, chat_id)
            if pinned >= self._settings.memory_max_pinned:
                raise TooManyPins(
                    f"This chat already has {pinned} pinned memories, the most it can keep; "
                    "delete one to pin another."
                )
            memory_id = await memory_repo.insert_memory(
                tx,
                chat_id=chat_id,
                kind=PINNED,
                content=content,
                source_message_id=source_message_id,
            )
            await chat_repo.prompt_changed(tx, chat_id)
            memory = await memory_repo.get_memory(tx, memory_id)
        assert memory is not None
        return memory

    async def pin_message(self, user: UserRecord, message_id: str) -> MemoryRecord:
        async with self._db.read() as tx:
            message = await chat_repo.get_message(tx, message_id)
        if message is None:
            raise NotFound("No message with this id.")
        await self._writable_chat(user, message.chat_id)
        text = message.content.strip()[: self._settings.memory_max_chars]
        return await self.pin(user, message.chat_id, text, source_message_id=message.id)

    async def edit(self, user: UserRecord, memory_id: str, content: str) -> MemoryRecord:
        """Change a pinned memory's or a summary's text."""
        memory = await self._writable_memory(user, memory_id)
        limit = self._settings.memory_max_chars * (4 if memory.kind == SUMMARY else 1)
        if not content.strip() or len(content) > limit:
            raise ValidationFailed(f"A memory has 1 to {limit} characters ({len(content)} sent).")
        async with self._db.write() as tx:
            await memory_repo.update_memory(tx, memory_id, content=content.strip())
            await chat_repo.prompt_changed(tx, memory.chat_id)
            updated = await memory_repo.get_memory(tx, memory_id)
        assert updated is not None
        return updated

    async def delete(self, user: UserRecord, memory_id: str) -> None:
        """Unpin; for a summary, undo it: the version before it is used again."""
        memory = await self._writable_memory(user, memory_id)
        async with self._db.write() as tx:
            await memory_repo.soft_delete_memory(tx, memory_id)
            await chat_repo.prompt_changed(tx, memory.chat_id)

    # --- for the prompt -------------------------------------------------------------

    def prepare_recall(self, chat_id: str, message: str) -> None:
        """A message is being sent to the chat: begin embedding it for its reply's recall
        now (when the chat has older messages to recall), alongside storing it."""
        if self.recall is not None and self._settings.recall_messages > 0:
            self.recall.prepare(chat_id, message)

    def _reading(self, tx: Transaction | None) -> AbstractAsyncContextManager[Transaction]:
        """The caller's read when it has one open (one snapshot, one round trip fewer)."""
        return nullcontext(tx) if tx is not None else self._db.read()

    async def history_window(
        self,
        chat_id: str,
        before_position: int,
        budget_tokens: int,
        tx: Transaction | None = None,
        version: datetime | None = None,
    ) -> HistoryWindow:
        """The newest messages before a position that could fit `budget_tokens`: the
        newest pages (aligned to `_PAGE` positions) whose least cost reaches the
        budget, or all of them; read in `tx` when given.

        The window starts where the chat's last one did, most turns, so it is read
        in one query from there (then trimmed, or extended a page at a time). Given
        the chat's prompt `version`, the finished messages of its last window are
        kept, and while the version stays the same only what came after them is read.
        """
        last_page = max(0, (before_position - 1) // _PAGE * _PAGE)
        start = min(self._window_starts.get(chat_id, last_page), last_page)
        known = self._known_windows.get(chat_id) if version is not None else None
        if known is not None and (known.version != version or known.start > start):
            known = None
        async with self._reading(tx) as tx:
            read_from = start if known is None else max(start, min(known.before, before_position))
            messages = [] if known is None else known.between(start, read_from)
            if read_from < before_position:
                messages += await chat_repo.list_history_between(
                    tx, chat_id, from_position=read_from, before_position=before_position
                )
            while start > 0 and sum(_least_cost(m) for m in messages) < budget_tokens:
                start = max(0, start - _PAGE)
                messages = (
                    await chat_repo.list_history_between(
                        tx, chat_id, from_position=start, before_position=start + _PAGE
                    )
                    + messages
                )
        start = _window_start(messages, start, last_page, budget_tokens)
        window = HistoryWindow([m for m in messages if m.position >= start], start)
        kept_chats = self._settings.cached_chats
        _remember(self._window_starts, chat_id, start, _WINDOW_STARTS_PER_KEPT_CHAT * kept_chats)
        if version is not None:
            known = _KnownWindow.of(window, before_position, version)
            most = max(1, kept_chats // _KEPT_CHATS_PER_KNOWN_WINDOW)
            _remember(self._known_windows, chat_id, known, most)
        return window

    async def prompt_memory(
        self,
        chat_id: str,
        window: HistoryWindow,
        query: str | None = None,
        tx: Transaction | None = None,
    ) -> PromptMemory:
        """Pinned memories, the summary, and the older messages recall finds for `query`
        (by default the newest user message of the window), in one read (`tx` when
        given). Embeds only the query: older messages are indexed by a background job,
        queued here when some wait for it."""
        settings = self._settings
        recall = self.recall if settings.recall_messages > 0 else None
        older = window.start_position
        if recall is None or older == 0:
            async with self._reading(tx) as tx:
                pinned = await memory_repo.list_memories(tx, chat_id, PINNED)
                summary = await memory_repo.current_summary(tx, chat_id)
            return self._prompt_memory(pinned, summary, [])
        if query is None:
            query = next((m.content for m in reversed(window.messages) if m.role == "user"), "")

        def search() -> Awaitable[list[Recalled]]:
            return recall.search(
                chat_id,
                query,
                before_position=older,
                limit=settings.recall_messages + _RECALL_SPARE,
                min_score=settings.recall_min_score,
            )

        # The query is embedded and the vectors scanned while the database is read.
        searching = asyncio.ensure_future(search())
        # A failure is raised where it is awaited; if the read failed first, it is dropped.
        searching.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            async with self._reading(tx) as tx:
                pinned = await memory_repo.list_memories(tx, chat_id, PINNED)
                summary = await memory_repo.current_summary(tx, chat_id)
                added = await recall.refresh(tx, chat_id)
                found = await searching
                if added:  # vectors came since the last turn: search them too
                    found = await search()
                index_due = await recall.index_due(tx, chat_id, before_position=older)
                if index_due:
                    index_due = not await memory_repo.has_open_job(tx, chat_id, RECALL_INDEX_JOB)
                rows = await chat_repo.get_history_messages(
                    tx, chat_id, [f.message_id for f in found], vector_model=recall.embedder.name
                )
        finally:
            searching.cancel()
        by_id = {m.id: m for m in rows}
        # Deleted, unselected or edited since their vector was made: never again.
        recall.drop(chat_id, [f.message_id for f in found if f.message_id not in by_id])
        if index_due:
            await self._queue_job(RECALL_INDEX_JOB, chat_id, {"before_position": older})
        recalled = [by_id[f.message_id] for f in found if f.message_id in by_id]
        recalled = [m for m in recalled if m.content.strip()][: settings.recall_messages]
        return self._prompt_memory(pinned, summary, recalled)

    def _prompt_memory(
        self,
        pinned: list[MemoryRecord],
        summary: MemoryRecord | None,
        recalled: list[MessageRecord],
    ) -> PromptMemory:
        return PromptMemory(
            pinned=pinned,
            summary=summary,
            recalled=recalled,
            lore_budget_tokens=self._settings.lorebook_token_budget,
            recall_budget_tokens=self._settings.recall_token_budget if recalled else 0,
        )

    async def summary_due(self, chat_id: str, cut_before_position: int) -> None:
        """Queue a summary job when the prompt left out history that no summary covers
        (at most one waits per chat; it runs behind every reply)."""
        if not self._settings.summary_enabled or cut_before_position <= 0:
            return
        async with self._db.read() as tx:
            summary = await memory_repo.current_summary(tx, chat_id)
            covered = summary.through_position if summary and summary.through_position else -1
            if cut_before_position - 1 - covered < self._settings.summary_min_new_messages:
                return
            if await memory_repo.has_open_job(tx, chat_id, SUMMARY_JOB):
                return
        await self._queue_job(SUMMARY_JOB, chat_id, {"before_position": cut_before_position})

    async def _queue_job(self, kind: str, chat_id: str, payload: dict[str, Any]) -> None:
        """A background job of the chat, behind every reply; not when one of its kind
        already waits or runs."""
        async with self._db.write() as tx:
            if await memory_repo.has_open_job(tx, chat_id, kind):
                return
            await job_repo.insert_job(
                tx,
                kind=kind,
                user_id=None,
                chat_id=chat_id,
                message_id=None,
                payload=payload,
                priority=self._settings.summary_priority,
                max_attempts=self._settings.job_max_attempts,
            )


def _window_start(
    messages: list[MessageRecord], start: int, last_page: int, budget_tokens: int
) -> int:
    """The newest page boundary from which `messages` (read from `start`) reach the
    budget; `start` when none does."""
    least = 0
    index = len(messages)
    for boundary in range(last_page, start - 1, -_PAGE):
        while index > 0 and messages[index - 1].position >= boundary:
            index -= 1
            least += _least_cost(messages[index])
        if least >= budget_tokens:
            return boundary
    return start
