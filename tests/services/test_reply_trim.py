"""Trimming a reply the token limit cut to its last whole sentence."""

from __future__ import annotations

import time

import pytest

from personae.services.job_state import Draft
from personae.services.reply_trim import trim_cut_draft, trim_to_sentence


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        # The reply from the issue: an ellipsis ends it, the paragraph after is cut.
        ("…That's how I make a living...\n\nIt", "…That's how I make a living..."),
        ("She nods. Then she", "She nods."),
        ("Really?! You came back. And", "Really?! You came back."),
        ("Wait... what? Are you", "Wait... what?"),
        # Closing quotes after the full stop belong to the sentence.
        ('"I will go." She turns to', '"I will go."'),
        ("'Fine,' he said. 'Then", "'Fine,' he said."),
        ("“It is late.” The clock", "“It is late.”"),
        # Markers left open are closed again.
        ('"I will go. And then', '"I will go."'),
        ("“It is late. The clock", "“It is late.”"),
        ('*She says "Hello. And', '*She says "Hello."*'),
        ("(She laughs. Then", "(She laughs.)"),
        ("「行こう。そして", "「行こう。」"),
        # Role-play actions.
        ("*She walks to the door. She opens", "*She walks to the door.*"),
        ("*waves* Hi there. *sits down* And", "*waves* Hi there. *sits down*"),
        ('"Hello." *waves* And she', '"Hello." *waves*'),
        ("*She smiles.* Then she", "*She smiles.*"),
        ("*smiles*\n\nHello there, how", "*smiles*"),
        # CJK full stops need no space after them.
        ("她笑了。然后她", "她笑了。"),
        ("今日は晴れです！明日は", "今日は晴れです！"),
        # Not ends: abbreviations, initials, decimals, bold inside a sentence.
        ("He met Mr. Holmes and", "He met Mr. Holmes and"),
        ("Ask J. Smith. He knows the", "Ask J. Smith."),
        ("It is 3.5 km. We walk", "It is 3.5 km."),
        ("a **bold** move and", "a **bold** move and"),
        # No sentence end at all: kept as it is.
        ("no end at all here", "no end at all here"),
        ("", ""),
        # Ending at a sentence: nothing to cut.
        ("All done.", "All done."),
    ],
)
def test_a_cut_reply_keeps_its_last_whole_sentence(text: str, kept: str) -> None:
    assert trim_to_sentence(text).text == kept


def test_text_before_the_floor_is_never_cut() -> None:
    old = "The river is wide. And the mill"
    # The continuation wrote no sentence end: kept as it is.
    assert trim_to_sentence(old + " stands still and", len(old)).text == old + " stands still and"
    # It did: the cut is after the floor.
    done = trim_to_sentence(old + " stands still. The wheel", len(old))
    assert done.text == old + " stands still."
    assert done.cut == len(old + " stands still.")
    # A line break right at the floor is no end of what the continuation wrote.
    assert trim_to_sentence("Hello.\n\nShe", len("Hello.")).text == "Hello.\n\nShe"


def test_the_cut_is_kept_in_the_generation_record() -> None:
    draft = Draft(text="She nods. Then she", labels={})
    trim_cut_draft(draft, 0)
    assert (draft.text, draft.cut_short) == ("She nods.", True)
    assert draft.generation["trimmed"] == " Then she"
    whole = Draft(text="no end", labels={})
    trim_cut_draft(whole, 0)
    assert (whole.text, whole.cut_short, "trimmed" in whole.generation) == ("no end", True, False)


def _fastest_s(text: str) -> float:
    """The best of three runs (a loaded machine slows some runs, never all)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        trim_to_sentence(text)
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.mark.parametrize(
    "unit", ["*", "a.", "a. ", '"', "“", "(", ". ", "Mr. ", "...", "\n", "*a* ", "。"]
)
def test_the_time_is_linear_whatever_the_text(unit: str) -> None:
    """Model output is trimmed inline: no input may make it slow (no backtracking)."""
    small_s = _fastest_s(unit * 2_000)
    large_s = _fastest_s(unit * 40_000)
    # 20 times the text: far below the 400 times a quadratic pass would take.
    assert large_s < max(small_s, 0.002) * 100, (unit, small_s, large_s)
