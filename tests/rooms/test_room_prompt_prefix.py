"""Prompts for many speakers: every character of a room reads the same start (the
room's part and the named history); only the end (the speaker's own definition and
"Write NAME's next reply.") differs, so the prompt cache serves the next speaker."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from personae.services.prompting import PromptMemory
from personae.services.room_prompting import assemble_room_prompt, cast_of, stop_sequences
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _character(character_id: str, name: str, **values: object) -> CharacterRecord:
    base: dict[str, object] = {f: None for f in CharacterRecord.__dataclass_fields__}
    base.update(
        id=character_id, owner_id="o", owner_username="o", name=name, tagline=f"{name} the bold",
        description=f"SECRET definition of {name}.", personality=f"{name} is curious.",
        scenario="A tavern at night.", first_message="", alternate_greetings=[],
        example_dialogues="", system_prompt="", post_history_instructions="",
        creator_notes="", tags=[], avatar=None, visibility="private", extensions={},
        nickname="", creator="", character_version="", group_only_greetings=[],
        card=None, chat_count=0, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    base.update(values)
    return CharacterRecord(**base)  # type: ignore[arg-type]


CHAT = ChatRecord(
    "room", "o", "a", "Ada", "The room", "Sam", "", 0, None, NOW, NOW, kind="room"
)  # fmt: skip


def _message(position: int, role: str, speaker: str, content: str) -> MessageRecord:
    return MessageRecord(
        f"m{position}", "room", "u" if role == "user" else None, role, position, 0, True,
        None, None, None, content, "complete", None, False, None, {"speaker": speaker},
        None, None, NOW, NOW,
    )  # fmt: skip


HISTORY = [
    _message(0, "assistant", "Ada", "Welcome, travellers."),
    _message(1, "user", "Sam", "Hello Ada and Brom!"),
    _message(2, "user", "Kim", "Brom, what is that sword?"),
    _message(3, "assistant", "Ada", "It is his pride."),
]


def test_two_characters_share_the_prompt_up_to_the_end_of_the_history() -> None:
    ada, brom = _character("a", "Ada"), _character("b", "Brom")
    cast = cast_of([ada, brom], ["Sam", "Kim"])
    prompts = [
        assemble_room_prompt(
            speaker, CHAT, HISTORY, cast, partial_reply="", budget_tokens=4000,
            count=lambda text: len(text.encode()), memory=PromptMemory(),
        ).turns
        for speaker in (ada, brom)
    ]  # fmt: skip
    first, second = prompts
    # The shared start: the room's part and the four named lines of the history.
    assert len(first) == len(second) == 1 + len(HISTORY) + 1
    assert first[:-1] == second[:-1]
    assert [t.content for t in first[1:-1]] == [
        "Ada: Welcome, travellers.",
        "Sam: Hello Ada and Brom!",
        "Kim: Brom, what is that sword?",
        "Ada: It is his pride.",
    ]
    assert [t.role for t in first[1:-1]] == ["assistant", "user", "user", "assistant"]
    # The room's part names every character with its short description, not its
    # definition; each speaker's own definition is only in its own end.
    assert "Ada the bold" in first[0].content and "Brom the bold" in first[0].content
    assert "SECRET" not in first[0].content
    assert "SECRET definition of Ada" in first[-1].content
    assert "Write Ada's next reply" in first[-1].content
    assert "SECRET definition of Brom" in second[-1].content
    assert "Ada" not in second[-1].content.replace("Sam", "")
    assert second[-1].content != first[-1].content


def test_a_speaker_stops_where_someone_else_would_speak() -> None:
    cast = cast_of([_character("a", "Ada"), _character("b", "Brom")], ["Sam"])
    assert stop_sequences(cast, "Ada") == ("\nSam:", "\nBrom:")


def test_an_unchanged_room_gives_the_same_prefix_turn_after_turn() -> None:
    ada = _character("a", "Ada")
    cast = cast_of([ada, _character("b", "Brom")], ["Sam"])
    before = assemble_room_prompt(
        ada, CHAT, HISTORY[:2], cast, partial_reply="", budget_tokens=4000,
        count=lambda text: len(text.encode()),
    ).turns  # fmt: skip
    after = assemble_room_prompt(
        ada, dataclasses.replace(CHAT), HISTORY, cast, partial_reply="", budget_tokens=4000,
        count=lambda text: len(text.encode()),
    ).turns  # fmt: skip
    assert after[: len(before) - 1] == before[:-1]
