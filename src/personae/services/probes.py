"""Health probes on a schedule, and the incidents they open and resolve by themselves.

Every round checks the database (a round trip), the event log (publish, then
read back), each inference backend (its health, then a real four-token
generation) and the waiting room (how long the oldest reply has waited). A
probe that does not answer within the timeout has failed: a hung backend is a
down backend. Two failures in a row open one incident for the component;
two passes in a row, once the component has stopped flapping, resolve it. A
component that passes and fails by turns keeps its one incident open and shows
degraded performance, so a flapping backend never makes an incident storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import timedelta

from personae.events.base import EventLog
from personae.llm.base import ChatTurn, Provider, SamplingParams
from personae.services.incidents import IncidentService
from personae.services.metrics import Metrics
from personae.services.status import (
    Backends,
    StatusService,
    component_name,
    consecutive_failures,
    is_flapping,
)
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import status as repo
from personae.storage.repos.status import ProbeRecord
from personae.storage.types import utcnow

log = logging.getLogger("personae.probes")
_RECOVERY_PASSES = 2
_OPEN_AFTER_FAILURES = 2
_PROBE_STREAM = "status:probe"
_PRUNE_EVERY_S = 3600.0
_DETAIL_CHARS = 300
_PROBE_PROMPT = (ChatTurn("user", "Reply with the single word: ok"),)
_PROBE_PARAMS = SamplingParams(max_tokens=4, temperature=0.0)


class _ProbeFailed(Exception):
    """The check answered, and the answer is bad."""


_TEXTS = {
    "database": (
        "critical",
        "Chats and characters cannot be loaded",
        "Our checks cannot reach the database since {since} UTC. Pages may fail to load and "
        "messages may not be accepted; nothing already saved is lost. We are on it.",
    ),
    "event_log": (
        "major",
        "Replies do not appear live",
        "The event log behind live replies fails our checks since {since} UTC. Replies are "
        "still written and saved: reload the chat to see them.",
    ),
    "queue": (
        "minor",
        "Replies are slow to start",
        "Replies wait longer than usual before they start (since {since} UTC). Your messages "
        "are saved and are answered in turn.",
    ),
}
_BACKEND_TEXT = (
    "major",
    "{name} is not answering",
    "{name} fails our checks since {since} UTC, so replies may wait or fail. Your messages "
    "are saved; a reply that fails keeps its text and can be regenerated.",
)


class ProbeRunner:
    """Runs a probe round every `probe_interval_s` and keeps automatic incidents in step."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        settings: Settings,
        incidents: IncidentService,
        status: StatusService,
        metrics: Metrics,
        backends: Backends,
    ) -> None:
        self._db = database
        self._events = events
        self._settings = settings
        self._incidents = incidents
        self._status = status
        self._metrics = metrics
        self._backends = backends
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._pruned_at = 0.0

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start probing in the background (not when the interval is 0)."""
        if self._settings.probe_interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="personae-probes")

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        # The first round waits one interval too: a starting server is not judged yet.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.probe_interval_s)
            if self._stop.is_set():
                return
            try:
                await self.run_round()
            except Exception:
                log.exception("a probe round failed; trying again next interval")

    # --- one round ---------------------------------------------------------------------

    async def run_round(self) -> list[ProbeRecord]:
        """Probe everything at once, store the results, then open or resolve incidents."""
        providers = list(self._backends())
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "api": self._api,
            "database": self._database,
            "event_log": self._event_log,
            "queue": self._queue,
        }
        for provider in providers:
            checks[f"backend:{provider.name}"] = _backend_check(provider)
        results = list(await asyncio.gather(*(self._timed(c, f) for c, f in checks.items())))
        backends = [r for r in results if r.component.startswith("backend:")]
        fleet_ok = any(r.ok for r in backends)
        detail = f"{sum(r.ok for r in backends)} of {len(backends)} backends answer"
        results.append(ProbeRecord("inference", fleet_ok, 0, detail, utcnow()))
        for result in results:
            self._metrics.probe(result.component, result.ok, result.latency_ms)
        async with self._db.write() as tx:
            await repo.insert_probe_results(tx, results)
            if time.monotonic() - self._pruned_at > _PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                cutoff = utcnow() - timedelta(days=self._settings.probe_retention_days)
                await repo.delete_probe_results_before(tx, cutoff)
        for component in checks:
            if component != "api":
                await self._reconcile(component)
        return results

    async def _timed(self, component: str, check: Callable[[], Awaitable[str]]) -> ProbeRecord:
        started = time.monotonic()
        timeout = self._settings.probe_timeout_s
        try:
            async with asyncio.timeout(timeout):
                detail, ok = await check(), True
        except TimeoutError:
            detail, ok = f"no answer within {timeout:g} s", False
        except Exception as error:
            detail, ok = f"{type(error).__name__}: {error}", False
        latency_ms = round((time.monotonic() - started) * 1000)
        return ProbeRecord(component, ok, latency_ms, detail[:_DETAIL_CHARS], utcnow())

    async def _api(self) -> str:
        return "serving"

    async def _database(self) -> str:
        await self._db.ping()
        return "round trip ok"

    async def _event_log(self) -> str:
        before = await self._events.last_id(_PROBE_STREAM)
        sent = await self._events.publish(_PROBE_STREAM, "probe", {"at": utcnow().isoformat()})
        received = await self._events.read(_PROBE_STREAM, before, wait_s=0)
        if sent.id not in {event.id for event in received}:
            raise _ProbeFailed("a published event could not be read back")
        return "publish and read ok"

    async def _queue(self) -> str:
        length, wait = await self._status.queue()
        if await self._status.replies_paused():
            return f"{length} waiting; replies are paused for maintenance"
        if wait > self._settings.probe_queue_wait_s:
            raise _ProbeFailed(f"{length} waiting; the oldest for {round(wait)} s")
        return f"{length} waiting; the oldest for {round(wait)} s"

    # --- automatic incidents -----------------------------------------------------------

    async def _reconcile(self, component: str) -> None:
        async with self._db.read() as tx:
            recent = [r.ok for r in await repo.recent_probe_results(tx, component, limit=10)]
        open_view = await self._incidents.open_automatic(component)
        if open_view is None:
            if consecutive_failures(recent) >= _OPEN_AFTER_FAILURES:
                await self._open(component)
            return
        incident = open_view.incident
        passing = len(recent) >= _RECOVERY_PASSES and all(recent[:_RECOVERY_PASSES])
        if passing and not is_flapping(recent):
            since = f"{incident.created_at:%H:%M}"
            await self._incidents.resolve(
                incident.id,
                f"{component_name(component)} works again: our checks pass. It was affected "
                f"from {since} to {utcnow():%H:%M} UTC. Nothing saved was lost; a reply that "
                "failed meanwhile can be regenerated.",
            )
        elif is_flapping(recent) and len(open_view.updates) == 1:
            await self._incidents.post_update(
                incident.id,
                incident.status,
                f"{component_name(component)} is unstable: our checks pass and fail by turns. "
                "We keep this incident open until it is steady again.",
            )

    async def _open(self, component: str) -> None:
        impact, title, body = _TEXTS.get(component, _BACKEND_TEXT)
        name = component_name(component)
        since = f"{utcnow():%H:%M}"
        log.warning("opening an automatic incident", extra={"component": component})
        await self._incidents.open(
            title.format(name=name),
            body.format(name=name, since=since),
            impact=impact,
            components=[component],
            automatic=True,
        )


def _backend_check(provider: Provider) -> Callable[[], Awaitable[str]]:
    async def check() -> str:
        if not await provider.health():
            raise _ProbeFailed("the health check failed")
        pieces = 0
        async with aclosing(provider.stream_chat(_PROBE_PROMPT, _PROBE_PARAMS)) as stream:
            async for _piece in stream:
                pieces += 1
        return f"healthy; generated {pieces} pieces"

    return check
