"""A chat's live stream: what a client missed, then the live tail.

A client that reconnects with the id of the last event it saw gets exactly the
events after it when the log still holds them. When it does not (the log was
trimmed, or the server restarted and the in-memory log is new), the client gets
the current state of every reply that changed since, from the database: the
checkpointed text replaces what was lost, so there is never a silent gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from personae.events.base import Event, EventLog, event_time
from personae.events.presence import MemoryPresence, Presence
from personae.services.chat_events import chat_stream, message_data
from personae.services.chats import ChatService
from personae.services.room_streams import RoomStream
from personae.storage.db import Database
from personae.storage.repos import chats as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import MessageRecord

# Checkpoints are written a moment after the events they cover: look back a little.
_SNAPSHOT_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class StreamItem:
    """An event to send; `id` is None for state rebuilt from the database."""

    id: str | None
    name: str
    data: dict[str, Any]


class StreamService:
    def __init__(
        self,
        database: Database,
        events: EventLog,
        chats: ChatService,
        presence: Presence | None = None,
        *,
        presence_ttl_s: float = 30.0,
    ) -> None:
        self._db = database
        self._events = events
        self._chats = chats
        self._presence = presence or MemoryPresence()
        self._presence_ttl_s = presence_ttl_s

    async def open(
        self,
        user: UserRecord,
        chat_id: str,
        last_event_id: str | None,
        *,
        heartbeat_s: float,
        stop: asyncio.Event,
    ) -> AsyncIterator[StreamItem | None]:
        """Check access now, then return the stream (None items are heartbeats)."""
        chat = await self._chats.get_chat(user, chat_id)
        stream = chat_stream(chat_id)
        cursor = await self._events.last_id(stream)
        if last_event_id and await self._events.covers(stream, last_event_id):
            cursor, snapshot = last_event_id, []
        else:
            snapshot = await self._snapshot(chat_id, last_event_id)
        if chat.is_room:
            # Again, now that the cursor is taken: a removal committed in between is
            # either refused here or seen in the log after the cursor.
            await self._chats.get_chat(user, chat_id)
            return await self._room_items(user, chat_id, cursor, snapshot, heartbeat_s, stop)
        return self._items(stream, cursor, snapshot, heartbeat_s, stop)

    async def _room_items(
        self,
        user: UserRecord,
        chat_id: str,
        cursor: str | None,
        snapshot: list[MessageRecord],
        heartbeat_s: float,
        stop: asyncio.Event,
    ) -> AsyncIterator[StreamItem | None]:
        room = RoomStream(
            self._events, self._presence, user=user, chat_id=chat_id, ttl_s=self._presence_ttl_s
        )
        live_cursor = await room.arrive()

        async def items() -> AsyncIterator[StreamItem | None]:
            for reply in snapshot:
                yield StreamItem(None, "reply_state", message_data(reply))
            async for item in room.items(cursor, live_cursor, heartbeat_s, stop):
                yield None if item is None else StreamItem(*item)

        return items()

    async def _snapshot(self, chat_id: str, last_event_id: str | None) -> list[MessageRecord]:
        since = event_time(last_event_id) if last_event_id else None
        async with self._db.read() as tx:
            if since is None:
                return await repo.unfinished_replies(tx, chat_id)
            return await repo.replies_changed_since(tx, chat_id, since - _SNAPSHOT_MARGIN)

    async def _items(
        self,
        stream: str,
        cursor: str | None,
        snapshot: list[MessageRecord],
        heartbeat_s: float,
        stop: asyncio.Event,
    ) -> AsyncIterator[StreamItem | None]:
        for reply in snapshot:
            yield StreamItem(None, "reply_state", message_data(reply))
        stopped = asyncio.create_task(stop.wait())
        reading: asyncio.Task[list[Event]] | None = None
        try:
            while not stop.is_set():
                reading = asyncio.create_task(self._events.read(stream, cursor, wait_s=heartbeat_s))
                done, _ = await asyncio.wait({reading, stopped}, return_when="FIRST_COMPLETED")
                if reading not in done:
                    return
                events = reading.result()
                if not events:
                    yield None
                for event in events:
                    cursor = event.id
                    yield StreamItem(event.id, event.name, event.data)
        finally:
            # The client left or the server stops: no read outlives its stream.
            pending = [task for task in (stopped, reading) if task is not None and not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
