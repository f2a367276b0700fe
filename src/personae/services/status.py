"""What the status page, the Statuspage JSON and the in-app banner show.

Component states are computed from the stored probe results, never stored
themselves: a component's latest results (newest first) decide between
operational, degraded_performance (one failure, a flapping check, a waiting room
that does not move) and its outage state (two failures in a row). The inference
fleet as a whole is derived from its backends. Busy is not down: while replies
wait in line and are served in turn, the backends, the fleet and the waiting
room read `busy`, with the wait (Statuspage's enum has no such state, so its
JSON says operational there and busy in a field of ours). An active
maintenance puts its components under maintenance and makes the service
read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from personae.llm.base import Provider
from personae.services.incidents import OPEN_INCIDENT_STATES, IncidentService, IncidentView
from personae.services.metrics import Metrics
from personae.services.send_path import REPLY_JOB
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo
from personae.storage.repos import status as repo
from personae.storage.repos.status import MaintenanceRecord
from personae.storage.types import utcnow
from personae.words import plural

STATE_WINDOW = 10
UPTIME_DAYS = 90
FORCED_MAINTENANCE_ID = "settings"
_MAINTENANCE_CACHE_S = 1.0
log = logging.getLogger("personae.status")
_FLAP_TRANSITIONS = 3
_SEVERITY = {
    "operational": 0,
    "busy": 0,
    "under_maintenance": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
}
_IMPACT_LEVEL = {"none": 0, "minor": 1, "major": 2, "critical": 3}
INDICATORS = ("none", "minor", "major", "critical")
_DESCRIPTIONS = (
    "All Systems Operational",
    "Minor Service Outage",
    "Partial System Outage",
    "Major System Outage",
)
# id: (name, description); backends are added as "backend:<name>".
_FIXED_COMPONENTS = {
    "api": ("API", "The web app and the public API."),
    "database": ("Database", "Where chats, characters and accounts are kept."),
    "event_log": ("Live replies", "The event log that streams replies as they are written."),
    "inference": ("Replies", "Every model backend together."),
}
_QUEUE = ("queue", ("Waiting room", "How long replies wait before they start."))
# Components that read busy while replies wait their turn (the fleet is the line's server).
_BUSY_WITH_THE_LINE = ("inference", _QUEUE[0])
# The banner says busy only once a wait is worth mentioning; the status page always does.
_BUSY_NOTICE_S = 10.0
Backends = Callable[[], Sequence[Provider]]


def component_name(component: str) -> str:
    if component.startswith("backend:"):
        return f"Model backend {component.removeprefix('backend:')}"
    if component == _QUEUE[0]:
        return _QUEUE[1][0]
    return _FIXED_COMPONENTS.get(component, (component, ""))[0]


def is_flapping(recent: Sequence[bool]) -> bool:
    """Passing and failing by turns: three changes or more among the latest results."""
    window = list(recent[:STATE_WINDOW])
    return sum(1 for a, b in itertools.pairwise(window) if a != b) >= _FLAP_TRANSITIONS


def consecutive_failures(recent: Sequence[bool]) -> int:
    count = 0
    for ok in recent:
        if ok:
            break
        count += 1
    return count


def component_status(recent: Sequence[bool], *, outage: str = "major_outage") -> str:
    """The state that `recent` results (newest first) describe."""
    if not recent:
        return "operational"
    failures = consecutive_failures(recent)
    if failures >= 2:
        return outage
    if failures == 1 or is_flapping(recent):
        return "degraded_performance"
    return "operational"


def _fleet_status(backends: Sequence[str]) -> str:
    if not backends:
        return "major_outage"
    if all(state == "major_outage" for state in backends):
        return "major_outage"
    if any(state in ("major_outage", "partial_outage") for state in backends):
        return "partial_outage"
    return max(backends, key=lambda state: _SEVERITY[state])


@dataclass(frozen=True)
class WaitingRoom:
    """Replies in line, cluster-wide: how many wait, how long, and whether they move."""

    waiting: int
    oldest_wait_s: float
    writing: int  # replies being written now (a live lease)
    recent_wait_s: float | None  # the median wait of replies started lately

    @property
    def active(self) -> bool:
        return self.waiting > 0

    @property
    def wait_s(self) -> float:
        """About how long a reply waits now: what recent ones waited, or the oldest's
        wait so far when that is longer (the line grew)."""
        return max(self.recent_wait_s or 0.0, self.oldest_wait_s)

    def stuck(self, limit_s: float) -> bool:
        """Replies have waited past `limit_s` and none is being written: the line does
        not move (a full line that moves is busy, not down)."""
        return self.active and self.oldest_wait_s > limit_s and self.writing == 0

    def busy_text(self) -> str:
        return f"Busy: replies wait about {_about(self.wait_s)}"


def _about(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


@dataclass(frozen=True)
class ComponentState:
    id: str
    name: str
    description: str
    position: int
    status: str  # a Statuspage component state, or busy
    created_at: datetime
    updated_at: datetime
    detail: str
    wait_s: float | None = None  # while busy: about how long replies wait
    busy_text: str | None = None


@dataclass(frozen=True)
class UptimeDay:
    day: date
    checks: int
    passed: int

    @property
    def ratio(self) -> float | None:
        return self.passed / self.checks if self.checks else None


@dataclass(frozen=True)
class ActiveMaintenance:
    id: str
    title: str
    until: datetime | None


@dataclass(frozen=True)
class Overview:
    """Everything summary.json and the status page show."""

    page_id: str
    name: str
    url: str
    updated_at: datetime
    indicator: str
    description: str
    components: list[ComponentState]
    unresolved: list[IncidentView]
    incidents: list[IncidentView]
    maintenances: list[MaintenanceRecord]
    read_only: bool


@dataclass(frozen=True)
class Notice:
    """What the web app's banner should show now."""

    kind: str  # none | maintenance | incident | degraded | busy | upcoming_maintenance
    level: str  # none | info | warning | critical
    title: str
    message: str
    queue_length: int
    queue_wait_s: float
    status_url: str
    read_only: bool = False
    incident_id: str | None = None
    maintenance_id: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class StatusService:
    """Component states, the overall indicator, uptime, the banner and maintenance mode."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        incidents: IncidentService,
        metrics: Metrics,
        backends: Backends,
    ) -> None:
        self._db = database
        self._settings = settings
        self._incidents = incidents
        self._metrics = metrics
        self._backends = backends
        self._maintenance_cache: tuple[float, ActiveMaintenance | None] | None = None
        self._maintenance_refresh: asyncio.Future[None] | None = None

    @property
    def page_url(self) -> str:
        return (self._settings.public_url or "").rstrip("/") + "/status"

    def catalog(self) -> list[str]:
        """The components shown now: fixed ones, each backend, then the waiting room."""
        backends = [f"backend:{provider.name}" for provider in self._backends()]
        return [*_FIXED_COMPONENTS, *backends, _QUEUE[0]]

    async def components(self) -> list[ComponentState]:
        """Every component with its state computed from its latest probe results."""
        now = utcnow()
        names = self.catalog()
        recent: dict[str, list[repo.ProbeRecord]] = {}
        async with self._db.read() as tx:
            for component in names:
                recent[component] = await repo.recent_probe_results(
                    tx, component, limit=STATE_WINDOW
                )
            since = await repo.first_seen(tx, names)
        states = _probed_states(names, recent)
        room = await self.waiting_room()
        maintained = await self._maintained_components()
        result = []
        for position, component in enumerate(names, start=1):
            rows = recent[component]
            state = states[component]
            busy = state == "operational" and room.active and _serves_the_line(component)
            if maintained is not None and (not maintained or component in maintained):
                state, busy = "under_maintenance", False
            result.append(
                ComponentState(
                    id=component,
                    name=component_name(component),
                    description=_describe(component),
                    position=position,
                    status="busy" if busy else state,
                    created_at=since.get(component, now),
                    updated_at=rows[0].checked_at if rows else now,
                    detail=rows[0].detail if rows else "not checked yet",
                    wait_s=round(room.wait_s, 1) if busy else None,
                    busy_text=room.busy_text() if busy else None,
                )
            )
        return result

    async def waiting_room(self) -> WaitingRoom:
        """The line of replies across every process, from the jobs table."""
        window_start = utcnow() - timedelta(seconds=self._settings.probe_reply_window_s)
        async with self._db.read() as tx:
            found = await repo.waiting_room(tx, kind=REPLY_JOB, started_since=window_start)
        oldest = found.oldest_queued_at
        oldest_wait = max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0
        recent = statistics.median(found.recent_waits_s) if found.recent_waits_s else None
        return WaitingRoom(found.waiting, oldest_wait, found.writing, recent)

    async def _maintained_components(self) -> set[str] | None:
        """None without an active maintenance; else its components (empty: all of them)."""
        active = await self.active_maintenance()
        if active is None:
            return None
        if active.id == FORCED_MAINTENANCE_ID:
            return set()
        return set((await self._incidents.get_maintenance(active.id)).components)

    async def overview(self) -> Overview:
        components = await self.components()
        incidents = await self._incidents.list_incidents(limit=50)
        unresolved = [v for v in incidents if v.incident.status in OPEN_INCIDENT_STATES]
        maintenances = await self._incidents.list_maintenances(limit=100)
        level = max(
            [_SEVERITY[c.status] for c in components]
            + [_IMPACT_LEVEL[v.incident.impact] for v in unresolved]
            + [0]
        )
        active = await self.active_maintenance()
        indicator, description = INDICATORS[level], _DESCRIPTIONS[level]
        if level == 0 and active is not None:
            indicator, description = "maintenance", "Service Under Maintenance"
        moments = [c.updated_at for c in components] + [v.incident.updated_at for v in incidents]
        return Overview(
            page_id=hashlib.sha256(self._settings.status_page_name.encode()).hexdigest()[:12],
            name=self._settings.status_page_name,
            url=self.page_url,
            updated_at=max(moments) if moments else utcnow(),
            indicator=indicator,
            description=description,
            components=components,
            unresolved=unresolved,
            incidents=incidents,
            maintenances=maintenances,
            read_only=active is not None,
        )

    async def uptime(self, days: int = UPTIME_DAYS) -> dict[str, list[UptimeDay]]:
        """Per component, one entry per UTC day, oldest first (days without checks: 0 checks)."""
        today = utcnow().date()
        first = today - timedelta(days=days - 1)
        since = datetime.combine(first, datetime.min.time(), tzinfo=utcnow().tzinfo)
        async with self._db.read() as tx:
            rows = await repo.daily_uptime(tx, since=since)
        found = {(row.component, row.day): row for row in rows}
        result: dict[str, list[UptimeDay]] = {}
        for component in self.catalog():
            result[component] = []
            for offset in range(days):
                day = first + timedelta(days=offset)
                row = found.get((component, day))
                result[component].append(
                    UptimeDay(day, row.checks if row else 0, row.passed if row else 0)
                )
        return result

    async def queue(self) -> tuple[int, float]:
        """Replies waiting, and how long the oldest has waited, in seconds."""
        async with self._db.read() as tx:
            length, oldest = await job_repo.queue_stats(tx)
        wait = (utcnow() - oldest).total_seconds() if oldest else 0.0
        self._metrics.queue(length, max(0.0, wait))
        return length, max(0.0, wait)

    async def metrics_text(self) -> bytes:
        await self.queue()  # fresh at scrape time, not only at the last probe
        return self._metrics.render()

    async def active_maintenance(self) -> ActiveMaintenance | None:
        """The maintenance that makes the service read-only now.

        Every request asks, so it is answered from memory: past a second the answer is
        read again in the background while requests get the one before (a maintenance
        begun by another process shows within a second or so of traffic).
        """
        cached = self._maintenance_cache
        if cached is None:
            return await self._read_maintenance()
        if time.monotonic() - cached[0] >= _MAINTENANCE_CACHE_S and (
            self._maintenance_refresh is None or self._maintenance_refresh.done()
        ):
            self._maintenance_refresh = asyncio.ensure_future(self._refresh_maintenance())
        return cached[1]

    async def _refresh_maintenance(self) -> None:
        try:
            await self._read_maintenance()
        except Exception:  # the next request tries again; until then the last answer holds
            log.warning("reading the maintenance state failed", exc_info=True)

    async def _read_maintenance(self) -> ActiveMaintenance | None:
        now = time.monotonic()
        active: ActiveMaintenance | None = None
        if self._settings.maintenance_mode:
            active = ActiveMaintenance(FORCED_MAINTENANCE_ID, "Maintenance", None)
        else:
            async with self._db.read() as tx:
                running = await repo.list_maintenances(tx, statuses=("in_progress",), limit=1)
            if running:
                found = running[0]
                active = ActiveMaintenance(found.id, found.title, found.scheduled_until)
        self._maintenance_cache = (now, active)
        return active

    def forget_maintenance(self) -> None:
        """Drop the cached answer (after an operator changed a maintenance here)."""
        self._maintenance_cache = None

    async def replies_paused(self) -> bool:
        """The scheduler asks this before it starts a reply: not during maintenance."""
        return await self.active_maintenance() is not None

    async def notice(self) -> Notice:
        """The one thing the banner should say now, most important first."""
        length, wait = await self.queue()
        queue = (length, round(wait, 1), self.page_url)
        active = await self.active_maintenance()
        if active is not None:
            until = f" until about {active.until:%H:%M} UTC" if active.until else ""
            message = (
                f"Maintenance is under way{until}. You can read your chats; messages you send "
                "are saved and answered when it ends. Changes to characters wait until then."
            )
            return Notice(
                "maintenance", "warning", active.title, message, *queue,
                read_only=True, maintenance_id=active.id, ends_at=active.until,
            )  # fmt: skip
        unresolved = await self._incidents.list_incidents(unresolved_only=True, limit=20)
        if unresolved:
            worst = max(unresolved, key=lambda v: _IMPACT_LEVEL[v.incident.impact]).incident
            updates = next(v.updates for v in unresolved if v.incident.id == worst.id)
            level = "critical" if worst.impact in ("major", "critical") else "warning"
            message = updates[0].body if updates else worst.title
            return Notice(
                "incident", level, worst.title, message, *queue,
                incident_id=worst.id, starts_at=worst.created_at,
            )  # fmt: skip
        room = await self.waiting_room()
        if room.stuck(self._settings.probe_queue_wait_s):
            message = (
                f"{plural(room.waiting, 'reply', 'replies')} "
                f"{'is' if room.waiting == 1 else 'are'} waiting and none is being written; "
                "the longest "
                f"has waited {_about(room.oldest_wait_s)}. Your messages are saved and "
                "answered in turn."
            )
            return Notice("degraded", "warning", "Replies are slow to start", message, *queue)
        if room.active and room.wait_s >= _BUSY_NOTICE_S:
            message = f"{room.busy_text()}. Your messages are saved and answered in turn."
            return Notice("busy", "info", "Busy", message, *queue)
        soon = utcnow() + timedelta(days=1)
        for planned in await self._incidents.list_maintenances(statuses=("scheduled",), limit=5):
            if planned.scheduled_for <= soon:
                message = (
                    f"Maintenance is planned from {planned.scheduled_for:%Y-%m-%d %H:%M} to "
                    f"{planned.scheduled_until:%H:%M} UTC: chats stay readable, replies wait."
                )
                return Notice(
                    "upcoming_maintenance", "info", planned.title, message, *queue,
                    maintenance_id=planned.id, starts_at=planned.scheduled_for,
                    ends_at=planned.scheduled_until,
                )  # fmt: skip
        return Notice("none", "none", "", "", *queue)


def _serves_the_line(component: str) -> bool:
    return component.startswith("backend:") or component in _BUSY_WITH_THE_LINE


def _probed_states(
    names: Sequence[str], recent: dict[str, list[repo.ProbeRecord]]
) -> dict[str, str]:
    """Each component's state from its results; the fleet's from its backends'."""
    states: dict[str, str] = {}
    for component in names:
        outage = "degraded_performance" if component == _QUEUE[0] else "major_outage"
        states[component] = component_status([r.ok for r in recent[component]], outage=outage)
    backend_states = [s for c, s in states.items() if c.startswith("backend:")]
    states["inference"] = _fleet_status(backend_states)
    return states


def _describe(component: str) -> str:
    if component.startswith("backend:"):
        return "A model server that writes replies."
    if component == _QUEUE[0]:
        return _QUEUE[1][1]
    return _FIXED_COMPONENTS.get(component, ("", ""))[1]
