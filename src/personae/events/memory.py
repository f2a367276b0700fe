"""The embedded event log: a bounded ring per stream, in this process's memory."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from typing import Any

from personae.events.base import Event, parse_event_id

# What an event costs besides its text (the Event, its id, its data dict: measured
# about 400 bytes for a token event), and a stream before its first event.
_EVENT_BYTES = 400
_STREAM_BYTES = 1000


def _approximate_bytes(event: Event) -> int:
    return _EVENT_BYTES + sum(len(value) for value in event.data.values() if isinstance(value, str))


class _Stream:
    def __init__(self, size: int) -> None:
        self.events: deque[Event] = deque(maxlen=size)
        self.evicted_up_to: tuple[int, int] | None = None
        self.bytes = _STREAM_BYTES
        # One future per waiting reader, owned by that reader alone: a reader that
        # is cancelled or times out can break nothing shared, and waking them takes
        # no lock, so no reader can ever hold up a publisher.
        self.waiters: set[asyncio.Future[None]] = set()

    def wake_readers(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


class MemoryEventLog:
    """Keeps the newest `size` events of up to `max_streams` streams, in about
    `max_bytes` in all (the least recently used streams are dropped first).

    Events written before this process started are unknown here, so a reader
    asking from before the start is told the log does not cover it.
    """

    def __init__(
        self, *, size: int = 1000, max_streams: int = 10_000, max_bytes: int = 64 * 2**20
    ) -> None:
        self._size = size
        self._max_streams = max_streams
        self._max_bytes = max_bytes
        self._bytes = 0
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._last = (int(time.time() * 1000), 0)
        self._floor = self._last

    def _next_id(self) -> tuple[int, int]:
        milliseconds = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (milliseconds, 0) if milliseconds > last_ms else (last_ms, last_seq + 1)
        return self._last

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream(self._size)
            self._bytes += stream.bytes
        self._streams.move_to_end(name)
        self._forget_least_recent()
        return stream

    def _forget_least_recent(self) -> None:
        """Drop the least recently used streams while over a bound (never the newest)."""
        while len(self._streams) > 1 and (
            len(self._streams) > self._max_streams or self._bytes > self._max_bytes
        ):
            _, dropped = self._streams.popitem(last=False)
            self._bytes -= dropped.bytes
            dropped.wake_readers()  # its readers come back to the stream's new ring
            if dropped.events:
                self._floor = max(self._floor, parse_event_id(dropped.events[-1].id) or self._floor)

    @property
    def retained_bytes(self) -> int:
        """About how much memory the retained events take."""
        return self._bytes

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    async def publish(self, stream: str, name: str, data: dict[str, Any]) -> Event:
        target = self._stream(stream)
        milliseconds, sequence = self._next_id()
        event = Event(f"{milliseconds}-{sequence}", name, data)
        if len(target.events) == target.events.maxlen:
            target.evicted_up_to = parse_event_id(target.events[0].id)
            evicted = _approximate_bytes(target.events[0])
            target.bytes -= evicted
            self._bytes -= evicted
        target.events.append(event)
        added = _approximate_bytes(event)
        target.bytes += added
        self._bytes += added
        self._forget_least_recent()
        target.wake_readers()
        return event

    def _after(self, target: _Stream, after: str | None) -> list[Event]:
        position = parse_event_id(after)
        if position is None:
            return list(target.events) if after is None else []
        # Ids grow along the ring: walk back only over the events the reader lacks.
        newer: list[Event] = []
        for event in reversed(target.events):
            if (parse_event_id(event.id) or (0, 0)) <= position:
                break
            newer.append(event)
        newer.reverse()
        return newer

    async def read(self, stream: str, after: str | None, *, wait_s: float) -> list[Event]:
        target = self._stream(stream)
        events = self._after(target, after)
        if events or wait_s <= 0:
            return events
        woken = asyncio.get_running_loop().create_future()
        target.waiters.add(woken)
        try:
            async with asyncio.timeout(wait_s):
                await woken
        except TimeoutError:
            return []
        finally:
            target.waiters.discard(woken)
        return self._after(target, after)

    async def last_id(self, stream: str) -> str | None:
        target = self._streams.get(stream)
        return target.events[-1].id if target and target.events else None

    async def covers(self, stream: str, after: str) -> bool:
        position = parse_event_id(after)
        if position is None or position < self._floor:
            return False
        target = self._streams.get(stream)
        return target is None or target.evicted_up_to is None or position >= target.evicted_up_to

    async def aclose(self) -> None:
        for stream in self._streams.values():
            stream.wake_readers()  # a reader still waiting answers now, not at its timeout
        self._streams.clear()
        self._bytes = 0
