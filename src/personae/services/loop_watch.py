"""The event-loop lag watchdog: how late a periodic timer fires is how long the loop
was kept from everything else (every request, stream and reply of the process).

Lag past the warning bound is logged with the figure; every measurement goes to
/metrics (`personae_event_loop_lag_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger("personae.loop")

INTERVAL_S = 0.1
WARN_AFTER_S = 0.1


class LagRecorder(Protocol):
    def event_loop_lag(self, seconds: float) -> None: ...


class LoopWatchdog:
    """Wakes every `interval_s` and records how late it woke."""

    def __init__(
        self,
        recorder: LagRecorder,
        *,
        interval_s: float = INTERVAL_S,
        warn_after_s: float = WARN_AFTER_S,
    ) -> None:
        self._recorder = recorder
        self._interval_s = interval_s
        self._warn_after_s = warn_after_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="personae-loop-watchdog")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self._interval_s)
            lag = max(0.0, loop.time() - asked - self._interval_s)
            self._recorder.event_loop_lag(lag)
            if lag > self._warn_after_s:
                log.warning(
                    "the event loop was blocked for %.0f ms",
                    lag * 1000,
                    extra={"lag_ms": round(lag * 1000)},
                )
