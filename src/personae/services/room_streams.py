"""A room's live stream for one member: the chat's event log (the same events, ids and
order for every member) merged with the room's ephemeral events (typing, presence:
live only, no id, not replayed). The stream marks its member as here while it lasts,
and ends at once, after an `access_revoked` event, when its member leaves or is
removed or the room is deleted (the log's `member`/`access_revoked` events say so,
in every process).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

from personae.events.base import Event, EventLog
from personae.events.presence import Presence
from personae.services.chat_events import chat_stream
from personae.services.rooms import live_stream
from personae.storage.repos.accounts import UserRecord

ACCESS_REVOKED = "access_revoked"
_ENDING_CHANGES = {"removed": "removed", "left": "left"}


def revocation(event: Event, user_id: str) -> str | None:
    """Why this event ends the stream of `user_id`, or None."""
    if event.name == ACCESS_REVOKED:
        return str(event.data.get("reason", "room_deleted"))
    if event.name == "member" and event.data.get("user_id") == user_id:
        return _ENDING_CHANGES.get(str(event.data.get("change")))
    return None


class RoomStream:
    """One member's stream of one room (an async iterator of (id, name, data) or None
    for a heartbeat)."""

    def __init__(
        self,
        events: EventLog,
        presence: Presence,
        *,
        user: UserRecord,
        chat_id: str,
        ttl_s: float,
    ) -> None:
        self._events = events
        self._presence = presence
        self._user = user
        self._chat_id = chat_id
        self._ttl_s = ttl_s
        self._stream_id = secrets.token_hex(8)

    async def _announce_presence(self) -> None:
        here = await self._presence.here(self._chat_id)
        await self._events.publish(live_stream(self._chat_id), "presence", {"here": here})

    async def arrive(self) -> str | None:
        """Mark the member here and tell the room; returns the live stream's cursor
        (taken first, so this stream sees its own presence event)."""
        cursor = await self._events.last_id(live_stream(self._chat_id))
        await self._presence.touch(self._chat_id, self._user.id, self._stream_id, self._ttl_s)
        await self._announce_presence()
        return cursor

    async def _depart(self) -> None:
        with contextlib.suppress(Exception):
            await self._presence.leave(self._chat_id, self._user.id, self._stream_id)
            await self._announce_presence()

    async def items(
        self,
        cursor: str | None,
        live_cursor: str | None,
        heartbeat_s: float,
        stop: asyncio.Event,
    ) -> AsyncIterator[tuple[str | None, str, dict[str, Any]] | None]:
        loop = asyncio.get_running_loop()
        stopped = asyncio.create_task(stop.wait())
        main: asyncio.Task[list[Event]] | None = None
        live: asyncio.Task[list[Event]] | None = None
        refresh_s = self._ttl_s / 3
        next_touch = loop.time() + refresh_s
        try:
            while not stop.is_set():
                if main is None:
                    main = asyncio.create_task(
                        self._events.read(chat_stream(self._chat_id), cursor, wait_s=heartbeat_s)
                    )
                if live is None:
                    live = asyncio.create_task(
                        self._events.read(
                            live_stream(self._chat_id), live_cursor, wait_s=heartbeat_s
                        )
                    )
                timeout = max(0.0, next_touch - loop.time())
                done, _ = await asyncio.wait(
                    {main, live, stopped}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if stopped in done:
                    return
                if main in done:
                    events, main = main.result(), None
                    if not events:
                        yield None
                    for event in events:
                        cursor = event.id
                        reason = revocation(event, self._user.id)
                        if reason is not None:
                            if event.name != ACCESS_REVOKED:
                                yield event.id, event.name, event.data
                            yield None, ACCESS_REVOKED, {"reason": reason}
                            return
                        yield event.id, event.name, event.data
                if live in done:
                    events, live = live.result(), None
                    for event in events:
                        live_cursor = event.id
                        yield None, event.name, event.data
                if loop.time() >= next_touch:
                    await self._presence.touch(
                        self._chat_id, self._user.id, self._stream_id, self._ttl_s
                    )
                    next_touch = loop.time() + refresh_s
        finally:
            pending = [t for t in (stopped, main, live) if t is not None and not t.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # Shielded: a client that left cancels this generator, and the room must
            # still learn that it left.
            await asyncio.shield(self._depart())
