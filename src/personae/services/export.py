"""The personal data export: everything a user owns, as one JSON document.

The document is written piece by piece: each page of rows is read in its own
short transaction and turned into text before the next is read, so a large
account never sits in memory whole and no transaction stays open while the
client downloads.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from personae import strict_json
from personae.offload import bounded
from personae.services.cards import card_document
from personae.storage.db import Database
from personae.storage.repos import accounts as account_repo
from personae.storage.repos import characters as character_repo
from personae.storage.repos import export as export_repo
from personae.storage.repos import images as images_repo
from personae.storage.repos import memories as memory_repo
from personae.storage.repos import personas as persona_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.repos.memories import PINNED, SUMMARY, MemoryRecord
from personae.storage.types import utcnow

FORMAT = "personae-export"
VERSION = 1
_CHARACTER_PAGE = 20  # avatars make characters heavy
_CHAT_PAGE = 50
_MESSAGE_PAGE = 500


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dump(value: Any) -> str:
    # Always valid JSON: data stored with NaN before it was refused is written as null.
    return strict_json.dumps(value, default=_json_value)


def _account(user: UserRecord) -> dict[str, Any]:
    # Never the password hash, the session tokens' hashes or their CSRF tokens.
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "created_at": user.created_at,
        # What is kept of the age declaration (never a birth date), and the setting.
        "age_declared_at": user.age_declared_at,
        "adult_from": user.adult_from.isoformat() if user.adult_from else None,
        "show_mature": user.show_mature,
    }


def _character(character: CharacterRecord) -> dict[str, Any]:
    return {
        "id": character.id,
        "visibility": character.visibility,
        "featured": character.featured,
        "definition_visible": character.definition_visible,
        "chat_count": character.chat_count,
        "tagline": character.tagline,
        "avatar": character.avatar,
        "created_at": character.created_at,
        "updated_at": character.updated_at,
        "card": card_document(character),
    }


def _chat(chat: ChatRecord) -> dict[str, Any]:
    return {
        "id": chat.id,
        "title": chat.title,
        "character_id": chat.character_id,
        "character_name": chat.character_name,
        "persona_id": chat.persona_id,
        "persona_name": chat.persona_name,
        "persona_description": chat.persona_description,
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
    }


def _message(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "position": message.position,
        "swipe_index": message.swipe_index,
        "selected": message.selected,
        "parent_id": message.parent_id,
        "client_id": message.client_id,
        "content": message.content,
        "status": message.status,
        "error_code": message.error_code,
        "retryable": message.retryable,
        "rating": message.rating,
        "labels": message.labels,
        "backend": message.backend,
        "finish_reason": message.finish_reason,
        "cut_short": message.cut_short,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }


def _memory(memory: MemoryRecord) -> dict[str, Any]:
    return {
        "id": memory.id,
        "content": memory.content,
        "source_message_id": memory.source_message_id,
        "through_position": memory.through_position,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
    }


def _items(
    render: Callable[[Any], dict[str, Any]], records: Iterable[Any], first: bool
) -> tuple[str, bool]:
    """Rendered records as array items, with the comma that separates them from earlier
    ones; and whether the array is still empty."""
    parts = [_dump(render(record)) for record in records]
    if not parts:
        return "", first
    return ("" if first else ",") + ",".join(parts), False


def _with_pictures(
    page: list[CharacterRecord], pictures: dict[str, tuple[str, bytes]]
) -> list[CharacterRecord]:
    """The characters with their stored pictures as data: URLs in `avatar` (an export
    is read without the server, so it carries the picture itself, not its URL)."""
    shown = []
    for character in page:
        picture = pictures.get(character.avatar_image_id or "")
        if picture is not None:
            media_type, data = picture
            encoded = base64.b64encode(data).decode("ascii")
            character = replace(character, avatar=f"data:{media_type};base64,{encoded}")
        shown.append(character)
    return shown


class ExportService:
    """Writes a user's data export; reads only, through the repositories."""

    def __init__(self, database: Database, *, cpu_budget_s: float) -> None:
        self._db = database
        self._cpu_budget_s = cpu_budget_s

    async def _page(
        self, render: Callable[[Any], dict[str, Any]], page: list[Any], first: bool
    ) -> tuple[str, bool]:
        """`_items` of a page, off the event loop (cards are rebuilt from stored JSON).

        An overrun can no longer become an error response (the download has begun):
        it ends the download short, which a JSON reader notices.
        """
        return await bounded(
            _items,
            render,
            page,
            first,
            budget_s=self._cpu_budget_s,
            what="writing the export",
        )

    @staticmethod
    def filename(user: UserRecord) -> str:
        slug = re.sub(r"[^a-z0-9_.-]+", "_", user.username)
        return f"personae-{slug}-{utcnow():%Y-%m-%d}.json"

    async def stream(self, user: UserRecord) -> AsyncIterator[str]:
        """The export document in pieces: account, personas, characters, then each chat."""
        async with self._db.read() as tx:
            sessions = await account_repo.list_sessions(tx, user.id, utcnow())
            tokens = await account_repo.list_tokens(tx, user.id)
            personas = await persona_repo.list_personas(tx, user.id)
        account = {
            **_account(user),
            "sessions": [
                {
                    "id": s.id,
                    "created_at": s.created_at,
                    "last_seen_at": s.last_seen_at,
                    "expires_at": s.expires_at,
                    "user_agent": s.user_agent,
                    "ip": s.ip,
                }
                for s in sessions
            ],
            "api_tokens": [
                {
                    "id": t.id,
                    "name": t.name,
                    "prefix": t.prefix,
                    "created_at": t.created_at,
                    "last_used_at": t.last_used_at,
                }
                for t in tokens
            ],
        }
        head = {"format": FORMAT, "version": VERSION, "exported_at": utcnow()}
        yield _dump(head)[:-1]
        yield f',"account":{_dump(account)}'
        yield ',"personas":' + _dump(
            [
                {
                    "id": p.id,
                    "name": p.name,
                    "description": p.description,
                    "avatar": p.avatar,
                    "is_default": p.is_default,
                    "created_at": p.created_at,
                    "updated_at": p.updated_at,
                }
                for p in personas
            ]
        )
        yield ',"characters":['
        async for piece in self._characters(user):
            yield piece
        yield '],"chats":['
        async for piece in self._chats(user):
            yield piece
        yield "]}\n"

    async def _characters(self, user: UserRecord) -> AsyncIterator[str]:
        after: str | None = None
        first = True
        while True:
            async with self._db.read() as tx:
                page = await character_repo.list_owned(
                    tx, user.id, after=after, limit=_CHARACTER_PAGE
                )
                pictures = await images_repo.originals_of(
                    tx, [c.avatar_image_id for c in page if c.avatar_image_id]
                )
            text, first = await self._page(_character, _with_pictures(page, pictures), first)
            yield text
            if len(page) < _CHARACTER_PAGE:
                return
            after = page[-1].id

    async def _chats(self, user: UserRecord) -> AsyncIterator[str]:
        after: str | None = None
        first = True
        while True:
            async with self._db.read() as tx:
                page = await export_repo.owned_chats(tx, user.id, after=after, limit=_CHAT_PAGE)
            for chat in page:
                yield "" if first else ","
                first = False
                async for piece in self._one_chat(chat):
                    yield piece
            if len(page) < _CHAT_PAGE:
                return
            after = page[-1].id

    async def _one_chat(self, chat: ChatRecord) -> AsyncIterator[str]:
        """`{chat, pinned_memories, summaries, messages}`; messages read a page at a time."""
        async with self._db.read() as tx:
            memories = await memory_repo.list_memories(tx, chat.id)
        pinned = [_memory(m) for m in memories if m.kind == PINNED]
        # Every live version, oldest first: the last one is the summary in use.
        summaries = [_memory(m) for m in memories if m.kind == SUMMARY]
        yield (
            f'{{"chat":{_dump(_chat(chat))},"pinned_memories":{_dump(pinned)},'
            f'"summaries":{_dump(summaries)},"messages":['
        )
        after: tuple[int, int] | None = None
        first = True
        while True:
            async with self._db.read() as tx:
                page = await export_repo.chat_messages(
                    tx, chat.id, after=after, limit=_MESSAGE_PAGE
                )
            if page:
                text, first = await self._page(_message, page, first)
                yield text
                after = (page[-1].position, page[-1].swipe_index)
            if len(page) < _MESSAGE_PAGE:
                break
        yield "]}"
