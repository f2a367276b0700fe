"""The cluster's view of its backends, shared through the database.

Workers report what they see of each backend (slots, probe, breaker) every second
and move its measure of a reply's time as replies finish; every process, api or
worker, reads those reports and the slots in flight (`backend_slots`) every second.
So a waiting reply is told the same place and start estimate whichever process
answers, and an api process, which opens no backend, knows when none can answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable

from personae.llm.router import Router
from personae.storage.db import Database, Transaction
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import slots as slot_repo
from personae.storage.repos.slots import BackendState

log = logging.getLogger("personae.scheduler")
_REFRESH_S = 1.0
# A backend no worker reported on for this long is not counted (its workers stopped).
_FRESH_S = 15.0
_EWMA_WEIGHT = 0.2
# A reply's time before any was measured.
DEFAULT_SERVICE_S = 8.0


class FleetView:
    """The backends as every process sees them: `states` and `in_flight`, a second old
    at most."""

    def __init__(self, database: Database, router: Router) -> None:
        self._db = database
        self._router = router
        self.states: list[BackendState] = []
        self.in_flight: dict[str, int] = {}
        # Jobs claimed and not ended (a reply claimed takes a slot before its lease).
        self.running = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Report and read once (the first answers are already the cluster's), then
        every second."""
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="personae-fleet-view")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Report this process's backends (a worker's), then read every report."""
        seen = [
            BackendState(
                name=b.name,
                role=b.spec.role,
                slots=b.spec.slots,
                healthy=b.healthy,
                breaker=b.breaker.state,
                usable=b.usable(),
                service_s=None,
            )
            for b in self._router.backends
            if not b.retired
        ]
        try:
            if seen:
                async with self._db.write(urgent=True) as tx:
                    await slot_repo.report_states(tx, seen)
            async with self._db.read() as tx:
                self.states = await slot_repo.read_states(tx, fresh_within_s=_FRESH_S)
                await self.refresh_counts(tx)
        except Exception:
            log.warning("reading the backends' shared state failed", exc_info=True)

    async def refresh_counts(self, tx: Transaction) -> None:
        """Read the slots in flight and the jobs running, over every process, in `tx`."""
        self.in_flight = await slot_repo.count_by_backend(tx)
        self.running = await job_repo.count_by_status(tx, job_repo.RUNNING)

    async def measure(self, backend: str, service_s: float) -> None:
        """A reply on `backend` took `service_s`: move the shared measure towards it."""
        try:
            async with self._db.write() as tx:
                await slot_repo.measure_service(tx, backend, service_s, _EWMA_WEIGHT)
        except Exception:
            log.warning("storing a reply's service time failed", exc_info=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_S)
            await self.refresh()

    def unavailable(self) -> bool:
        """Whether no backend can take replies (none usable, or no worker reports)."""
        return not any(state.usable for state in self.states)

    def service_s(self, backend: str, fallback_s: float) -> float:
        measured = next((s.service_s for s in self.states if s.name == backend), None)
        return measured if measured is not None else fallback_s

    def estimate_start_s(
        self, position: int, local_s: Callable[[str], float], fallback_s: float
    ) -> float | None:
        """When the reply at `position` in line starts: at once when a slot is free for
        it, else in waves over the usable backends; None while none is usable. A
        backend with no shared measure yet (one read at most a second ago) counts with
        this process's own, `local_s`."""
        usable = [state for state in self.states if state.usable]
        if not usable:
            return None
        leased = sum(self.in_flight.get(s.name, 0) for s in usable)
        free = sum(s.slots for s in usable) - max(leased, self.running)
        if position <= free:
            return 0.0
        return start_in_waves_s(
            position - free,
            {s.name: s.slots for s in usable},
            lambda name: self.service_s(name, local_s(name)),
            fallback_s=fallback_s,
        )


def start_in_waves_s(
    position: int,
    slots: dict[str, int],
    service_s: Callable[[str], float],
    *,
    fallback_capacity: int = 1,
    fallback_s: float = DEFAULT_SERVICE_S,
) -> float:
    """When the reply at `position` among those waiting for a busy slot starts: waves
    of `slots` replies (`fallback_capacity` when no backend reports slots, each wave then
    `fallback_s` long), each as long as the backends' measures make it (one twice as
    fast serves twice as many)."""
    capacity = sum(slots.values()) or max(1, fallback_capacity)
    # Replies a second over all slots; the one-wave time is capacity / that rate.
    rate = sum(n / service_s(name) for name, n in slots.items())
    wave_s = capacity / rate if rate > 0 else fallback_s
    return round(math.ceil(position / capacity) * wave_s, 1)
