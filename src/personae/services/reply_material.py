"""What a reply is written from, and the prompt built from it.

The material of a reply (the reply, its chat and character, the history and
memory) is read from the database ahead of its claim, while its send is
stored, or when it starts; the prompt and sampling for one backend are built
from it. Token counts asked of a backend are kept, so a turn asks only for
the texts it adds.

What a chat's next send will most likely need is kept too (from its last
reply, or read when a client opens the chat), so that the reply to a send can
go to a backend before the send is stored: a guess, used only if the stored
message's own material builds the very same prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
from collections import OrderedDict
from typing import Any

from personae.llm.base import ChatTurn, Provider, SamplingParams
from personae.llm.prompt import DEFAULT_TURN_OVERHEAD
from personae.llm.router import Backend, Router
from personae.offload import bounded
from personae.services import chat_events
from personae.services.job_state import Preloaded, ReplyContext
from personae.services.memory import MemoryService
from personae.services.prompting import PromptMemory, assemble_prompt, system_prompt
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.types import utcnow

# Token counts kept per chat whose material is kept (settings.cached_chats): a
# chat's prompt has a few dozen texts, each counted once.
_TOKEN_COUNTS_PER_CHAT = 40
_COUNT_REQUESTS_AT_ONCE = 16
_PROMPT_MARGIN_TOKENS = 16


class ReplyMaterial:
    """Reads a reply's material and builds its prompt and sampling for a backend."""

    def __init__(
        self,
        database: Database,
        router: Router,
        settings: Settings,
        *,
        memory: MemoryService | None = None,
    ) -> None:
        self._db = database
        self._router = router
        self._settings = settings
        self._memory = memory
        self._token_counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        # By chat id: its material as of its last message, and reads of it in flight.
        self._kept: OrderedDict[str, ReplyContext] = OrderedDict()
        self._reading: dict[str, asyncio.Task[ReplyContext | None]] = {}

    async def preload(self, reply_id: str) -> Preloaded | None:
        """Read what a reply needs before it can ask a backend: the reply, its chat and
        character, the history and memory. None when the reply is gone or final.

        The scheduler calls this ahead of the claim (for the head of the line while
        every slot is busy, or for a reply just sent), so that when the claim is done
        the reply can go to a backend at once.
        """
        async with self._db.read() as tx:
            reply = await repo.get_message(tx, reply_id)
            if reply is None or reply.status in chat_events.FINAL_STATES:
                return None
            chat, character = await self._chat_and_character(reply.chat_id, tx)
            if chat is None or character is None:  # the chat was deleted
                return None
            history, memory = await self._history_and_memory(chat, reply.position, tx=tx)
        return Preloaded(reply, ReplyContext(chat, character, history, memory))

    async def preload_sent(self, reply: MessageRecord) -> Preloaded | None:
        """What `preload` reads, for a reply just stored by a send (the reply is known)."""
        async with self._db.read() as tx:
            chat, character = await self._chat_and_character(reply.chat_id, tx)
            if chat is None or character is None:  # the chat was deleted
                return None
            history, memory = await self._history_and_memory(chat, reply.position, tx=tx)
        return Preloaded(reply, ReplyContext(chat, character, history, memory))

    async def read_for_send(self, chat_id: str, content: str | None) -> ReplyContext | None:
        """The material of the reply to a message being sent, read while the send is
        stored: the chat as it is before the message, with recall looking for `content`
        (None: for the chat's newest user message). `sent_material` completes it once
        the send is committed."""
        async with self._db.read() as tx:
            chat, character = await self._chat_and_character(chat_id, tx)
            if chat is None or character is None:
                return None
            history, memory = await self._history_and_memory(
                chat, chat.next_position, query=content, tx=tx
            )
        return ReplyContext(chat, character, history, memory)

    @staticmethod
    def sent_material(
        before: ReplyContext, message: MessageRecord, reply: MessageRecord, chat: ChatRecord
    ) -> Preloaded | None:
        """The material `read_for_send` read, with the sent `message` added: None unless
        the message came right after what was read and nothing the prompt shows changed
        in between (`chat`, as the send locked it, has the same prompt version)."""
        if (
            message.position != before.chat.next_position
            or reply.position != message.position + 1
            or chat.prompt_version != before.chat.prompt_version
        ):
            return None
        history = [*before.history, message]
        return Preloaded(reply, ReplyContext(before.chat, before.character, history, before.memory))

    # --- the next send's material, guessed ------------------------------------------

    def remember(self, context: ReplyContext, reply: MessageRecord) -> None:
        """Keep what the chat's next send will most likely have: the material of
        `reply`, just finished, with the reply at its end."""
        chat = context.chat
        if reply.backend and not reply.labels.get("fallback"):
            chat = dataclasses.replace(chat, backend=reply.backend)  # as finalize stored it
        history = [*context.history, reply]
        self._keep(ReplyContext(chat, context.character, history, context.memory))

    def warm(self, chat_id: str) -> None:
        """Read a chat's material in the background, unless it is kept or being read
        (a client that opens a chat is likely to send in it)."""
        if chat_id in self._kept or chat_id in self._reading:
            return
        task = asyncio.create_task(self.read_for_send(chat_id, None), name="personae-warm")
        self._reading[chat_id] = task

        def done(read: asyncio.Task[ReplyContext | None]) -> None:
            self._reading.pop(chat_id, None)
            if not read.cancelled() and read.exception() is None:
                context = read.result()
                if context is not None:
                    self._keep(context)

        task.add_done_callback(done)

    def is_kept(self, chat_id: str) -> bool:
        """Whether a guess for the chat can be made without waiting for a read."""
        return chat_id in self._kept and chat_id not in self._reading

    async def guess(self, chat_id: str, author_id: str, content: str) -> Preloaded | None:
        """The material of the reply to `content`, which `author_id` is sending to a
        chat, from what is kept of the chat (a read in flight is waited for). None
        when nothing is kept, the chat is not the author's, the author has a reply
        pending (the send will wait in line), or the chat changed since in a way its
        prompt shows (an edit or a deletion is never sent to a backend again)."""
        reading = self._reading.get(chat_id)
        if reading is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(reading)
        kept = self._kept.get(chat_id)
        if kept is None or kept.chat.owner_id != author_id:
            return None
        async with self._db.read_one() as tx:
            version, pending = await job_repo.prompt_version_and_open_replies(
                tx, chat_id, author_id
            )
        if version != kept.chat.prompt_version:
            self._kept.pop(chat_id, None)
            return None
        if pending:
            return None
        self._kept.move_to_end(chat_id)
        chat = kept.chat
        position = kept.history[-1].position + 1 if kept.history else chat.next_position
        message = _provisional(chat.id, "user", position, content, author_id)
        reply = _provisional(chat.id, "assistant", position + 1, "", None)
        history = [*kept.history, message]
        return Preloaded(reply, ReplyContext(chat, kept.character, history, kept.memory))

    def _keep(self, context: ReplyContext) -> None:
        """Keep `context` as its chat's latest material, unless what is kept is later
        or recall found something (what it finds depends on the next message)."""
        chat_id = context.chat.id
        if context.memory is not None and context.memory.recalled:
            self._kept.pop(chat_id, None)
            return
        kept = self._kept.get(chat_id)
        if kept is not None and _end(kept) > _end(context):
            return
        # The imported card's verbatim JSON is not in a prompt (and may be large).
        character = dataclasses.replace(context.character, card=None)
        self._kept[chat_id] = dataclasses.replace(context, character=character)
        self._kept.move_to_end(chat_id)
        while len(self._kept) > self._settings.cached_chats:
            self._kept.popitem(last=False)

    @staticmethod
    async def _chat_and_character(
        chat_id: str, tx: Transaction
    ) -> tuple[ChatRecord | None, CharacterRecord | None]:
        chat = await repo.get_chat(tx, chat_id)
        if chat is None:
            return None, None
        character = await character_repo.get_character(tx, chat.character_id, include_deleted=True)
        return chat, character

    async def _history_and_memory(
        self, chat: ChatRecord, before_position: int, *, tx: Transaction, query: str | None = None
    ) -> tuple[list[MessageRecord], PromptMemory | None]:
        """The history a prompt is built from, and the chat's memory (recall looking
        for `query`, by default the newest user message), read in `tx` (which read
        `chat`: its prompt version says whether the last window read still holds)."""
        if self._memory is None:
            history = await repo.list_history(tx, chat.id, before_position=before_position)
            return history, None
        # A bounded tail of history (the summary and recall stand for the rest).
        largest = max((b.spec.context_length for b in self._router.backends), default=0)
        budget = largest or self._settings.context_length
        window = await self._memory.history_window(
            chat.id, before_position, budget, tx, version=chat.prompt_version
        )
        memory = await self._memory.prompt_memory(chat.id, window, query, tx)
        return window.messages, memory

    async def prompt(self, context: ReplyContext, partial: str, backend: Backend) -> list[ChatTurn]:
        provider = backend.provider
        budget = (
            backend.spec.context_length - self._settings.max_reply_tokens - _PROMPT_MARGIN_TOKENS
        )
        system_text = system_prompt(context.character, context.chat)
        texts = [system_text, partial, context.character.post_history_instructions]
        texts += [m.content for m in context.history]
        if context.memory is not None:
            texts += [m.content for m in context.memory.pinned]
            texts += [m.content for m in context.memory.recalled]
            texts += [context.memory.summary.content] if context.memory.summary else []
            texts += [str(e.get("content", "")) for e in _book_entries(context.character)]
        counts: dict[str, int] = {}
        # A token is at least one byte: when the bytes fit, the tokens do, and the
        # backend need not be asked to count (most turns of most chats).
        upper_bound = sum(len(t.encode()) + DEFAULT_TURN_OVERHEAD for t in texts)
        if upper_bound > budget:
            counts = await self._counts(provider, texts)
        # Off the event loop, within the CPU budget: the lorebook's keys are users'
        # patterns run over users' text. An overrun raises WorkTimedOut to the job.
        assembled = await bounded(
            functools.partial(
                assemble_prompt,
                context.character,
                context.chat,
                context.history,
                partial_reply=partial,
                budget_tokens=budget,
                count=lambda text: counts[text] if text in counts else len(text.encode()),
                memory=context.memory,
            ),
            budget_s=self._settings.cpu_budget_s,
            what="building the reply's prompt",
        )
        context.prompt_record.clear()
        context.prompt_record.update(assembled.record)
        return assembled.turns

    def params(self, context: ReplyContext, *, strict: bool) -> SamplingParams:
        """Role-play sampling; `strict` is the stronger anti-repetition of a regeneration."""
        stop = (f"\n{context.chat.persona_name}:",)
        if strict:
            return SamplingParams(
                max_tokens=self._settings.max_reply_tokens,
                temperature=0.9,
                repeat_penalty=1.3,
                frequency_penalty=0.5,
                presence_penalty=0.3,
                dry_multiplier=0.8,
                stop=stop,
            )
        return SamplingParams(
            max_tokens=self._settings.max_reply_tokens, repeat_penalty=1.1, stop=stop
        )

    async def _counts(self, provider: Provider, texts: list[str]) -> dict[str, int]:
        """Token counts of `texts`; those not counted before are asked for together
        (a few requests at a time), not one after another."""
        counts: dict[str, int] = {}
        missing: list[tuple[str, tuple[str, str]]] = []
        for text in dict.fromkeys(texts):
            key = (provider.model, hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
            cached = self._token_counts.get(key)
            if cached is None:
                missing.append((text, key))
            else:
                counts[text] = cached
        for start in range(0, len(missing), _COUNT_REQUESTS_AT_ONCE):
            batch = missing[start : start + _COUNT_REQUESTS_AT_ONCE]
            answers = await asyncio.gather(*(provider.count_tokens(text) for text, _ in batch))
            for (text, key), count in zip(batch, answers, strict=True):
                counts[text] = self._token_counts[key] = count
        while len(self._token_counts) > _TOKEN_COUNTS_PER_CHAT * self._settings.cached_chats:
            self._token_counts.popitem(last=False)
        return counts


def _book_entries(character: CharacterRecord) -> list[dict[str, Any]]:
    entries = (character.character_book or {}).get("entries")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _end(context: ReplyContext) -> int:
    """The place of the last message in `context`'s history (-1 when it has none)."""
    return context.history[-1].position if context.history else -1


def _provisional(
    chat_id: str, role: str, position: int, content: str, author_id: str | None
) -> MessageRecord:
    """A message as a guess has it: only its role, place and text are in a prompt."""
    now = utcnow()
    return MessageRecord(
        id=f"guess-{role}",
        chat_id=chat_id,
        author_id=author_id,
        role=role,
        position=position,
        swipe_index=0,
        selected=True,
        parent_id=None,
        client_id=None,
        content_hash=None,
        content=content,
        status=chat_events.COMPLETE if role == "user" else chat_events.QUEUED,
        error_code=None,
        retryable=False,
        rating=None,
        labels={},
        backend=None,
        generation=None,
        created_at=now,
        updated_at=now,
    )
