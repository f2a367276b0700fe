"""Turning a character and a chat's history into the turns a model reads.

The order is fixed and the text carries no timestamps, so the start of the
prompt is byte-stable from one turn to the next and the backend's prompt cache
keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.cards.lorebook import Entry, Lorebook, select_entries
from personae.errors import ContextTooLong
from personae.llm.base import ChatTurn
from personae.llm.prompt import DEFAULT_TURN_OVERHEAD, fit_history
from personae.services.macros import substitute
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.repos.memories import MemoryRecord

_DEFAULT_SYSTEM = (
    "You are {{char}}. Stay in character and reply to {{user}} as {{char}} would, "
    "in a few sentences."
)


def system_prompt(
    character: CharacterRecord,
    chat: ChatRecord,
    *,
    lore: Sequence[Entry] = (),
) -> str:
    """The character's instructions and fields, in a fixed order (creator notes never).

    Lorebook entries go before or after the description, as each entry asks.
    """

    def fill(text: str) -> str:
        return substitute(text, char=character.name, user=chat.persona_name).strip()

    parts = [fill(character.system_prompt or _DEFAULT_SYSTEM)]
    parts += [fill(entry.content) for entry in lore if entry.position == "before_char"]
    if character.description:
        parts.append(fill(character.description))
    parts += [fill(entry.content) for entry in lore if entry.position != "before_char"]
    if character.personality:
        parts.append(f"{character.name}'s personality: {fill(character.personality)}")
    if character.scenario:
        parts.append(f"Scenario: {fill(character.scenario)}")
    parts.append(persona_text(character, chat))
    if character.example_dialogues:
        parts.append("Example of how the conversation goes:\n" + fill(character.example_dialogues))
    return "\n\n".join(part for part in parts if part)


def persona_text(character: CharacterRecord, chat: ChatRecord) -> str:
    """The chat's persona as the system prompt tells it ("" without a description)."""
    if not chat.persona_description:
        return ""
    described = substitute(chat.persona_description, char=character.name, user=chat.persona_name)
    return f"About {chat.persona_name}: {described.strip()}"


def history_turns(history: Sequence[MessageRecord]) -> list[ChatTurn]:
    """Messages as model turns; empty replies (failed before a word) are left out."""
    turns = []
    for message in history:
        if not message.content.strip():
            continue
        turns.append(ChatTurn("user" if message.role == "user" else "assistant", message.content))
    return turns


@dataclass(frozen=True)
class PromptMemory:
    """What long-term memory offers a prompt; the builder decides what fits."""

    pinned: Sequence[MemoryRecord] = ()
    summary: MemoryRecord | None = None
    # Older messages recalled by meaning, best first.
    recalled: Sequence[MessageRecord] = ()
    lore_budget_tokens: int | None = None
    recall_budget_tokens: int = 0


@dataclass
class AssembledPrompt:
    turns: list[ChatTurn]
    # What went in and what was left out: ids and token counts (stored with the reply).
    record: dict[str, Any] = field(default_factory=dict)


def lorebook_of(character: CharacterRecord) -> Lorebook | None:
    """The character's book in its stored, normalised form (None if it has none)."""
    if not character.character_book:
        return None
    return Lorebook.from_json(character.character_book)


def lore_key(book: Lorebook, entry: Entry) -> str:
    """A stable name of an entry within its book: its id, else its index."""
    return str(entry.id) if entry.id is not None else f"#{book.entries.index(entry)}"


def memory_text(pinned: Sequence[MemoryRecord], summary: MemoryRecord | None) -> str:
    parts = []
    if pinned:
        parts.append("Facts to remember:\n" + "\n".join(f"- {m.content.strip()}" for m in pinned))
    if summary is not None and summary.content.strip():
        parts.append("What happened earlier in this conversation:\n" + summary.content.strip())
    return "\n\n".join(parts)


def recalled_text(
    character: CharacterRecord, chat: ChatRecord, recalled: Sequence[MessageRecord]
) -> str:
    lines = [
        f"{chat.persona_name if m.role == 'user' else character.name}: {m.content.strip()}"
        for m in recalled
    ]
    return "Earlier messages that may matter now:\n" + "\n".join(lines) if lines else ""


def _cost(count: Callable[[str], int], text: str) -> int:
    return count(text) + DEFAULT_TURN_OVERHEAD if text else 0


