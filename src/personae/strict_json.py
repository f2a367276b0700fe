"""JSON from users, held to limits that keep it cheap to store, read and send back.

At most `MAX_DEPTH` levels of objects and lists, counted from the root of what
was sent (a request body, a card file): deeper values broke responses and
exports, whose writers recurse. Only finite numbers: Python's `json` reads and
writes NaN and Infinity, which are not JSON and which other readers (browsers,
PostgreSQL's json type) refuse.

What is already stored is never refused on its way out: `sanitised` replaces a
non-finite number, or a value nested past `OUTPUT_MAX_DEPTH` (room for what is
accepted now, wrapped in a response or an export), with null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from personae.errors import JsonNotFinite, JsonTooDeep

MAX_DEPTH = 64
OUTPUT_MAX_DEPTH = 2 * MAX_DEPTH


def _not_finite(what: str) -> Callable[[str], Any]:
    def refuse(constant: str) -> Any:
        raise JsonNotFinite(
            f"{what} holds {constant}, which is not a JSON number: send a finite number or null."
        )

    return refuse


def loads(text: str | bytes, what: str) -> Any:
    """Parsed JSON, refused (422) when too deep or holding NaN/Infinity.

    A syntax error is left to the caller as `json.JSONDecodeError`; `what` names
    the document in the error's detail ("The card").
    """
    try:
        value = json.loads(text, parse_constant=_not_finite(what))
    except RecursionError as error:
        raise JsonTooDeep(f"{what} is nested deeper than {MAX_DEPTH} levels.") from error
    check(value, what)
    return value


def _problem(value: Any, max_depth: int) -> str | None:
    """'deep' or 'nan' for the first flaw found in `value`, else None (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return "nan"
            continue
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return "deep"
        stack.extend((child, depth + 1) for child in children if isinstance(child, _NESTED))
    return None


_NESTED = (dict, list, tuple, float)


def check(value: Any, what: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a value (already parsed, say by the web framework) that JSON limits forbid:
    `JsonTooDeep` past `max_depth` levels of objects and lists, `JsonNotFinite` for
    NaN or an infinite number."""
    problem = _problem(value, max_depth)
    if problem == "deep":
        raise JsonTooDeep(f"{what} is nested deeper than {max_depth} levels.")
    if problem == "nan":
        raise JsonNotFinite(
            f"{what} holds NaN or Infinity, which is not a JSON number: send a finite "
            "number or null."
        )


def _cut(value: Any, depth: int, max_depth: int) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list | tuple) and depth > max_depth:
        return None
    if isinstance(value, dict):
        return {key: _cut(item, depth + 1, max_depth) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cut(item, depth + 1, max_depth) for item in value]
    return value


def sanitised(value: Any, *, max_depth: int = OUTPUT_MAX_DEPTH) -> Any:
    """`value` itself when it is within the limits; else a copy with every non-finite
    number, and every object or list nested past `max_depth`, replaced by null."""
    if _problem(value, max_depth) is None:
        return value
    return _cut(value, 1, max_depth)


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Always valid JSON: `value` sanitised, then written with NaN refused."""
    return json.dumps(sanitised(value), ensure_ascii=False, allow_nan=False, default=default)
