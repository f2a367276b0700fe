"""The waiting room as a whole: how long the line is, per tier, and the capacity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from personae.llm.router import Router
from personae.services.accounts import STAFF_ROLES
from personae.services.fleet_view import FleetView
from personae.services.metrics import Metrics
from personae.services.send_path import PRIORITY_BY_ROLE, JobSignals
from personae.services.voice_slots import VoiceSlots
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.types import utcnow


@dataclass(frozen=True)
class TierView:
    tier: str
    queued: int
    estimated_wait_s: float
    oldest_wait_s: float | None = None


@dataclass(frozen=True)
class BackendView:
    name: str
    role: str
    slots: int
    in_flight: int
    healthy: bool
    breaker: str
    # The moving measure of a reply's time on this backend, in seconds.
    service_s: float | None = None


@dataclass(frozen=True)
class QueueView:
    length: int
    capacity: int
    running: int
    tiers: list[TierView]
    backends: list[BackendView] = field(default_factory=list)
    # This process's voice lines (synthesis, transcription): their own slots.
    voice: list[VoiceLineView] = field(default_factory=list)


@dataclass(frozen=True)
class VoiceLineView:
    kind: str
    slots: int
    busy: int
    waiting: int
    estimated_wait_s: float


class QueueService:
    def __init__(
        self,
        database: Database,
        signals: JobSignals,
        router: Router,
        fleet: FleetView | None = None,
        *,
        metrics: Metrics | None = None,
        leads: Callable[[], bool] = lambda: True,
        voice_slots: VoiceSlots | None = None,
    ) -> None:
        self._voice_slots = voice_slots
        self._db = database
        self._signals = signals
        self._router = router
        # With several processes: the backends as every worker reports them.
        self._fleet = fleet
        self._metrics = metrics
        self._leads = leads

    async def view(self, viewer: UserRecord | None) -> QueueView:
        """Public figures for everybody; staff also see the oldest waits and the backends."""
        return await self._view(staff=viewer is not None and viewer.role in STAFF_ROLES)

    async def export_gauges(self) -> None:
        """Set the cluster's gauges (the line by tier, each backend's slots and those
        busy) in the leader's metrics; in any other process, clear them, so a sum over
        every process's /metrics counts each figure once."""
        if self._metrics is None:
            return
        self._metrics.cluster(await self._view(staff=True) if self._leads() else None)

    async def _view(self, *, staff: bool) -> QueueView:
        async with self._db.read() as tx:
            by_priority = await job_repo.queue_summary(tx)
            running = await job_repo.count_by_status(tx, job_repo.RUNNING)
        now = utcnow()
        plus_priority = max(PRIORITY_BY_ROLE.values())
        tiers = []
        ahead = 0
        for tier, priority in (("plus", plus_priority), ("user", 0)):
            queued, oldest = by_priority.get(priority, (0, None))
            ahead += queued
            oldest_s = (now - oldest).total_seconds() if staff and oldest else None
            estimate = self._signals.estimate_start_s(ahead + 1) or 0.0
            tiers.append(TierView(tier, queued, estimate, oldest_s))
        backends, capacity = self._backends()
        return QueueView(
            length=sum(queued for queued, _ in by_priority.values()),
            capacity=capacity,
            running=running,
            tiers=tiers,
            backends=backends if staff else [],
            voice=self._voice_lines(),
        )

    def _voice_lines(self) -> list[VoiceLineView]:
        if self._voice_slots is None:
            return []
        return [
            VoiceLineView(
                line.kind,
                line.slots,
                line.busy,
                line.waiting,
                self._voice_slots.estimate_s(line.kind, line.waiting + 1)
                if line.busy >= line.slots
                else 0.0,
            )
            for line in self._voice_slots.state()
        ]

    def _backends(self) -> tuple[list[BackendView], int]:
        """Each backend as the cluster sees it (this process's router when it is the
        only one), and the slots of those that can take replies."""
        if self._fleet is None:
            views = [
                BackendView(
                    b.name,
                    b.spec.role,
                    b.spec.slots,
                    b.in_flight,
                    b.healthy,
                    b.breaker.state,
                    round(self._signals.service_time_s(b.name), 2),
                )
                for b in self._router.backends
            ]
            return views, self._router.capacity()
        views = [
            BackendView(
                s.name,
                s.role,
                s.slots,
                self._fleet.in_flight.get(s.name, 0),
                s.healthy,
                s.breaker,
                round(self._signals.service_time_s(s.name), 2),
            )
            for s in self._fleet.states
        ]
        return views, sum(s.slots for s in self._fleet.states if s.usable)