def assemble_prompt(
    character: CharacterRecord,
    chat: ChatRecord,
    history: Sequence[MessageRecord],
    *,
    partial_reply: str,
    budget_tokens: int,
    count: Callable[[str], int],
    memory: PromptMemory | None = None,
) -> AssembledPrompt:
    """The one place a prompt is put together, in a fixed order:

    system prompt with character fields, persona and lorebook entries; pinned
    memories and the summary; recent history; recalled older messages just
    before the newest message; post-history instructions; the reply so far.
    What changes every turn sits at the end, so the start stays byte-stable and
    the backend's prompt cache keeps working. When the budget is short, recalled
    messages go first, then lorebook entries, then the summary, then old history
    (eight turns at a time); the newest message and pinned memories always stay.
    """
    memory = memory or PromptMemory()
    book = lorebook_of(character)
    for level in range(4):
        try:
            return _assemble(
                character, chat, history, partial_reply, budget_tokens, count, memory, book, level
            )
        except ContextTooLong:
            if level == 3:
                raise
    raise AssertionError("unreachable")


def _assemble(
    character: CharacterRecord,
    chat: ChatRecord,
    history: Sequence[MessageRecord],
    partial_reply: str,
    budget_tokens: int,
    count: Callable[[str], int],
    memory: PromptMemory,
    book: Lorebook | None,
    shed: int,
) -> AssembledPrompt:
    """One attempt; `shed` drops recall (1+), the lorebook (2+) and the summary (3)."""
    spoken = [m for m in history if m.content.strip()]
    lore: list[Entry] = []
    if book is not None and shed < 2:
        lore = select_entries(
            book,
            [m.content for m in spoken],
            count_tokens=count,
            token_budget=memory.lore_budget_tokens,
        )
    system = system_prompt(character, chat, lore=lore)
    summary = memory.summary if shed < 3 else None
    remembered = memory_text(memory.pinned, summary)
    after_history = substitute(
        character.post_history_instructions, char=character.name, user=chat.persona_name
    ).strip()
    tail = [ChatTurn("system", after_history)] if after_history else []
    if partial_reply:
        tail.append(ChatTurn("assistant", partial_reply))
    recall_reserve = memory.recall_budget_tokens if shed < 1 and memory.recalled else 0
    fixed = _cost(count, remembered) + sum(_cost(count, t.content) for t in tail)
    turns = fit_history(
        system,
        history_turns(spoken),
        budget_tokens=budget_tokens - fixed - recall_reserve,
        count=count,
    )
    head, kept_turns = turns[:1] if system else [], turns[1:] if system else turns
    kept = spoken[len(spoken) - len(kept_turns) :]
    first_kept = kept[0].position if kept else None
    recalled: list[MessageRecord] = []
    recalled_cost = 0
    for message in memory.recalled if recall_reserve else ():
        if first_kept is not None and message.position >= first_kept:
            continue
        cost = count(message.content) + 2
        if recalled_cost + cost + DEFAULT_TURN_OVERHEAD > recall_reserve:
            continue
        recalled.append(message)
        recalled_cost += cost
    recalled.sort(key=lambda m: m.position)
    body: list[ChatTurn] = list(head)
    if remembered:
        body.append(ChatTurn("system", remembered))
    recall_turn = recalled_text(character, chat, recalled)
    history_part = list(kept_turns)
    if recall_turn:
        history_part.insert(max(0, len(history_part) - 1), ChatTurn("system", recall_turn))
    final = body + history_part + tail
    record = {
        "budget": budget_tokens,
        "tokens": sum(_cost(count, t.content) for t in final),
        "system": _cost(count, system),
        "lore": [[lore_key(book, e), count(e.content)] for e in lore] if book else [],
        "pinned": [[m.id, count(m.content)] for m in memory.pinned],
        "summary": [summary.id, count(summary.content)] if summary else None,
        "recalled": [[m.id, count(m.content)] for m in recalled],
        "history": {
            "first": kept[0].id if kept else None,
            "count": len(kept),
            "tokens": sum(_cost(count, t.content) for t in kept_turns),
        },
        "post_history": _cost(count, after_history),
        "left_out": {
            "history_before_position": first_kept if first_kept else None,
            "history_loaded": len(spoken) - len(kept),
            "recalled": [m.id for m in memory.recalled if m not in recalled],
            "lore": shed >= 2 and book is not None,
            "summary": memory.summary.id if memory.summary and summary is None else None,
        },
    }
    return AssembledPrompt(final, record)


def build_prompt(
    character: CharacterRecord,
    chat: ChatRecord,
    history: Sequence[MessageRecord],
    *,
    partial_reply: str,
    budget_tokens: int,
    count: Callable[[str], int],
    memory: PromptMemory | None = None,
) -> list[ChatTurn]:
    """The turns of `assemble_prompt` (without the record of what went in)."""
    return assemble_prompt(
        character,
        chat,
        history,
        partial_reply=partial_reply,
        budget_tokens=budget_tokens,
        count=count,
        memory=memory,
    ).turns
