"""Lorebook activation: keys in recent messages, selective logic, constants, order, budget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from card_samples import LOREBOOK

from personae.cards.lorebook import (
    Entry,
    Lorebook,
    book_to_card,
    parse_book,
    parse_lorebook_file,
    select_entries,
)
from personae.errors import InvalidCard


def words(text: str) -> int:
    return len(text.split())


def book(*entries: Entry, **options: Any) -> Lorebook:
    return Lorebook(entries=entries, **options)


def entry(content: str, *keys: str, **options: Any) -> Entry:
    return Entry(keys=keys, content=content, **options)


def contents(selected: list[Entry]) -> list[str]:
    return [e.content for e in selected]


def test_a_key_in_the_last_messages_triggers_its_entry_case_insensitively() -> None:
    lore = book(entry("dragon lore", "Dragon"), entry("elf lore", "elf"))
    assert contents(select_entries(lore, ["a DRAGON appears"], count_tokens=words)) == [
        "dragon lore"
    ]


def test_only_the_last_scan_depth_messages_are_scanned() -> None:
    lore = book(entry("dragon lore", "dragon"), scan_depth=2)
    history = ["the dragon sleeps", "quiet", "still quiet"]
    assert select_entries(lore, history, count_tokens=words) == []
    assert contents(select_entries(lore, history[:2], count_tokens=words)) == ["dragon lore"]
    assert (
        select_entries(book(entry("x", "dragon"), scan_depth=0), history, count_tokens=words) == []
    )


def test_the_default_scan_depth_applies_when_the_book_sets_none() -> None:
    lore = book(entry("dragon lore", "dragon"))
    history = ["dragon", "a", "b"]
    assert select_entries(lore, history, count_tokens=words) == []
    assert select_entries(lore, history, count_tokens=words, scan_depth=3) != []


def test_case_sensitive_entries_match_only_the_exact_case() -> None:
    lore = book(entry("rose lore", "Rose", case_sensitive=True))
    assert select_entries(lore, ["a rose"], count_tokens=words) == []
    assert contents(select_entries(lore, ["Rose said"], count_tokens=words)) == ["rose lore"]


def test_regex_keys_written_with_slashes_use_their_own_flags() -> None:
    lore = book(entry("sable", r"/sabl(e|es)\b/i"), entry("strict", r"/^Exact$/m"))
    assert contents(select_entries(lore, ["to SABLES we go"], count_tokens=words)) == ["sable"]
    assert contents(select_entries(lore, ["line\nExact\nmore"], count_tokens=words)) == ["strict"]
    assert select_entries(lore, ["exact"], count_tokens=words) == []


def test_use_regex_makes_plain_keys_patterns_and_broken_ones_match_nothing() -> None:
    lore = book(
        entry("numbers", r"\d{3}", use_regex=True),
        entry("broken", "([", use_regex=True),
        entry("literal", "a.c"),
    )
    assert contents(select_entries(lore, ["code 123 abc"], count_tokens=words)) == ["numbers"]
    assert contents(select_entries(lore, ["a.c"], count_tokens=words)) == ["literal"]


@pytest.mark.parametrize(
    ("logic", "text", "fires"),
    [
        ("and_any", "dragon and gold", True),
        ("and_any", "dragon alone", False),
        ("and_all", "dragon gold cave", True),
        ("and_all", "dragon gold", False),
        ("not_any", "dragon alone", True),
        ("not_any", "dragon cave", False),
        ("not_all", "dragon gold", True),
        ("not_all", "dragon gold cave", False),
    ],
)
def test_selective_logic_with_secondary_keys(logic: Any, text: str, fires: bool) -> None:
    lore = book(
        entry(
            "hoard",
            "dragon",
            secondary_keys=("gold", "cave"),
            selective=True,
            selective_logic=logic,
        )
    )
    assert bool(select_entries(lore, [text], count_tokens=words)) is fires


def test_secondary_keys_are_ignored_unless_the_entry_is_selective() -> None:
    lore = book(entry("hoard", "dragon", secondary_keys=("gold",)))
    assert contents(select_entries(lore, ["dragon"], count_tokens=words)) == ["hoard"]


def test_constant_entries_are_always_in_and_disabled_ones_never() -> None:
    lore = book(
        entry("always", constant=True),
        entry("off", "dragon", enabled=False),
        entry("off constant", enabled=False, constant=True),
    )
    assert contents(select_entries(lore, ["dragon"], count_tokens=words)) == ["always"]
    assert contents(select_entries(lore, [], count_tokens=words)) == ["always"]


def test_entries_come_in_insertion_order() -> None:
    lore = book(
        entry("third", "a", insertion_order=30),
        entry("first", "a", insertion_order=10),
        entry("second", constant=True, insertion_order=20),
    )
    assert contents(select_entries(lore, ["a"], count_tokens=words)) == ["first", "second", "third"]


def test_the_token_budget_keeps_constants_then_higher_priority() -> None:
    lore = book(
        entry("one two three", "a", priority=1, insertion_order=1),
        entry("four five", "a", priority=9, insertion_order=2),
        entry("six seven", constant=True, insertion_order=3),
        token_budget=5,
    )
    # constant (2) + priority 9 (2) fit; the priority-1 entry (3) does not.
    assert contents(select_entries(lore, ["a"], count_tokens=words)) == ["four five", "six seven"]
    unlimited = replace(lore, token_budget=None)
    assert len(select_entries(unlimited, ["a"], count_tokens=words)) == 3
    assert len(select_entries(unlimited, ["a"], count_tokens=words, token_budget=2)) == 1


def test_a_smaller_entry_still_fits_after_a_large_one_is_left_out() -> None:
    lore = book(
        entry("a b c d e f", "x", priority=5),
        entry("g", "x", priority=1),
        token_budget=3,
    )
    assert contents(select_entries(lore, ["x"], count_tokens=words)) == ["g"]


def test_recursive_scanning_lets_entries_trigger_entries() -> None:
    chain = (entry("the dragon guards gold", "cave"), entry("gold is cursed", "gold"))
    assert contents(select_entries(book(*chain), ["cave"], count_tokens=words)) == [
        "the dragon guards gold"
    ]
    recursive = book(*chain, recursive_scanning=True)
    assert len(select_entries(recursive, ["cave"], count_tokens=words)) == 2


def test_blank_keys_never_match() -> None:
    assert select_entries(book(entry("x", "", "  ")), ["anything"], count_tokens=words) == []


def test_a_card_book_parses_into_the_normalised_form_and_back() -> None:
    lore = parse_book(LOREBOOK)
    assert lore.scan_depth == 3 and lore.token_budget == 200
    first, second = lore.entries
    assert first.keys == ("Port Sable", "/sabl(e|es)\\b/i")
    assert first.selective and first.selective_logic == "and_any"
    assert first.secondary_keys == ("harbour", "dock") and first.priority == 5
    assert second.constant and second.position == "after_char"
    assert Lorebook.from_json(lore.to_json()) == lore
    assert parse_book(book_to_card(lore)) == lore
    selected = select_entries(lore, ["We dock at port sable"], count_tokens=words)
    assert contents(selected) == [first.content, second.content]


def test_sillytavern_selective_logic_numbers_are_read() -> None:
    raw = {"entries": [{"keys": ["a"], "content": "c", "extensions": {"selectiveLogic": 2}}]}
    assert parse_book(raw).entries[0].selective_logic == "not_any"
    card = book_to_card(parse_book(raw))
    assert card["entries"][0]["extensions"]["selectiveLogic"] == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "character_book: must be an object"),
        ({"entries": {}}, "entries: must be a list"),
        ({"entries": [{"keys": "dragon"}]}, r"entries\[0\].keys: must be a list of strings"),
        ({"entries": [{"keys": [], "enabled": "yes"}]}, "enabled: must be true or false"),
        ({"entries": [{"keys": [], "insertion_order": "1"}]}, "insertion_order: must be a number"),
        ({"scan_depth": -1}, "scan_depth"),
        ({"entries": [{"extensions": {"selectiveLogic": 9}}]}, "selectiveLogic"),
    ],
)
def test_wrong_types_in_a_book_are_refused_by_name(raw: Any, message: str) -> None:
    with pytest.raises(InvalidCard, match=message):
        parse_book(raw)


def test_a_standalone_lorebook_v3_file_is_read() -> None:
    lore = parse_lorebook_file({"spec": "lorebook_v3", "data": LOREBOOK})
    assert len(lore.entries) == 2
    with pytest.raises(InvalidCard, match="not a lorebook"):
        parse_lorebook_file({"spec": "chara_card_v2"})
