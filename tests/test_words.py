"""Counts in words: one is singular, every other count plural."""

from __future__ import annotations

import pytest

from personae.capacity_report import _shortfall
from personae.services.capacity import CapacityPlan
from personae.services.ratelimit import _refused
from personae.services.wellbeing import _notice_text
from personae.words import plural


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 chats"), (1, "1 chat"), (2, "2 chats"), (1500, "1,500 chats"), (-1, "-1 chats")],
)
def test_plural_of_a_regular_noun(count: int, expected: str) -> None:
    assert plural(count, "chat") == expected


def test_plural_of_an_irregular_noun() -> None:
    assert plural(1, "reply", "replies") == "1 reply"
    assert plural(3, "reply", "replies") == "3 replies"


def test_messages_say_one_in_the_singular() -> None:
    assert _notice_text(1) == "You've been chatting for 1 minute — time for a break?"
    assert _notice_text(30) == "You've been chatting for 30 minutes — time for a break?"
    assert _refused(0.5).detail == "Too many attempts; try again in 1 second."
    assert _refused(3).detail == "Too many attempts; try again in 3 seconds."


def test_one_slot_is_one_slot_in_the_capacity_plan() -> None:
    plan = CapacityPlan(
        days=7, first_arrival=None, last_arrival=None, target_wait_s=5, monthly_growth=0.1,
        slots=1, busiest_hour=None, arrivals_per_hour=0, mean_service_s=None, utilisation=0,
        average_utilisation=0, tiers=[], months=[], short_from_month=3,
    )  # fmt: skip
    assert _shortfall(plan) == "Today's 1 slot stops being enough in month 3."
