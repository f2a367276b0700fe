"""The event log behind every chat's stream.

Ids look like Redis stream ids, "<milliseconds>-<sequence>", so they grow
across restarts and compare the same way in memory and in Redis. A reader asks
for the events after an id and waits a while if there are none (like XREAD
BLOCK), which is gap-free without subscriber bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]


def parse_event_id(event_id: str | None) -> tuple[int, int] | None:
    """(milliseconds, sequence), or None for an id this log could not have written."""
    if not event_id:
        return None
    milliseconds, dash, sequence = event_id.partition("-")
    if not dash or not milliseconds.isdigit() or not sequence.isdigit():
        return None
    return int(milliseconds), int(sequence)


def event_time(event_id: str) -> datetime | None:
    parsed = parse_event_id(event_id)
    if parsed is None:
        return None
    return datetime.fromtimestamp(parsed[0] / 1000, UTC)


class EventLog(Protocol):
    async def publish(self, stream: str, name: str, data: dict[str, Any]) -> Event:
        """Append an event and wake the readers of this stream."""
        ...

    async def read(self, stream: str, after: str | None, *, wait_s: float) -> list[Event]:
        """Events after `after` (all retained ones if None), waiting up to `wait_s` seconds."""
        ...

    async def last_id(self, stream: str) -> str | None:
        """The newest event's id, or None for a stream with no retained events."""
        ...

    async def covers(self, stream: str, after: str) -> bool:
        """Whether every event after `after` is still retained (no gap to fill)."""
        ...

    async def aclose(self) -> None: ...
