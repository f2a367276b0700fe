"""The waiting room for voice: a line per kind of work (synthesis, transcription)
with its own slots, like replies have backend slots.

Each process runs its own engines, so each has its own slots (a cluster's api
processes each synthesise and transcribe). A request takes a slot or waits in
line, first come first served, and is told its place as it moves; past
`voice_queue_max` waiting it is refused at once with `voice_busy` and a
Retry-After from the measured time of one piece of work.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from personae.errors import VoiceBusy

SYNTHESIS, TRANSCRIPTION = "synthesis", "transcription"
# What the estimates start from before anything was measured, in seconds.
_FIRST_GUESS_S = 1.0
_SMOOTHING = 0.2

T = TypeVar("T")
PlaceListener = Callable[[int, float], Awaitable[None]]
LineObserver = Callable[["LineState", float | None], None]


@dataclass
class _Line:
    slots: int
    busy: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    service_s: float = _FIRST_GUESS_S
    served: int = 0


@dataclass(frozen=True)
class LineState:
    kind: str
    slots: int
    busy: int
    waiting: int
    service_s: float
    served: int


class VoiceSlots:
    """Slots and lines for `synthesis` and `transcription` in this process.
    `observer(line, work_s)` hears of every change (metrics), with the length of a
    piece of work when one ends."""

    def __init__(
        self,
        *,
        synthesis: int,
        transcription: int,
        queue_max: int,
        observer: LineObserver | None = None,
    ) -> None:
        self._lines = {SYNTHESIS: _Line(synthesis), TRANSCRIPTION: _Line(transcription)}
        self._queue_max = queue_max
        self._observer = observer
        for kind in self._lines:
            self._changed(kind)

    def state(self) -> list[LineState]:
        return [self._state(kind) for kind in self._lines]

    def _state(self, kind: str) -> LineState:
        line = self._lines[kind]
        return LineState(
            kind, line.slots, line.busy, len(line.waiting), line.service_s, line.served
        )

    def _changed(self, kind: str, work_s: float | None = None) -> None:
        if self._observer is not None:
            self._observer(self._state(kind), work_s)

    def estimate_s(self, kind: str, position: int) -> float:
        """When the request at `position` in line (1 = next) should start."""
        line = self._lines[kind]
        return round(line.service_s * position / line.slots, 1)

    async def run(
        self,
        kind: str,
        work: Callable[[], Awaitable[T]],
        *,
        on_place: PlaceListener | None = None,
        budget_s: float | None = None,
    ) -> T:
        """`work()` in a slot of `kind`, waiting in line for it as `take` does.

        The work is an engine in a thread, which nothing can stop: so the slot is
        held until the work itself ends, even when the caller stops waiting for it
        (a call's barge-in, a cancelled request, `budget_s` run out: TimeoutError),
        and the slots go on counting the cores really busy. Work whose turn has not
        come when the caller leaves is taken out of the line and never started."""
        started = asyncio.Event()

        async def owned() -> T:
            async with self.take(kind, on_place):
                started.set()
                return await work()

        task = asyncio.create_task(owned())
        task.add_done_callback(_retrieve)
        starting = asyncio.create_task(started.wait())
        try:
            await asyncio.wait({task, starting}, return_when=asyncio.FIRST_COMPLETED)
            async with asyncio.timeout(budget_s):
                return await asyncio.shield(task)
        except BaseException:
            if not started.is_set():
                task.cancel()
            raise
        finally:
            starting.cancel()

    @contextlib.asynccontextmanager
    async def take(self, kind: str, on_place: PlaceListener | None = None) -> AsyncIterator[None]:
        """Hold one slot of `kind` for the block, waiting in line for it if needed.
        `on_place(position, estimated_start_s)` is awaited while waiting, each time
        the place changes. Raises `VoiceBusy` when the line is full."""
        line = self._lines[kind]
        if line.busy >= line.slots or line.waiting:
            await self._wait(kind, line, on_place)
        else:
            line.busy += 1
            self._changed(kind)
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            line.service_s += _SMOOTHING * (elapsed - line.service_s)
            line.served += 1
            self._hand_on(line)
            self._changed(kind, elapsed)

    def check_room(self, kind: str) -> None:
        """Raise `VoiceBusy` (with a Retry-After) when a request of `kind` would find
        every slot taken and the line full: before work that would wait is started."""
        line = self._lines[kind]
        full = (line.busy >= line.slots or line.waiting) and len(line.waiting) >= self._queue_max
        if full:
            raise VoiceBusy(
                f"{len(line.waiting)} {kind} requests are waiting already; try again shortly",
                retry_after=max(1.0, self.estimate_s(kind, len(line.waiting) + 1)),
                extra={"kind": kind},
            )

    async def _wait(self, kind: str, line: _Line, on_place: PlaceListener | None) -> None:
        self.check_room(kind)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiting.append(turn)
        self._changed(kind)
        try:
            told = 0
            while not turn.done():
                position = line.waiting.index(turn) + 1
                if on_place is not None and position != told:
                    told = position
                    await on_place(position, self.estimate_s(kind, position))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(turn), timeout=0.5)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._hand_on(line)  # the slot was handed to us as we left: pass it on
            else:
                turn.cancel()
                line.waiting.remove(turn)
            self._changed(kind)
            raise

    @staticmethod
    def _hand_on(line: _Line) -> None:
        """A slot is free: give it to the first one still waiting, or free it."""
        while line.waiting:
            turn = line.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        line.busy -= 1


def _retrieve(task: asyncio.Task[object]) -> None:
    """Read the outcome of work its caller stopped waiting for, so that its failure
    is not reported as a task exception never retrieved (the caller saw its own)."""
    if not task.cancelled():
        task.exception()
