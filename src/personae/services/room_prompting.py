"""A room's prompt: many speakers, one shared prefix.

Every character of a room reads the same start: the room's part (its scenarios and a
short description of every character, in list order), the memory, then the history
with each line named ("Name: text"; people's lines as user turns, every character's
as assistant turns). Only the end differs: the speaker's own definition and "Write
NAME's next reply." So when the second character answers right after the first, the
backend's prompt cache holds everything up to the end of the history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from personae.errors import ContextTooLong
from personae.llm.base import ChatTurn
from personae.llm.prompt import DEFAULT_TURN_OVERHEAD, fit_history
from personae.services.macros import substitute
from personae.services.prompting import AssembledPrompt, PromptMemory, memory_text, system_prompt
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord

_SHORT = 300
_TAIL_BLOCK = 256
SPEAKER = "speaker"


@dataclass(frozen=True)
class RoomCast:
    """The characters of a room as its prompts show them, in list order."""

    names: tuple[str, ...]
    shorts: tuple[str, ...]
    scenarios: tuple[str, ...]
    # People's persona names seen in the room (stop sequences).
    people: tuple[str, ...] = ()


def cast_of(characters: Sequence[CharacterRecord], people: Sequence[str] = ()) -> RoomCast:
    shorts = tuple(
        (c.tagline or c.description or c.personality).strip()[:_SHORT] for c in characters
    )
    scenarios = tuple(dict.fromkeys(c.scenario.strip() for c in characters if c.scenario.strip()))
    return RoomCast(tuple(c.name for c in characters), shorts, scenarios, tuple(people))


def room_text(cast: RoomCast) -> str:
    """The shared start: the same for every character of the room."""
    parts = [
        "This is a group conversation between several people and characters. Each line "
        "starts with the name of who speaks."
    ]
    parts += [f"Scenario: {scenario}" for scenario in cast.scenarios]
    lines = [
        f"- {name}: {short}" if short else f"- {name}"
        for name, short in zip(cast.names, cast.shorts, strict=True)
    ]
    parts.append("The characters:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def named_turns(history: Sequence[MessageRecord], chat: ChatRecord) -> list[ChatTurn]:
    """Each message as "Name: text" (people as user turns, characters as assistant
    turns, whoever speaks next): byte-identical for every speaker."""
    turns = []
    for message in history:
        if not message.content.strip():
            continue
        default = chat.persona_name if message.role == "user" else chat.character_name
        name = str(message.labels.get(SPEAKER) or default)
        text = f"{name}: {message.content}"
        turns.append(
            ChatTurn("user", text) if message.role == "user" else ChatTurn("assistant", text)
        )
    return turns


def speaker_text(character: CharacterRecord, chat: ChatRecord) -> str:
    """The end, the speaker's own: its definition and what to write."""
    definition = system_prompt(character, chat)
    after = substitute(
        character.post_history_instructions, char=character.name, user=chat.persona_name
    ).strip()
    ask = (
        f"Write {character.name}'s next reply in the conversation above, as {character.name} "
        f"alone, in a few sentences, without the name in front."
    )
    return "\n\n".join(part for part in (definition, after, ask) if part)


def assemble_room_prompt(
    character: CharacterRecord,
    chat: ChatRecord,
    history: Sequence[MessageRecord],
    cast: RoomCast,
    *,
    partial_reply: str,
    budget_tokens: int,
    count: Callable[[str], int],
    memory: PromptMemory | None = None,
) -> AssembledPrompt:
    """The prompt of one character's reply in a room (the lorebook and recall are not
    used in rooms: they differ per character and per turn, and would split the prefix)."""
    memory = memory or PromptMemory()
    shared = room_text(cast)
    remembered = memory_text(memory.pinned, memory.summary)
    tail = [ChatTurn("system", speaker_text(character, chat))]
    if partial_reply:
        tail.append(ChatTurn("assistant", partial_reply))
    fixed = sum(count(t.content) + DEFAULT_TURN_OVERHEAD for t in tail)
    fixed += count(remembered) + DEFAULT_TURN_OVERHEAD if remembered else 0
    # Rounded up, so characters whose definitions differ a little keep the same history
    # when old turns must go (the shared prefix holds).
    fixed = -(-fixed // _TAIL_BLOCK) * _TAIL_BLOCK
    named = named_turns(history, chat)
    try:
        turns = fit_history(shared, named, budget_tokens=budget_tokens - fixed, count=count)
    except ContextTooLong:
        turns = fit_history(shared, named[-1:], budget_tokens=budget_tokens - fixed, count=count)
    head, kept = turns[:1], turns[1:]
    body = list(head) + ([ChatTurn("system", remembered)] if remembered else [])
    final = body + kept + tail
    record = {
        "budget": budget_tokens,
        "tokens": sum(count(t.content) + DEFAULT_TURN_OVERHEAD for t in final),
        "room": {"shared": count(shared), "speaker": count(tail[0].content)},
        "history": {"count": len(kept), "left_out": len(named) - len(kept)},
    }
    return AssembledPrompt(final, record)


def stop_sequences(cast: RoomCast, speaker: str) -> tuple[str, ...]:
    """Another speaker's name at a line's start ends the reply (at most four: what
    OpenAI-compatible servers take)."""
    others = [name for name in (*cast.people, *cast.names) if name != speaker]
    return tuple(dict.fromkeys(f"\n{name}:" for name in others))[:4]
