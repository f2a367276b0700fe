"""What a running job and the scheduler share: its control signals, how it ended,
and a reply's draft and material (read ahead of its claim, or when it starts)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from personae.llm.base import ChatTurn, SamplingParams, StreamStats
from personae.llm.router import Choice
from personae.services.prompting import PromptMemory
from personae.services.room_prompting import RoomCast
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord

# A continue job's payload holds how long its reply was when it was asked to go on:
# only what the continuation writes may be trimmed (services/reply_trim.py).
CONTINUE_FROM = "continue_from"


def continued_from(payload: dict[str, Any]) -> int:
    """Where the continuation of a reply began (0: the job writes the whole reply)."""
    value = payload.get(CONTINUE_FROM)
    return value if isinstance(value, int) and value > 0 else 0


@dataclass
class JobControl:
    """Signals from the scheduler to a running job."""

    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    lease_lost: asyncio.Event = field(default_factory=asyncio.Event)
    # Called when the job no longer needs a backend slot (its stream ended): the
    # scheduler starts the next job while this one stores how it ended.
    on_slot_free: Callable[[], None] = field(default=lambda: None)
    slot_freed: bool = False
    # When the job was claimed (monotonic): how long its reply took to reach a backend.
    claimed_at: float = field(default_factory=time.monotonic)
    # Claimed because it waited past its deadline while no backend could take replies:
    # if it still finds none, it ends failed instead of waiting again.
    past_deadline: bool = False
    # Its text was checkpointed in this run (it makes progress: not a poison reply).
    progressed: bool = False

    def should_pause(self) -> bool:
        return self.shutting_down.is_set() or self.lease_lost.is_set()

    def free_slot(self) -> None:
        if not self.slot_freed:
            self.slot_freed = True
            self.on_slot_free()


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for the scheduler's measures."""

    status: str
    service_s: float
    # The backend that wrote the reply, when one did (its service time is measured).
    backend: str | None = None


@dataclass
class Draft:
    """A reply being written: its text and what is known about how it was written."""

    text: str
    labels: dict[str, Any]
    generation: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    announced: bool = False
    # A checkpoint being stored while the stream goes on (whether a stop was asked):
    # awaited before the reply's next write, so it never lands after that write.
    saving: asyncio.Task[bool] | None = None
    # The reply as its end was stored.
    final: MessageRecord | None = None
    # The moderation category that ended the reply at a sentence (state "filtered").
    filtered: str | None = None
    # The finish reason the backend gave at the end of the last stream (None: it
    # gave none, or the stream was let go of before its end).
    backend_finish: str | None = None
    # Cut by the token limit and trimmed to its last whole sentence.
    cut_short: bool = False

    async def saved(self) -> bool:
        """Wait for the checkpoint being stored, if any; whether it found a stop asked."""
        saving, self.saving = self.saving, None
        return bool(saving is not None and await saving)


@dataclass(frozen=True)
class ReplyContext:
    """What a reply's prompt is built from."""

    chat: ChatRecord
    character: CharacterRecord
    history: list[MessageRecord]
    memory: PromptMemory | None = None
    # What the last prompt built held and left out (ids and token counts).
    prompt_record: dict[str, Any] = field(default_factory=dict)
    # In a room: its characters as every prompt of the room shows them.
    room: RoomCast | None = None


@dataclass(frozen=True)
class Preloaded:
    """A waiting reply and its prompt's material, read ahead of its claim."""

    reply: MessageRecord
    context: ReplyContext


@dataclass
class StreamAhead:
    """A reply's first backend stream, begun before the reply is claimed (from its
    read-ahead material, while the claim is stored). Nothing it yields is published
    or stored unless this process then runs the reply and the reply's own material
    builds the very prompt and sampling it was asked with (the job then `adopt`s it);
    otherwise it is `abandon`ed and the backend stops. Its `choice` holds the backend
    slot it counts against until it ends."""

    choice: Choice
    turns: list[ChatTurn]
    params: SamplingParams
    stats: StreamStats
    pieces: AsyncGenerator[str, None]
    started: float = field(default_factory=time.monotonic)
    first: asyncio.Future[str] = field(init=False)

    def __post_init__(self) -> None:
        # The request goes out now; its first piece waits here until adopted.
        self.first = asyncio.ensure_future(anext(self.pieces))
        self.first.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def adopt(self) -> AsyncGenerator[str, None]:
        """The stream's pieces, the first (perhaps already come) included."""
        try:
            try:
                yield await self.first
            except StopAsyncIteration:
                return
            async for piece in self.pieces:
                yield piece
        finally:
            await self.pieces.aclose()

    async def abandon(self) -> None:
        self.first.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.first  # the request is let go of before the stream is closed
            with contextlib.suppress(Exception):
                await self.pieces.aclose()
        finally:
            await self.choice.give_back()
