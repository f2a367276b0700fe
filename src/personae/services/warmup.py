"""Prompt warm-ups: a character's fixed prompt prefix read into a backend's cache
when someone opens a chat or a character page, so the first send reads only what
is new.

A warm-up is the prompt's first turn (the system prompt with the character's
definition, persona and example dialogues: what `assemble_prompt` puts first and
keeps byte-stable) read by the backend the chat's next reply would take first (the
router's affinity order), with llama.cpp's `cache_prompt`. It is read in chunks:
growing prefixes of that turn, each about `prompt_warmup_chunk_tokens` longer than
the last, each sent for one token, so each request reads one chunk beyond what the
cache already holds. A chunk is small, so:

- a reply that comes meanwhile waits for one chunk at most: llama.cpp finishes the
  batch it is reading even when the request is closed, and a whole 2,000-token
  prefix is one batch (measured: tens of seconds on a busy 2-core machine);
- each request answers well within the backend's first-token timeout, which a
  whole long prefix did not (every 2,000-token warm-up failed at 60 s);
- what was read stays cached when a warm-up is cancelled, and the next opening
  goes on from there.

It has the lowest priority: it starts only while nobody waits in line and that
backend serves nothing at all, holds no slot lease, and is cancelled the moment a
reply is queued here or takes that backend (`Router.take` cancels it). A status
probe does not cancel it: its few tokens wait for the chunk being read. One
warm-up per backend and prefix is sent within `prompt_warmup_window_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator

from personae.cards.lorebook import Entry
from personae.llm.base import (
    BackendUnreachable,
    ChatTurn,
    Provider,
    SamplingParams,
    TransientBackendError,
)
from personae.llm.router import Router
from personae.services.prompting import lorebook_of, system_prompt
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import characters as character_repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import personas as persona_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord
from personae.storage.types import utcnow

log = logging.getLogger("personae.warmup")
# Prefixes remembered as warmed (per backend): a few hundred bytes each.
_REMEMBERED = 4096
# One token: llama.cpp reads the whole prompt into the slot's cache before it.
_WARMUP_PARAMS = SamplingParams(max_tokens=1, temperature=0.0)
# A chunk that fails for a passing reason is sent once more (see `_read`).
_CHUNK_ATTEMPTS = 2


class PrefixWarmer:
    """Sends prompt warm-ups in the background; `settled()` waits for those begun."""

    def __init__(self, database: Database, router: Router, settings: Settings) -> None:
        self._db = database
        self._router = router
        self._settings = settings
        # (backend, prefix digest) -> when its warm-up was sent (monotonic).
        self._sent: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        # What became of each warm-up asked for (tests and the bench read it).
        self.counts: Counter[str] = Counter()
        self.last_failure = ""  # why the last failed warm-up failed (the bench says)

    @property
    def enabled(self) -> bool:
        return self._settings.prompt_warmup and bool(self._router.backends)

    def chat_opened(self, chat: ChatRecord) -> None:
        """Someone opened `chat`: warm its character's prefix on its reply's backend."""
        if self.enabled:
            self._begin(self._warm_chat(chat))

    def character_viewed(self, character: CharacterRecord, viewer: UserRecord | None) -> None:
        """A signed-in user opened a character's page: warm the prefix a new chat with
        it would have (their default persona), on the backend the character's key
        prefers (with one backend, the one its chats use)."""
        if self.enabled and viewer is not None:
            self._begin(self._warm_character(character, viewer))

    async def settled(self) -> None:
        """Wait until the warm-ups begun so far have ended (sent, skipped or cancelled)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _begin(self, work: object) -> None:
        assert asyncio.iscoroutine(work)
        task = asyncio.get_running_loop().create_task(work, name="personae-warmup")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_chat(self, chat: ChatRecord) -> None:
        async with self._db.read() as tx:
            character = await character_repo.get_character(
                tx, chat.character_id, include_deleted=True
            )
        if character is not None:
            await self._warm(character, chat, key=chat.id)

    async def _warm_character(self, character: CharacterRecord, viewer: UserRecord) -> None:
        async with self._db.read() as tx:
            persona = await persona_repo.default_persona(tx, viewer.id)
        name = persona.name if persona else (viewer.display_name.strip() or viewer.username)
        now = utcnow()
        # What a new chat would be, as far as its system prompt shows.
        chat = ChatRecord(
            id="",
            owner_id=viewer.id,
            character_id=character.id,
            character_name=character.name,
            title=character.name,
            persona_name=name,
            persona_description=persona.description if persona else "",
            next_position=0,
            backend=None,
            created_at=now,
            updated_at=now,
        )
        await self._warm(character, chat, key=f"character:{character.id}")

    async def _warm(self, character: CharacterRecord, chat: ChatRecord, *, key: str) -> None:
        try:
            await self._send(character, chat, key)
        except asyncio.CancelledError:
            self.counts["cancelled"] += 1
        except Exception as error:  # a warm-up is a hint: its failure harms nobody
            self.counts["failed"] += 1
            self.last_failure = f"{type(error).__name__}: {error}"
            log.debug("a prompt warm-up failed", extra={"error": str(error)})

    async def _send(self, character: CharacterRecord, chat: ChatRecord, key: str) -> None:
        if await self._someone_waits():
            self.counts["busy"] += 1
            return
        choice = await self._router.take_idle(key, chat.backend)
        if choice is None:
            self.counts["busy"] += 1
            return
        try:
            backend = choice.backend
            text = system_prompt(character, chat, lore=_constant_lore(character))
            digest = hashlib.blake2b(
                f"{backend.spec.model}\0{text}".encode(), digest_size=16
            ).hexdigest()
            sent_key = (backend.name, digest)
            if not self._fresh(sent_key):
                self.counts["deduplicated"] += 1
                return
            current = asyncio.current_task()
            assert current is not None

            def cancel() -> None:
                current.cancel()

            self._router.hold_warmup(choice, cancel)
            started = time.monotonic()
            try:
                for prefix in growing_prefixes(text, self._settings.prompt_warmup_chunk_tokens):
                    await self._read(backend.provider, prefix, key)
                    self.counts["chunks"] += 1
            except BaseException:
                self._sent.pop(sent_key, None)  # not warmed: the next opening tries again
                raise
            self.counts["sent"] += 1
            log.debug(
                "prompt prefix warmed",
                extra={"backend": backend.name, "ms": round((time.monotonic() - started) * 1000)},
            )
        finally:
            await choice.give_back()

    async def _read(self, provider: Provider, prefix: str, key: str) -> None:
        """Have the backend read `prefix` as the system turn (and write one token).

        A chunk that fails for a passing reason is sent once more: reading it again is
        harmless, and back-to-back requests to llama.cpp's server meet "Server
        disconnected without sending a response" now and then (measured: 8 of 150).
        """
        for attempt in range(_CHUNK_ATTEMPTS):
            try:
                stream = provider.stream_chat(
                    [ChatTurn("system", prefix)], _WARMUP_PARAMS, cache_key=key
                )
                async with contextlib.aclosing(stream) as pieces:
                    async for _piece in pieces:
                        pass
                return
            except BackendUnreachable:
                raise
            except TransientBackendError:
                if attempt + 1 == _CHUNK_ATTEMPTS:
                    raise
                self.counts["retried"] += 1

    def _fresh(self, key: tuple[str, str]) -> bool:
        """Whether this prefix was not warmed on this backend within the window (and
        mark it warmed now: a warm-up being sent counts)."""
        now = time.monotonic()
        sent = self._sent.get(key)
        if sent is not None and now - sent < self._settings.prompt_warmup_window_s:
            return False
        self._sent.pop(key, None)
        self._sent[key] = now
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)
        return True

    async def _someone_waits(self) -> bool:
        """Whether a job waits in line (a reply, or background work: both go first)."""
        async with self._db.read() as tx:
            return await job_repo.count_by_status(tx, job_repo.QUEUED) > 0


def growing_prefixes(text: str, chunk_tokens: int) -> Iterator[str]:
    """Prefixes of `text`, each about `chunk_tokens` tokens longer than the last, the
    last being `text` itself (made one at a time: a long text has many).

    A prefix ends before a space or line break where there is one in its chunk: a
    tokenizer starts a new token there, so a prefix's tokens are the first tokens of
    the next prefix and of the whole turn (the cache is reused up to the cut). Tokens
    are estimated as `approx_tokens` does (4 bytes of UTF-8 each), so text of many
    bytes per character is cut in shorter pieces.
    """
    step = max(1, chunk_tokens * 4 * len(text) // max(1, len(text.encode())))
    start = 0
    while len(text) - start > step:
        window = (start + 1, start + step)
        cut = max(text.rfind(" ", *window), text.rfind("\n", *window))
        start = cut if cut > start else start + step
        yield text[:start]
    yield text


def _constant_lore(character: CharacterRecord) -> list[Entry]:
    """The lorebook entries every prompt of the character shows (those triggered by
    keywords depend on the conversation; the cache is reused up to the first)."""
    book = lorebook_of(character)
    if book is None:
        return []
    return [entry for entry in book.entries if entry.constant and entry.enabled]
