"""Typed application errors.

Every failure a user can meet is an `AppError` subclass with a stable `code`.
They are turned into `application/problem+json` in exactly one place
(`personae.api.problems`). Services raise these; they never know about HTTP,
but each error carries the status it maps to so the mapping stays in one table.

`base.py` holds `AppError` and the errors every part meets (by status, then
configuration); `cards.py`, `rooms.py` and `voice.py` those of one domain. All of
them are imported from here: `from personae.errors import NotFound`.
"""

from personae.errors.base import *  # noqa: F403
from personae.errors.cards import *  # noqa: F403
from personae.errors.rooms import *  # noqa: F403
from personae.errors.voice import *  # noqa: F403
