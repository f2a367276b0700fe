"""Showing a chat's owner the prompt a reply was written from, and no more than
they may see of the character's definition.

The prompt is rebuilt from the ids recorded with the reply. The viewer's own
text (their messages, the replies, their persona, pins and summary) is always
shown. The character's definition (system prompt, description, personality,
scenario, example dialogues, lorebook entries, post-history instructions) is
shown to the character's creator, and to others only while they may read the
character and its creator lets them (`definition_visible`); otherwise each part
that carried it says it is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from personae.errors import NotFound
from personae.services.characters import can_read
from personae.services.macros import substitute
from personae.services.prompting import (
    lore_key,
    lorebook_of,
    memory_text,
    persona_text,
    recalled_text,
    system_prompt,
)
from personae.storage.db import Database
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import memories as memory_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord

# shown: the definition is there; hidden_by_creator: its creator keeps it to
# themselves; character_unavailable: deleted, or private to somebody else now.
Definition = Literal["shown", "hidden_by_creator", "character_unavailable"]

HIDDEN_MARKERS: dict[Definition, str] = {
    "hidden_by_creator": "[Hidden by the creator: this character's definition is not shown to "
    "others.]",
    "character_unavailable": "[Hidden: this character was deleted or made private by its "
    "creator, so its definition is no longer shown.]",
}


@dataclass(frozen=True)
class PromptPart:
    role: str
    source: str
    content: str
    # The character's text in this part was replaced by a marker.
    redacted: bool = False


@dataclass(frozen=True)
class PromptView:
    message_id: str
    parts: list[PromptPart]
    record: dict[str, Any]
    definition: Definition = "shown"


def definition_for(character: CharacterRecord, viewer: UserRecord, *, deleted: bool) -> Definition:
    """How much of a character's definition `viewer` may see in a prompt."""
    if viewer.id == character.owner_id:
        return "shown"
    if deleted or not can_read(character, viewer):
        return "character_unavailable"
    return "shown" if character.definition_visible else "hidden_by_creator"


async def inspect_prompt(db: Database, user: UserRecord, message_id: str) -> PromptView:
    """The prompt a reply was written from, rebuilt from the ids recorded with it.

    The character's fields are today's (an edit since shows), as far as the user
    may see them (`definition_for`); memories show the text they had when last
    edited, deleted ones included.
    """
    async with db.read() as tx:
        reply = await chat_repo.get_message(tx, message_id)
        chat = await chat_repo.get_chat(tx, reply.chat_id) if reply else None
        if reply is None or chat is None or chat.owner_id != user.id:
            raise NotFound("No message with this id.")
        record = (reply.generation or {}).get("prompt")
        if reply.role != "assistant" or not isinstance(record, dict):
            raise NotFound("No prompt was recorded for this message.")
        # In a room, the character who wrote this reply (and its definition's rule).
        speaker = reply.character_id or chat.character_id
        character = await character_repo.get_character(tx, speaker)
        deleted = character is None
        if character is None:
            character = await character_repo.get_character(tx, speaker, include_deleted=True)
        assert character is not None
        memory_ids = [i for i, _t in record.get("pinned", [])]
        summary_ref = record.get("summary")
        memory_ids += [summary_ref[0]] if summary_ref else []
        memories = {m.id: m for m in await memory_repo.get_memories(tx, memory_ids)}
        recalled = await chat_repo.get_history_messages(
            tx, chat.id, [i for i, _t in record.get("recalled", [])]
        )
        history_info = record.get("history") or {}
        first = (
            await chat_repo.get_message(tx, history_info["first"])
            if history_info.get("first")
            else None
        )
        history = (
            await chat_repo.list_history_between(
                tx, chat.id, from_position=first.position, before_position=reply.position
            )
            if first
            else []
        )
    definition = definition_for(character, user, deleted=deleted)
    parts = [_system_part(character, chat, record, definition)]
    pinned = [memories[i] for i in memory_ids[: len(record.get("pinned", []))] if i in memories]
    summary = memories.get(summary_ref[0]) if summary_ref else None
    remembered = memory_text(pinned, summary)
    if remembered:
        parts.append(PromptPart("system", "memory", remembered))
    turns = [m for m in history if m.content.strip()]
    for message in turns:
        role = "user" if message.role == "user" else "assistant"
        parts.append(PromptPart(role, f"message:{message.id}", message.content))
    recall = recalled_text(character, chat, recalled)
    if recall:
        parts.insert(max(len(parts) - 1, 1), PromptPart("system", "recalled", recall))
    after = substitute(
        character.post_history_instructions, char=character.name, user=chat.persona_name
    ).strip()
    if after and definition == "shown":
        parts.append(PromptPart("system", "post_history_instructions", after))
    elif after:
        marker = HIDDEN_MARKERS[definition]
        parts.append(PromptPart("system", "post_history_instructions", marker, redacted=True))
    if definition != "shown":
        # Lorebook entry ids are the creator's words too (a card may name them).
        record = {**record, "lore": [[None, tokens] for _key, tokens in record.get("lore", [])]}
    return PromptView(reply.id, parts, record, definition)


def _system_part(
    character: CharacterRecord, chat: ChatRecord, record: dict[str, Any], definition: Definition
) -> PromptPart:
    """The system turn: in full, or the marker and what the viewer wrote (their persona)."""
    if definition != "shown":
        content = "\n\n".join(
            p for p in (HIDDEN_MARKERS[definition], persona_text(character, chat)) if p
        )
        return PromptPart("system", "system", content, redacted=True)
    book = lorebook_of(character)
    lore_keys = [key for key, _t in record.get("lore", [])]
    lore = [e for e in book.entries if lore_key(book, e) in lore_keys] if book else []
    return PromptPart("system", "system", system_prompt(character, chat, lore=lore))
