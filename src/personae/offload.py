"""CPU-bound work on what users sent, run off the event loop within a time budget.

A thread keeps the event loop free only for work that lets go of the GIL now
and then. Pure Python does (every few milliseconds); C code that holds it does
not: Python's `re` inside one match holds it until the match ends, however long
that is. So user regular expressions run in RE2 or in `regex` with a timeout
(cards/lorebook.py), and every input has a size bound.

A budget overrun is answered at once, but a thread cannot be stopped from
outside: the work runs on until it finishes or calls `check_deadline`, which
long loops over user data do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar, TypeVarTuple

from personae.errors import InputTooComplex, WorkTimedOut

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The monotonic time by which the work of the current `bounded` call must end;
# None outside one (a benchmark, a test calling the pure functions).
_DEADLINE: ContextVar[float | None] = ContextVar("personae_work_deadline", default=None)


def remaining_s() -> float | None:
    """Seconds left of the current work's budget (None when it has none)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def check_deadline(what: str) -> None:
    """Give up with `WorkTimedOut` when the current work's budget is spent."""
    left = remaining_s()
    if left is not None and left <= 0:
        raise WorkTimedOut(f"{what} ran past its time budget.")


def _overrun(what: str, budget_s: float, input_at_fault: bool) -> WorkTimedOut | InputTooComplex:
    if input_at_fault:
        return InputTooComplex(
            f"{what.capitalize()} took longer than {budget_s:g} s: make the input "
            "smaller or simpler."
        )
    return WorkTimedOut(f"{what.capitalize()} took longer than {budget_s:g} s.")


async def bounded(
    fn: Callable[[*Ts], T],
    *args: *Ts,
    budget_s: float,
    what: str,
    input_at_fault: bool = False,
) -> T:
    """`fn(*args)` in a worker thread, given up after `budget_s` seconds.

    An overrun raises `WorkTimedOut` (503, retryable), or `InputTooComplex` (422)
    when `input_at_fault`: what the user sent is the cause. `what` names the work
    in the error's detail ("reading the card").
    """
    deadline = time.monotonic() + budget_s

    def run() -> T:
        _DEADLINE.set(deadline)  # to_thread runs this in a copy of the context
        return fn(*args)

    scope = asyncio.timeout(budget_s)
    try:
        async with scope:
            return await asyncio.to_thread(run)
    except TimeoutError as error:
        if not scope.expired():
            raise
        raise _overrun(what, budget_s, input_at_fault) from error
    except WorkTimedOut as error:  # the work saw its deadline pass (check_deadline)
        raise _overrun(what, budget_s, input_at_fault) from error
