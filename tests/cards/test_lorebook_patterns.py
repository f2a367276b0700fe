"""Lorebook patterns from users run in RE2 (linear time), or in `regex` with a timeout
when RE2 cannot express them; a turn's matching stops when its time budget is spent."""

from __future__ import annotations

from typing import Any

import pytest

from personae.cards.lorebook import Entry, Lorebook, select_entries
from personae.errors import WorkTimedOut
from personae.offload import bounded

MESSAGE = "a" * 3999 + "!"


def _fired(*keys: str, text: str, **options: Any) -> list[str]:
    entries = tuple(
        Entry(keys=(key,), content=f"lore {index}", **options) for index, key in enumerate(keys)
    )
    chosen = select_entries(Lorebook(entries=entries), [text], count_tokens=len)
    return [keys[int(e.content.split()[1])] for e in chosen]


def test_a_pattern_that_backtracks_for_ever_in_re_is_answered_by_re2() -> None:
    assert _fired("/(a+)+$/", text=MESSAGE) == []
    assert _fired("/(a+)+!$/", "/^(a|aa)+$/", text=MESSAGE) == ["/(a+)+!$/"]


def test_backreferences_and_lookaround_still_match_through_the_fallback() -> None:
    keys = (r"/(\w)\1/", "/port(?= sable)/i", "/(?<!old )harbour/")
    assert _fired(*keys, text="Hello, PORT sable, old harbour") == [r"/(\w)\1/", keys[1]]


def test_a_fallback_pattern_cut_off_by_its_timeout_counts_as_not_found() -> None:
    assert _fired(r"/(a+)+\1$/", "/a!/", text=MESSAGE) == ["/a!/"]


def test_flags_and_use_regex_keep_their_meaning() -> None:
    assert _fired("/DRAGON/i", "/^elf$/m", "/x.y/s", text="a dragon\nelf\nx\ny") == [
        "/DRAGON/i",
        "/^elf$/m",
        "/x.y/s",
    ]
    assert _fired(r"Dr\w+n", text="a DRAGON", use_regex=True) == [r"Dr\w+n"]
    assert _fired(r"Dr\w+n", text="a DRAGON", use_regex=True, case_sensitive=True) == []


async def test_matching_past_its_budget_gives_up_with_work_timed_out() -> None:
    entries = tuple(
        Entry(keys=(rf"/(a+)+\1{{1,{index + 1}}}$/",), content=f"lore {index}")
        for index in range(200)
    )
    book = Lorebook(entries=entries)
    with pytest.raises(WorkTimedOut):
        await bounded(
            lambda: select_entries(book, [MESSAGE], count_tokens=len),
            budget_s=0.3,
            what="matching the lorebook",
        )
