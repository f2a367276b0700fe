"""Cluster duties run once: in the one process that holds the leadership.

Every process tries to take the lead every `leader_check_s`; the leader checks
every time that it still holds it. Probes and incident rules run only in the
leader, so N processes do not probe N times or open incidents by turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from personae.storage.leader_lock import LeaderLock

log = logging.getLogger("personae.leader")


class Leadership:
    """Keeps trying to lead, and says whether this process leads now."""

    def __init__(
        self,
        lock: LeaderLock,
        *,
        check_s: float,
        on_change: Callable[[bool], None] = lambda _leading: None,
    ) -> None:
        self._lock = lock
        self._check_s = check_s
        # Told whether this process leads each time that changes (the leader gauge).
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._leading = False

    def is_leader(self) -> bool:
        return self._leading

    async def start(self) -> None:
        """Try once now (a lone process leads from its start), then keep checking."""
        await self._check()
        self._task = asyncio.create_task(self._loop(), name="personae-leadership")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set(False)
        await self._lock.release()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            await self._check()

    async def _check(self) -> None:
        try:
            leading = await self._lock.still_held() or await self._lock.try_take()
        except Exception:
            log.warning("checking the leadership failed; trying again", exc_info=True)
            leading = False
        self._set(leading)

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            log.info("leadership changed", extra={"leader": leading})
            self._on_change(leading)
        self._leading = leading
