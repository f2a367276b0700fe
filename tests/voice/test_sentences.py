"""Cutting a reply into sentences to speak, and what of each is said."""

from __future__ import annotations

from personae.services.speech import speakable_pieces
from personae.voice.sentences import SentenceSplitter, Speakable, pieces


def _spoken(text: str) -> list[str]:
    return speakable_pieces(text)


def test_a_growing_text_gives_each_sentence_once_after_the_text_went_past_it() -> None:
    splitter = SentenceSplitter()
    text = "Hello there. The tea"
    # "Hello there." ends at 12; the text must have gone on past it (checked by the gate).
    assert splitter.feed(text, settled=12) == []
    first = splitter.feed(text, settled=13)
    assert [s.text for s in first] == ["Hello there."]
    text += " is warm! And"
    assert [s.text for s in splitter.feed(text, settled=len(text))] == [" The tea is warm!"]
    assert splitter.feed(text, settled=len(text)) == []
    assert [s.text for s in splitter.finish(text + " more")] == [" And more"]
    assert [(s.start, s.end) for s in first] == [(0, 12)]


def test_abbreviations_initials_and_list_numbers_do_not_end_a_sentence() -> None:
    assert _spoken("Mr. Holmes met J. Watson. Then tea.") == [
        "Mr. Holmes met J. Watson.",
        "Then tea.",
    ]
    assert _spoken("Choose:\n1. Tea\n2. Cake") == ["Choose:", "Tea", "Cake"]


def test_actions_markdown_and_links_are_not_spoken() -> None:
    text = (
        "*She smiles. Then she waves.* Hello, **friend**! I *really* like `tea`.\n"
        "# Notes\n- see [the map](https://example.com/map) or https://example.com\n"
        "```\nprint('x')\n```\nBye."
    )
    assert _spoken(text) == [
        "Hello, friend!",
        "I really like tea.",
        "Notes",
        "see the map or",
        "Bye.",
    ]
    assert _spoken("*nods slowly*") == []
    assert _spoken("...") == []


def test_a_long_sentence_is_spoken_in_pieces_cut_at_commas() -> None:
    sentence = ", ".join(f"the lantern number {n} glows" for n in range(40)) + "."
    parts = pieces(Speakable().say(sentence))
    assert len(parts) > 1
    assert all(len(part) <= 300 for part in parts)
    assert all(part.endswith((",", ".")) for part in parts)
    assert " ".join(parts) == sentence
