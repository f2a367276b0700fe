"""Content ratings and age: who may find, open and chat with a mature character.

A character is rated general, teen or mature. General and teen characters are
listed and open to everybody. A mature one is behind the age gate: it is listed
only for a confirmed adult who turned "show mature characters" on, opened (its
page, its card) only by a confirmed adult or its owner, and chatted with only by
a confirmed adult, its owner included.

An account becomes a confirmed adult by declaring a birth date at least 18 years
back. The birth date itself is not kept: only when the declaration was made and
the day the account is adult from (the declaration's day for an adult, the 18th
birthday for a minor, who thus becomes adult on that day without declaring again).
The first declaration stands; only an admin can clear it.
"""

from __future__ import annotations

from datetime import date

from personae.errors import AdultConfirmationRequired
from personae.storage.repos.accounts import UserRecord
from personae.storage.types import utcnow

RATINGS = ("general", "teen", "mature")
MATURE = "mature"
ADULT_AGE = 18
# Nobody declaring a birth date is older than this: an earlier date is a typing error.
OLDEST_AGE = 120


def today() -> date:
    """The day the age rules use: UTC, the same on every server of a deployment."""
    return utcnow().date()


def birthday_in(birth_date: date, year: int) -> date:
    """The birthday in `year`; someone born on 29 February has it on 1 March."""
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def adult_from(birth_date: date) -> date:
    """The day someone born on `birth_date` turns 18."""
    return birthday_in(birth_date, birth_date.year + ADULT_AGE)


def is_adult(user: UserRecord | None) -> bool:
    return user is not None and user.is_adult(today())


def lists_mature(viewer: UserRecord | None) -> bool:
    """Whether discovery and search list mature characters to this viewer."""
    return viewer is not None and viewer.show_mature and is_adult(viewer)


def _refusal(user: UserRecord | None, doing: str) -> AdultConfirmationRequired:
    if user is None:
        what_to_do = "Log in, then confirm your age on your account page."
    elif user.age_declared_at is None:
        what_to_do = "Confirm that you are 18 or older on your account page."
    else:
        what_to_do = "Your account is not confirmed as 18 or older."
    return AdultConfirmationRequired(
        f"This character is rated mature: {doing} needs an account confirmed as 18 or "
        f"older. {what_to_do}",
        extra={"rating": MATURE},
    )


def check_may_open(rating: str, owner_id: str, viewer: UserRecord | None) -> None:
    """Refuse a mature character's page or card to anybody but an adult or its owner."""
    if rating != MATURE or (viewer is not None and viewer.id == owner_id) or is_adult(viewer):
        return
    raise _refusal(viewer, "seeing it")


def check_may_chat(rating: str, user: UserRecord) -> None:
    """Refuse a chat with a mature character (starting one, sending, a new swipe) to
    anybody who is not a confirmed adult, the character's owner included."""
    if rating == MATURE and not is_adult(user):
        raise _refusal(user, "chatting with it")
