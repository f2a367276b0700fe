"""Fitting a conversation into the model's context.

Pure functions: the caller passes a synchronous token counter (counts are
computed ahead, e.g. stored with each message), so this never awaits a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from personae.errors import ContextTooLong
from personae.llm.base import ChatTurn

# Tokens a chat template adds around each message, e.g. SmolLM2's ChatML
# `<|im_start|>user\n ... <|im_end|>\n` is 5 tokens besides the content.
DEFAULT_TURN_OVERHEAD = 5


def approx_tokens(text: str) -> int:
    """Estimate the tokens of `text` without a tokenizer (about 4 bytes of UTF-8 each).

    Bytes rather than characters so that scripts with many bytes per character
    (CJK, emoji), which also take more tokens each, are not underestimated.
    """
    return len(text.encode("utf-8")) // 4 + 1


def fit_history(
    system: str,
    history: Sequence[ChatTurn],
    *,
    budget_tokens: int,
    count: Callable[[str], int],
    step: int = 8,
    turn_overhead: int = DEFAULT_TURN_OVERHEAD,
) -> list[ChatTurn]:
    """Return the system turn plus the most recent turns of `history` that fit the budget.

    When old turns must go, they go `step` at a time: the first kept turn sits at
    a multiple of `step` in `history`, so the kept prefix stays the same for
    several exchanges and the backend's prompt cache stays warm. Only when no
    such cut fits is the cut made turn by turn. The newest turn is always kept;
    if it does not fit with the system prompt, `ContextTooLong` is raised.
    """
    if step < 1:
        raise ValueError("step must be at least 1")
    head = [ChatTurn("system", system)] if system else []
    used = sum(count(turn.content) + turn_overhead for turn in head)
    if not history:
        return head
    costs = [count(turn.content) + turn_overhead for turn in history]
    # suffix[i] = tokens of history[i:]
    suffix = [0] * (len(costs) + 1)
    for index in range(len(costs) - 1, -1, -1):
        suffix[index] = suffix[index + 1] + costs[index]
    newest = len(history) - 1
    if used + suffix[newest] > budget_tokens:
        raise ContextTooLong(
            f"the newest message and the character's instructions take "
            f"{used + suffix[newest]} tokens, more than the {budget_tokens} available"
        )
    start = _first_fitting_start(suffix, budget_tokens - used, step)
    return head + list(history[start:])


def _first_fitting_start(suffix: list[int], budget: int, step: int) -> int:
    newest = len(suffix) - 2
    for start in range(0, newest + 1, step):
        if suffix[start] <= budget:
            return start
    # No aligned cut fits: cut finely after the last aligned start.
    for start in range(newest - newest % step + 1, newest + 1):
        if suffix[start] <= budget:
            return start
    return newest
