from __future__ import annotations

from itertools import pairwise

import pytest

from personae.errors import ContextTooLong
from personae.llm.base import ChatTurn
from personae.llm.prompt import approx_tokens, fit_history


def word_count(text: str) -> int:
    return len(text.split())


def conversation(turns: int, words: int = 10) -> list[ChatTurn]:
    """Alternating user/assistant turns of `words` words each, numbered in the text."""
    return [
        ChatTurn("user" if index % 2 == 0 else "assistant", f"t{index} " + "w " * (words - 1))
        for index in range(turns)
    ]


def fit(history: list[ChatTurn], budget: int, step: int = 8) -> list[ChatTurn]:
    return fit_history(
        "be kind", history, budget_tokens=budget, count=word_count, step=step, turn_overhead=0
    )


def test_everything_kept_when_it_fits() -> None:
    history = conversation(6)
    kept = fit(history, budget=1000)
    assert kept == [ChatTurn("system", "be kind"), *history]


def test_empty_system_prompt_adds_no_turn() -> None:
    history = conversation(2)
    kept = fit_history("", history, budget_tokens=100, count=word_count)
    assert kept == history


def test_cuts_old_turns_in_steps_and_keeps_system() -> None:
    history = conversation(20)  # 200 tokens + 2 for the system prompt
    kept = fit(history, budget=150)
    assert kept[0] == ChatTurn("system", "be kind")
    # 15 turns would fit, but the cut is aligned on 8: turns 8..19 are kept.
    assert kept[1:] == history[8:]
    assert kept[-1] == history[-1]


def test_kept_prefix_stays_put_as_the_chat_grows() -> None:
    """The first kept turn moves only every `step` turns, so the prompt cache stays warm."""
    history = conversation(40)
    firsts = []
    for length in range(20, 41):
        kept = fit(history[:length], budget=150)
        assert kept[-1] == history[length - 1]
        assert sum(word_count(turn.content) for turn in kept) <= 150
        firsts.append(kept[1])
    changes = sum(1 for before, after in pairwise(firsts) if before != after)
    assert changes <= 3  # 21 growths, the start moved at most every 8 turns


def test_cuts_turn_by_turn_when_no_aligned_cut_fits() -> None:
    history = conversation(12)
    history[-1] = ChatTurn("user", "x " * 100)
    # From turn 8 the history takes 130 tokens, from 10 it takes 110: with a budget
    # of 114 (112 after the system prompt) no aligned cut fits, so it cuts finer.
    assert fit(history, budget=114)[1:] == history[10:]
    assert fit(history, budget=132)[1:] == history[8:]


def test_newest_turn_that_cannot_fit_raises_context_too_long() -> None:
    history = [*conversation(3), ChatTurn("user", "x " * 500)]
    with pytest.raises(ContextTooLong):
        fit(history, budget=100)


def test_turn_overhead_is_counted() -> None:
    history = conversation(16, words=1)
    assert len(fit_history("", history, budget_tokens=16, count=word_count, turn_overhead=0)) == 16
    kept = fit_history("", history, budget_tokens=16, count=word_count, turn_overhead=1, step=4)
    assert kept == history[8:]


def test_step_must_be_positive() -> None:
    with pytest.raises(ValueError):
        fit([], budget=10, step=0)


def test_approx_tokens() -> None:
    assert approx_tokens("") == 1
    assert approx_tokens("a" * 400) == 101
    # Multi-byte scripts count by bytes: 100 CJK characters are 300 bytes.
    assert approx_tokens("字" * 100) == 76
