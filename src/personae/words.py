"""Counts in words: "1 chat", "2 chats", "0 chats" (every layer may use it)."""

from __future__ import annotations


def plural(count: int, one: str, many: str | None = None) -> str:
    """The count and its noun, singular only for exactly one; `many` when the plural
    is not `one` + "s" ("reply", "replies")."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"
