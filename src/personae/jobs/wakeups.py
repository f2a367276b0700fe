"""Waking the workers: a send stored by an api process (which runs no jobs) says so
on the shared event log, and every worker listening there claims at once instead of
at its next poll (half a second later at worst)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from personae.events.base import EventLog

log = logging.getLogger("personae.scheduler")
QUEUED_STREAM = "jobs:queued"
# A read waits this long for an event before asking again.
_READ_WAIT_S = 5.0
_RETRY_S = 1.0


class Wakeups:
    """`announce` that a job was queued; `listen` for announcements of other processes."""

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._sending: set[asyncio.Task[object]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def announce(self) -> None:
        """Tell the workers a job is waiting (without waiting: the send has answered)."""
        task = asyncio.create_task(self._events.publish(QUEUED_STREAM, "queued", {}))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[object]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The workers' poll finds the job all the same.
            log.warning("announcing a queued job failed: %s", task.exception())

    def listen(self, wake: Callable[[], None]) -> None:
        self._listener = asyncio.create_task(self._listen(wake), name="personae-wakeups")

    async def _listen(self, wake: Callable[[], None]) -> None:
        last: str | None = None
        # redis-py can swallow a cancellation that lands while a blocking read starts
        # (the read returns instead of raising CancelledError; seen in 1 cancel in 10):
        # the loop must also end on its own flag, or closing waits for ever.
        while not self._closing.is_set():
            try:
                if last is None:
                    last = await self._events.last_id(QUEUED_STREAM) or "0-0"
                events = await self._events.read(QUEUED_STREAM, last, wait_s=_READ_WAIT_S)
            except Exception:
                if self._closing.is_set():
                    return
                log.warning("listening for queued jobs failed; trying again", exc_info=True)
                await asyncio.sleep(_RETRY_S)
                continue
            if events:
                last = events[-1].id
                wake()

    async def aclose(self) -> None:
        self._closing.set()
        tasks = [*self._sending, *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listener = None
