"""The prompt builder as a pure function: order, lorebook, persona, budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from memory_helpers import BOOK

from personae.cards.lorebook import parse_book
from personae.errors import ContextTooLong
from personae.llm.prompt import DEFAULT_TURN_OVERHEAD, approx_tokens
from personae.services.prompting import PromptMemory, assemble_prompt
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.repos.memories import MemoryRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _character(**values: object) -> CharacterRecord:
    base = {f: None for f in CharacterRecord.__dataclass_fields__}
    base.update(
        id="ch",
        owner_id="o",
        name="Ilsa",
        tagline="",
        description="Ilsa greets {{user}}.",
        personality="",
        scenario="",
        first_message="",
        alternate_greetings=[],
        example_dialogues="",
        system_prompt="",
        post_history_instructions="",
        creator_notes="",
        tags=[],
        avatar=None,
        visibility="public",
        extensions={},
        character_book=parse_book(BOOK).to_json(),
        created_at=NOW,
        updated_at=NOW,
    )
    base.update(values)
    return CharacterRecord(**base)  # type: ignore[arg-type]


def _chat(persona: str = "Sam", description: str = "") -> ChatRecord:
    return ChatRecord("c", "o", "ch", "Ilsa", "t", persona, description, 0, None, NOW, NOW)


def _message(position: int, content: str) -> MessageRecord:
    return MessageRecord(
        f"m{position}",
        "c",
        None,
        "user" if position % 2 else "assistant",
        position,
        0,
        True,
        None,
        None,
        None,
        content,
        "complete",
        None,
        False,
        None,
        {},
        None,
        None,
        NOW,
        NOW,
    )


def _memory(memory_id: str, kind: str, content: str) -> MemoryRecord:
    return MemoryRecord(memory_id, "c", kind, content, None, None, NOW, NOW, None)


def test_lorebook_entries_trigger_and_sit_around_the_description() -> None:
    history = [_message(0, "Hello."), _message(1, "Is the LIGHTHOUSE working?")]
    turns = assemble_prompt(
        _character(), _chat(), history, partial_reply="", budget_tokens=4000, count=approx_tokens
    ).turns
    system = turns[0].content
    assert system.index("LORE-ALWAYS") < system.index("Ilsa greets Sam.")
    assert system.index("Ilsa greets Sam.") < system.index("LORE-LIGHTHOUSE")
    assert "LORE-KRAKEN" not in system


def test_persona_fills_user_and_is_described() -> None:
    prompt = assemble_prompt(
        _character(),
        _chat("Morgan", "A tired sailor, {{char}}'s old friend."),
        [_message(1, "Hi")],
        partial_reply="",
        budget_tokens=4000,
        count=approx_tokens,
    )
    system = prompt.turns[0].content
    assert "Ilsa greets Morgan." in system
    assert "About Morgan: A tired sailor, Ilsa's old friend." in system


def test_order_is_fixed_and_the_prefix_stays_the_same_next_turn() -> None:
    memory = PromptMemory(
        pinned=[_memory("p1", "pinned", "PINNED-FACT")],
        summary=_memory("s1", "summary", "SUMMARY-TEXT"),
        recalled=[_message(3, "RECALLED-OLD")],
        recall_budget_tokens=100,
    )
    history = [_message(i, f"line {i} " * 30) for i in range(40)]
    first = assemble_prompt(
        _character(),
        _chat(),
        history,
        partial_reply="",
        budget_tokens=1200,
        count=approx_tokens,
        memory=memory,
    )
    roles = [t.content.split("\n")[0] for t in first.turns[:2]]
    assert "PINNED-FACT" in first.turns[1].content and "SUMMARY-TEXT" in first.turns[1].content
    assert "RECALLED-OLD" in first.turns[-2].content, roles  # just before the newest message
    assert first.record["recalled"] == [["m3", approx_tokens("RECALLED-OLD")]]
    assert first.record["left_out"]["history_before_position"] > 0
    more = [*history, _message(40, "next " * 30), _message(41, "and next " * 20)]
    second = assemble_prompt(
        _character(),
        _chat(),
        more,
        partial_reply="",
        budget_tokens=1200,
        count=approx_tokens,
        memory=memory,
    )
    stable = [t for t in first.turns[:-2]]
    assert second.turns[: len(stable)] == stable


@pytest.mark.parametrize("seed", range(60))
def test_a_prompt_never_exceeds_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([1, 2, 5, 30, 200, 1000])
    history = [_message(i, "word " * rng.randint(1, 120)) for i in range(size)]
    memory = PromptMemory(
        pinned=[
            _memory(f"p{i}", "pinned", "fact " * rng.randint(1, 40))
            for i in range(rng.randint(0, 15))
        ],
        summary=_memory("s", "summary", "sum " * rng.randint(1, 200))
        if rng.random() < 0.7
        else None,
        recalled=[_message(i, "old " * rng.randint(1, 60)) for i in range(min(3, size))],
        lore_budget_tokens=rng.choice([0, 50, 500]),
        recall_budget_tokens=rng.choice([0, 64, 256]),
    )
    budget = rng.choice([700, 1000, 2048, 4096])
    try:
        prompt = assemble_prompt(
            _character(),
            _chat(),
            history,
            partial_reply="half " * rng.randint(0, 20),
            budget_tokens=budget,
            count=approx_tokens,
            memory=memory,
        )
    except ContextTooLong:
        return  # the newest message and the pinned memories alone are too long
    used = sum(approx_tokens(t.content) + DEFAULT_TURN_OVERHEAD for t in prompt.turns)
    assert used <= budget
    assert prompt.record["tokens"] == used
    assert prompt.turns[-1].content.startswith("half") or "word" in prompt.turns[-1].content
