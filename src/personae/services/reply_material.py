"""What a reply is written from, and the prompt built from it.

The material of a reply (the reply, its chat and character, the history and
memory) is read from the database ahead of its claim or when it starts; the
prompt and sampling for one backend are built from it. Token counts asked of a
backend are kept, so a turn asks only for the texts it adds.
"""

from __future__ import annotations

import asyncio
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
from personae.services.room_prompting import (
    RoomCast,
    assemble_room_prompt,
    cast_of,
    named_turns,
    room_text,
    speaker_text,
    stop_sequences,
)
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as repo
from personae.storage.repos import rooms as rooms_repo
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord

# Token counts kept per chat (settings.cached_chats): a chat's prompt has a few
# dozen texts, each counted once.
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

    async def preload(self, reply_id: str) -> Preloaded | None:
        """Read what a reply needs before it can ask a backend: the reply, its chat and
        character, the history and memory. None when the reply is gone or final.

        The scheduler calls this ahead of the claim (for the head of the line while
        every slot is busy, or for a reply just queued), so that when the claim is done
        the reply can go to a backend at once.
        """
        async with self._db.read() as tx:
            reply = await repo.get_message(tx, reply_id)
            if reply is None or reply.status in chat_events.FINAL_STATES:
                return None
            chat, character = await self._chat_and_character(reply.chat_id, tx, reply.character_id)
            if chat is None or character is None:  # the chat was deleted
                return None
            history, memory = await self._history_and_memory(chat, reply.position, tx=tx)
            room = await _room_cast(tx, chat) if chat.is_room else None
        return Preloaded(reply, ReplyContext(chat, character, history, memory, room=room))

    @staticmethod
    async def _chat_and_character(
        chat_id: str, tx: Transaction, character_id: str | None = None
    ) -> tuple[ChatRecord | None, CharacterRecord | None]:
        """The chat and the character who speaks: a room's reply names its own."""
        chat = await repo.get_chat(tx, chat_id)
        if chat is None:
            return None, None
        speaker = character_id or chat.character_id
        character = await character_repo.get_character(tx, speaker, include_deleted=True)
        return chat, character

    async def _history_and_memory(
        self, chat: ChatRecord, before_position: int, *, tx: Transaction
    ) -> tuple[list[MessageRecord], PromptMemory | None]:
        """The history a prompt is built from, and the chat's memory (recall looking
        for the newest user message), read in `tx` (which read `chat`: its prompt
        version says whether the last window read still holds)."""
        if self._memory is None:
            history = await repo.list_history(tx, chat.id, before_position=before_position)
            return history, None
        # A bounded tail of history (the summary and recall stand for the rest).
        largest = max((b.spec.context_length for b in self._router.backends), default=0)
        budget = largest or self._settings.context_length
        window = await self._memory.history_window(
            chat.id, before_position, budget, tx, version=chat.prompt_version
        )
        memory = await self._memory.prompt_memory(chat.id, window, tx=tx)
        return window.messages, memory

    async def prompt(self, context: ReplyContext, partial: str, backend: Backend) -> list[ChatTurn]:
        provider = backend.provider
        budget = (
            backend.spec.context_length - self._settings.max_reply_tokens - _PROMPT_MARGIN_TOKENS
        )
        if context.room is not None:
            return await self._room_prompt(context, context.room, partial, budget, provider)
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

    async def _room_prompt(
        self,
        context: ReplyContext,
        cast: RoomCast,
        partial: str,
        budget: int,
        provider: Provider,
    ) -> list[ChatTurn]:
        """A room's prompt (room_prompting.py): the shared start, the named history,
        the speaker's own end; built off the event loop within the CPU budget."""
        texts = [room_text(cast), partial, speaker_text(context.character, context.chat)]
        texts += [turn.content for turn in named_turns(context.history, context.chat)]
        counts: dict[str, int] = {}
        if sum(len(t.encode()) + DEFAULT_TURN_OVERHEAD for t in texts) > budget:
            counts = await self._counts(provider, texts)
        assembled = await bounded(
            functools.partial(
                assemble_room_prompt,
                context.character,
                context.chat,
                context.history,
                cast,
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
        stop: tuple[str, ...] = (f"\n{context.chat.persona_name}:",)
        if context.room is not None:
            stop = stop_sequences(context.room, context.character.name)
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


async def _room_cast(tx: Transaction, chat: ChatRecord) -> RoomCast:
    """A room's characters (list order) and its people's names, for its prompts."""
    characters = []
    for seat in await rooms_repo.list_room_characters(tx, chat.id):
        character = await character_repo.get_character(tx, seat.character_id, include_deleted=True)
        if character is not None:
            characters.append(character)
    people = [member.persona_name for member in await rooms_repo.list_members(tx, chat.id)]
    return cast_of(characters, people)


def _book_entries(character: CharacterRecord) -> list[dict[str, Any]]:
    entries = (character.character_book or {}).get("entries")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
