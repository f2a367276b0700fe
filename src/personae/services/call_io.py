"""A call's input and output (calls.py has its conversation): the link to its client
(CallLink), what the client's `start` frame asks for (CallStart), and the audio
heard but not yet judged by voice activity detection (AudioInbox), and the places in
line it is told (PlaceTeller)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from personae.errors import AppError, ValidationFailed
from personae.events.base import EventLog
from personae.services.chat_events import chat_stream
from personae.storage.repos.accounts import UserRecord
from personae.voice.vad import SAMPLE_RATE

MIN_RATE, MAX_RATE = 8_000, 48_000
DEFAULT_RATE_OUT = 24_000
# The longest binary frame taken: 100 ms of audio at the call's rate.
FRAME_MAX_S = 0.1
# The most audio heard but not yet judged by the VAD: 5 s at the call's rate (160 KB at
# 16 kHz, 480 KB at 48 kHz). A client that sends faster than that waits (its socket is
# not read meanwhile).
INBOX_S = 5.0


class CallLink(Protocol):
    """How a call talks to its client (the WebSocket, in api/routes/calls.py)."""

    async def send(self, frame: dict[str, Any], pcm: bytes | None = None) -> None:
        """A text frame, and for `audio` its PCM as the binary frame right after it."""
        ...

    async def send_problem(self, kind: str, error: AppError, **fields: Any) -> None:
        """A `refused` or `error` frame: the error's problem+json body as `problem`, and
        `fields` beside it."""
        ...

    async def close(self, error: AppError) -> None:
        """End the call from the server's side, saying why."""
        ...

    async def caller(self) -> UserRecord:
        """The caller, signed in still: the session or token the call came with, checked
        again (NotAuthenticated, SessionExpired, AccountSuspended when it is not)."""
        ...


@dataclass(frozen=True)
class CallStart:
    """What the client's `start` frame asks for."""

    sample_rate: int = SAMPLE_RATE
    sample_rate_out: int = DEFAULT_RATE_OUT

    @classmethod
    def parse(cls, frame: Any) -> CallStart:
        if not isinstance(frame, dict) or frame.get("type") != "start":
            raise ValidationFailed('The first frame must be {"type": "start", "sample_rate": N}.')
        rates = {}
        for name, default in (("sample_rate", SAMPLE_RATE), ("sample_rate_out", DEFAULT_RATE_OUT)):
            rate = frame.get(name, default)
            if (
                not isinstance(rate, int)
                or isinstance(rate, bool)
                or not MIN_RATE <= rate <= MAX_RATE
            ):
                raise ValidationFailed(
                    f"{name}: a whole number of Hz from {MIN_RATE} to {MAX_RATE}."
                )
            rates[name] = rate
        return cls(**rates)

    @property
    def frame_max_bytes(self) -> int:
        return int(self.sample_rate * FRAME_MAX_S) * 2

    @property
    def inbox_bytes(self) -> int:
        return int(self.sample_rate * INBOX_S) * 2


class AudioInbox:
    """Audio frames heard but not yet judged, at most `max_bytes` of them: `put` waits
    for room; once the inbox is closed nothing waits and nothing more is kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._frames: deque[bytes] = deque()
        self._size = 0
        self._closed = False
        self._changed = asyncio.Condition()

    @property
    def size(self) -> int:
        return self._size

    async def put(self, pcm: bytes) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._closed or self._size + len(pcm) <= self.max_bytes
            )
            if not self._closed:
                self._frames.append(pcm)
                self._size += len(pcm)
                self._changed.notify_all()

    async def take(self, most: int) -> bytes:
        """The frames heard so far (waiting for one), joined, at most `most` bytes of
        them unless the first is longer; b"" once the inbox is closed."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or bool(self._frames))
            if self._closed:
                return b""
            taken = [self._frames.popleft()]
            size = len(taken[0])
            while self._frames and size + len(self._frames[0]) <= most:
                taken.append(self._frames.popleft())
                size += len(taken[-1])
            self._size -= size
            self._changed.notify_all()
            return b"".join(taken)

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._frames.clear()
            self._size = 0
            self._changed.notify_all()


class PlaceTeller:
    """`queue` frames: a reply's place in line (from the chat's stream), or a place in
    a voice line (with its `kind`), each place told once."""

    def __init__(self, link: CallLink, events: EventLog, chat_id: str) -> None:
        self._link, self._events, self._chat_id = link, events, chat_id
        self._last: dict[str, Any] | None = None

    async def tell(self, kind: str | None, position: int, estimated_start_s: float | None) -> None:
        frame: dict[str, Any] = {
            "type": "queue",
            "position": position,
            "estimated_start_s": estimated_start_s,
        }
        if kind is not None:
            frame["kind"] = kind
        if frame != self._last:  # the send and the stream may tell the same place
            self._last = frame
            await self._link.send(frame)

    def teller(self, kind: str) -> Callable[[int, float], Awaitable[None]]:
        async def tell(position: int, estimated_start_s: float) -> None:
            await self.tell(kind, position, estimated_start_s)

        return tell

    async def watch(
        self, reply_id: str, cursor: str | None, answered: asyncio.Event, *, wait_s: float
    ) -> None:
        """The reply's places in line (`queue` events of the chat's stream) until it
        is `answered` (it starts being written)."""
        stream = chat_stream(self._chat_id)
        while not answered.is_set():
            for event in await self._events.read(stream, cursor, wait_s=wait_s):
                cursor = event.id
                if event.name == "queue" and event.data.get("message_id") == reply_id:
                    position = int(event.data.get("position", 0))
                    await self.tell(None, position, event.data.get("estimated_start_s"))
