"""Well-being: the AI notice every chat shows, and the time-spent notice.

Time spent is measured on the server from what the user sends, so it is the same
in every tab and on every device: a chatting session is a run of the user's
messages with no gap longer than PERSONAE_WELLBEING_SESSION_GAP_MINUTES, and it
lasts from its first message until now while the last one is within that gap.
The notice is due once a session (or what is left of it since the user put the
notice away) reaches PERSONAE_WELLBEING_SESSION_MINUTES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import accounts as account_repo
from personae.storage.repos import activity as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.types import utcnow
from personae.words import plural

AI_NOTICE = (
    "This is an AI character, not a real person. Treat everything it says as fiction: "
    "it can be wrong, and it is not advice."
)
# Sessions longer than this are read as this long: the notice is long due by then.
_LONGEST_SESSION = timedelta(hours=24)
# At most this many messages are read; a session of more is past the notice anyway.
_MOST_MESSAGES = 5000


@dataclass(frozen=True)
class WellbeingStatus:
    session_minutes: float  # how long the current session has lasted; 0 when none runs
    session_started_at: datetime | None
    notice_due: bool
    notice: str | None  # the time-spent notice's text when it is due
    threshold_minutes: float


def _notice_text(minutes: float) -> str:
    if minutes >= 90:
        spent = f"{round(minutes / 60)} hours" if minutes >= 120 else "over an hour"
    elif minutes >= 59:
        spent = "an hour"
    else:
        spent = plural(max(1, round(minutes)), "minute")
    return f"You've been chatting for {spent} — time for a break?"


class WellbeingService:
    """The time-spent notice: how long the user has been chatting, and whether to say so."""

    def __init__(
        self, database: Database, settings: Settings, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = database
        self._threshold = timedelta(minutes=settings.wellbeing_session_minutes)
        self._threshold_minutes = settings.wellbeing_session_minutes
        self._gap = timedelta(minutes=settings.wellbeing_session_gap_minutes)
        self.clock = clock

    async def _session_start(self, user: UserRecord, now: datetime) -> datetime | None:
        """When the user's current chatting session began, or None when none runs."""
        async with self._db.read() as tx:
            times = await repo.recent_message_times(
                tx, user.id, since=now - _LONGEST_SESSION, limit=_MOST_MESSAGES
            )
        if not times or now - times[0] > self._gap:
            return None
        start = times[0]
        for earlier in times[1:]:
            if start - earlier > self._gap:
                break
            start = earlier
        return start

    async def status(self, user: UserRecord) -> WellbeingStatus:
        """How long the current session has lasted, and whether the notice is due."""
        now = self.clock()
        start = await self._session_start(user, now)
        if start is None:
            return WellbeingStatus(0.0, None, False, None, self._threshold_minutes)
        minutes = (now - start).total_seconds() / 60
        counted_from = start
        dismissed = user.wellbeing_dismissed_at
        if dismissed is not None and dismissed > start:
            counted_from = dismissed
        due = now - counted_from >= self._threshold
        return WellbeingStatus(
            session_minutes=round(minutes, 2),
            session_started_at=start,
            notice_due=due,
            notice=_notice_text(minutes) if due else None,
            threshold_minutes=self._threshold_minutes,
        )

    async def dismiss(self, user: UserRecord) -> WellbeingStatus:
        """Put the notice away: it comes back after another full session length."""
        now = self.clock()
        async with self._db.write() as tx:
            await account_repo.set_wellbeing_dismissed(tx, user.id, now)
            updated = await account_repo.get_user(tx, user.id)
        assert updated is not None
        return await self.status(updated)
